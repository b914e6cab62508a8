"""The base of every event-sourced aggregate.

A command method checks the rules and calls `_trigger(event)`; the event is applied to the
state at once and held as pending until the repository collects and commits it. Loading an
aggregate replays its stored events through the same `_apply`, so state is only ever changed
by events.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar, Self

from casework.events import DomainEvent


class Aggregate(ABC):
    """An aggregate root identified by `id`, versioned by its stream's version (the count of
    its events, plus any version a fenced, abandoned write burned: `casework.eventstore`)."""

    stream_type: ClassVar[str]
    """Prefix of the stream id, e.g. `case` for `case-<id>`."""

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0
        self._stored = 0  # events stored (loaded or committed); a void burns a version, not this
        self.site: str | None = None
        self._pending: list[DomainEvent] = []

    @classmethod
    def stream_id_for(cls, id: str) -> str:
        """The event-store stream id of the aggregate with this id."""
        return f"{cls.stream_type}-{id}"

    @property
    def stream_id(self) -> str:
        return self.stream_id_for(self.id)

    @property
    def is_new(self) -> bool:
        """True while nothing about this aggregate has been stored or triggered."""
        return self._stored == 0 and not self._pending

    @classmethod
    def rehydrate(cls, id: str, events: Iterable[DomainEvent], version: int | None = None) -> Self:
        """Rebuild an aggregate from its stored history. `version` is the stream's version
        as stored (which may exceed the count of events where a void burned one); without
        it, the count of events."""
        aggregate = cls(id)
        for event in events:
            aggregate._apply(event)
            aggregate.version += 1
            aggregate._stored += 1
        if version is not None:
            aggregate.version = version
        return aggregate

    def _trigger(self, event: DomainEvent) -> None:
        self._apply(event)
        self._pending.append(event)

    @abstractmethod
    def _apply(self, event: DomainEvent) -> None:
        """Change state to reflect one event; never raise, never check rules."""

    @property
    def pending_events(self) -> list[DomainEvent]:
        """Events triggered since loading, not yet committed."""
        return list(self._pending)

    def mark_committed(self) -> None:
        """Called by the repository once the pending events are stored."""
        self.version += len(self._pending)
        self._stored += len(self._pending)
        self._pending.clear()


class VersionMismatch(Exception):
    """The client's `If-Match` names a version other than the current one (412)."""

    def __init__(self, resource: str, expected: int, actual: int) -> None:
        super().__init__(
            f"{resource} is at version {actual}, not {expected}: someone changed it since you "
            "read it; reload and try again"
        )
        self.expected = expected
        self.actual = actual
