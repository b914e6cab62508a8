"""The audit store: the audit topic consumed into a database of its own (issue 8).

`python -m casework.auditstore` runs the consumer (a process of its own: in production with
database credentials no service holds, so the services can publish records but never
rewrite stored ones). `casework audit subject|agent` reads the store.

**Invariant: each record on the topic is stored exactly once and never changed.** The
consumer is a Kafka consumer group with auto-commit off; a batch is inserted (`_id` = the
record id, unordered, a duplicate key ignored) and only then are its offsets committed. A
record redelivered — a crash between the insert and the commit, a rebalance, a consumer
restart, the relay publishing twice — meets its own `_id` and changes nothing. Nothing in
the platform updates or deletes a stored record. A transient failure (database or broker
away) is retried, the batch held, for as long as it lasts: nothing is skipped. A message that
is not an AuditEvent (it cannot come from the services) is kept whole in
`unreadable` under `<topic>:<partition>:<offset>` (also once), so it is never silently lost.

A stored document: `_id` (the record id), `recorded_at` (a date, for ranges), `sub`,
`roles`, `subjects` (the data subjects shown), `purpose` (the HL7 code), `action`,
`outcome` (the HTTP status), `service` (`casework/<name>`), `operation` (method and
route), `resource` (the path), `request_id`, `about` (the ids the request was about, by
kind: `case_id`, `referral_id`, `case_ids`, ...) and `event` (the AuditEvent as published).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from casework.audit import AUDIT_TOPIC, EXT_REQUEST_ID, purpose_code, subjects_of
from casework.eventstore import Document
from casework.kafka_clients import kafka_client_options
from casework.projections import transient_kind
from casework.settings import Settings

log = logging.getLogger(__name__)

DUPLICATE_KEY: Final = 11000
GROUP: Final = "casework.audit.store"


def store_document(event: Mapping[str, Any]) -> Document:
    """The stored form of an AuditEvent: the event and the fields the questions filter on."""
    agent = (event.get("agent") or [{}])[0]
    outcome_text = ((event.get("outcome") or {}).get("detail") or [{}])[0].get("text", "")
    entity0 = (event.get("entity") or [{}])[0]
    about: dict[str, Any] = {}
    for entity in event.get("entity", [])[1:]:
        identifier = entity.get("what", {}).get("identifier", {})
        kind = str(identifier.get("system", "")).removeprefix("urn:casework:")
        if kind and kind != "data-subject":
            value = identifier.get("value")
            if kind.endswith("_ids"):
                about.setdefault(kind, []).append(value)
            else:
                about[kind] = value
    request_id = next(
        (
            e.get("valueString")
            for e in event.get("extension", [])
            if e.get("url") == EXT_REQUEST_ID
        ),
        None,
    )
    return {
        "_id": str(event["id"]),
        "recorded_at": datetime.fromisoformat(str(event["recorded"])),
        "sub": agent.get("who", {}).get("identifier", {}).get("value"),
        "roles": [r.get("text") for r in agent.get("role", [])],
        "sites": agent.get("site", []),
        "subjects": subjects_of(event),
        "purpose": purpose_code(event),
        "action": event.get("action"),
        "operation": entity0.get("description"),
        "resource": entity0.get("what", {}).get("reference"),
        "outcome": int(outcome_text.removeprefix("HTTP ")) if outcome_text else None,
        "service": str(event.get("source", {}).get("observer", {}).get("display", "")),
        "request_id": request_id,
        "about": about,
        "event": dict(event),
    }


class AuditStore:
    """The audit store's records: inserted once, never changed; asked by subject or agent."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.records: AsyncCollection[Document] = database["records"]
        self.unreadable: AsyncCollection[Document] = database["unreadable"]

    async def ensure_indexes(self) -> None:
        """Indexes for the two questions (equality on `subjects` / `sub`, then time)."""
        await self.records.create_index([("subjects", ASCENDING), ("recorded_at", DESCENDING)])
        await self.records.create_index([("sub", ASCENDING), ("recorded_at", DESCENDING)])

    async def insert(self, documents: list[Document]) -> int:
        """Insert the documents not stored yet; the number new. Duplicates are ignored
        (redelivery); any other write error is raised."""
        if not documents:
            return 0
        try:
            result = await self.records.insert_many(documents, ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return int(exc.details.get("nInserted", 0))

    async def keep_unreadable(self, record: ConsumerRecord[bytes, bytes], error: str) -> None:
        """Keep a message that is not an AuditEvent, once, by its position."""
        key = f"{record.topic}:{record.partition}:{record.offset}"
        with contextlib.suppress(BulkWriteError):
            await self.unreadable.insert_many(
                [{"_id": key, "error": error, "value": record.value}], ordered=False
            )

    async def about_subject(
        self,
        subject: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        linked: Sequence[str] = (),
    ) -> list[Document]:
        """Who saw this data subject's data, when and why (oldest first). `linked`: the
        subjects linked to it in the key store (a referral's person, once accepted as this
        client), whose data is this subject's too: their records are included."""
        found: dict[Any, Document] = {}
        for each in dict.fromkeys([subject, *linked]):  # equality: pushed down on FerretDB
            for record in await self._find({"subjects": each}, since, until):
                found.setdefault(record["_id"], record)
        return sorted(found.values(), key=lambda r: (r["recorded_at"], str(r["_id"])))

    async def by_agent(
        self, sub: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[Document]:
        """What this person did and looked at (oldest first)."""
        return await self._find({"sub": sub}, since, until)

    async def _find(
        self, query: dict[str, Any], since: datetime | None, until: datetime | None
    ) -> list[Document]:
        window: dict[str, Any] = {}
        if since is not None:
            window["$gte"] = since
        if until is not None:
            window["$lt"] = until
        if window:
            query = {**query, "recorded_at": window}
        cursor = self.records.find(query).sort([("recorded_at", ASCENDING), ("_id", ASCENDING)])
        return await cursor.to_list(None)


class AuditStoreConsumer:
    """Consumes the audit topic into the `AuditStore` (see the module's invariant)."""

    def __init__(
        self,
        store: AuditStore,
        consumer: AIOKafkaConsumer,
        *,
        batch: int = 500,
    ) -> None:
        self.store = store
        self._consumer = consumer
        self._batch = batch
        self.stored = 0
        self.failing_since: float | None = None

    async def run(self) -> None:
        """Consume until cancelled."""
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=self._batch)
            records = [r for partition in batches.values() for r in partition]
            if not records:
                continue
            await self.store_batch(records)
            await self._commit_until_done()

    async def store_batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Store one batch, retrying while the failure is transient (offsets not committed)."""
        documents: list[Document] = []
        unreadable: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
        for record in records:
            try:
                event = json.loads(record.value or b"")
                if not isinstance(event, dict) or event.get("resourceType") != "AuditEvent":
                    raise ValueError("not an AuditEvent")
                documents.append(store_document(event))
            except Exception as exc:  # kept whole, never dropped
                unreadable.append((record, type(exc).__name__))
        backoff = 0.2
        while True:
            try:
                self.stored += await self.store.insert(documents)
                for record, error in unreadable:
                    log.error(
                        "audit record %s:%s@%s is not an AuditEvent (%s); kept apart",
                        record.topic,
                        record.partition,
                        record.offset,
                        error,
                    )
                    await self.store.keep_unreadable(record, error)
                self.failing_since = None
                return
            except Exception as exc:
                if transient_kind(exc) is None:
                    raise
                self.failing_since = self.failing_since or asyncio.get_running_loop().time()
                log.warning("audit store unreachable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _commit_until_done(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self._consumer.commit()
                return
            except Exception as exc:
                if transient_kind(exc) is None:
                    # A rebalance took the partitions: the next owner redelivers; harmless.
                    log.warning("audit offsets not committed (%s)", type(exc).__name__)
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def audit_consumer(settings: Settings, *, group: str | None = None) -> AIOKafkaConsumer:
    """The consumer of the audit topic: auto-commit off, from the earliest record."""
    prefix = f"{settings.namespace}." if settings.namespace else ""
    return AIOKafkaConsumer(
        prefix + AUDIT_TOPIC,
        **kafka_client_options(settings),
        group_id=group or prefix + GROUP,
        client_id="casework-audit-store",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def serve(settings: Settings) -> None:
    """Run the audit store's consumer until SIGTERM or SIGINT."""
    from casework.kafka_clients import create_topics, topic_specs
    from casework.runtime import mongo_client

    prefix = f"{settings.namespace}." if settings.namespace else ""
    await create_topics(
        kafka_client_options(settings),
        topic_specs(settings, events=[prefix + AUDIT_TOPIC], dead_letters=[]),
    )
    client = mongo_client(settings)
    store = AuditStore(client[settings.audit_mongo_database])
    await store.ensure_indexes()
    consumer = audit_consumer(settings)
    await consumer.start()
    runner = asyncio.create_task(AuditStoreConsumer(store, consumer).run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "audit store consuming %s into %s", prefix + AUDIT_TOPIC, settings.audit_mongo_database
    )
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({runner, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            runner.result()  # a failure that is not transient: exit with it
    finally:
        runner.cancel()
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner
        await consumer.stop()
        await client.close()


def main() -> int:
    """`python -m casework.auditstore`: the audit store's consumer."""
    from casework.logs import configure_logging

    settings = Settings(service="audit-store")
    configure_logging(settings)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
