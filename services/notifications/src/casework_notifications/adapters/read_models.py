"""Read models of the notifications service, fed by its own topic.

- `inbox`: one document per notification (`_id` = notification id), bucketed by recipient
  and UTC day (`inbox_day`), with a marker per (recipient, day) and per (recipient, month):
  see `Inbox`. Acknowledgement lives on the alert, not on each entry, so "acknowledged by
  anyone" is one write and visible to every recipient: the inbox query joins the entries with
  their alerts by `_id`.
- `alert_board`: one document per alert group (`_id` = alert id): the current episode's
  status, the channels its recipients are notified on, steps reached and who each notified,
  who acknowledged and when (and how long it took), who is in contact, the count of re-fires,
  how many of its sources are over while it stays open for others (`settled`: overdue
  contacts made), and who was brought in late (a new on-call: `brought_in`, each with the
  step, targets and why). The crisis board is its open crises of a site (equality on
  `site`, `trigger`, `status`).

Both are idempotent by stream version (`ReadModel`), and publish to the live hub after
their write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from casework.contracts.notifications import (
    AlertAcknowledged,
    AlertBroughtIn,
    AlertClosed,
    AlertEscalated,
    AlertInContact,
    AlertOpened,
    AlertRefired,
    AlertSourceSettled,
    NotificationRead,
    NotificationSent,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic

from casework_notifications.adapters.live import LiveHub

INBOX_DAY: Final = "inbox_day"
DAY_OF: Final = "inbox_day_of"
MONTH_OF: Final = "inbox_month_of"


def _day(moment: datetime) -> str:
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%d")


class Inbox(Projection):
    """Each person's notifications, newest first, read at a cost that does not grow with
    everything the person was ever sent.

    FerretDB v1.24 pushes equality on an indexed field down to PostgreSQL but sorts and limits
    in Go after decoding every document the equality matched (NOTES.md): "the recipient's 50
    newest" by `recipient_id` would decode an on-call worker's whole year at each read (~0.2 ms
    a document). So entries are found by equality only, in three small steps:

    - an entry carries `inbox_day` = `<recipient>|<UTC day>`;
    - a day marker (`_id` `day|<recipient>|<day>`) carries `inbox_day_of` =
      `<recipient>|<month>`; a month marker (`_id` `month|<recipient>|<month>`) carries
      `inbox_month_of` = `<recipient>`.

    A read takes the person's months (a dozen a year), the newest month's days, and day buckets
    newest first until the page is full; the first three are asked at once (today's bucket is
    where a new entry is). Invariant: an entry is stored only after both its markers are, so
    every stored entry is listed by a read (and one pushed on the live stream is listed by the
    next read). Markers are written insert-once before the entry every time (a duplicate key
    is the common, cheap answer), never cached, so a redelivery repairs a half-done apply and
    a rebuild's fresh collection gets them from the same handler.
    """

    name = "inbox"
    topics = (events_topic("notifications"),)

    def __init__(
        self,
        database: AsyncDatabase[Document],
        collection: str | None = None,
        *,
        hub: LiveHub | None = None,
    ) -> None:
        # (database, collection) as every projection: the rebuild makes a fresh copy so
        super().__init__(database, collection)
        self.hub = hub

    async def ensure_indexes(self) -> None:
        for field in (INBOX_DAY, DAY_OF, MONTH_OF):
            await self.read_model.collection.create_index(field)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if isinstance(event, NotificationSent):
            entry = {
                "recipient_id": event.recipient_id,
                "alert_id": event.alert_id,
                "episode": event.episode,
                "step": event.step,
                "trigger": event.trigger.value,
                "urgency": event.urgency.value,
                "case_id": event.case_id,
                "site": event.site,
                "channels": [c.value for c in event.channels],
                "sent_at": event.sent_at,
                "read_at": None,
            }
            day = _day(event.sent_at)
            # a notification's entry is new: one insert (its id is unique), not a read and a
            # replace — the hot path of a crisis; a redelivery finds it stored. Its markers go
            # first (each insert-once, both at once): an entry stored is always findable, and
            # one whose markers failed is not stored, so the apply that stores it pushes it.
            await asyncio.gather(
                self._insert_once(
                    {
                        "_id": f"day|{event.recipient_id}|{day}",
                        DAY_OF: f"{event.recipient_id}|{day[:7]}",
                        "day": day,
                    }
                ),
                self._insert_once(
                    {
                        "_id": f"month|{event.recipient_id}|{day[:7]}",
                        MONTH_OF: event.recipient_id,
                        "month": day[:7],
                    }
                ),
            )
            changed = await self._insert_once(
                {
                    "_id": event.notification_id,
                    **entry,
                    INBOX_DAY: f"{event.recipient_id}|{day}",
                    APPLIED: {envelope.subject: envelope.stream_version},
                }
            )
            if changed and self.hub is not None:
                self.hub.publish(
                    event.recipient_id,
                    {
                        "kind": "notification",
                        "entry": {"notification_id": event.notification_id, **entry},
                    },
                )
            return changed
        if isinstance(event, NotificationRead):
            return await self.read_model.apply(
                event.notification_id, envelope, lambda doc: {**doc, "read_at": event.read_at}
            )
        return False

    async def _insert_once(self, doc: Document) -> bool:
        try:
            await self.read_model.collection.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def _find(self, field: str, value: str) -> list[Document]:
        cursor = self.read_model.collection.find({field: value}, {APPLIED: 0})
        return [dict(d) async for d in cursor]

    async def _entries_of(self, recipient_id: str, day: str) -> list[Document]:
        """One day bucket, newest first."""
        entries = await self._find(INBOX_DAY, f"{recipient_id}|{day}")
        return sorted(entries, key=lambda d: (d["sent_at"], str(d["_id"])), reverse=True)

    async def of(self, recipient_id: str, limit: int) -> list[Document]:
        """The recipient's newest `limit` entries, newest first."""
        today = _day(datetime.now(UTC))
        this_month = today[:7]
        months_found, days_found, todays = await asyncio.gather(
            self._find(MONTH_OF, recipient_id),
            self._find(DAY_OF, f"{recipient_id}|{this_month}"),
            self._entries_of(recipient_id, today),
        )
        months = sorted((str(m["month"]) for m in months_found), reverse=True)
        found: list[Document] = []
        for month in months:
            if month != this_month:
                days_found = await self._find(DAY_OF, f"{recipient_id}|{month}")
            for day in sorted((str(d["day"]) for d in days_found), reverse=True):
                found += todays if day == today else await self._entries_of(recipient_id, day)
                if len(found) >= limit:
                    return found[:limit]
        return found[:limit]

    async def between(self, recipient_id: str, since: datetime, until: datetime) -> list[Document]:
        """The recipient's entries sent in [since, until), oldest first: the day buckets of
        that span, read at once."""
        days: list[str] = []
        day = since.astimezone(UTC).date()
        while day <= until.astimezone(UTC).date():
            days.append(day.isoformat())
            day += timedelta(days=1)
        buckets = await asyncio.gather(*(self._entries_of(recipient_id, d) for d in days))
        return sorted(
            (e for bucket in buckets for e in bucket if since <= e["sent_at"] < until),
            key=lambda d: (d["sent_at"], str(d["_id"])),
        )


class AlertBoard(Projection):
    name = "alert_board"
    topics = (events_topic("notifications"),)

    def __init__(
        self,
        database: AsyncDatabase[Document],
        collection: str | None = None,
        *,
        hub: LiveHub | None = None,
    ) -> None:
        # (database, collection) as every projection: the rebuild makes a fresh copy so
        super().__init__(database, collection)
        self.hub = hub

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("site", 1), ("status", 1)])
        await self.read_model.collection.create_index("status")

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        change = _board_change(event)
        if change is None:
            return False
        after: list[Document] = []

        def apply(doc: Document) -> Document:
            new = change(doc)
            after.append(new)
            return new

        changed = await self.read_model.apply(str(getattr(event, "alert_id")), envelope, apply)  # noqa: B009
        if changed and self.hub is not None and after and not isinstance(event, NotificationSent):
            doc = {k: v for k, v in after[-1].items() if k != APPLIED}
            for recipient in doc.get("recipients", ()):
                self.hub.publish(recipient, {"kind": "alert", "alert": doc})
        return changed

    async def get_many(self, alert_ids: Sequence[str]) -> dict[str, Document]:
        return await self.read_model.get_many(alert_ids)

    async def open_of_site(self, site: str) -> list[Document]:
        """Open and acknowledged (not yet closed) alerts of a site: equality on the
        (site, status) index."""
        return await self._open({"site": site})

    async def open_everywhere(self) -> list[Document]:
        """Open and acknowledged alerts of every site (the regional board): equality on the
        status index."""
        return await self._open({})

    async def _open(self, where: Document) -> list[Document]:
        """The not-yet-closed alerts matching `where`: one equality query per live status,
        so closed history is never read (`$in` is not pushed down on FerretDB)."""
        found: list[Document] = []
        for status in ("open", "acknowledged"):
            cursor = self.read_model.collection.find({**where, "status": status}, {APPLIED: 0})
            found += [dict(d) async for d in cursor]
        return found


def _board_change(event: DomainEvent) -> Callable[[Document], Document] | None:
    match event:
        case AlertOpened():
            return lambda doc: {
                "_id": doc["_id"],
                "trigger": event.trigger.value,
                "case_id": event.case_id,
                "worker_id": event.worker_id,
                "site": event.site,
                "urgency": event.urgency.value,
                "channels": [c.value for c in event.channels],
                "episode": event.episode,
                "status": "open",
                "opened_at": event.opened_at,
                "policy": event.policy.name,
                "count": 1,
                "settled": 0,
                "step": -1,
                "level": None,
                "steps": [],
                "recipients": [],
                "acknowledged_by": None,
                "acknowledged_at": None,
                "seconds_to_acknowledge": None,
                "in_contact": [],
                "closed_at": None,
                "episodes_before": doc.get("episode", 0),
            }
        case AlertRefired():
            return lambda doc: {**doc, "count": event.count}
        case AlertSourceSettled():
            return lambda doc: {**doc, "settled": doc.get("settled", 0) + 1}
        case AlertEscalated():
            return lambda doc: {
                **doc,
                "step": event.step,
                "level": event.level,
                "repeat": event.repeat,
                "steps": [
                    *doc.get("steps", []),
                    {
                        "step": event.step,
                        "level": event.level,
                        "repeat": event.repeat,
                        "recipients": list(event.recipients),
                        "unresolved": list(event.unresolved_targets),
                        "due_at": event.due_at,
                        "at": event.escalated_at,
                    },
                ],
                "recipients": list(dict.fromkeys([*doc.get("recipients", []), *event.recipients])),
            }
        case AlertBroughtIn():
            return lambda doc: {
                **doc,
                "brought_in": [
                    *doc.get("brought_in", []),
                    {
                        "step": event.step,
                        "recipients": list(event.recipients),
                        "targets": list(event.targets),
                        "reason": event.reason,
                        "at": event.brought_in_at,
                    },
                ],
                "recipients": list(dict.fromkeys([*doc.get("recipients", []), *event.recipients])),
            }
        case AlertAcknowledged():
            return lambda doc: {
                **doc,
                "status": "acknowledged",
                "acknowledged_by": event.acknowledged_by,
                "acknowledged_at": event.acknowledged_at,
                "seconds_to_acknowledge": (
                    (event.acknowledged_at - doc["opened_at"]).total_seconds()
                    if doc.get("opened_at")
                    else None
                ),
            }
        case AlertInContact():
            return lambda doc: {
                **doc,
                "in_contact": [*doc.get("in_contact", []), {"by": event.by, "at": event.at}],
            }
        case AlertClosed():
            return lambda doc: {**doc, "status": "closed", "closed_at": event.closed_at}
    return None
