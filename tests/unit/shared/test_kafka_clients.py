"""Kafka settings → client options and topic specs (`casework.kafka_clients`)."""

from __future__ import annotations

import os
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.kafka.security import parse_security
from faststream.security import SASLPlaintext, SASLScram512
from pydantic import ValidationError

from casework.kafka_clients import (
    MIN_INSYNC_REPLICAS,
    RETENTION,
    TopicSpec,
    config_shortfalls,
    faststream_security,
    kafka_client_options,
    topic_specs,
)
from casework.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CASEWORK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")


def settings(**values: Any) -> Settings:
    return Settings.model_validate(values)


def test_the_defaults_are_plaintext_to_one_local_broker() -> None:
    options = kafka_client_options(settings())

    assert options == {"bootstrap_servers": "localhost:9092", "security_protocol": "PLAINTEXT"}
    assert faststream_security(settings()) is None


def test_sasl_over_tls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWORK_KAFKA_BOOTSTRAP_SERVERS", "b1:9093,b2:9093")
    monkeypatch.setenv("CASEWORK_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CASEWORK_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CASEWORK_KAFKA_SASL_USERNAME", "cases")
    monkeypatch.setenv("CASEWORK_KAFKA_SASL_PASSWORD", "s3cret")

    configured = Settings()
    options = kafka_client_options(configured)

    assert options["bootstrap_servers"] == "b1:9093,b2:9093"
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("cases", "s3cret")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert "s3cret" not in repr(configured)  # the password is a secret in the settings


def test_faststream_gets_the_same_connection_as_aiokafka_clients() -> None:
    configured = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="cases",
        kafka_sasl_password="s3cret",
    )
    security = faststream_security(configured)
    options = kafka_client_options(configured)

    assert isinstance(security, SASLScram512)
    parsed = parse_security(security)  # what FastStream hands to aiokafka
    for key in (
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
    ):
        assert parsed[key] == options[key], key
    assert isinstance(parsed["ssl_context"], ssl.SSLContext)


def test_sasl_plain_without_tls() -> None:
    configured = settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
    )

    assert "ssl_context" not in kafka_client_options(configured)
    security = faststream_security(configured)
    assert isinstance(security, SASLPlaintext)
    assert parse_security(security)["security_protocol"] == "SASL_PLAINTEXT"


def test_tls_with_a_private_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(_self_signed_ca("casework-test-ca"))
    configured = settings(kafka_security_protocol="SSL", kafka_ssl_cafile=ca)

    options = kafka_client_options(configured)

    assert options["security_protocol"] == "SSL"
    (trusted,) = options["ssl_context"].get_ca_certs()
    assert trusted["subject"] == ((("commonName", "casework-test-ca"),),)
    assert parse_security(faststream_security(configured))["security_protocol"] == "SSL"


async def test_every_client_accepts_the_options() -> None:
    options = kafka_client_options(
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-256",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
    )
    # Constructing validates the arguments without connecting.
    AIOKafkaProducer(**options)
    AIOKafkaConsumer(**options)
    AIOKafkaAdminClient(**options)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "CASEWORK_KAFKA_SASL_MECHANISM"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN"},
            "CASEWORK_KAFKA_SASL_USERNAME",
        ),
        ({"kafka_sasl_mechanism": "PLAIN"}, "use SASL_SSL"),
        ({"kafka_replication_factor": 1, "kafka_min_insync_replicas": 2}, "cannot exceed"),
        ({"kafka_ssl_certfile": "/c.pem"}, "go together"),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
        ({"kafka_events_retention_ms": -2}, "kafka_events_retention_ms"),
    ],
)
def test_inconsistent_kafka_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**values)


def test_topic_specs_take_partitions_replication_and_retention_from_settings() -> None:
    configured = settings(
        kafka_topic_partitions=12,
        kafka_dead_letter_partitions=2,
        kafka_replication_factor=3,
        kafka_min_insync_replicas=2,
        kafka_dead_letter_retention_ms=90 * 24 * 3600 * 1000,
    )

    specs = {s.name: s for s in topic_specs(configured, ["a.events"], ["a.x.dlq"])}

    assert specs["a.events"] == TopicSpec(
        "a.events", 12, 3, {RETENTION: "-1", MIN_INSYNC_REPLICAS: "2"}
    )
    assert specs["a.x.dlq"].configs[RETENTION] == str(90 * 24 * 3600 * 1000)
    assert (specs["a.x.dlq"].partitions, specs["a.x.dlq"].replication_factor) == (2, 3)


def test_the_default_topics_keep_everything_on_one_local_broker() -> None:
    (events, dead) = topic_specs(settings(), ["s.events"], ["s.p.dlq"])

    for spec in (events, dead):
        assert spec.replication_factor == 1
        assert spec.configs == {RETENTION: "-1", MIN_INSYNC_REPLICAS: "1"}
    # events spread over six partitions; poison, rare and read by an operator, needs one
    assert (events.partitions, dead.partitions) == (6, 1)


@pytest.mark.parametrize(
    ("wanted", "have", "reported"),
    [
        ("-1", "-1", False),
        ("-1", "604800000", True),  # Kafka's 7-day default on a topic made elsewhere
        ("86400000", "604800000", False),  # keeps longer than asked: fine
        ("604800000", "86400000", True),
    ],
)
def test_shorter_retention_on_an_existing_topic_is_reported(
    wanted: str, have: str, reported: bool
) -> None:
    spec = TopicSpec("t", 6, 1, {RETENTION: wanted, MIN_INSYNC_REPLICAS: "1"})

    problems = config_shortfalls(spec, {RETENTION: have, MIN_INSYNC_REPLICAS: "1"})

    assert bool(problems) is reported
    if reported:
        assert "topic t" in problems[0]
        assert f"retention.ms={have}" in problems[0]


def test_a_different_min_insync_replicas_is_reported() -> None:
    spec = TopicSpec("t", 6, 3, {RETENTION: "-1", MIN_INSYNC_REPLICAS: "2"})

    (problem,) = config_shortfalls(spec, {RETENTION: "-1", MIN_INSYNC_REPLICAS: "1"})

    assert "min.insync.replicas=1" in problem
    assert "CASEWORK_KAFKA_MIN_INSYNC_REPLICAS" in problem


def _self_signed_ca(name: str) -> bytes:
    """A throwaway CA certificate, only loaded as a trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)
