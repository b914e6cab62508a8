"""Settings: defaults, environment variables, and what production refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from casework.settings import Settings

JWKS_URL = "https://id.example.org/.well-known/jwks.json"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's shell may export CASEWORK_* variables; the tests must not see them.
    for name in list(os.environ):
        if name.startswith("CASEWORK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")  # as the suite asks (tests/conftest.py)


def test_without_an_environment_a_service_is_production_and_refuses_the_dev_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CASEWORK_ENVIRONMENT")

    with pytest.raises(ValidationError, match="CASEWORK_JWT_JWKS_URL is required in production"):
        Settings.for_service("cases", 8002)
    assert Settings.model_fields["environment"].default == "production"


def test_a_developer_tool_without_an_environment_is_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CASEWORK_ENVIRONMENT")
    assert Settings.for_developer_tool().environment == "development"
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="JWKS"):
        Settings.for_developer_tool()


def test_database_name_defaults_to_casework_and_the_service() -> None:
    assert Settings(service="intake").database_name == "casework_intake"


def test_an_explicit_database_name_wins() -> None:
    settings = Settings(service="intake", mongo_database="intake_e2e")

    assert settings.database_name == "intake_e2e"


def test_for_service_sets_name_and_port_and_reads_the_rest_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CASEWORK_KAFKA_BOOTSTRAP_SERVERS", "broker:29092")
    monkeypatch.setenv("CASEWORK_HTTP_PORT", "9999")

    settings = Settings.for_service("cases", 8002, log_json=False)

    assert settings.service == "cases"
    assert settings.http_port == 9999  # the port is a default; the environment moves it
    assert settings.kafka_bootstrap_servers == "broker:29092"
    assert settings.log_json is False
    assert settings.database_name == "casework_cases"
    monkeypatch.delenv("CASEWORK_HTTP_PORT")
    assert Settings.for_service("cases", 8002).http_port == 8002


def test_for_service_refuses_unknown_overrides() -> None:
    with pytest.raises(ValidationError, match="jwt_issuer_typo"):
        Settings.for_service("cases", 8002, jwt_issuer_typo="x")


def test_the_dev_key_path_expands_the_home_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))

    default = Settings().jwt_dev_key_path
    monkeypatch.setenv("CASEWORK_JWT_DEV_KEY_PATH", "~/keys/dev.pem")
    from_environment = Settings().jwt_dev_key_path

    assert default == tmp_path / ".cache" / "casework" / "dev-jwt-key.pem"
    assert from_environment == tmp_path / "keys" / "dev.pem"


def test_values_are_parsed_from_environment_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWORK_LOG_JSON", "false")
    monkeypatch.setenv("CASEWORK_RELAY_POLL_INTERVAL_S", "0.25")
    monkeypatch.setenv("CASEWORK_LOG_LEVEL", "debug")

    settings = Settings()

    assert settings.log_json is False
    assert settings.relay_poll_interval_s == 0.25
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("environment", "staging"),
        ("otel_exporter", "zipkin"),
        ("log_level", "LOUD"),
        ("projection_max_attempts", 0),
        ("http_port", 70000),
    ],
)
def test_invalid_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings.model_validate({field: value})


def test_production_requires_a_jwks_url() -> None:
    with pytest.raises(ValidationError, match="CASEWORK_JWT_JWKS_URL is required in production"):
        Settings(environment="production", jwt_issuer="https://id.example.org")


def test_production_refuses_the_dev_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="dev key is refused in production"):
        Settings(
            environment="production",
            jwt_jwks_url=JWKS_URL,
            jwt_issuer="https://id.example.org",
            jwt_dev_key_path=tmp_path / "dev.pem",
        )


def test_production_refuses_the_dev_key_set_through_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "production")
    monkeypatch.setenv("CASEWORK_JWT_JWKS_URL", JWKS_URL)
    monkeypatch.setenv("CASEWORK_JWT_ISSUER", "https://id.example.org")
    monkeypatch.setenv("CASEWORK_JWT_DEV_KEY_PATH", str(tmp_path / "dev.pem"))

    with pytest.raises(ValidationError, match="dev key is refused in production"):
        Settings()


def test_production_refuses_the_dev_issuer() -> None:
    with pytest.raises(ValidationError, match="dev issuer"):
        Settings(environment="production", jwt_jwks_url=JWKS_URL)


def test_production_with_an_identity_provider_is_accepted() -> None:
    settings = Settings(
        environment="production", jwt_jwks_url=JWKS_URL, jwt_issuer="https://id.example.org"
    )

    assert settings.uses_dev_key is False


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_test_use_the_dev_key(environment: str) -> None:
    settings = Settings.model_validate({"environment": environment})

    assert settings.uses_dev_key is True
