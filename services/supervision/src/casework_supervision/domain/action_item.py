"""The ActionItem aggregate (stream `action-<id>`): something to be done by an owner by a due
time, set in a supervision session and carried to each next session of the worker until done.

Invariant: `ActionItemOverdue` is raised at most once per item, only while it is open, and
never before its due time (the deadline that asks may fire late, twice, or after the item was
done: the aggregate decides).
"""

from __future__ import annotations

from datetime import datetime

from casework.aggregate import Aggregate
from casework.contracts.supervision import ActionItemDone, ActionItemOverdue, ActionItemSet
from casework.events import DomainEvent

from casework_supervision.domain.errors import (
    ActionItemAlreadyDone,
    ActionItemAlreadyExists,
)


class ActionItem(Aggregate):
    stream_type = "action"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.set: ActionItemSet | None = None
        self.done = False
        self.overdue_raised = False

    def create(self, event: ActionItemSet) -> None:
        if self.set is not None:
            raise ActionItemAlreadyExists(self.id)
        self._trigger(event)

    def mark_done(self, by: str, now: datetime) -> None:
        assert self.set is not None
        if self.done:
            raise ActionItemAlreadyDone(self.id)
        self._trigger(
            ActionItemDone(
                action_item_id=self.id, worker_id=self.set.worker_id, done_by=by, done_at=now
            )
        )

    def mark_overdue(self, due_at: datetime, now: datetime) -> None:
        item = self.set
        if item is None or self.done or self.overdue_raised:
            return
        if item.due_at != due_at or now < item.due_at:
            return
        self._trigger(
            ActionItemOverdue(
                action_item_id=self.id,
                worker_id=item.worker_id,
                supervisor_id=item.supervisor_id,
                owner_id=item.owner_id,
                site=item.site,
                case_id=item.case_id,
                due_at=item.due_at,
                raised_at=now,
            )
        )

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case ActionItemSet():
                self.set = event
                self.site = event.site
            case ActionItemDone():
                self.done = True
            case ActionItemOverdue():
                self.overdue_raised = True
