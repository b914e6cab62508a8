"""Durable deadlines (DESIGN §6): timers in MongoDB that survive restarts and fire once in
effect, however many replicas run.

A service schedules a deadline in reaction to its own events (`schedule`, `cancel`); the
`DeadlineScheduler` loop finds those that are due and fires each by calling the handler
registered for its kind, which sends a command to the owning aggregate — and the aggregate
decides (a contact already logged is not overdue). So firing twice does no harm, and the
mechanism only has to make it rare and never lose a deadline:

- To fire, a replica first inserts a claim with a unique `_id` (deadline key + due time): one
  replica wins, the others skip it.
- The deadline is deleted only after its handler succeeded, and only if it was not
  rescheduled meanwhile (the delete matches the due time it fired for).
- A claim whose replica died before finishing expires after `claim_ttl`; the next replica to
  notice deletes it and claims again. A handler that raised releases its claim at once, so
  the deadline is retried on the next tick.

Only inserts, deletes and whole-document replaces are used (DESIGN §7).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from casework.clock import Clock, SystemClock
from casework.eventstore import Document
from casework.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deadline:
    """A durable timer: `kind` says which handler fires it, `key` makes it unique."""

    key: str
    kind: str
    due_at: datetime
    payload: Mapping[str, Any]


DeadlineHandler = Callable[[Deadline], Awaitable[None]]


class Deadlines:
    """The `deadlines` collection of one service: schedule, cancel, read."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.collection = database["deadlines"]
        self.claims = database["deadline_claims"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("due_at", ASCENDING)])

    async def schedule(
        self, key: str, kind: str, due_at: datetime, payload: Mapping[str, Any] | None = None
    ) -> None:
        """Create the deadline, or move it to a new due time (same key)."""
        doc = {"_id": key, "kind": kind, "due_at": due_at, "payload": dict(payload or {})}
        try:
            await self.collection.replace_one({"_id": key}, doc, upsert=True)
        except DuplicateKeyError:
            # two upserts of a new key raced on FerretDB (NOTES.md): the document exists now
            await self.collection.replace_one({"_id": key}, doc, upsert=True)

    async def cancel(self, key: str) -> None:
        """Forget the deadline (the obligation was met); nothing happens if it is gone."""
        await self.collection.delete_one({"_id": key})

    async def get(self, key: str) -> Deadline | None:
        doc = await self.collection.find_one({"_id": key})
        return _deadline(doc) if doc else None

    async def due(self, now: datetime, limit: int = 100) -> list[Deadline]:
        """Deadlines due at `now`, earliest first."""
        cursor = self.collection.find({"due_at": {"$lte": now}}).sort("due_at", ASCENDING)
        return [_deadline(d) async for d in cursor.limit(limit)]


def _deadline(doc: Document) -> Deadline:
    return Deadline(key=doc["_id"], kind=doc["kind"], due_at=doc["due_at"], payload=doc["payload"])


def _claim_id(deadline: Deadline) -> str:
    return f"{deadline.key}@{deadline.due_at.isoformat()}"


class DeadlineScheduler:
    """Fires due deadlines through the handlers registered by kind."""

    def __init__(
        self,
        deadlines: Deadlines,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        tick: float = 1.0,
        claim_ttl: timedelta = timedelta(minutes=2),
    ) -> None:
        self.deadlines = deadlines
        self._clock = clock or SystemClock()
        self._metrics = metrics
        self._tick = tick
        self._claim_ttl = claim_ttl
        self._handlers: dict[str, DeadlineHandler] = {}
        self._task: asyncio.Task[None] | None = None
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"

    def on(self, kind: str, handler: DeadlineHandler) -> None:
        """Register the handler that fires deadlines of `kind`."""
        self._handlers[kind] = handler

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deadline-scheduler")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.fire_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("deadline round failed; retrying next tick")
            await asyncio.sleep(self._tick)

    async def fire_due(self) -> int:
        """One round: fire every due deadline this replica can claim; returns how many fired."""
        now = self._clock.now()
        due = await self.deadlines.due(now)
        if self._metrics:
            self._metrics.deadlines_overdue.set(len(due))
            self._metrics.deadlines_pending.set(await self.deadlines.collection.count_documents({}))
        fired = 0
        for deadline in due:
            handler = self._handlers.get(deadline.kind)
            if handler is None or not await self._claim(deadline, now):
                continue
            try:
                await handler(deadline)
            except Exception:
                log.exception("deadline %s (%s) failed; it stays due", deadline.key, deadline.kind)
                await self.deadlines.claims.delete_one({"_id": _claim_id(deadline)})
                continue
            # done: unless it was rescheduled meanwhile, the deadline is gone
            await self.deadlines.collection.delete_one(
                {"_id": deadline.key, "due_at": deadline.due_at}
            )
            await self.deadlines.claims.delete_one({"_id": _claim_id(deadline)})
            fired += 1
            if self._metrics:
                self._metrics.deadlines_fired.labels(deadline.kind).inc()
        return fired

    async def _claim(self, deadline: Deadline, now: datetime) -> bool:
        claim = {"_id": _claim_id(deadline), "owner": self.owner, "claimed_at": now}
        try:
            await self.deadlines.claims.insert_one(claim)
            return True
        except DuplicateKeyError:
            pass
        current = await self.deadlines.claims.find_one({"_id": claim["_id"]})
        if current is None or now - current["claimed_at"] < self._claim_ttl:
            return False  # another replica is firing it
        # its replica died while firing: take it over (one of the racing inserts wins)
        await self.deadlines.claims.delete_one(
            {"_id": claim["_id"], "claimed_at": current["claimed_at"]}
        )
        try:
            await self.deadlines.claims.insert_one(claim)
            return True
        except DuplicateKeyError:
            return False
