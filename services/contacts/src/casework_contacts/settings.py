"""The contacts service's own settings (`CASEWORK_CONTACTS_*`), beside the platform's."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from casework_contacts.domain.policy import DEFAULT_POLICY, ContactPolicy


class ContactsSettings(BaseSettings):
    """Configuration of the contact policy and its deadlines."""

    model_config = SettingsConfigDict(env_prefix="CASEWORK_CONTACTS_", extra="ignore")

    policy_file: Path | None = Field(
        default=None,
        description="A JSON rule table (`domain.policy.PolicyTable`); none: the defaults.",
    )
    due_soon_lead: timedelta = Field(
        default=timedelta(hours=24), description="How long before due `ContactDueSoon` comes."
    )
    lone_worker_grace: timedelta = Field(
        default=timedelta(minutes=15),
        description="After a home visit's expected end, how long before `LoneWorkerOverdue`.",
    )
    deadline_tick_s: float = Field(default=1.0, gt=0, description="Scheduler round period.")
    deadline_claim_ttl_s: float = Field(
        default=120.0,
        gt=0,
        description="After how long a replica's claim on a deadline counts as dead (taken over).",
    )

    def policy(self) -> ContactPolicy:
        """The policy from `policy_file`, or the documented defaults; a file that is not a
        valid table stops the service at start (pydantic names the field)."""
        if self.policy_file is None:
            return ContactPolicy.from_json(DEFAULT_POLICY)
        return ContactPolicy.from_json(json.loads(self.policy_file.read_text()))
