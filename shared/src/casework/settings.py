"""Settings of one service process, read from `CASEWORK_*` environment variables.

A `Settings` is built in a service's bootstrap and passed to whatever needs it; nothing here
reads the environment at import time.

Invariant: a process that was not told its environment is a production process. Production
trusts only the identity provider's keys (`CASEWORK_JWT_JWKS_URL`), so a service started
without `CASEWORK_ENVIRONMENT` refuses to start rather than trust a generated development key;
`make up`, the tests and the benchmarks ask for `development` or `test` explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]
OtelExporter = Literal["none", "console", "otlp"]
KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

DEV_JWT_ISSUER = "casework-dev"
"""Issuer of tokens signed with the local dev key; refused in production."""

_DEFAULT_DEV_KEY_PATH = Path("~/.cache/casework/dev-jwt-key.pem")
_DEFAULT_KEK_FILE = Path("~/.cache/casework/dev-kek")


class Settings(BaseSettings):
    """Configuration of one Casework service (DESIGN §8, §9, §11)."""

    model_config = SettingsConfigDict(env_prefix="CASEWORK_", extra="forbid")

    service: str = "casework"
    environment: Environment = Field(
        default="production",
        description=(
            "production unless told otherwise: a service nobody configured must not trust a "
            "generated development key (`make up` and the tests set development or test)."
        ),
    )

    kafka_bootstrap_servers: str = "localhost:9092"
    # Connection security of every Kafka client the services build (`casework.kafka_clients`).
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle for the brokers' certificates; none: system CAs."
    )
    kafka_ssl_certfile: Path | None = Field(default=None, description="client certificate (mTLS)")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="its private key (mTLS)")
    # Topics the services create (`casework.kafka_clients.create_topics`). The defaults suit
    # one local broker; a production cluster wants replication 3 and min.insync.replicas 2.
    kafka_topic_partitions: int = Field(default=6, ge=1)
    kafka_dead_letter_partitions: int = Field(
        default=1,
        ge=1,
        description="Partitions of each dead-letter topic. One is enough: poison is rare, read "
        "by an operator, and every consumer group has its own dead-letter topic, so six each "
        "multiplied a broker's partitions (and its open files) for nothing.",
    )
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_min_insync_replicas: int = Field(default=1, ge=1)
    kafka_events_retention_ms: int = Field(
        default=-1,
        ge=-1,
        description="retention.ms of the event topics: -1 keeps every event (rebuilds read them).",
    )
    kafka_dead_letter_retention_ms: int = Field(
        default=-1,
        ge=-1,
        description="retention.ms of the dead-letter topics: -1 keeps them until handled.",
    )
    mongo_url: str = "mongodb://localhost:27017"
    mongo_database: str = Field(
        default="",
        description="Database name; empty means `casework_<service>` (see `database_name`).",
    )
    mongo_socket_timeout_ms: int = Field(
        default=20_000,
        ge=1000,
        description="How long one database operation may wait for the server's reply before it "
        "fails as a transient outage (retried by consumers, 503 at the HTTP edge) instead of "
        "hanging on a stalled server or network.",
    )

    audit_mongo_database: str = Field(
        default="casework_audit",
        description="The audit store's database (`casework.auditstore`): written only by its "
        "consumer, read by `casework audit`; never by a service.",
    )

    # Data protection (`casework.privacy`): one key store for the platform, its own database.
    keys_mongo_db: str = Field(
        default="casework_keys",
        description="Database of the key store (data keys per subject and record class).",
    )
    kek_file: Path = Field(
        default=_DEFAULT_KEK_FILE,
        validate_default=True,
        description="Key file of the key-encryption key (`LocalKeyFileProvider`); `make up` "
        "and the tests create one. Without it, or with another one, services refuse to start.",
    )
    keys_cache_ttl_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How long a process keeps an unwrapped data key: an erasure reaches every "
        "answer within this time (the erasing process at once).",
    )

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    # Request body limits by route class (`casework.http.BodyClass`); larger bodies get 413.
    http_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    http_max_text_body_bytes: int = Field(default=256 * 1024, ge=1024)
    http_keep_alive_s: int = Field(
        default=75,
        ge=1,
        description="How long an idle client connection is kept open. Longer than any client's "
        "or load balancer's own idle limit (httpx 5 s, AWS ALB 60 s), so the server never "
        "closes a connection the client is about to reuse (the client's request then meets a "
        "connection reset).",
    )

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
    relay_idle_poll_max_s: float = Field(
        default=1.0,
        gt=0,
        description="The relay's poll backs off to this while it finds nothing: a commit no "
        "relay was woken for (another replica's, or a crash's) is published within it. 1 s "
        "by default: with two replicas, a crisis declared on the one without the relay's lease "
        "waits for this poll, and a crisis must be out within a second; a single replica may "
        "raise it (4 s saves about one database command per second per service).",
    )
    audit_relay_idle_poll_max_s: float = Field(
        default=8.0,
        gt=0,
        description="The same for the audit relay: a record no audit relay was woken for is "
        "published within it.",
    )
    deadline_idle_tick_max_s: float = Field(
        default=4.0,
        gt=0,
        description="The deadline scheduler's tick backs off to this while it sees no entry: "
        "a deadline scheduled by another replica fires within it of its due time.",
    )
    readiness_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="How long `/readyz` waits for the database or the broker (under the "
        "orchestrator's probe timeout; a busy database answering slowly is not down).",
    )
    readiness_broker_cache_s: float = Field(
        default=3.0,
        ge=0,
        description="How long a broker probe's answer is reused by `/readyz` (probes are cheap "
        "but every replica is probed every few seconds).",
    )
    readiness_lag_limit_s: float = Field(
        default=30.0,
        gt=0,
        description="Outbox age or consumer lag beyond which a service reports itself degraded.",
    )
    projection_max_attempts: int = Field(default=5, ge=1)

    namespace: str = Field(
        default="",
        pattern=r"^[a-z0-9-]*$",
        description=(
            "Prefix of every topic and consumer group, so that several stacks (a test run "
            "beside a running platform, say) share one Kafka cluster without meeting."
        ),
    )

    @field_validator("jwt_dev_key_path", "kek_file", mode="after")
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
    def _kafka_settings_agree(self) -> Self:
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError(
                "CASEWORK_KAFKA_MIN_INSYNC_REPLICAS cannot exceed "
                "CASEWORK_KAFKA_REPLICATION_FACTOR: no write could ever be acknowledged"
            )
        if self.kafka_security_protocol.startswith("SASL_"):
            if self.kafka_sasl_mechanism is None:
                raise ValueError(
                    f"CASEWORK_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                    "CASEWORK_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
                )
            if not self.kafka_sasl_username or self.kafka_sasl_password is None:
                raise ValueError(
                    "SASL needs CASEWORK_KAFKA_SASL_USERNAME and CASEWORK_KAFKA_SASL_PASSWORD"
                )
        elif self.kafka_sasl_mechanism is not None:
            raise ValueError(
                "CASEWORK_KAFKA_SASL_MECHANISM is set but CASEWORK_KAFKA_SECURITY_PROTOCOL is "
                f"{self.kafka_security_protocol}: use SASL_SSL (or SASL_PLAINTEXT)"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError(
                "CASEWORK_KAFKA_SSL_CERTFILE and CASEWORK_KAFKA_SSL_KEYFILE go together"
            )
        return self

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

    @classmethod
    def for_developer_tool(cls, **overrides: Any) -> Self:
        """Settings for a developer's command (`casework token`): without a
        `CASEWORK_ENVIRONMENT` it is development, not production.

        Only for tools that never serve: minting a token with the dev key is harmless, as
        services (production by default) refuse tokens signed with it.
        """
        if "CASEWORK_ENVIRONMENT" not in os.environ:
            overrides.setdefault("environment", "development")
        return cls(**overrides)
