"""Intake's own settings, beside the platform's (`casework.settings.Settings`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DataProtectionSettings(BaseSettings):
    """`CASEWORK_RETENTION_RULES`: the retention rules as JSON
    (`casework_intake.domain.retention`); unset: the documented defaults."""

    model_config = SettingsConfigDict(env_prefix="CASEWORK_", extra="ignore")

    retention_rules: str | None = Field(
        default=None,
        description='e.g. {"default": {"notes": {"years": 8}}, "sites": {"south": '
        '{"notes": {"years": 10}}}}',
    )
