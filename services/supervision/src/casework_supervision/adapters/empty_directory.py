"""A directory that knows nobody: what approvals see until the organisation directory's
local copy (`casework.directory.KnownStaff`, built on the `directory` branch) is merged and
wired in its place in `bootstrap`. With it every approval falls back to the rule for a worker
without a supervisor in the directory: a supervisor of the case's site and team decides."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from casework_supervision.application.approvals import StaffFactsLike


class EmptyStaffDirectory:
    async def supervisors_of(self, staff_id: str, at: datetime) -> tuple[str, ...]:
        return ()

    async def supervisees_of(self, supervisor_id: str, at: datetime) -> tuple[str, ...]:
        return ()

    async def with_role(self, site: str, role: str) -> Sequence[StaffFactsLike]:
        return []
