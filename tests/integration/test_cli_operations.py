"""`casework projections` and `casework parked` on a service's settings from the environment,
against the real database."""

from __future__ import annotations

import os
import uuid

import pytest

from casework.cli import main


@pytest.fixture
def service_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """The settings a service would run with, from the environment (a database of its own)."""
    database = f"test_cli_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")
    monkeypatch.setenv("CASEWORK_MONGO_DATABASE", database)
    monkeypatch.setenv("CASEWORK_NAMESPACE", f"cli{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv(
        "CASEWORK_MONGO_URL", os.environ.get("CASEWORK_MONGO_URL", "mongodb://localhost:27017")
    )
    return database


def test_projections_and_parked_run_on_the_service_settings(
    service_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["projections", "cases"]) == 0
    listed = capsys.readouterr().out
    assert "when_referral_accepted_open_case" in listed
    assert "case_summaries" in listed
    assert main(["parked", "cases", "intake"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing parked in a fresh database
    assert "cases: 0 parked stream(s)" in captured.err
    assert "intake: 0 parked stream(s)" in captured.err
