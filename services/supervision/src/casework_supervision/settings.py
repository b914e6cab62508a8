"""Supervision's own settings, beside the platform's (`casework.settings.Settings`): one
class per feature, each with its own environment prefix — approvals (`CASEWORK_APPROVALS_*`)
and sessions and their cadence (`CASEWORK_SUPERVISION_*`). Built in `bootstrap` (or passed
in by tests), never at import time."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from casework_supervision.domain.approval_rules import DuePolicy
from casework_supervision.domain.cadence import CadencePolicy


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


class SessionsSettings(BaseSettings):
    """The cadence (defaults: `domain.cadence`) and the agenda's look-ahead."""

    model_config = SettingsConfigDict(env_prefix="CASEWORK_SUPERVISION_", extra="ignore")

    standard_days: int = Field(default=30, gt=0, description="Supervision interval (days).")
    newly_qualified_weekly_until_days: int = Field(default=42, ge=0)
    newly_qualified_until_days: int = Field(default=182, ge=0)
    review_days_imminent: int = Field(default=14, gt=0)
    review_days_high: int = Field(default=14, gt=0)
    review_days_medium: int = Field(default=30, gt=0)
    review_days_low: int = Field(default=90, gt=0)
    first_review_days: int = Field(default=14, gt=0)
    due_lead: timedelta = Field(
        default=timedelta(days=3), description="How long before due `…Due` is raised."
    )
    review_window: timedelta = Field(
        default=timedelta(days=7), description="Reviews due within this come onto the agenda."
    )
    ratio_target_min: int = Field(
        default=5, gt=0, description="Fewest practitioners per supervisor the agency aims for."
    )
    ratio_target_max: int = Field(
        default=10, gt=0, description="Most practitioners per supervisor the agency aims for."
    )
    deadline_unit_s: float = Field(
        default=86400.0,
        gt=0,
        description="Seconds in a cadence 'day' (tests shorten it; never change in production).",
    )

    def policy(self) -> CadencePolicy:
        return CadencePolicy(
            standard_days=self.standard_days,
            newly_qualified_weekly_until_days=self.newly_qualified_weekly_until_days,
            newly_qualified_until_days=self.newly_qualified_until_days,
            review_days={
                "imminent": self.review_days_imminent,
                "high": self.review_days_high,
                "medium": self.review_days_medium,
                "low": self.review_days_low,
            },
            first_review_days=self.first_review_days,
            due_lead=self.due_lead,
            day=timedelta(seconds=self.deadline_unit_s),
        )
