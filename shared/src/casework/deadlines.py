"""Durable deadlines (DESIGN §6): timers in MongoDB that survive restarts and fire once in
effect, however many replicas run.

A service schedules a deadline in reaction to its own events (`schedule`, `cancel`); the
`DeadlineScheduler` loop finds those that are due and fires each by calling the handler
registered for its kind, which sends a command to the owning aggregate — and the aggregate
decides (a contact already logged is not overdue).

**Invariant: each (deadline, due time) is fired at most once to completion and at least once
while its handler can succeed; a stuck deadline never delays another.** "Fired to completion"
means its handler returned and the fact was stored; the handler can run a second time only if
a replica died (or stalled longer than `claim_ttl`) after its handler's effect and before that
fact was stored — the commands it sends must therefore be ones the aggregate decides (they are:
an obligation already met is not overdue; the deadline's identity makes an idempotency key).

The identity is `<key>@<due time>~<epoch>`. A key's epoch counts up whenever its schedule
changes (due time, kind, payload, or a schedule after a cancel): scheduling the same thing again
(a redelivered event) changes nothing and a fired deadline does not fire again, while a deadline
moved away and back to the same due time is a new one.

How it holds, using only inserts with a unique `_id`, deletes and replaces (DESIGN §7):

- **Done records.** When a handler returns, an insert-only record `<identity>` goes into
  `deadline_done_<due day>`, before the entry is deleted. A replica fires an entry only after
  winning its claim and finding no done record. A rescheduled deadline has a new due time,
  hence a new identity, and fires again. `cancel` and `schedule` (a change) store a
  `superseded` record for the identity they replace, so the scheduler never needs the per-key
  document to decide.
- **Claims** (`deadline_claims_<due day>`, `_id` = `<identity>#<generation>`): one
  insert wins, and claims are never released: a replica working from an older snapshot finds
  the claim taken and skips, however late it comes. An entry that is moved (failure, unknown
  kind) becomes the next generation, with a claim of its own. A claim older than `claim_ttl`
  belongs to a dead replica: the next replica takes over by inserting the next claim of a chain
  (`…+`, `…++`) — again one insert decides, never a delete-then-insert that two replicas could
  both win on FerretDB — then checks the entry is still there and acts as the next
  generation (claiming it too), because the dead replica may have been inside a move that
  already queued that generation: the two copies contend for one claim, never fire at once.
- **Queue entries in time slots.** On FerretDB over PostgreSQL every filter — even `_id`
  equality — is a sequential scan of the collection (measured: ~60 ms at 100k documents against
  ~1 ms at 100), and ranges and sorts are done in Go. So entries live in one collection per day
  (`deadline_queue_<yyyymmdd>`) with a `slot` field per minute, and a tick asks each minute from
  a persisted cursor up to now by equality. A tick touches the entries of a few minutes, not
  the pending deadlines; only writers (`schedule`, `cancel`, `get`) touch the per-key
  documents.
- **Nothing blocks the queue.** A failing handler's entry moves to a later minute (capped
  exponential backoff; the attempt count is stored in the entry, so it survives restarts); an
  entry of a kind this replica has no handler for is reported (metric, and a log line with the
  key and kind, never the payload) and parked `unknown_kind_recheck` ahead. Every entry of a
  scanned minute is fetched, so stuck ones never fill a page in front of due ones.
- **Slots and clocks.** A writer puts a past-due deadline into the slot of its own now. The
  cursor advances only over minutes that were empty and are older than `margin`, so a writer
  whose clock runs up to `margin` behind the scheduler's is still seen; minutes before the
  cursor are never written again (the scheduler's own moves go forward in time), and a day's
  queue collection is dropped once the cursor has passed it.
- **Cleanup does not reopen the window.** Done records and claims of a due day are dropped
  (`housekeeping`) only when the day is older than `retention` and no queue entry of that due
  day remains; with no entry left, nothing can fire those identities again. A replica holding
  a snapshot older than `retention` is outside this promise.
- **The per-key document of a fired deadline stays** until the service reschedules or cancels
  it (`get` reports it gone; a cancel leaves a tombstone, so the epoch keeps counting): on
  FerretDB a conditional delete reads then deletes, and could remove a reschedule written in
  between.
- **A collection dropped under a read is empty.** Day collections are dropped (the queue once
  the cursor passed its day, done records and claims by housekeeping) while another replica —
  or this one's other loop — may be reading them. MongoDB may kill such a cursor
  (`QueryPlanKilled`); FerretDB on PostgreSQL fails the read (`relation … does not exist`,
  SQLSTATE 42P01, reproduced in `tests/integration/test_deadlines_dropped_day.py`). Either way
  the scheduler reads it as what it is, an empty collection (`_read`, `_read_one`), never
  as a failed tick.
- **Idle ticks back off; a local schedule wakes the scheduler.** A round whose scan saw no
  queue entry doubles the wait before the next, from `tick` up to `idle_tick_max` (4 s); a
  round that saw any entry goes back to `tick`, and waits no longer than until the earliest
  entry it saw that is not yet due. `Deadlines.schedule` tells the schedulers of its own
  process the entry's time, and a scheduler waits no longer than until then. *Bound:* a
  deadline scheduled by this process at most `LOCAL_HORIZON` (1 h) before its due time fires
  at its due time, as before (one round's work late); one scheduled by another replica,
  earlier than that, or left by a crash, fires within `idle_tick_max` of its due time (within
  `tick` while the scheduler has entries in sight); a restarted scheduler runs its first
  round at start. The invariant above does not depend on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from casework.clock import Clock, SystemClock
from casework.eventstore import Document
from casework.metrics import Metrics

log = logging.getLogger(__name__)

_DROPPED_CODES = frozenset({26, 175})  # NamespaceNotFound, QueryPlanKilled (MongoDB)


def _dropped_meanwhile(exc: OperationFailure) -> bool:
    """A read that raced a drop of its collection (see the module's last point)."""
    return exc.code in _DROPPED_CODES or "SQLSTATE 42P01" in str(exc)


async def _read(
    collection: AsyncCollection[Document],
    query: Mapping[str, Any],
    projection: Mapping[str, Any] | None = None,
    limit: int | None = None,
) -> list[Document]:
    """`find(...).to_list(limit)`, with a collection dropped meanwhile read as empty."""
    try:
        return await collection.find(query, projection).to_list(limit)
    except OperationFailure as exc:
        if _dropped_meanwhile(exc):
            return []
        raise


async def _read_one(
    collection: AsyncCollection[Document],
    query: Mapping[str, Any],
    projection: Mapping[str, Any] | None = None,
) -> Document | None:
    """`find_one`, with a collection dropped meanwhile read as empty."""
    try:
        return await collection.find_one(query, projection)
    except OperationFailure as exc:
        if _dropped_meanwhile(exc):
            return None
        raise


QUEUE_PREFIX = "deadline_queue_"
DONE_PREFIX = "deadline_done_"
CLAIMS_PREFIX = "deadline_claims_"
MINUTE = timedelta(minutes=1)
WHOLE_DAY_AFTER = timedelta(minutes=30)
FIRED = "fired"
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Deadline:
    """A durable timer: `kind` says which handler fires it, `key` makes it unique."""

    key: str
    kind: str
    due_at: datetime
    payload: Mapping[str, Any]
    epoch: int = 0

    @property
    def identity(self) -> str:
        """`<key>@<due time>~<epoch>`: what fires at most once to completion."""
        return identity(self.key, self.due_at, self.epoch)


@dataclass(frozen=True)
class Entry:
    """A deadline's place in the queue: fire it at `at` (its due time, or later after a
    failure); `attempts` failures so far."""

    id: str
    at: datetime
    attempts: int
    deadline: Deadline
    generation: int = 0

    @property
    def slot(self) -> str:
        return slot_of(self.at)


DeadlineHandler = Callable[[Deadline], Awaitable[None]]


def identity(key: str, due_at: datetime, epoch: int = 0) -> str:
    """A key's schedule counts up (`epoch`) each time it changes, so a deadline moved away
    and back to the same due time, or scheduled again after a cancel, is a new one."""
    return f"{key}@{_utc(due_at).isoformat()}~{epoch}"


def slot_of(at: datetime) -> str:
    """The minute an entry is queued under, e.g. `20261201T0905`."""
    return _utc(at).strftime("%Y%m%dT%H%M")


def backoff(failures: int, base: timedelta, cap: timedelta) -> timedelta:
    """The wait after failure number `failures` + 1: base, then doubling, up to cap."""
    factor: int = 2 ** min(failures, 32)
    return min(cap, base * factor)


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


def _stored(at: datetime) -> datetime:
    """`at` as BSON keeps it (milliseconds), so identities read back equal those written."""
    at = _utc(at)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _minute(at: datetime) -> datetime:
    return _utc(at).replace(second=0, microsecond=0)


def _slot_start(slot: str) -> datetime:
    return datetime.strptime(slot, "%Y%m%dT%H%M").replace(tzinfo=UTC)


class Deadlines:
    """The deadlines of one service: schedule, cancel, read; and the queue the scheduler
    works from.

    `deadlines` holds one document per key (what is scheduled now; read by `get`, `cancel` and
    `schedule`). The scheduler never reads or writes it: it works from the queue entries and
    the done records, so its cost does not depend on how many deadlines are pending.
    """

    def __init__(self, database: AsyncDatabase[Document], *, clock: Clock | None = None) -> None:
        self.database = database
        self.collection = database["deadlines"]
        self.cursor = database["deadline_cursor"]
        self.clock = clock or SystemClock()
        self._listeners: list[Callable[[datetime], None]] = []

    def on_schedule(self, listener: Callable[[datetime], None]) -> None:
        """Call `listener` with an entry's time after every `schedule` of this object (the
        schedulers of this process wake for it; module docstring)."""
        self._listeners.append(listener)

    def off_schedule(self, listener: Callable[[datetime], None]) -> None:
        """Stop calling `listener` (a scheduler that stopped)."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def ensure_indexes(self) -> None:
        """Nothing to create: every lookup is by `_id` or by `slot` in a small collection."""

    def queue(self, slot: str) -> AsyncCollection[Document]:
        """The collection of the day `slot` belongs to."""
        return self.database[QUEUE_PREFIX + slot[:8]]

    def claims(self, due_at: datetime) -> AsyncCollection[Document]:
        """The claims on deadlines due on `due_at`'s day."""
        return self.database[CLAIMS_PREFIX + _utc(due_at).strftime("%Y%m%d")]

    def done(self, due_at: datetime) -> AsyncCollection[Document]:
        """The done records of deadlines due on `due_at`'s day."""
        return self.database[DONE_PREFIX + _utc(due_at).strftime("%Y%m%d")]

    async def schedule(
        self, key: str, kind: str, due_at: datetime, payload: Mapping[str, Any] | None = None
    ) -> None:
        """Create the deadline, or move it to a new due time (same key).

        Scheduling what is already scheduled (a redelivered event) changes nothing, and once
        fired it does not fire again; any change (due time, kind, payload, or a schedule after
        a cancel) starts the key's next epoch: a new deadline, and the old one is recorded as
        superseded before anything else is written. A crash between any two steps leaves at
        most a stale entry, never a lost deadline.
        """
        due_at = _stored(due_at)
        payload = dict(payload or {})
        previous = await self.collection.find_one({"_id": key})
        epoch = 0
        if previous is not None:
            old = _pointer(previous)
            unchanged = (old.kind, old.due_at, dict(old.payload)) == (kind, due_at, payload)
            epoch = old.epoch if unchanged and not previous.get("cancelled") else old.epoch + 1
            if epoch != old.epoch and not previous.get("cancelled"):
                await self._insert_done(old, SUPERSEDED)
        deadline = Deadline(key, kind, due_at, payload, epoch)
        at = max(due_at, _stored(self.clock.now()))
        entry = Entry(deadline.identity, at, 0, deadline)
        with contextlib.suppress(DuplicateKeyError):
            await self.queue(entry.slot).insert_one(entry_document(entry))
        for listener in self._listeners:
            listener(at)
        await _upsert(self.collection, _pointer_document(deadline, entry.slot, cancelled=False))
        if previous is not None and epoch != previous.get("epoch", 0):
            await self._drop_first_entry(previous)

    async def cancel(self, key: str) -> None:
        """Forget the deadline (the obligation was met); nothing happens if it is gone.

        The key's document stays as a tombstone, so that its epoch keeps counting."""
        previous = await self.collection.find_one({"_id": key})
        if previous is None or previous.get("cancelled"):
            return
        old = _pointer(previous)
        await self._insert_done(old, SUPERSEDED)
        await _upsert(
            self.collection, _pointer_document(old, previous.get("entry_slot"), cancelled=True)
        )
        await self._drop_first_entry(previous)

    async def get(self, key: str) -> Deadline | None:
        """The deadline scheduled under `key`, unless it has fired or was cancelled."""
        doc = await self.collection.find_one({"_id": key})
        if doc is None or doc.get("cancelled"):
            return None
        deadline = _pointer(doc)
        if await _read_one(self.done(deadline.due_at), {"_id": deadline.identity}) is not None:
            return None
        return deadline

    async def _insert_done(self, deadline: Deadline, outcome: str) -> bool:
        """Record that `deadline` is done; False if it already was."""
        try:
            await self.done(deadline.due_at).insert_one(
                {"_id": deadline.identity, "outcome": outcome, "at": self.clock.now()}
            )
            return True
        except DuplicateKeyError:
            return False

    async def _drop_first_entry(self, previous: Document) -> None:
        # only tidiness: a leftover entry is skipped (and deleted) when its minute comes
        slot = previous.get("entry_slot")
        if slot:
            await self.queue(slot).delete_one({"_id": _pointer(previous).identity})


def _pointer(doc: Document) -> Deadline:
    return Deadline(
        doc["_id"], doc["kind"], _utc(doc["due_at"]), doc["payload"], int(doc.get("epoch", 0))
    )


def _pointer_document(deadline: Deadline, entry_slot: str | None, *, cancelled: bool) -> Document:
    return {
        "_id": deadline.key,
        "kind": deadline.kind,
        "due_at": deadline.due_at,
        "payload": dict(deadline.payload),
        "epoch": deadline.epoch,
        "entry_slot": entry_slot,
        "cancelled": cancelled,
    }


async def _upsert(collection: AsyncCollection[Document], doc: Document) -> None:
    try:
        await collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)
    except DuplicateKeyError:
        # two upserts of a new _id raced on FerretDB (NOTES.md): the document exists now
        await collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)


def entry_document(entry: Entry) -> Document:
    """The queue document of `entry` (what `schedule` and the scheduler write)."""
    d = entry.deadline
    return {
        "_id": entry.id,
        "slot": entry.slot,
        "at": entry.at,
        "attempts": entry.attempts,
        "generation": entry.generation,
        "due_day": d.due_at.strftime("%Y%m%d"),
        "epoch": d.epoch,
        "key": d.key,
        "kind": d.kind,
        "due_at": d.due_at,
        "payload": dict(d.payload),
    }


def _entry(doc: Document) -> Entry:
    deadline = Deadline(
        doc["key"], doc["kind"], _utc(doc["due_at"]), doc["payload"], int(doc.get("epoch", 0))
    )
    return Entry(
        doc["_id"], _utc(doc["at"]), int(doc["attempts"]), deadline, int(doc.get("generation", 0))
    )


@dataclass
class Scan:
    """What one look at the queue found: the due entries, earliest first; whether the
    cursor is still behind now (catching up after a downtime); whether a minute had more
    entries than a page, some of them due."""

    due: list[Entry]
    behind: bool
    more: bool = False
    seen: bool = False  # any entry in the minutes read, due or not
    upcoming: datetime | None = None  # the earliest entry seen that is not yet due


# A local schedule further ahead than this is not remembered for a wake: when it comes due,
# the bound for another replica's deadline applies to it (module docstring).
LOCAL_HORIZON: Final = timedelta(hours=1)
LOCAL_MAX: Final = 10_000


class DeadlineScheduler:
    """Fires due deadlines through the handlers registered by kind (see the module doc)."""

    def __init__(
        self,
        deadlines: Deadlines,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        tick: float = 1.0,
        idle_tick_max: float = 4.0,
        claim_ttl: timedelta = timedelta(minutes=2),
        handler_timeout: timedelta | None = None,
        backoff_base: timedelta = timedelta(seconds=5),
        backoff_cap: timedelta = timedelta(hours=1),
        unknown_kind_recheck: timedelta = timedelta(minutes=5),
        margin: timedelta = timedelta(minutes=2),
        retention: timedelta = timedelta(days=30),
        concurrency: int = 8,
        page: int = 1000,
        max_slots: int = 240,
        housekeeping_every: timedelta = timedelta(minutes=5),
    ) -> None:
        self.deadlines = deadlines
        self._clock = clock or SystemClock()
        self._metrics = metrics
        self._tick = tick
        self._idle_tick_max = max(idle_tick_max, tick)
        self._interval = tick
        self._last_scan: Scan | None = None
        # entry times this process scheduled, not yet due (a heap; only those due within
        # LOCAL_HORIZON of their scheduling, at most LOCAL_MAX of them)
        self._scheduled_here: list[datetime] = []
        self._nudge = asyncio.Event()
        self._claim_ttl = claim_ttl
        # a live replica gives up well before its claim could be taken over
        self._handler_timeout = handler_timeout or claim_ttl / 2
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._unknown_kind_recheck = unknown_kind_recheck
        self._margin = margin
        self._retention = retention
        self._concurrency = concurrency
        self._page = page
        self._max_slots = max_slots
        self._housekeeping_every = housekeeping_every
        self._handlers: dict[str, DeadlineHandler] = {}
        self._task: asyncio.Task[None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._last_housekeeping: datetime | None = None
        self._stopping = asyncio.Event()
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"

    def on(self, kind: str, handler: DeadlineHandler) -> None:
        """Register the handler that fires deadlines of `kind`."""
        self._handlers[kind] = handler

    async def start(self) -> None:
        self._stopping.clear()
        self.deadlines.on_schedule(self._noticed)
        self._task = asyncio.create_task(self._run(), name="deadline-scheduler")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop firing: the round under way finishes (up to `grace` seconds); a fire cut
        short after that leaves its claim, taken over after `claim_ttl`."""
        self._stopping.set()
        self.deadlines.off_schedule(self._noticed)
        if self._task:
            await asyncio.wait({self._task}, timeout=grace)
        for task in (self._task, self._housekeeping):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._housekeeping = None

    def _noticed(self, at: datetime) -> None:
        """This process scheduled an entry for `at`: wait no longer than until then."""
        if at - self._clock.now() <= LOCAL_HORIZON and len(self._scheduled_here) < LOCAL_MAX:
            heapq.heappush(self._scheduled_here, at)
            self._nudge.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            started, behind = loop.time(), False
            self._last_scan = None
            try:
                behind = await self._round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("deadline round failed (%s); retrying next tick", type(exc).__name__)
            if behind:
                continue
            await self._rest(started + self._next_interval())

    def _next_interval(self) -> float:
        """`tick` after a round that saw entries (or failed); doubled, up to
        `idle_tick_max`, after one that saw none."""
        scan = self._last_scan
        if scan is None or scan.seen:
            self._interval = self._tick
        else:
            self._interval = min(self._interval * 2, self._idle_tick_max)
        return self._interval

    async def _rest(self, until: float) -> None:
        """Wait until loop time `until`, or the earliest entry known not yet due (seen by the
        last scan, or scheduled by this process meanwhile), or a stop."""
        loop = asyncio.get_running_loop()
        upcoming = self._last_scan.upcoming if self._last_scan else None
        while not self._stopping.is_set():
            self._nudge.clear()
            wait = until - loop.time()
            local = self._scheduled_here[0] if self._scheduled_here else None
            for at in (upcoming, local):
                if at is not None:
                    # a few ms late rather than early: a round before `at` would not fire it
                    wait = min(wait, (at - self._clock.now()).total_seconds() + 0.005)
            if wait <= 0:
                break
            stopping = asyncio.ensure_future(self._stopping.wait())
            nudged = asyncio.ensure_future(self._nudge.wait())
            try:
                done, _ = await asyncio.wait(
                    {stopping, nudged}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stopping.cancel()
                nudged.cancel()
            if not done:
                break  # the wait ran out
        # the round about to run reads the minutes of these (the cursor stays `margin` behind)
        now = self._clock.now()
        while self._scheduled_here and self._scheduled_here[0] <= now:
            heapq.heappop(self._scheduled_here)

    async def _round(self) -> bool:
        """One pass, and the housekeeping when its time has come; True if there is more to
        do at once."""
        _, again = await self._pass()
        now = self._clock.now()
        if self._last_housekeeping is None:
            self._last_housekeeping = now  # the first count comes one period after start
        elif now - self._last_housekeeping >= self._housekeeping_every:
            self._last_housekeeping = now
            if self._housekeeping is None or self._housekeeping.done():
                self._housekeeping = asyncio.create_task(self.housekeeping(now))
        return again

    async def fire_due(self) -> int:
        """Fire every due deadline this replica can claim; returns how many fired."""
        fired, again = 0, True
        while again:
            n, again = await self._pass()
            fired += n
        return fired

    async def _pass(self) -> tuple[int, bool]:
        """Scan and fire; how many fired, and whether to go on at once: the cursor is behind,
        or a full page held due entries and this pass moved some of them on."""
        now = self._clock.now()
        scan = await self.scan(now)
        outcomes = await self.fire_all(scan.due, now)
        progressed = any(o not in ("busy", "error") for o in outcomes)
        return outcomes.count(FIRED), scan.behind or (scan.more and progressed)

    # -- finding due entries ---------------------------------------------------------------

    async def scan(self, now: datetime) -> Scan:
        """The due entries from the cursor up to `now`, and the cursor moved past minutes
        found empty and older than `margin`.

        Normally the cursor is `margin` behind now and this asks a few minutes by equality.
        Catching up (after a downtime, or on a first run), a span of more than
        `WHOLE_DAY_AFTER` minutes of one day is read as that day's whole collection at once,
        and days without a collection are skipped; `max_slots` bounds the queries of one scan.
        """
        cursor = await self._cursor(now)
        last = _minute(now)
        floor = _minute(now - self._margin)
        minute, advanced, empty_so_far, scanned, more = cursor, cursor, True, 0, False
        existing: set[str] | None = None
        if _utc(cursor).date() < _utc(floor).date():  # catching up: skip days with no entries
            existing = set(await self.deadlines.database.list_collection_names())
        due: list[Entry] = []
        seen, upcoming = False, None
        while minute <= last and scanned < self._max_slots:
            queue = self.deadlines.queue(slot_of(minute))
            next_day = minute.replace(hour=0, minute=0) + timedelta(days=1)
            if existing is not None and next_day <= floor and queue.name not in existing:
                if empty_so_far:
                    advanced = next_day
                minute = next_day
                continue
            scanned += 1
            span_end = min(last + MINUTE, next_day)
            if span_end - minute > WHOLE_DAY_AFTER:
                docs = await _read(queue, {})
                ahead = sorted(d["slot"] for d in docs if d["slot"] >= slot_of(minute))
                first = _slot_start(ahead[0]) if ahead else span_end
                if empty_so_far:
                    advanced = max(advanced, min(first, span_end, floor))
                    empty_so_far = first >= span_end
                minute = span_end
            else:
                slot = slot_of(minute)
                docs = await _read(queue, {"slot": slot}, limit=self._page)
                if len(docs) >= self._page and any(_utc(d["at"]) <= now for d in docs):
                    more = True
                if docs:
                    empty_so_far = False
                elif empty_so_far and minute < floor:
                    advanced = minute + MINUTE
                minute += MINUTE
            entries = list(map(_entry, docs))
            due += [e for e in entries if e.at <= now]
            later = [e.at for e in entries if e.at > now]
            seen = seen or bool(entries)
            if later and (upcoming is None or min(later) < upcoming):
                upcoming = min(later)
        if advanced != cursor:
            await self._move_cursor(cursor, advanced)
        due.sort(key=lambda e: (e.at, e.id))
        if self._metrics:
            self._metrics.deadlines_overdue.set(len(due))
        scan = Scan(due, behind=minute <= last, more=more, seen=seen, upcoming=upcoming)
        self._last_scan = scan
        return scan

    async def _cursor(self, now: datetime) -> datetime:
        doc = await self.deadlines.cursor.find_one({"_id": "cursor"})
        if doc is not None:
            return _slot_start(doc["slot"])
        # first run over this database: start at the earliest entry (read once, ever)
        start = _minute(now - self._margin)
        days = sorted(
            name
            for name in await self.deadlines.database.list_collection_names()
            if name.startswith(QUEUE_PREFIX)
        )
        for day in days:
            slots = [d["slot"] for d in await _read(self.deadlines.database[day], {}, {"slot": 1})]
            if slots:
                start = min(start, _slot_start(min(slots)))
                break
        await _upsert(self.deadlines.cursor, {"_id": "cursor", "slot": slot_of(start)})
        return start

    async def _move_cursor(self, old: datetime, new: datetime) -> None:
        await _upsert(self.deadlines.cursor, {"_id": "cursor", "slot": slot_of(new)})
        # whole days behind the cursor are empty and are never written again
        day = _utc(old).replace(hour=0, minute=0)
        while day + timedelta(days=1) <= new:
            await self.deadlines.queue(slot_of(day)).drop()
            day += timedelta(days=1)

    # -- firing ------------------------------------------------------------------------------

    async def fire_all(self, entries: list[Entry], now: datetime) -> list[str]:
        """Fire `entries` (a scan's snapshot, however old), `concurrency` at a time; returns
        each one's outcome (see `fire`; `error` if the database failed us)."""
        gate = asyncio.Semaphore(self._concurrency)

        async def one(entry: Entry) -> str:
            async with gate:
                try:
                    return await self.fire(entry, now)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # the claim expires and the entry stays: it is taken over after claim_ttl
                    log.warning(
                        "deadline %s (%s) not fired: %s",
                        entry.deadline.key,
                        entry.deadline.kind,
                        type(exc).__name__,
                    )
                    return "error"

        return list(await asyncio.gather(*(one(e) for e in entries)))

    async def fire(self, entry: Entry, now: datetime) -> str:
        """Fire one entry if this replica wins its claim and it is still to be fired.

        Returns the outcome: `fired`, `failed` (backed off), `unknown` (no handler; parked),
        `busy` (another replica holds it, or did), `gone` (handled since the snapshot) or
        `done` (fired or superseded before; the leftover entry is deleted).

        Claims are never released: a replica working from an older snapshot finds the claim
        taken and skips; a moved entry (failure, unknown kind) has the next generation, hence
        a claim of its own. Only a takeover (the claim's replica died) has to look whether the
        entry is still there.
        """
        deadline = entry.deadline
        chain = await self._claim(entry, now)
        if chain is None:
            return "busy"
        queue = self.deadlines.queue(entry.slot)
        while len(chain) > 1:
            # taken over: its replica died, perhaps inside a move that already queued the
            # next generation. Act as that generation, so that its entry and this one are
            # never fired at once (they contend for the same claim).
            if await _read_one(queue, {"_id": entry.id}, {"_id": 1}) is None:
                return "gone"
            entry = replace(entry, generation=entry.generation + 1)
            chain = await self._claim(entry, now)
            if chain is None:  # the next generation is being fired: this copy is stale
                await queue.delete_one({"_id": entry.id})
                return "gone"
        if await _read_one(self.deadlines.done(deadline.due_at), {"_id": deadline.identity}):
            await queue.delete_one({"_id": entry.id})
            return "done"
        handler = self._handlers.get(deadline.kind)
        if handler is None:
            log.warning(
                "deadline %s has kind %r, which this replica has no handler for; "
                "looking again in %s",
                deadline.key,
                deadline.kind,
                self._unknown_kind_recheck,
            )
            if self._metrics:
                self._metrics.deadlines_unknown_kind.labels(deadline.kind).inc()
            await self._move(entry, now + self._unknown_kind_recheck, entry.attempts)
            return "unknown"
        try:
            await asyncio.wait_for(handler(deadline), self._handler_timeout.total_seconds())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = backoff(entry.attempts, self._backoff_base, self._backoff_cap)
            log.warning(
                "deadline %s (%s) failed (%s, attempt %d); retrying in %s",
                deadline.key,
                deadline.kind,
                type(exc).__name__,
                entry.attempts + 1,
                delay,
            )
            if self._metrics:
                self._metrics.deadlines_failed.labels(deadline.kind).inc()
            await self._move(entry, now + delay, entry.attempts + 1)
            return "failed"
        # the fact first, then the entry: whoever gets past a claim later sees the fact
        await self.deadlines._insert_done(deadline, FIRED)
        await queue.delete_one({"_id": entry.id})
        if self._metrics:
            self._metrics.deadlines_fired.labels(deadline.kind).inc()
            fired_at = self._clock.now()
            self._metrics.deadlines_lateness.observe(
                max(0.0, (fired_at - deadline.due_at).total_seconds())
            )
        return FIRED

    async def _claim(self, entry: Entry, now: datetime) -> list[str] | None:
        """The claim chain this replica now holds for `entry`'s generation, or None if
        another replica holds it (or held it and is not known dead)."""
        claims = self.deadlines.claims(entry.deadline.due_at)
        chain = [f"{entry.deadline.identity}#{entry.generation}"]
        for _ in range(64):
            try:
                await claims.insert_one({"_id": chain[-1], "owner": self.owner, "claimed_at": now})
                return chain
            except DuplicateKeyError:
                pass
            if now - entry.at < self._claim_ttl:
                # claimed at or after the entry fell due: it cannot have expired yet, and the
                # usual loser of a race (a replica a step behind) needs no read to know it
                return None
            current = await _read_one(claims, {"_id": chain[-1]})
            if current is None:
                continue  # dropped just now by housekeeping: try the same claim again
            if now - _utc(current["claimed_at"]) < self._claim_ttl:
                return None  # another replica is firing it, or fired or moved it
            # taken over after claim_ttl: the next claim of the chain (one insert wins)
            chain.append(chain[-1] + "+")
        return None

    async def _move(self, entry: Entry, at: datetime, attempts: int) -> None:
        """Queue the entry again at `at` (a later minute) as its next generation, then drop
        it from where it was."""
        generation = entry.generation + 1
        moved = Entry(
            f"{entry.deadline.identity}#{generation}",
            _stored(at),
            attempts,
            entry.deadline,
            generation,
        )
        with contextlib.suppress(DuplicateKeyError):  # a takeover moving it again
            await self.deadlines.queue(moved.slot).insert_one(entry_document(moved))
        await self.deadlines.queue(entry.slot).delete_one({"_id": entry.id})

    # -- housekeeping (every `housekeeping_every`, off the firing path) ----------------------

    async def housekeeping(self, now: datetime) -> None:
        """Count the pending entries for the gauge; drop the done records and claims of due
        days older than `retention` that no queue entry belongs to any more.

        This reads every queue entry (on FerretDB a scan of all pending deadlines): that is why
        it runs every `housekeeping_every` in the background and never per tick.
        """
        try:
            names = await self.deadlines.database.list_collection_names()
            pending, live_days = 0, set()
            for name in names:
                if name.startswith(QUEUE_PREFIX):
                    for doc in await _read(self.deadlines.database[name], {}, {"due_day": 1}):
                        pending += 1
                        live_days.add(doc.get("due_day"))
            if self._metrics:
                self._metrics.deadlines_pending.set(pending)
            oldest_kept = (now - self._retention).strftime("%Y%m%d")
            for name in names:
                for prefix in (DONE_PREFIX, CLAIMS_PREFIX):
                    day = name[len(prefix) :]
                    if name.startswith(prefix) and day < oldest_kept and day not in live_days:
                        await self.deadlines.database[name].drop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("deadline housekeeping failed (%s)", type(exc).__name__)
