"""The shapes of intake's HTTP requests and responses, with the examples the Swagger UI shows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi.openapi.models import Example
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.contracts.intake import Frequency
from casework.requests import IsoDate, StrictBool

from casework_intake.domain.client import MatchedOn
from casework_intake.domain.referral import ClientMatch

_STRICT_INPUT = ConfigDict(str_strip_whitespace=True, extra="forbid")

# --- taking a referral -------------------------------------------------------------------


class ClientIn(BaseModel):
    """The person the referral is about."""

    model_config = _STRICT_INPUT

    given_name: str = Field(min_length=1, max_length=100, examples=["Alex"])
    family_name: str = Field(min_length=1, max_length=100, examples=["Morgan"])
    date_of_birth: IsoDate = Field(examples=["1990-04-12"])
    phone: str | None = Field(
        default=None, pattern=r"^\+?[0-9][0-9 ()-]{5,19}$", examples=["+44 7700 900123"]
    )
    email: str | None = Field(
        default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", examples=["alex@example.org"]
    )
    address: str | None = Field(default=None, max_length=500)

    @field_validator("date_of_birth")
    @classmethod
    def _plausible_birth_date(cls, value: date) -> date:
        if value > date.today():
            raise ValueError("date of birth is in the future")
        if value.year < 1900:
            raise ValueError("date of birth is before 1900")
        return value


class ReferralIn(BaseModel):
    """A new referral."""

    model_config = _STRICT_INPUT

    site: str = Field(min_length=1, max_length=64, description="Site code, e.g. `north`")
    client: ClientIn
    source: ReferralSource = Field(
        description="Who referred the person: `self`, `family`, `gp`, `hospital`, `police`, "
        "`school` or `other_agency`"
    )
    referrer_name: str | None = Field(default=None, max_length=200)
    presenting_concerns: str = Field(
        min_length=1, max_length=10_000, description="Why the person was referred"
    )
    urgency: Urgency = Field(
        description="How fast a response is needed: `routine`, `soon`, `urgent`, `emergency`"
    )
    consent_to_share: StrictBool = Field(
        default=False, description="Whether the person consented to information being shared"
    )


REFERRAL_EXAMPLES: dict[str, Example] = {
    "gp": Example(
        summary="A GP refers a patient",
        value={
            "site": "north",
            "client": {
                "given_name": "Alex",
                "family_name": "Morgan",
                "date_of_birth": "1990-04-12",
                "phone": "+44 7700 900123",
            },
            "source": "gp",
            "referrer_name": "Dr Patel",
            "presenting_concerns": "Low mood for three months, stopped going to work.",
            "urgency": "soon",
            "consent_to_share": True,
        },
    ),
    "self": Example(
        summary="A self-referral by phone",
        value={
            "site": "north",
            "client": {
                "given_name": "Sam",
                "family_name": "O'Neill",
                "date_of_birth": "2001-11-30",
                "phone": "07700 900456",
                "email": "sam@example.org",
            },
            "source": "self",
            "presenting_concerns": "Panic attacks most days; struggling to leave the house.",
            "urgency": "routine",
            "consent_to_share": False,
        },
    ),
    "police": Example(
        summary="The police refer someone after a welfare check (emergency)",
        value={
            "site": "north",
            "client": {
                "given_name": "Jordan",
                "family_name": "Reyes",
                "date_of_birth": "1978-02-03",
                "address": "12 Mill Lane, Northtown",
            },
            "source": "police",
            "referrer_name": "PC Shaw, Northtown station",
            "presenting_concerns": "Found on a bridge last night; says they cannot go on.",
            "urgency": "emergency",
            "consent_to_share": True,
        },
    ),
}

# --- screening ---------------------------------------------------------------------------


class ScreeningIn(BaseModel):
    """The answers of a structured risk screen (in the style of the C-SSRS screener; not a
    clinical tool). Unknown fields are refused, so a misspelt item cannot go unnoticed."""

    model_config = _STRICT_INPUT

    wish_to_be_dead: StrictBool = Field(
        description="In the past month, has the person wished they were dead, or wished they "
        "could go to sleep and not wake up?"
    )
    suicidal_thoughts: StrictBool = Field(
        description="In the past month, has the person had thoughts of killing themselves?"
    )
    thoughts_with_method: StrictBool = Field(
        default=False, description="Have they thought about how they might do it (a method)?"
    )
    suicidal_intent: StrictBool = Field(
        default=False,
        description="Have they had these thoughts with some intention of acting on them?",
    )
    intent_with_plan: StrictBool = Field(
        default=False,
        description="Have they worked out, or started to work out, the details of how to do "
        "it, and do they intend to carry the plan out?",
    )
    suicidal_behaviour: Frequency = Field(
        default=Frequency.NEVER,
        description="The most recent time they did anything, started to, or prepared to, to "
        "end their life: `now`, `past_week`, `past_month`, or `never` (not in the past month)",
    )
    harm_to_others: StrictBool = Field(
        default=False, description="Have they had thoughts of harming someone else?"
    )
    harm_to_others_intent: StrictBool = Field(
        default=False, description="Do they intend to act on thoughts of harming someone else?"
    )
    children_at_home_at_risk: StrictBool = Field(
        default=False, description="Is a child in the household at risk of harm?"
    )
    vulnerable_adult_at_risk: StrictBool = Field(
        default=False, description="Is a vulnerable adult in the household at risk of harm?"
    )
    substance_use: StrictBool = Field(
        default=False,
        description="Do they use alcohol or drugs in a way that worries them or others?",
    )
    substance_use_severe: StrictBool = Field(
        default=False,
        description="Is that use severe: dependence, heavy daily use, or a risk of overdose?",
    )


SCREENING_EXAMPLES: dict[str, Example] = {
    "low": Example(
        summary="No risk indicators → low",
        value={"wish_to_be_dead": False, "suicidal_thoughts": False},
    ),
    "medium": Example(
        summary="Suicidal thoughts only → medium",
        value={"wish_to_be_dead": True, "suicidal_thoughts": True},
    ),
    "high": Example(
        summary="A child at risk at home → high",
        value={
            "wish_to_be_dead": False,
            "suicidal_thoughts": False,
            "children_at_home_at_risk": True,
            "substance_use": True,
        },
    ),
    "imminent": Example(
        summary="Intent with a plan → imminent (the case opens in crisis)",
        value={
            "wish_to_be_dead": True,
            "suicidal_thoughts": True,
            "thoughts_with_method": True,
            "suicidal_intent": True,
            "intent_with_plan": True,
            "suicidal_behaviour": "past_week",
        },
    ),
}


class ScreeningOut(BaseModel):
    referral_id: str
    risk_level: RiskLevel
    rule: str = Field(description="The clause of the screening rule that decided the level")
    meaning: str | None = Field(description="That clause in words")
    screened_by: str
    screened_at: datetime
    version: int


# --- client match ------------------------------------------------------------------------


# The cross-field rule, as the schema states it: confirm (a `client_id`, no reason) or
# override (`new_client: true` and a `reason`), never both, never neither.
_ONE_DECISION: dict[str, Any] = {
    "oneOf": [
        {
            "title": "Confirm",
            "required": ["client_id"],
            "properties": {
                "client_id": {"type": "string", "minLength": 1, "maxLength": 64},
                "new_client": {"const": False},
                "reason": {"type": "null"},
            },
        },
        {
            "title": "Override",
            "required": ["new_client", "reason"],
            "properties": {
                "client_id": {"type": "null"},
                "new_client": {"const": True},
                "reason": {"type": "string", "minLength": 1, "maxLength": 2000},
            },
        },
    ]
}


class ClientMatchIn(BaseModel):
    """Either `client_id` (confirm that candidate) or `new_client: true` with a `reason`."""

    model_config = ConfigDict(
        str_strip_whitespace=True, extra="forbid", json_schema_extra=_ONE_DECISION
    )

    client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The duplicate candidate the referral is about (confirms the match)",
    )
    new_client: StrictBool = Field(
        default=False,
        validate_default=True,
        description="`true`: the referral is about a new person, whatever the candidates "
        "suggest (overrides the match)",
    )
    reason: str | None = Field(
        default=None,
        validate_default=True,
        min_length=1,
        max_length=2000,
        description="Why the candidates are not this person (required with `new_client`)",
    )

    @field_validator("new_client")
    @classmethod
    def _one_decision(cls, new_client: bool, info: ValidationInfo) -> bool:
        if "client_id" not in info.data:
            return new_client  # client_id itself was invalid: that is the error to report
        client_id = info.data["client_id"]
        if new_client and client_id is not None:
            raise ValueError(
                "send either client_id (to confirm a candidate) or new_client: true "
                "(to override), not both"
            )
        if not new_client and client_id is None:
            raise ValueError(
                "send client_id to confirm a candidate, or new_client: true with a reason to "
                "register a new client"
            )
        return new_client

    @field_validator("reason")
    @classmethod
    def _reason_with_override(cls, reason: str | None, info: ValidationInfo) -> str | None:
        new_client = info.data.get("new_client")
        if new_client is True and reason is None:
            raise ValueError("say why the candidates are not this person")
        if new_client is False and reason is not None:
            raise ValueError("a reason is recorded only when overriding (new_client: true)")
        return reason


CLIENT_MATCH_EXAMPLES: dict[str, Example] = {
    "confirm": Example(
        summary="Confirm: the referral is about this registered client",
        value={"client_id": "8d0f5c3e-2a7b-4c61-9f0e-5b1d2c3a4e5f"},
    ),
    "override": Example(
        summary="Override: a new person, despite the candidates",
        value={
            "new_client": True,
            "reason": "Same name and birth date, but a different address and GP: not the same "
            "person.",
        },
    ),
}

# --- decisions ---------------------------------------------------------------------------


class DeclineIn(BaseModel):
    model_config = _STRICT_INPUT

    reason: str = Field(min_length=1, max_length=2000, description="Why the referral is declined")
    signposted_to: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Where the person was directed instead (a service, helpline, their GP)",
    )


DECLINE_EXAMPLES: dict[str, Example] = {
    "signposted": Example(
        summary="Declined and signposted elsewhere",
        value={
            "reason": "Needs are primarily housing; no mental-health need identified.",
            "signposted_to": "Northtown Housing Advice, 01632 960000",
        },
    ),
    "out_of_area": Example(
        summary="Out of area",
        value={
            "reason": "Lives outside the agency's area.",
            "signposted_to": "Southtown Community Mental Health Team",
        },
    ),
}


class Accepted(BaseModel):
    referral_id: str
    case_id: str = Field(description="The case the cases service opens for this referral")
    client_id: str
    new_client: bool = Field(description="Whether a new client was registered")
    risk_level: RiskLevel = Field(description="The screened risk the case opens with")
    version: int


# --- reading a referral ------------------------------------------------------------------


class ClientOut(BaseModel):
    """Opened for the reader; a field of an erased client reads `[erased]`."""

    given_name: str
    family_name: str
    date_of_birth: date | str = Field(description="ISO date, or `[erased]`")
    phone: str | None = None
    email: str | None = None
    address: str | None = None


class CandidateOut(BaseModel):
    """A registered client who may be the person referred.

    A client registered at a site the reader does not work at is `masked`: only initials and
    birth year are shown, and `access` says whom to ask."""

    client_id: str
    given_name: str | None
    family_name: str | None
    date_of_birth: date | str | None = Field(description="ISO date, or `[erased]`")
    matched_on: list[MatchedOn] = Field(
        description="Why: the same normalised name and birth date, the same phone number, or both"
    )
    site: str | None = Field(default=None, description="Where the client is registered")
    masked: bool = Field(default=False, description="Registered at a site you do not work at")
    initials: str | None = Field(default=None, description="Initials, when masked (`A.M.`)")
    birth_year: int | None = Field(default=None, description="Birth year, when masked")
    access: str | None = Field(
        default=None, description="When masked: why, and how to request access"
    )


class ScreeningSummary(BaseModel):
    risk_level: RiskLevel
    rule: str
    meaning: str | None
    answers: dict[str, Any] | str = Field(
        description="The answers, by item (`[erased]` once the person's data is erased)"
    )
    screened_by: str
    screened_at: datetime


class ClientMatchOut(BaseModel):
    state: ClientMatch = Field(
        description="`no_candidates` (a new client), `undecided` (confirm or override before "
        "accepting), `confirmed` or `overridden`"
    )
    client_id: str | None = Field(description="The confirmed client, if confirmed")
    reason: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None


class DecisionOut(BaseModel):
    outcome: str = Field(description="`accepted` or `declined`")
    decided_by: str
    decided_at: datetime
    new_client: bool | None = None
    reason: str | None = None
    signposted_to: str | None = None


class ReferralOut(BaseModel):
    referral_id: str
    status: str = Field(description="`waiting`, `accepted` or `declined`")
    site: str | None
    source: ReferralSource | None = None
    referrer_name: str | None = None
    urgency: Urgency | None = None
    consent_to_share: bool | None = None
    presenting_concerns: str | None = None
    client: ClientOut | None = None
    received_by: str | None = None
    received_at: datetime | None = None
    risk_level: RiskLevel | None = Field(default=None, description="Null until screened")
    screening: ScreeningSummary | None = None
    duplicate_candidates: list[CandidateOut] = Field(default_factory=list)
    client_match: ClientMatchOut
    case_id: str | None = None
    client_id: str | None = None
    decision: DecisionOut | None = None
    version: int


# --- the queue ---------------------------------------------------------------------------


class QueueEntryOut(BaseModel):
    referral_id: str
    site: str
    client_name: str
    urgency: Urgency
    risk_level: RiskLevel | None = Field(description="Null until screened")
    source: ReferralSource
    received_at: datetime
    waiting_seconds: int = Field(description="How long it has waited, as of this response")
    client_match: ClientMatch
