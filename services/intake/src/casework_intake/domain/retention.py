"""Retention rules: how long after a case closes each record class of its client is kept.

Rules are data: a period per record class (the classes of PRIVACY-SPEC: `identity`,
`clinical`, `notes`), the agency's defaults and, per site, overrides (a site under another
jurisdiction or run for another commissioner). When a client's case closes, a deadline is
scheduled for each class with a period; when it fires and nothing keeps the data — no open
case of the client, no later closure whose period is still running, no legal hold — the
class's key is destroyed, as an erasure of that record class with its own proof record.

Defaults (`DEFAULT_RULES`): clinical records and free-text notes 8 years after the case
closes (the common minimum for adult social care and mental-health records in England;
an agency sets its own). Identity (name, birth date, phone) has no default period: it is
kept for duplicate matching until the client is erased, or an agency adds `identity`.

Configured with `CASEWORK_RETENTION_RULES`, a JSON document:
`{"default": {"notes": {"years": 8}, "clinical": {"years": 8}},
  "sites": {"south": {"notes": {"years": 10}}}}` — a site's rules replace the default for
the classes they name; a period of `null` there means "kept" (no retention deadline).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

RECORD_CLASSES = ("identity", "clinical", "notes")


@dataclass(frozen=True)
class RetentionPeriod:
    """Years and days after a closure."""

    years: int = 0
    days: int = 0

    def __post_init__(self) -> None:
        if self.years < 0 or self.days < 0 or (self.years, self.days) == (0, 0):
            raise ValueError("a retention period is a positive number of years and/or days")

    def after(self, at: datetime) -> datetime:
        """`at` plus the period; 29 February plus whole years is 28 February."""
        year = at.year + self.years
        try:
            moved = at.replace(year=year)
        except ValueError:  # 29 February in a year that has none
            moved = at.replace(year=year, day=28)
        return moved + timedelta(days=self.days)

    @property
    def label(self) -> str:
        """`8y`, `30d`, `1y10d`."""
        return (f"{self.years}y" if self.years else "") + (f"{self.days}d" if self.days else "")


@dataclass(frozen=True)
class RetentionRules:
    """Periods per record class: the agency's defaults and per-site overrides."""

    default: Mapping[str, RetentionPeriod]
    sites: Mapping[str, Mapping[str, RetentionPeriod | None]] = field(default_factory=dict)

    def for_site(self, site: str | None) -> dict[str, RetentionPeriod]:
        """The periods that apply to a case closed at `site`, by record class."""
        rules: dict[str, RetentionPeriod | None] = dict(self.default)
        if site is not None:
            rules.update(self.sites.get(site, {}))
        return {cls: period for cls, period in rules.items() if period is not None}

    def rule_name(self, site: str | None, record_class: str) -> str | None:
        """`notes:8y` — what a proof record names; None when the class is kept."""
        period = self.for_site(site).get(record_class)
        return None if period is None else f"{record_class}:{period.label}"

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> RetentionRules:
        """From the JSON shape in the module docstring; unknown classes are refused."""
        unknown = set(data) - {"default", "sites"}
        if unknown:
            raise ValueError(f"unknown retention setting(s): {', '.join(sorted(unknown))}")

        def periods(raw: Mapping[str, Any], where: str) -> dict[str, RetentionPeriod | None]:
            found: dict[str, RetentionPeriod | None] = {}
            for record_class, period in raw.items():
                if record_class not in RECORD_CLASSES:
                    raise ValueError(
                        f"{where}: unknown record class {record_class!r}; "
                        f"known: {', '.join(RECORD_CLASSES)}"
                    )
                found[record_class] = None if period is None else RetentionPeriod(**period)
            return found

        default = periods(data.get("default", {}), "default")
        return cls(
            default={k: v for k, v in default.items() if v is not None},
            sites={
                site: periods(raw, f"sites.{site}") for site, raw in data.get("sites", {}).items()
            },
        )

    @classmethod
    def from_json(cls, text: str | None) -> RetentionRules:
        """The configured rules, or the defaults when nothing is configured."""
        if not text:
            return DEFAULT_RULES
        return cls.parse(json.loads(text))


DEFAULT_RULES = RetentionRules(
    default={"clinical": RetentionPeriod(years=8), "notes": RetentionPeriod(years=8)}
)
