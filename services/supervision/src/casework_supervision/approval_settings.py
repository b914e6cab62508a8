"""The approvals' own settings (`CASEWORK_APPROVALS_*`), beside the platform's."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from casework_supervision.domain.approval_rules import DuePolicy


class ApprovalSettings(BaseSettings):
    """How long approvals may wait before `ApprovalOverdue`."""

    model_config = SettingsConfigDict(env_prefix="CASEWORK_APPROVALS_", extra="ignore")

    due: timedelta = Field(
        default=timedelta(hours=72),
        description="Wait before `ApprovalOverdue` (seconds or ISO 8601, e.g. `PT72H`).",
    )
    urgent_due: timedelta = Field(
        default=timedelta(hours=24),
        description="The same for a case at high or imminent risk when it was requested.",
    )

    def due_policy(self) -> DuePolicy:
        return DuePolicy(due=self.due, urgent_due=self.urgent_due)
