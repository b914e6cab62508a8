"""The contacts service's read models, fed by its own topic.

| projection          | one document per | written by stream       | read by                 |
|---------------------|------------------|-------------------------|-------------------------|
| `contact_history`   | contact          | `contact-<id>`          | case history, agendas   |
| `obligations_view`  | case             | `obligations-<case_id>` | compliance, agendas     |
| `open_obligations`  | obligation       | `obligations-<case_id>` | a site's agenda         |

Each document has one writer (its stream's partition) and is idempotent by stream version.
Queries filter by equality on indexed fields (`case_id`, `assigned_to`) or by `_id`; which
cases a worker or a team holds comes from `case_facts` (also by equality), and the order —
by risk, then how late — is put together at read time, since it changes with every risk
change and every passing hour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from casework.contracts.contacts import (
    MEDIUM_CLASS,
    ContactCancelled,
    ContactCorrected,
    ContactCounted,
    ContactDueSoon,
    ContactLogged,
    ContactMissed,
    ContactObligationCancelled,
    ContactObligationMet,
    ContactObligationOpened,
    ContactObligationRescheduled,
    ContactOverdue,
    ContactScheduled,
    ContactUncounted,
    LoneWorkerCheckedIn,
    LoneWorkerCheckedOut,
    LoneWorkerOverdue,
)
from casework.counters import CountedDocuments, Counts, duration_bucket
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic

KEEP_CLOSED = 200
"""Met and cancelled obligations (and counted contacts) kept per case for compliance: the
newest; older ones stay in the event store."""


def _json(event: DomainEvent, *names: str) -> dict[str, Any]:
    data = event.model_dump(mode="json")
    return {name: data[name] for name in names}


def contact_change(event: DomainEvent) -> dict[str, Any] | None:
    """What one contact event sets on its `contact_history` document (None: not a contact's
    event). Corrections and lone-worker steps are handled by `evolve_contact`."""
    match event:
        case ContactScheduled():
            return {
                **_json(event, "case_id", "client_id", "site", "medium", "participants"),
                "medium_class": MEDIUM_CLASS[event.medium].value,
                "status": "scheduled",
                "planned_for": event.planned_for,
                "window_ends_at": event.window_ends_at,
                "due_at": event.window_ends_at or event.planned_for,
                "assigned_to": event.assigned_to,
                "purpose": event.purpose,
                "follow_up_of": event.follow_up_of,
                "scheduled_by": event.scheduled_by,
            }
        case ContactLogged():
            return {
                **_json(
                    event,
                    "case_id",
                    "client_id",
                    "site",
                    "medium",
                    "participants",
                    "outcome",
                    "attempt_reason",
                    "notes",
                    "wellbeing",
                    "safety_plan_reviewed",
                    "follow_up_needed",
                    "duration_minutes",
                    "travel_minutes",
                    "was_scheduled",
                    "logged_by",
                ),
                "medium_class": MEDIUM_CLASS[event.medium].value,
                "status": "logged",
                "occurred_at": event.occurred_at,
                "logged_at": event.logged_at,
            }
        case ContactMissed():
            return {
                "status": "missed",
                "miss_reason": event.reason.value,
                "missed_at": event.missed_at,
            }
        case ContactCancelled():
            return {
                "status": "cancelled",
                "cancel_reason": event.reason.value,
                "cancelled_at": event.cancelled_at,
            }
    return None


def evolve_contact(doc: Document, event: DomainEvent) -> Document:
    """The `contact_history` document after one event."""
    change = contact_change(event)
    if change is not None:
        return {**doc, **change}
    match event:
        case ContactCorrected():
            corrections = [
                *doc.get("corrections", []),
                {
                    **_json(event, "correction_id", "kind", "text", "corrected_by"),
                    "corrected_at": event.corrected_at,
                },
            ]
            struck = doc.get("struck_through", False) or event.kind == "struck_through"
            return {**doc, "corrections": corrections, "struck_through": struck}
        case LoneWorkerCheckedIn():
            visit = {
                "worker_id": event.worker_id,
                "checked_in_at": event.checked_in_at,
                "due_back_at": event.due_back_at,
                "checked_out_at": None,
                "overdue": False,
            }
            return {**doc, "lone_worker": visit}
        case LoneWorkerCheckedOut():
            visit = {**doc.get("lone_worker", {}), "checked_out_at": event.checked_out_at}
            return {**doc, "lone_worker": visit}
        case LoneWorkerOverdue():
            return {**doc, "lone_worker": {**doc.get("lone_worker", {}), "overdue": True}}
    return doc


CONTACT_EVENTS = (
    ContactScheduled,
    ContactLogged,
    ContactMissed,
    ContactCancelled,
    ContactCorrected,
    LoneWorkerCheckedIn,
    LoneWorkerCheckedOut,
    LoneWorkerOverdue,
)


class ContactHistory(Projection):
    """`contact_history`: one document per contact."""

    name = "contact_history"
    topics = (events_topic("contacts"),)

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("case_id", ASCENDING)])
        await self.read_model.collection.create_index([("assigned_to", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, CONTACT_EVENTS):
            return False
        contact_id: str = getattr(event, "contact_id")  # noqa: B009 - all of them have it
        return await self.read_model.apply(
            contact_id, envelope, lambda doc: evolve_contact(doc, event)
        )

    async def of_case(self, case_id: str) -> list[Document]:
        cursor = self.read_model.collection.find({"case_id": case_id}, {APPLIED: 0})
        return [dict(d) async for d in cursor]

    async def scheduled_for(self, worker_id: str) -> list[Document]:
        cursor = self.read_model.collection.find({"assigned_to": worker_id}, {APPLIED: 0})
        return [dict(d) async for d in cursor if d.get("status") == "scheduled"]


def _trimmed(items: Mapping[str, Any], keep: int) -> dict[str, Any]:
    """Open obligations always; of the others, the newest `keep` by opening time."""
    open_ = {k: v for k, v in items.items() if v.get("status") == "open"}
    closed = sorted(
        ((k, v) for k, v in items.items() if v.get("status") != "open"),
        key=lambda kv: (str(kv[1].get("opened_at")), kv[0]),
    )[-keep:]
    return {**dict(closed), **open_}


def month_of(moment: datetime) -> str:
    """`2026-03`: the month statistics count a moment in (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def statistics_key(site: str, month: str) -> str:
    """The counter key of a site's figures of one month: `north|2026-03`."""
    return f"{site}|{month}"


def statistics_group(key: str) -> str:
    """Keys are read a year at a time: `north|2026-03` → `north|2026`."""
    return key[:-3]


def _add(stats: dict[str, dict[str, int]], key: str, name: str, n: int = 1) -> None:
    named = stats.setdefault(key, {})
    named[name] = named.get(name, 0) + n
    if not named[name]:
        del named[name]


def _as_utc(moment: Any) -> datetime:
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def evolve_obligations(doc: Document, event: DomainEvent, site: str = "") -> Document:
    """The `obligations_view` document of a case after one event of its obligations stream.

    Besides the obligations and the counted contacts (the newest `KEEP_CLOSED`), the document
    keeps the case's contribution to its site's statistics (`stats`, by `site|month`, never
    trimmed; the partition counters add them up, `casework.counters`):

    - `contacts|<medium>|<outcome>` per logged contact, in the month it happened, and
      `cases_contacted` once per month the case had one;
    - `due|<risk>` once per obligation that was met or went overdue, in its due month, and
      `on_time|<risk>` when it was met before an overdue was raised;
    - `hours|<trigger>|<bucket>`: hours from a clock's trigger (the case opened, a crisis
      resolved, a discharge) to the contact that met it, as a histogram bucket
      (`casework.counters.duration_bucket`), in the month it was met.
    """
    obligations: dict[str, Any] = dict(doc.get("obligations", {}))
    stats: dict[str, dict[str, int]] = {k: dict(v) for k, v in doc.get("stats", {}).items()}
    place = site or "unknown"

    def update(obligation_id: str, **fields: Any) -> None:
        if obligation_id in obligations:
            obligations[obligation_id] = {**obligations[obligation_id], **fields}

    def count_due(obligation_id: str, on_time: bool) -> None:
        ob = obligations.get(obligation_id)
        if ob is None or ob.get("counted_due"):
            return
        key = statistics_key(place, month_of(_as_utc(ob["due_at"])))
        risk = ob.get("risk_level") or "unrated"
        _add(stats, key, f"due|{risk}")
        if on_time:
            _add(stats, key, f"on_time|{risk}")
        update(obligation_id, counted_due=True)

    match event:
        case ContactObligationOpened():
            obligations[event.obligation_id] = {
                "obligation_id": event.obligation_id,
                "rule_id": event.rule_id,
                "rule_version": event.rule_version,
                "due_at": event.due_at,
                "opened_at": event.opened_at,
                "media_classes": [m.value for m in event.media_classes],
                "window_seconds": event.window.total_seconds() if event.window else None,
                "contacts_required": event.contacts_required,
                "trigger": event.trigger,
                "trigger_at": event.trigger_at,
                "risk_level": event.risk_level.value if event.risk_level else None,
                "status": "open",
                "overdue": False,
                "due_soon": False,
            }
        case ContactObligationMet():
            ob = obligations.get(event.obligation_id)
            if ob is not None and ob.get("trigger") and ob.get("trigger_at") is not None:
                kind = str(ob["trigger"]).split(":", 1)[0]
                hours = (event.met_at - _as_utc(ob["trigger_at"])).total_seconds() / 3600
                key = statistics_key(place, month_of(event.met_at))
                _add(stats, key, f"hours|{kind}|{duration_bucket(max(hours, 0.0))}")
            count_due(event.obligation_id, event.on_time)
            update(
                event.obligation_id,
                status="met",
                met_at=event.met_at,
                on_time=event.on_time,
                contact_id=event.contact_id,
            )
        case ContactObligationCancelled():
            update(
                event.obligation_id,
                status="cancelled",
                cancelled_at=event.cancelled_at,
                reason=event.reason,
            )
        case ContactOverdue():
            count_due(event.obligation_id, on_time=False)
            update(event.obligation_id, overdue=True, overdue_raised_at=event.raised_at)
        case ContactDueSoon():
            update(event.obligation_id, due_soon=True)
        case ContactObligationRescheduled():
            update(event.obligation_id, due_at=event.due_at, due_soon=False)
        case ContactUncounted():
            counted = [dict(entry) for entry in doc.get("counted", [])]
            for entry in counted:
                if entry.get("contact_id") == event.contact_id and not entry.get("uncounted"):
                    entry["uncounted"] = True
                    entry["counted_for"] = []
                    key = statistics_key(place, month_of(_as_utc(entry["occurred_at"])))
                    _add(stats, key, f"contacts|{entry['medium']}|{entry['outcome']}", -1)
            return {**doc, "case_id": event.case_id, "counted": counted, "stats": stats}
        case ContactCounted():
            month = month_of(event.occurred_at)
            key = statistics_key(place, month)
            _add(stats, key, f"contacts|{event.medium.value}|{event.outcome.value}")
            months = list(doc.get("months_contacted", []))
            if f"{place}|{month}" not in months:
                months.append(f"{place}|{month}")
                _add(stats, key, "cases_contacted")
            counted = [
                *doc.get("counted", []),
                {
                    **_json(event, "contact_id", "medium", "outcome", "with_client"),
                    "occurred_at": event.occurred_at,
                    "counted_for": list(event.counted_for),
                },
            ][-KEEP_CLOSED:]
            return {
                **doc,
                "case_id": event.case_id,
                "counted": counted,
                "months_contacted": months,
                "stats": stats,
            }
        case _:
            return doc
    case_id: str = getattr(event, "case_id")  # noqa: B009
    return {
        **doc,
        "case_id": case_id,
        "obligations": _trimmed(obligations, KEEP_CLOSED),
        "stats": stats,
    }


def contributions(doc: Mapping[str, Any]) -> Counts:
    """What a case's document adds to its sites' statistics (the partition counters)."""
    stats: Counts = doc.get("stats", {})
    return stats


OBLIGATION_EVENTS = (
    ContactObligationOpened,
    ContactObligationMet,
    ContactObligationCancelled,
    ContactObligationRescheduled,
    ContactOverdue,
    ContactDueSoon,
    ContactCounted,
    ContactUncounted,
)


class ObligationsView(Projection):
    """`obligations_view`: one document per case, with its obligations and counted contacts,
    and the partition counters of the sites' contact statistics (in the same collection, so
    that a rebuild rebuilds both)."""

    name = "obligations_view"
    topics = (events_topic("contacts"),)

    def __init__(self, database: AsyncDatabase[Document], collection: str | None = None) -> None:
        super().__init__(database, collection)
        self.documents = CountedDocuments(
            self.read_model.collection, contributions, statistics_group
        )
        self.counters = self.documents.counters

    async def ensure_indexes(self) -> None:
        await self.counters.ensure_indexes()

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, OBLIGATION_EVENTS):
            return False
        case_id: str = getattr(event, "case_id")  # noqa: B009
        site = envelope.site or ""
        return await self.documents.apply(
            case_id, envelope, lambda doc: evolve_obligations(doc, event, site)
        )

    async def of_cases(self, case_ids: list[str]) -> dict[str, Document]:
        """Each case's document by its `_id` (`ReadModel.get_many`)."""
        return await self.read_model.get_many(case_ids)


def window_start(now: datetime, window_seconds: float | None) -> datetime | None:
    return None if window_seconds is None else now - timedelta(seconds=window_seconds)


def open_obligation_change(event: DomainEvent, site: str) -> dict[str, Any] | None:
    """What an obligations event sets on the obligation's `open_obligations` document. A met
    or cancelled obligation's document stays as a tombstone without a site (so that it
    remembers the versions it applied, and no site's query returns it)."""
    match event:
        case ContactObligationOpened():
            return {
                "case_id": event.case_id,
                "obligation_id": event.obligation_id,
                "rule_id": event.rule_id,
                "rule_version": event.rule_version,
                "site": site or None,
                "due_at": event.due_at,
                "due_day": _as_utc(event.due_at).strftime("%Y-%m-%d"),
                "overdue": False,
                "risk_level": event.risk_level.value if event.risk_level else None,
                "media_classes": [m.value for m in event.media_classes],
            }
        case ContactOverdue():
            return {"overdue": True}
        case ContactObligationRescheduled():
            return {"due_at": event.due_at, "due_day": _as_utc(event.due_at).strftime("%Y-%m-%d")}
        case ContactObligationMet() | ContactObligationCancelled():
            return {"site": None, "due_day": None, "overdue": None, "closed": True}
    return None


class OpenObligations(Projection):
    """`open_obligations`: one document per obligation while it is open, found by site and
    due day, or by site among the overdue (equality on indexed fields): a site's agenda
    without reading the site's cases. The site is the one the obligation opened at (a
    transfer that keeps a case's rules keeps its open obligations where they were listed
    until they are met or replaced)."""

    name = "open_obligations"
    topics = (events_topic("contacts"),)

    async def ensure_indexes(self) -> None:
        collection = self.read_model.collection
        await collection.create_index([("site", ASCENDING), ("due_day", ASCENDING)])
        await collection.create_index([("site", ASCENDING), ("overdue", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(
            event,
            ContactObligationOpened
            | ContactObligationRescheduled
            | ContactOverdue
            | ContactObligationMet
            | ContactObligationCancelled,
        ):
            return False
        change = open_obligation_change(event, envelope.site or "") or {}
        doc_id = f"{event.case_id}:{event.obligation_id}"
        return await self.read_model.apply(doc_id, envelope, lambda doc: {**doc, **change})

    async def of_site(self, site: str, days: list[str]) -> list[Document]:
        """The site's open obligations due on these days, and those overdue (one equality
        query each, read concurrently)."""
        collection = self.read_model.collection

        async def find(query: dict[str, Any]) -> list[Document]:
            return [dict(d) async for d in collection.find(query, {APPLIED: 0})]

        queries: list[dict[str, Any]] = [
            {"site": site, "overdue": True},
            *({"site": site, "due_day": d} for d in days),
        ]
        found = await asyncio.gather(*(find(q) for q in queries))
        return list({d["_id"]: d for docs in found for d in docs}.values())
