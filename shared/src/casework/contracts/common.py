"""Value types shared by several services' contracts."""

from __future__ import annotations

from enum import StrEnum


class RiskLevel(StrEnum):
    """Screened or assessed risk to self or others."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    IMMINENT = "imminent"


class Urgency(StrEnum):
    """How quickly a referral needs a response."""

    ROUTINE = "routine"
    SOON = "soon"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class ReferralSource(StrEnum):
    """Who referred the person."""

    SELF = "self"
    FAMILY = "family"
    GP = "gp"
    HOSPITAL = "hospital"
    POLICE = "police"
    SCHOOL = "school"
    OTHER_AGENCY = "other_agency"
