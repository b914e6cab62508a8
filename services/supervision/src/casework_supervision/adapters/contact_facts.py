"""Supervision's local copy of the contacts service's obligations (DESIGN §2): per case, its
open contact obligations with their rule, due time, and whether they are overdue or due
soon, from the `obligations-<case_id>` stream of the contacts topic.

One document per case (`contact_obligations`, `_id` = case id), fed by that one stream, so
one partition writes it; idempotent by stream version. A missed 72-hour follow-up is an
overdue obligation opened by a follow-up clock (`trigger` `crisis_resolved` or
`inpatient_discharge`, or a rule id in `FOLLOW_UP_RULES`); an obligation stays listed,
overdue, until it is met (late) or cancelled.
"""

from __future__ import annotations

from typing import Any

from casework.contracts.contacts import (
    ContactDueSoon,
    ContactObligationCancelled,
    ContactObligationMet,
    ContactObligationOpened,
    ContactObligationRescheduled,
    ContactOverdue,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import Projection
from casework.runtime import events_topic

FOLLOW_UP_TRIGGERS = frozenset({"crisis_resolved", "inpatient_discharge"})
FOLLOW_UP_RULES = frozenset({"crisis-follow-up-72h", "discharge-follow-up-72h"})


def is_follow_up(obligation: dict[str, Any]) -> bool:
    return (
        obligation.get("trigger") in FOLLOW_UP_TRIGGERS
        or obligation.get("rule_id") in FOLLOW_UP_RULES
    )


class ContactObligations(Projection):
    """Open contact obligations per case (`contact_obligations`)."""

    name = "contact_obligations"
    topics = (events_topic("contacts"),)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        match event:
            case ContactObligationOpened():
                entry = {
                    "rule_id": event.rule_id,
                    "due_at": event.due_at,
                    "trigger": event.trigger,
                    "overdue": False,
                    "due_soon": False,
                }

                def opened(doc: Document) -> Document:
                    return {**doc, "open": {**doc.get("open", {}), event.obligation_id: entry}}

                return await self.read_model.apply(event.case_id, envelope, opened)
            case ContactObligationRescheduled():
                return await self._change(
                    envelope, event.case_id, event.obligation_id, {"due_at": event.due_at}
                )
            case ContactOverdue():
                return await self._change(
                    envelope, event.case_id, event.obligation_id, {"overdue": True}
                )
            case ContactDueSoon():
                return await self._change(
                    envelope, event.case_id, event.obligation_id, {"due_soon": True}
                )
            case ContactObligationMet() | ContactObligationCancelled():
                obligation_id = event.obligation_id

                def closed(doc: Document) -> Document:
                    remaining = {k: v for k, v in doc.get("open", {}).items() if k != obligation_id}
                    return {**doc, "open": remaining}

                return await self.read_model.apply(event.case_id, envelope, closed)
        return False

    async def _change(
        self, envelope: Envelope, case_id: str, obligation_id: str, change: dict[str, Any]
    ) -> bool:
        def update(doc: Document) -> Document:
            current = dict(doc.get("open", {}))
            if obligation_id in current:
                current[obligation_id] = {**current[obligation_id], **change}
            return {**doc, "open": current}

        return await self.read_model.apply(case_id, envelope, update)

    async def of_cases(self, case_ids: list[str]) -> dict[str, Document]:
        """The documents of several cases, each read by its `_id` (`ReadModel.get_many`)."""
        return await self.read_model.get_many(case_ids)
