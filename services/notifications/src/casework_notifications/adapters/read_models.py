"""Read models of the notifications service, fed by its own topic.

- `inbox`: one document per notification (`_id` = notification id), indexed by recipient:
  a person's inbox is an equality query. Acknowledgement lives on the alert, not on each
  entry, so "acknowledged by anyone" is one write and visible to every recipient: the inbox
  query joins the entries with their alerts by `_id`.
- `alert_board`: one document per alert group (`_id` = alert id): the current episode's
  status, steps reached and who each notified, who acknowledged and when (and how long it
  took), who is in contact, the count of re-fires, and who was brought in late (a new on-call:
  `brought_in`, each with the step, targets and why). The crisis board is its open crises of a
  site (equality on `site`, `trigger`, `status`).

Both are idempotent by stream version (`ReadModel`), and publish to the live hub after
their write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    NotificationRead,
    NotificationSent,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic

from casework_notifications.adapters.live import LiveHub


class Inbox(Projection):
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
        await self.read_model.collection.create_index("recipient_id")

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
            # a notification's entry is new: one insert (its id is unique), not a read and a
            # replace — the hot path of a crisis; a redelivery finds it stored
            doc = {
                "_id": event.notification_id,
                **entry,
                APPLIED: {envelope.subject: envelope.stream_version},
            }
            try:
                await self.read_model.collection.insert_one(doc)
                changed = True
            except DuplicateKeyError:
                changed = False
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

    async def of(self, recipient_id: str, limit: int) -> list[Document]:
        """The recipient's newest entries."""
        cursor = (
            self.read_model.collection.find({"recipient_id": recipient_id}, {APPLIED: 0})
            .sort("sent_at", -1)
            .limit(limit)
        )
        return [dict(d) async for d in cursor]


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
                "episode": event.episode,
                "status": "open",
                "opened_at": event.opened_at,
                "policy": event.policy.name,
                "count": 1,
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
