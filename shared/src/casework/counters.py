"""Counts a projection keeps per Kafka partition, so that a board reads totals without a scan
(DESIGN §5).

A site register, a supervisor board or a crisis board wants totals over thousands of
entities ("open cases at north by risk"). Counting them per request is a scan of the site's
documents, which at regional scale costs seconds on FerretDB (about 180 µs per document it
returns). Instead the projection keeps the totals as documents, and keeps **one writer per
document** by giving each Kafka partition its own:

- A counter document is `{"_id": "counter:<key>:<partition>", "counter": <key>,
  "topic": …, "partition": …, "offset": <last offset applied>, "counts": '{"name": n, …}'}`
  (the counts as one JSON string: FerretDB decodes a document field by field in Go, and a
  histogram has a hundred names; one string is one value to decode). Only
  the consumer that owns `<partition>` writes it, so a read-then-replace is safe without
  transactions (the MongoDB subset, DESIGN §7).
- **Idempotent by offset**: a consumer applies an event's changes to a counter document only
  if the event's offset is past the document's `offset`, and stores the new offset with the
  new counts in the same write. Kafka hands one partition's records over in offset order, so
  an offset at or below the stored one was applied already: redelivery and replay from an
  older committed offset change nothing.
- **What a document holds**: for every entity whose stream lives in the partition (the
  stream id is the record key, so every event of an entity lands in one partition),
  `contributions(entity)`; the document is the sum of those over its partition's entities.
  A projection changes an entity's contribution only from its previous state to its new one
  (`difference(before, after)`): a case moving from `active` to `review` takes one from one
  count and adds one to the other, in the same partition's document.
- **The query sums** the documents of a key, one per partition: equality on the indexed
  `counter` field, which FerretDB hands to PostgreSQL; a handful of small documents. Keys
  that are read together (a site's figures of every week of a year) share a `group`, so that
  one query (equality on `group`) reads them all.

The counter documents may live in the same collection as the entity documents they count
(the projection's collection), so that a rebuild into a fresh collection rebuilds both, and
both are swapped in together.

Write order in a projection: the counters first, then the entity document. A crash between
the two leaves the counters applied (their offset says so) and the entity not; the record is
delivered again, the entity is applied from the same previous state, and the counters skip
it. Known limit: an event applied out of its partition's order (a dead letter replayed after
later events of its partition were applied) is skipped by the counters; recount from the
entities (`fold_counts`) after such a replay.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Final

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from casework.envelope import Envelope, Position
from casework.eventstore import Document
from casework.projections import APPLIED, PendingWrites, pending_writes

Counts = Mapping[str, Mapping[str, int]]
"""Counts by counter key, then by name: `{"north": {"phase|active": 1}}`."""

COUNTER: Final = "counter"
"""The field naming a counter document's key; entity documents do not have it."""
GROUP: Final = "counter_group"
"""The field naming the group of keys a counter document is read with."""
ID_PREFIX: Final = "counter:"


COUNTS: Final = "counts"


def encode_counts(counts: Mapping[str, int]) -> str:
    """The `counts` field of a counter document: one JSON string (see the module docstring)."""
    return json.dumps(dict(sorted(counts.items())), separators=(",", ":"))


def decode_counts(doc: Mapping[str, Any]) -> dict[str, int]:
    """The counts of a counter document."""
    raw = doc.get(COUNTS)
    return {str(k): int(v) for k, v in json.loads(raw).items()} if raw else {}


class CounterTopicMismatch(ValueError):
    """A counter document is fed from one topic; an event of another topic reached it."""


def counter_id(key: str, partition: int) -> str:
    """The `_id` of the counter document of `key` owned by `partition`."""
    return f"{ID_PREFIX}{key}:{partition}"


def is_counter(doc: Mapping[str, Any]) -> bool:
    """Whether a document of a shared collection is a counter document."""
    return COUNTER in doc


def difference(before: Counts, after: Counts) -> dict[str, dict[str, int]]:
    """`after - before`, per key and name, without the zeros."""
    out: dict[str, dict[str, int]] = {}
    for key in {*before, *after}:
        old, new = before.get(key, {}), after.get(key, {})
        delta = {n: new.get(n, 0) - old.get(n, 0) for n in {*old, *new}}
        delta = {n: d for n, d in delta.items() if d}
        if delta:
            out[key] = delta
    return out


def fold_counts(contributions: Iterable[Counts]) -> dict[str, Counter[str]]:
    """The sum of many entities' contributions: what the counter documents of one partition
    hold (or, summed over partitions, what a query answers). For a rebuild that folds in
    memory, and to check the counters against the entities."""
    totals: dict[str, Counter[str]] = {}
    for counts in contributions:
        for key, named in counts.items():
            totals.setdefault(key, Counter()).update(named)
    return {k: Counter({n: c for n, c in v.items() if c}) for k, v in totals.items()}


def counter_documents(
    totals: Mapping[str, Mapping[str, int]],
    *,
    topic: str,
    partition: int,
    offset: int,
    group_of: Callable[[str], str] | None = None,
) -> list[Document]:
    """The counter documents of one partition whose entities contribute `totals` in all
    (`fold_counts` of their contributions), as if the records up to `offset` were applied:
    for a rebuild that folds a partition's records in memory and writes each document once,
    or to seed a benchmark."""
    group = group_of or (lambda key: key)
    return [
        {
            "_id": counter_id(key, partition),
            COUNTER: key,
            GROUP: group(key),
            "topic": topic,
            "partition": partition,
            "offset": offset,
            COUNTS: encode_counts({n: c for n, c in counts.items() if c}),
        }
        for key, counts in totals.items()
        if any(counts.values())
    ]


class PartitionCounters:
    """Counter documents in `collection`, one per (key, partition); see the module docstring.

    `group_of` names the group of a key (default: the key itself)."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        group_of: Callable[[str], str] | None = None,
    ) -> None:
        self.collection = collection
        self._group_of = group_of or (lambda key: key)

    async def ensure_indexes(self) -> None:
        """The indexes the sums read by: equality on `counter` or on `group`."""
        await self.collection.create_index([(COUNTER, ASCENDING)])
        await self.collection.create_index([(GROUP, ASCENDING)])

    async def add(self, position: Position, changes: Counts) -> bool:
        """Add `changes` to the documents of `position`'s partition, each unless that document
        already applied `position.offset` (or a later one). Returns whether any changed."""
        results = [
            await self._add(key, position, delta)
            for key, delta in sorted(changes.items())
            if any(delta.values())
        ]
        return any(results)

    def _document(self, key: str, position: Position, counts: Mapping[str, int]) -> Document:
        return {
            "_id": counter_id(key, position.partition),
            COUNTER: key,
            GROUP: self._group_of(key),
            "topic": position.topic,
            "partition": position.partition,
            "offset": position.offset,
            COUNTS: encode_counts(counts),
        }

    async def add_pending(
        self, pending: PendingWrites, position: Position, changes: Counts
    ) -> bool:
        """`add`, into a batch's held writes (`casework.projections.PendingWrites`, stage 0:
        written before the entities). Each counter document takes the change unless the
        offset it had **when the batch read it** is at or past `position.offset`; it then
        holds the highest offset it took. Sums commute, so the order in which a batch's
        concurrent streams add their changes does not matter: the document ends as the
        serial path, which adds them in offset order, leaves it.

        All or nothing: every document is read and checked before any is changed, and the
        changes are made without yielding to another task."""
        wanted = [(key, delta) for key, delta in sorted(changes.items()) if any(delta.values())]
        held = [
            await pending.document(self.collection, counter_id(key, position.partition), stage=0)
            for key, _ in wanted
        ]
        for doc in held:
            if doc.stored is not None and doc.stored.get("topic") != position.topic:
                raise CounterTopicMismatch(
                    f"counter {doc.doc_id} counts {doc.stored.get('topic')}, not {position.topic}"
                )
        changed = False
        for (key, delta), doc in zip(wanted, held, strict=True):
            if doc.stored is not None and doc.stored["offset"] >= position.offset:
                continue  # applied already: a redelivery or a replay
            current = doc.current
            counts = decode_counts(current) if current else {}
            for name, change in delta.items():
                total = counts.get(name, 0) + change
                if total:
                    counts[name] = total
                else:
                    counts.pop(name, None)
            offset = max(position.offset, current["offset"] if current else -1)
            doc.current = self._document(key, replace(position, offset=offset), counts)
            changed = True
        return changed

    async def _add(self, key: str, position: Position, delta: Mapping[str, int]) -> bool:
        doc_id = counter_id(key, position.partition)
        for attempt in range(3):
            current = await self.collection.find_one({"_id": doc_id})
            if current is not None:
                if current.get("topic") != position.topic:
                    raise CounterTopicMismatch(
                        f"counter {doc_id} counts {current.get('topic')}, not {position.topic}"
                    )
                if current["offset"] >= position.offset:
                    return False  # applied already: a redelivery or a replay
            counts = decode_counts(current) if current else {}
            for name, change in delta.items():
                total = counts.get(name, 0) + change
                if total:
                    counts[name] = total
                else:
                    counts.pop(name, None)
            new = self._document(key, position, counts)
            if current is not None:
                await self.collection.replace_one({"_id": doc_id}, new)
                return True
            try:
                await self.collection.insert_one(new)
                return True
            except DuplicateKeyError:
                # Only a consumer that lost its partition in a rebalance can have raced us;
                # read again and apply on top of (or skip after) what it wrote.
                if attempt == 2:
                    raise
        return False

    async def totals(self, key: str) -> Counter[str]:
        """The counts of `key`, summed over its partitions' documents."""
        total: Counter[str] = Counter()
        async for doc in self.collection.find({COUNTER: key}, {COUNTS: 1}):
            total.update(decode_counts(doc))
        return total

    async def totals_of(self, keys: Iterable[str]) -> dict[str, Counter[str]]:
        """`totals` of several keys, read concurrently."""
        wanted = list(dict.fromkeys(keys))
        found = await asyncio.gather(*(self.totals(k) for k in wanted))
        return dict(zip(wanted, found, strict=True))

    async def groups(self, groups: Iterable[str]) -> dict[str, Counter[str]]:
        """The counts of every key in these groups, summed over partitions: one query per
        group, read concurrently. Keys with nothing counted may be missing."""

        async def read(group: str) -> list[Document]:
            cursor = self.collection.find({GROUP: group}, {COUNTER: 1, COUNTS: 1})
            return [dict(d) async for d in cursor]

        totals: dict[str, Counter[str]] = {}
        for docs in await asyncio.gather(*(read(g) for g in dict.fromkeys(groups))):
            for doc in docs:
                total = totals.setdefault(doc[COUNTER], Counter())
                raw = doc.get(COUNTS)
                # thousands of names for a big site's histograms: summed with dict.get
                # (Counter's += goes through __missing__ for each new name)
                for name, n in (json.loads(raw) if raw else {}).items():
                    total[name] = total.get(name, 0) + int(n)
        return totals

    async def documents(self) -> list[Document]:
        """Every counter document (for checks and tests; a scan of the counters)."""
        return [dict(d) async for d in self.collection.find({COUNTER: {"$exists": True}})]


class MissingPosition(ValueError):
    """A counted projection was handed an event without the consumer's position."""


class CountedDocuments:
    """Entity documents (one per aggregate, idempotent by stream version, like
    `casework.projections.ReadModel`) together with the partition counters of what they
    contribute, both in one collection.

    `apply` reads the entity, computes its new state, adds `contributions(new) -
    contributions(old)` to the counters of the event's partition (idempotent by offset), and
    only then writes the entity (idempotent by version): see the module docstring for why
    this order survives a crash between the two writes.
    """

    def __init__(
        self,
        collection: AsyncCollection[Document],
        contributions: Callable[[Mapping[str, Any]], Counts],
        group_of: Callable[[str], str] | None = None,
    ) -> None:
        self.collection = collection
        self.counters = PartitionCounters(collection, group_of)
        self._contributions = contributions

    async def apply(
        self,
        doc_id: str,
        envelope: Envelope,
        change: Callable[[Document], Document | None],
    ) -> bool:
        """Apply `change` to the document unless this event (or a later one) already was;
        `change` gets a copy of the current document (`{"_id": doc_id}` when new) and returns
        the new one, or None to delete it. Returns False for a duplicate.

        Inside a batch of a concurrent runner (`casework.projections.pending_writes`), the
        entity and its counters change the batch's copies, written with the batch (the
        counters first)."""
        pending = pending_writes()
        if pending is not None:
            return await self._apply_pending(pending, doc_id, envelope, change)
        for attempt in range(3):
            current = await self.collection.find_one({"_id": doc_id})
            doc: Document = dict(current) if current else {"_id": doc_id}
            applied: dict[str, int] = dict(doc.get(APPLIED, {}))
            if applied.get(envelope.subject, 0) >= envelope.stream_version:
                return False
            if envelope.position is None:
                raise MissingPosition("a counted projection needs the partition and offset")
            new = change(dict(doc))
            before = self._contributions(doc) if current else {}
            after = self._contributions(new) if new is not None else {}
            await self.counters.add(envelope.position, difference(before, after))
            if new is None:
                await self.collection.delete_one({"_id": doc_id})
                return True
            applied[envelope.subject] = envelope.stream_version
            new[APPLIED] = applied
            new["_id"] = doc_id
            try:
                if current is None:
                    await self.collection.insert_one(new)
                else:
                    await self.collection.replace_one({"_id": doc_id}, new)
                return True
            except DuplicateKeyError:
                if attempt == 2:
                    raise
        return False

    async def _apply_pending(
        self,
        pending: PendingWrites,
        doc_id: str,
        envelope: Envelope,
        change: Callable[[Document], Document | None],
    ) -> bool:
        held = await pending.document(self.collection, doc_id)
        async with held.lock:
            current = held.current
            # a copy of its own (see `ReadModel.apply`)
            doc: Document = (
                pending.as_stored(self.collection, current) if current else {"_id": doc_id}
            )
            applied: dict[str, int] = dict(doc.get(APPLIED, {}))
            if applied.get(envelope.subject, 0) >= envelope.stream_version:
                return False
            if envelope.position is None:
                raise MissingPosition("a counted projection needs the partition and offset")
            new = change(dict(doc))
            before = self._contributions(doc) if current else {}
            after = self._contributions(new) if new is not None else {}
            if new is not None:
                applied[envelope.subject] = envelope.stream_version
                new[APPLIED] = applied
                new["_id"] = doc_id
                new = pending.as_stored(self.collection, new)
            # everything that can fail is done: the counters, then the entity, change together
            await self.counters.add_pending(pending, envelope.position, difference(before, after))
            held.current = new
            return True


# --- durations as histograms ------------------------------------------------------------
#
# A median or a 90th percentile cannot be summed over partitions, but a histogram can. Each
# duration is counted in a bucket; buckets grow geometrically by 2^(1/16) from one minute
# (sixteen per doubling), so that a bucket's middle is within 2.2% of every value in it, from
# minutes to years, with at most ~16 buckets per doubling actually used. Durations under a
# minute share bucket 0 (read as 0).

_PER_DOUBLING: Final = 16


def duration_bucket(hours: float) -> int:
    """The histogram bucket of a duration in hours (0: under a minute)."""
    minutes = hours * 60
    if minutes < 1:
        return 0
    return 1 + math.floor(_PER_DOUBLING * math.log2(minutes))


def bucket_hours(bucket: int) -> float:
    """What a bucket's durations read as: its geometric middle, in hours."""
    if bucket <= 0:
        return 0.0
    return float(2 ** ((bucket - 0.5) / _PER_DOUBLING) / 60)


def histogram_percentile(histogram: Mapping[int, int], q: float) -> float:
    """The q-th percentile (0-100) of the durations counted in `histogram` ({bucket: n}),
    interpolating linearly between the closest ranks like `numpy.percentile`'s default, each
    rank read as its bucket's middle: within 2.2% of the exact percentile."""
    total = sum(n for n in histogram.values() if n > 0)
    if total == 0:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    rank = (total - 1) * q / 100
    below, above = math.floor(rank), math.ceil(rank)

    def at(k: int) -> float:
        seen = 0
        for bucket in sorted(histogram):
            seen += max(histogram[bucket], 0)
            if k < seen:
                return bucket_hours(bucket)
        raise AssertionError("rank beyond the histogram")  # pragma: no cover

    low, high = at(below), at(above)
    return low + (high - low) * (rank - below)
