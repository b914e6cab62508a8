"""Settings of one service process, read from `CASEWORK_*` environment variables.

A `Settings` is built in a service's bootstrap and passed to whatever needs it; nothing here
reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]
OtelExporter = Literal["none", "console", "otlp"]

DEV_JWT_ISSUER = "casework-dev"
"""Issuer of tokens signed with the local dev key; refused in production."""

_DEFAULT_DEV_KEY_PATH = Path("~/.cache/casework/dev-jwt-key.pem")


class Settings(BaseSettings):
    """Configuration of one Casework service (DESIGN §8, §9, §11)."""

    model_config = SettingsConfigDict(env_prefix="CASEWORK_", extra="forbid")

    service: str = "casework"
    environment: Environment = "development"

    kafka_bootstrap_servers: str = "localhost:9092"
    mongo_url: str = "mongodb://localhost:27017"
    mongo_database: str = Field(
        default="",
        description="Database name; empty means `casework_<service>` (see `database_name`).",
    )

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    # Request body limits by route class (`casework.http.BodyClass`); larger bodies get 413.
    http_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    http_max_text_body_bytes: int = Field(default=256 * 1024, ge=1024)

    jwt_issuer: str = DEV_JWT_ISSUER
    jwt_audience: str = "casework"
    jwt_jwks_url: str | None = None
    # validate_default so that the default's `~` is expanded like a value from the environment.
    jwt_dev_key_path: Path = Field(default=_DEFAULT_DEV_KEY_PATH, validate_default=True)

    otel_exporter: OtelExporter = "none"
    otel_endpoint: str | None = None

    log_level: str = "INFO"
    log_json: bool = True

    relay_poll_interval_s: float = Field(default=1.0, gt=0)
    projection_max_attempts: int = Field(default=5, ge=1)

    namespace: str = Field(
        default="",
        pattern=r"^[a-z0-9-]*$",
        description=(
            "Prefix of every topic and consumer group, so that several stacks (a test run "
            "beside a running platform, say) share one Kafka cluster without meeting."
        ),
    )

    @field_validator("jwt_dev_key_path", mode="after")
    @classmethod
    def _expand_user(cls, path: Path) -> Path:
        return path.expanduser()

    @field_validator("log_level", mode="after")
    @classmethod
    def _known_log_level(cls, level: str) -> str:
        level = level.upper()
        if level not in {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}:
            raise ValueError("must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG")
        return level

    @model_validator(mode="after")
    def _production_needs_real_identity_provider(self) -> Self:
        # The dev key is a file any local user can mint tokens with: a production service
        # must trust only the identity provider's published keys.
        if self.environment != "production":
            return self
        if not self.jwt_jwks_url:
            raise ValueError(
                "CASEWORK_JWT_JWKS_URL is required in production: tokens must be verified "
                "against the identity provider's keys, not the local dev key"
            )
        if "jwt_dev_key_path" in self.model_fields_set:
            raise ValueError(
                "the local dev key is refused in production: unset CASEWORK_JWT_DEV_KEY_PATH "
                "and verify tokens with CASEWORK_JWT_JWKS_URL"
            )
        if self.jwt_issuer == DEV_JWT_ISSUER:
            raise ValueError(
                f"CASEWORK_JWT_ISSUER is still the dev issuer {DEV_JWT_ISSUER!r}; set it to "
                "the identity provider's issuer in production"
            )
        return self

    @property
    def database_name(self) -> str:
        """The MongoDB database this service owns: `mongo_database`, else `casework_<service>`."""
        return self.mongo_database or f"casework_{self.service}"

    @property
    def uses_dev_key(self) -> bool:
        """Whether tokens are verified with the local dev key rather than a JWKS URL."""
        return self.jwt_jwks_url is None

    @classmethod
    def for_service(cls, name: str, port: int, **overrides: Any) -> Self:
        """Settings for service `name` on `port`; environment variables fill in the rest.

        Explicit `overrides` win over the environment, which makes this the one call a
        service's bootstrap or a test needs. `port` is the service's default: a
        `CASEWORK_HTTP_PORT` in the environment moves it.
        """
        settings = cls(service=name, **overrides)
        if "http_port" not in settings.model_fields_set:
            settings.http_port = port
        return settings
