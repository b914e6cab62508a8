"""What the notifications application needs from outside, as ports: the organisation
directory and rota (`casework.directory.KnownStaff` / `KnownRota`, kept from supervision's
events) and the local copy of cases (`adapters.case_facts`). Unit tests pass fakes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from casework.eventstore import Document


class StaffMember(Protocol):
    @property
    def staff_id(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def timezone(self) -> str | None: ...
    @property
    def active(self) -> bool: ...
    @property
    def sites(self) -> tuple[str, ...]: ...
    @property
    def team(self) -> str | None: ...


class StaffDirectory(Protocol):
    async def get(self, staff_id: str) -> StaffMember | None: ...
    async def supervisors_of(self, staff_id: str, at: datetime) -> tuple[str, ...]: ...
    async def supervisees_of(self, supervisor_id: str, at: datetime) -> tuple[str, ...]: ...
    async def with_role(self, site: str, role: str) -> Sequence[StaffMember]: ...


class Shift(Protocol):
    @property
    def staff_id(self) -> str: ...
    @property
    def backup_id(self) -> str | None: ...


class Rota(Protocol):
    async def on_call(self, site: str, at: datetime) -> Shift | None: ...


class Watch(Protocol):
    """The open, unacknowledged alerts a new on-call must hear of (`adapters.on_call_watch`)."""

    async def keep(self, alert_id: str, episode: int, site: str) -> None: ...
    async def forget(self, alert_id: str, episode: int) -> None: ...
    async def of_site(self, site: str) -> list[str]: ...


class CaseFacts(Protocol):
    async def get(self, case_id: str) -> Document | None: ...


class AlertStatuses(Protocol):
    """The alert board's documents by alert id (`adapters.read_models.AlertBoard`): each
    alert's current episode and its status (open, acknowledged, closed)."""

    async def get_many(self, alert_ids: Sequence[str]) -> dict[str, Document]: ...


class Sites(Protocol):
    async def exists(self, site: str) -> bool: ...


class SiteZones(Protocol):
    """Sites' timezones (`casework.directory.KnownSites`)."""

    async def timezone(self, site: str) -> str | None: ...
