"""Kafka clients and topics from settings, not code (DESIGN §10).

- `kafka_client_options(settings)` is the one place that turns `CASEWORK_KAFKA_*` settings
  into the connection keyword arguments of an aiokafka client (bootstrap servers, TLS, SASL);
  every producer, consumer and admin client the services build takes them, and
  `faststream_security(settings)` gives FastStream's `KafkaBroker` the same as its security
  object. Defaults: PLAINTEXT to one local broker.
- `create_topics` creates the topics a service writes or reads with the partitions,
  replication factor, `min.insync.replicas` and retention of the settings. Event topics keep
  everything by default (`retention.ms=-1`): "rebuild from the topics" must see every event,
  and Kafka's 7-day default would make it silently partial after a week.
- Invariant: an existing topic is never altered here. One whose retention is shorter than the
  settings ask (or whose `min.insync.replicas` differs) is reported in a warning naming the
  topic, its value and the setting, for an operator to change deliberately.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from casework.settings import Settings

log = logging.getLogger(__name__)

RETENTION = "retention.ms"
MIN_INSYNC_REPLICAS = "min.insync.replicas"


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Connection keyword arguments for any aiokafka client (producer, consumer, admin,
    `AIOKafkaClient`): bootstrap servers, security protocol, SSL context and SASL."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
        )
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # the settings' validator says so
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def faststream_security(settings: Settings) -> BaseSecurity | None:
    """The security object FastStream's `KafkaBroker(security=...)` turns into the same
    connection options as `kafka_client_options` (None for PLAINTEXT)."""
    options = kafka_client_options(settings)
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    ssl_context = options.get("ssl_context")
    if protocol == "SSL":
        return BaseSecurity(ssl_context=ssl_context, use_ssl=True)
    username = options["sasl_plain_username"]
    password = options["sasl_plain_password"]
    use_ssl = protocol == "SASL_SSL"
    sasl = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return sasl[options["sasl_mechanism"]](
        username, password, ssl_context=ssl_context, use_ssl=use_ssl
    )


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create and the configuration it must have."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


def topic_specs(
    settings: Settings, events: Iterable[str], dead_letters: Iterable[str]
) -> list[TopicSpec]:
    """The topics with their configuration from the settings: event topics keep
    `kafka_events_retention_ms` on `kafka_topic_partitions`, dead-letter topics
    `kafka_dead_letter_retention_ms` on `kafka_dead_letter_partitions`."""

    def spec(name: str, retention_ms: int, partitions: int) -> TopicSpec:
        return TopicSpec(
            name=name,
            partitions=partitions,
            replication_factor=settings.kafka_replication_factor,
            configs={
                RETENTION: str(retention_ms),
                MIN_INSYNC_REPLICAS: str(settings.kafka_min_insync_replicas),
            },
        )

    specs = {
        name: spec(name, settings.kafka_events_retention_ms, settings.kafka_topic_partitions)
        for name in events
    }
    specs.update(
        {
            n: spec(
                n, settings.kafka_dead_letter_retention_ms, settings.kafka_dead_letter_partitions
            )
            for n in dead_letters
        }
    )
    return [specs[name] for name in sorted(specs)]


async def create_topics(connection: Mapping[str, Any], specs: Sequence[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet, configured as `specs` say (idempotent), over
    a connection made with `connection` (`kafka_client_options`).

    Existing topics are left as they are; each configuration that falls short of its spec is
    logged as a warning. Returns those warnings (for tests and the caller's own report).
    """
    admin = AIOKafkaAdminClient(**connection)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            # The broker answers per topic; "already exists" means another client created it
            # since this one's metadata was fetched: it is checked like any existing topic.
            with contextlib.suppress(TopicAlreadyExistsError):
                response = await admin.create_topics(
                    [
                        NewTopic(
                            s.name,
                            num_partitions=s.partitions,
                            replication_factor=s.replication_factor,
                            topic_configs=dict(s.configs),
                        )
                        for s in missing
                    ]
                )
                existing |= {
                    error[0]
                    for error in getattr(response, "topic_errors", ())
                    if error[1] == TopicAlreadyExistsError.errno
                }
        present = [s for s in specs if s.name in existing]
        if not present:
            return []
        configs = await describe_topic_configs(admin, [s.name for s in present])
    finally:
        await admin.close()
    problems = [p for s in present for p in config_shortfalls(s, configs.get(s.name, {}))]
    for problem in problems:
        log.warning("%s", problem)
    return problems


async def describe_topic_configs(
    admin: AIOKafkaAdminClient, topics: Sequence[str]
) -> dict[str, dict[str, str]]:
    """Each topic's effective `retention.ms` and `min.insync.replicas`, as the broker says."""
    responses = await admin.describe_configs(
        [
            ConfigResource(
                ConfigResourceType.TOPIC, t, {RETENTION: None, MIN_INSYNC_REPLICAS: None}
            )
            for t in topics
        ]
    )
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        # resources: (error_code, error_message, resource_type, resource_name, entries),
        # an entry: (name, value, read_only, is_default | config_source, is_sensitive, ...)
        for resource in response.resources:
            if resource[0] == 0:
                found[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
    return found


def config_shortfalls(spec: TopicSpec, actual: Mapping[str, str]) -> list[str]:
    """What an existing topic lacks of its spec, as messages for an operator."""
    problems = []
    wanted = int(spec.configs.get(RETENTION, "-1"))
    have = int(actual.get(RETENTION, str(wanted)))
    if RETENTION in spec.configs and have != -1 and (wanted == -1 or have < wanted):
        problems.append(
            f"topic {spec.name} keeps records for retention.ms={have}, shorter than the "
            f"settings' {wanted} (CASEWORK_KAFKA_EVENTS_RETENTION_MS or "
            "CASEWORK_KAFKA_DEAD_LETTER_RETENTION_MS): events older than that are deleted and "
            "a rebuild from the topic misses them. Not altered automatically: run "
            f"`kafka-configs.sh --alter --entity-type topics --entity-name {spec.name} "
            f"--add-config retention.ms={wanted}` if that is what you want"
        )
    wanted_isr = spec.configs.get(MIN_INSYNC_REPLICAS)
    if wanted_isr is not None and actual.get(MIN_INSYNC_REPLICAS, wanted_isr) != wanted_isr:
        problems.append(
            f"topic {spec.name} has min.insync.replicas={actual[MIN_INSYNC_REPLICAS]}, the "
            f"settings ask for {wanted_isr} (CASEWORK_KAFKA_MIN_INSYNC_REPLICAS); not altered "
            "automatically"
        )
    return problems
