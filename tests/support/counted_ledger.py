"""A counted, concurrent projection of the test ledger (`support.ledger`), and a consumer
process that kills itself (SIGKILL) at a chosen read-model write: for trying to break the
concurrent batches of `casework.projections` on the real servers.

Run as `python -m support.counted_ledger BOOTSTRAP MONGO_URL DATABASE TOPIC SERVICE KILL_AT`
with `tests/` on `PYTHONPATH`; `KILL_AT` is `counter:N` or `entity:N` (die as the N-th write
of a counter document, or of a ledger document, starts).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any, cast

from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from casework.counters import CountedDocuments, Counts, is_counter
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import (
    ConsumerRunner,
    PendingWrites,
    Projection,
    StreamParking,
    broker_dead_letter_publisher,
    parking_base,
    pending_writes,
)

from support.ledger import REGISTRY, AmountCredited, LedgerOpened, Poison


def contributions(doc: Mapping[str, Any]) -> Counts:
    """Every ledger counts once in `all` with its balance, and once under its balance's
    parity: a credit of an odd amount moves it from one key to the other."""
    balance = int(doc.get("balance", 0))
    return {
        "all": {"ledgers": 1, "balance": balance},
        f"parity|{balance % 2}": {"ledgers": 1},
    }


class CountedLedgers(Projection):
    """Per ledger its owner, balance and the amounts in the order applied, and the partition
    counters of `contributions`; `Poison` fails every time (a bug)."""

    name = "counted_ledgers"
    concurrent = True
    topics: tuple[str, ...] = ()

    def __init__(self, database: AsyncDatabase[Document], collection: str | None = None) -> None:
        super().__init__(database, collection)
        self.documents = CountedDocuments(self.read_model.collection, contributions)
        self.batches: list[PendingWrites | None] = []
        """The batch (held writes) each handled event came in, in handling order."""
        self.streams_seen: list[str] = []

    @classmethod
    def reading(
        cls,
        topic: str,
        database: AsyncDatabase[Document],
        collection: str | None = None,
        *,
        concurrent: bool = True,
    ) -> CountedLedgers:
        bound = type(cls.__name__, (cls,), {"topics": (topic,), "concurrent": concurrent})
        return bound(database, collection)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        self.batches.append(pending_writes())
        self.streams_seen.append(envelope.subject)
        match event:
            case LedgerOpened(ledger_id=lid, owner=owner):
                return await self.documents.apply(
                    lid, envelope, lambda d: {**d, "owner": owner, "balance": 0, "amounts": []}
                )
            case AmountCredited(ledger_id=lid, amount=amount):
                return await self.documents.apply(
                    lid,
                    envelope,
                    lambda d: {
                        **d,
                        "balance": d.get("balance", 0) + amount,
                        "amounts": [*d.get("amounts", []), amount],
                    },
                )
            case Poison():
                raise RuntimeError("cannot project a poison event")
        return False


class KillingCollection:
    """A collection that kills this process (SIGKILL: no cleanup, no commit) as the N-th
    write of a counter document (`counter:N`) or of an entity document (`entity:N`) starts;
    reads and other writes pass through."""

    def __init__(self, collection: AsyncCollection[Document], kill_at: str) -> None:
        self._collection = collection
        kind, _, n = kill_at.partition(":")
        self._kind, self._n = kind, int(n)
        self._seen = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def _count(self, doc_id: Any, doc: Mapping[str, Any] | None) -> None:
        counter = str(doc_id).startswith("counter:") or (doc is not None and is_counter(doc))
        if (self._kind == "counter") == counter:
            self._seen += 1
            if self._seen >= self._n:
                os.kill(os.getpid(), signal.SIGKILL)

    async def insert_one(self, document: Document, *args: Any, **kwargs: Any) -> Any:
        self._count(document.get("_id"), document)
        return await self._collection.insert_one(document, *args, **kwargs)

    async def replace_one(
        self, filter: Mapping[str, Any], replacement: Document, *args: Any, **kwargs: Any
    ) -> Any:
        self._count(filter.get("_id"), replacement)
        return await self._collection.replace_one(filter, replacement, *args, **kwargs)

    async def delete_one(self, filter: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._count(filter.get("_id"), None)
        return await self._collection.delete_one(filter, *args, **kwargs)


def runner_for(
    projection: CountedLedgers, broker: KafkaBroker, service: str, **options: Any
) -> ConsumerRunner:
    """The runner the tests use: two attempts before a dead letter, short pauses."""
    return ConsumerRunner(
        projection,
        REGISTRY,
        service=service,
        publish_dead_letter=broker_dead_letter_publisher(broker, projection.name),
        max_attempts=2,
        retry_delay=0.01,
        parking=StreamParking(projection.database, parking_base(projection)),
        backoff_max_s=0.5,
        **options,
    )


async def _main(
    bootstrap: str, mongo_url: str, database: str, topic: str, service: str, kill_at: str
) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
    projection = CountedLedgers.reading(topic, client[database])
    killing = KillingCollection(projection.read_model.collection, kill_at)
    projection.read_model.collection = cast("AsyncCollection[Document]", killing)
    projection.documents = CountedDocuments(projection.read_model.collection, contributions)
    broker = KafkaBroker(bootstrap)
    runner_for(projection, broker, service).subscribe(broker)
    await broker.start()
    await asyncio.sleep(90)  # the kill comes first; this is only a bound
    await broker.stop()


if __name__ == "__main__":
    asyncio.run(_main(*sys.argv[1:7]))
