"""The `casework` command."""

from __future__ import annotations

import os
from pathlib import Path

import jwt
import pytest

from casework.auth import Principal, build_verifier
from casework.cli import main
from casework.settings import Settings


@pytest.fixture(autouse=True)
def dev_key_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("CASEWORK_"):
            monkeypatch.delenv(name)
    path = tmp_path / "keys" / "dev-jwt-key.pem"
    monkeypatch.setenv("CASEWORK_JWT_DEV_KEY_PATH", str(path))
    return path


def test_token_prints_one_line_that_verifies(
    capsys: pytest.CaptureFixture[str], dev_key_path: Path
) -> None:
    status = main(
        [
            "token",
            "--sub",
            "u-1",
            "--role",
            "caseworker",
            "--role",
            "crisis_worker",
            "--site",
            "north",
            "--site",
            "south",
            "--name",
            "Ana",
            "--team",
            "north-a",
        ]
    )

    out = capsys.readouterr().out
    assert status == 0
    assert dev_key_path.exists()  # created on first use
    assert out.endswith("\n")
    assert out.count("\n") == 1
    # the CLI, told no environment, mints for development; a development service verifies
    principal = build_verifier(Settings(environment="development")).verify(out.strip())
    assert principal == Principal(
        sub="u-1",
        name="Ana",
        roles=frozenset({"caseworker", "crisis_worker"}),
        sites=frozenset({"north", "south"}),
        team="north-a",
    )


def test_token_lifetime_follows_ttl(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["token", "--sub", "u-1", "--role", "ops", "--site", "north", "--ttl", "60"])

    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
    assert status == 0
    assert claims["exp"] - claims["iat"] == 60


def test_token_refuses_an_unknown_role(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["token", "--sub", "u-1", "--role", "admin", "--site", "north"])

    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert "unknown role(s): admin" in captured.err
    assert "caseworker" in captured.err  # the message lists the roles that exist


def test_token_refuses_a_non_positive_ttl(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["token", "--sub", "u", "--role", "ops", "--site", "x", "--ttl", "0"])

    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert "--ttl" in captured.err


def test_token_refuses_to_mint_in_production(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CASEWORK_JWT_DEV_KEY_PATH")
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "production")
    monkeypatch.setenv("CASEWORK_JWT_JWKS_URL", "https://id.example.org/jwks.json")
    monkeypatch.setenv("CASEWORK_JWT_ISSUER", "https://id.example.org")

    status = main(["token", "--sub", "u-1", "--role", "ops", "--site", "north"])

    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert "production" in captured.err


def test_token_needs_a_subject(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["token", "--role", "ops", "--site", "north"])

    assert exit_info.value.code == 2
    assert "--sub" in capsys.readouterr().err


def test_a_subcommand_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])

    assert exit_info.value.code == 2
    assert "token" in capsys.readouterr().err
