"""The contact policy: how often a case's client must be reached, as versioned data.

A policy is a **rule table** per agency with per-site overrides:

- *standing rules* — risk level by case phase by medium class → required made contacts per
  rolling window (e.g. high risk: a made contact every 3 days, and a face-to-face one every 7);
- *made media* — which medium classes count as a made contact at each risk level (a text may
  be logged as made, but at high risk it does not meet an obligation);
- *clocks* — one-off obligations started by an event: first contact after a case opens,
  follow-up after a crisis is resolved and after a discharge from inpatient care.

Every obligation records the version of the table it came from (`Policy.version`, with the
site override's version appended when one applies). The table is plain data: JSON in a file
named by `CASEWORK_CONTACTS_POLICY_FILE`, or `DEFAULT_POLICY` below; nothing here does I/O.

Risk `unrated` is a case without a risk level yet. Phases are the case's
(`assessment`, `planning`, `active`, `review`); `*` means every open phase. A closed case has
no obligations whatever the table says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from casework.contracts.contacts import MediumClass

UNRATED = "unrated"
RISKS = ("imminent", "high", "medium", "low", UNRATED)
OPEN_PHASES = ("assessment", "planning", "active", "review")
CLOSED = "closed"

Trigger = Literal["case_opened", "crisis_resolved", "inpatient_discharge"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StandingRule(_Strict):
    """`contacts` made contacts of `media_classes` within every `window`, for cases at one of
    `risks` in one of `phases`."""

    rule_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    risks: tuple[str, ...]
    phases: tuple[str, ...] = ("*",)
    window: timedelta
    contacts: int = Field(default=1, ge=1, le=31)
    media_classes: tuple[MediumClass, ...] = tuple(MediumClass)
    disabled: bool = False
    """In a site override: this agency rule does not apply at the site."""

    def applies(self, risk: str, phase: str) -> bool:
        if self.disabled or phase not in OPEN_PHASES:
            return False
        return risk in self.risks and ("*" in self.phases or phase in self.phases)


class ClockRule(_Strict):
    """A made contact within `within` of the `trigger` event, for cases at one of `risks`."""

    rule_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    trigger: Trigger
    risks: tuple[str, ...] = RISKS
    within: timedelta
    media_classes: tuple[MediumClass, ...] = tuple(MediumClass)
    disabled: bool = False


class SiteOverride(_Strict):
    """A site's changes to the agency table: rules with an agency rule's id replace it (or
    switch it off with `disabled`), new ids add to it; `made_media` entries replace the
    agency's for that risk level."""

    version: str = Field(min_length=1, max_length=64)
    rules: tuple[StandingRule, ...] = ()
    clocks: tuple[ClockRule, ...] = ()
    made_media: dict[str, tuple[MediumClass, ...]] = Field(default_factory=dict)


class PolicyTable(_Strict):
    """The whole policy as stored: the agency's table and its sites' overrides."""

    version: str = Field(min_length=1, max_length=64)
    made_media: dict[str, tuple[MediumClass, ...]]
    rules: tuple[StandingRule, ...]
    clocks: tuple[ClockRule, ...]
    sites: dict[str, SiteOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _every_risk_has_made_media(self) -> PolicyTable:
        missing = [r for r in RISKS if r not in self.made_media]
        if missing:
            raise ValueError(f"made_media names no medium classes for: {', '.join(missing)}")
        ids = [r.rule_id for r in self.rules] + [c.rule_id for c in self.clocks]
        if len(ids) != len(set(ids)):
            raise ValueError("two rules share a rule_id")
        return self


@dataclass(frozen=True)
class SitePolicy:
    """The policy in force at one site: the agency table with the site's override applied."""

    version: str
    made_media: Mapping[str, frozenset[MediumClass]]
    rules: tuple[StandingRule, ...]
    clocks: tuple[ClockRule, ...]

    def standing(self, risk: str | None, phase: str) -> list[StandingRule]:
        """The standing rules for a case at this risk and phase (none once closed)."""
        return [r for r in self.rules if r.applies(risk or UNRATED, phase)]

    def clock(self, trigger: str, risk: str | None) -> ClockRule | None:
        """The clock this trigger starts for a case at this risk, if any."""
        for rule in self.clocks:
            if rule.trigger == trigger and not rule.disabled and (risk or UNRATED) in rule.risks:
                return rule
        return None

    def counts_as_made(
        self, medium_class: MediumClass, risk: str | None, wanted: Iterable[MediumClass]
    ) -> bool:
        """Whether a made contact of this class counts for a rule wanting `wanted`, at this
        risk: both the rule and the risk level's made media must accept the class."""
        return medium_class in self.made_media.get(risk or UNRATED, frozenset()) and (
            medium_class in set(wanted)
        )


def _merge(agency: Iterable[Any], site: Iterable[Any]) -> tuple[Any, ...]:
    by_id = {r.rule_id: r for r in agency}
    for rule in site:
        by_id[rule.rule_id] = rule
    return tuple(by_id.values())


@dataclass(frozen=True)
class ContactPolicy:
    """The table, and the policy in force at each site."""

    table: PolicyTable

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContactPolicy:
        """Parse a stored table (raises pydantic's ValidationError when it is not one)."""
        return cls(PolicyTable.model_validate(data))

    def for_site(self, site: str | None) -> SitePolicy:
        table = self.table
        override = table.sites.get(site or "")
        made = {risk: frozenset(classes) for risk, classes in table.made_media.items()}
        if override is None:
            return SitePolicy(table.version, made, table.rules, table.clocks)
        made.update({risk: frozenset(c) for risk, c in override.made_media.items()})
        return SitePolicy(
            version=f"{table.version}+{site}:{override.version}",
            made_media=made,
            rules=_merge(table.rules, override.rules),
            clocks=_merge(table.clocks, override.clocks),
        )


F2F, LIVE, WRITTEN = "face_to_face", "live_remote", "written"

DEFAULT_POLICY: dict[str, Any] = {
    "version": "agency-default-2026-12",
    "made_media": {
        "imminent": [F2F, LIVE],
        "high": [F2F, LIVE],
        "medium": [F2F, LIVE],
        "low": [F2F, LIVE, WRITTEN],
        "unrated": [F2F, LIVE],
    },
    "rules": [
        {"rule_id": "imminent-daily", "risks": ["imminent"], "window": "P1D"},
        {"rule_id": "high-every-3-days", "risks": ["high"], "window": "P3D"},
        {
            "rule_id": "high-weekly-face-to-face",
            "risks": ["high"],
            "window": "P7D",
            "media_classes": [F2F],
        },
        {"rule_id": "medium-weekly", "risks": ["medium", "unrated"], "window": "P7D"},
        {"rule_id": "low-every-14-days", "risks": ["low"], "window": "P14D"},
    ],
    "clocks": [
        {
            "rule_id": "first-contact-24h",
            "trigger": "case_opened",
            "risks": ["imminent", "high"],
            "within": "PT24H",
        },
        {
            "rule_id": "first-contact-72h",
            "trigger": "case_opened",
            "risks": ["medium", "low", "unrated"],
            "within": "PT72H",
        },
        {"rule_id": "crisis-follow-up-72h", "trigger": "crisis_resolved", "within": "PT72H"},
        {
            "rule_id": "discharge-follow-up-72h",
            "trigger": "inpatient_discharge",
            "within": "PT72H",
        },
    ],
}
"""The documented defaults (docs/architecture.md, "Contacts"):

| risk      | standing rules (made contacts with the client)         | made media            |
|-----------|--------------------------------------------------------|-----------------------|
| imminent  | 1 per day                                              | face to face, live    |
| high      | 1 per 3 days, and 1 face-to-face per 7 days            | face to face, live    |
| medium    | 1 per 7 days                                           | face to face, live    |
| low       | 1 per 14 days (the CASA supervisors' cadence)          | + written             |
| unrated   | as medium                                              | face to face, live    |

Clocks: first contact within 24 h of opening at high/imminent risk, 72 h otherwise; a
follow-up within 72 h of a crisis resolved and of a discharge from inpatient care. The same
in every open phase (overrides may differ by phase)."""
