"""What the organisation directory's routes take and give, each body with its example."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from casework.requests import IsoDate, StrictBool

# Staff ids and team codes become parts of stream ids (`staff-<id>`, `team-<site>/<team>`),
# which read models use as keys: no `.`, no leading `$` (DESIGN §7).
STAFF_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_:@-]{0,63}$"
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
SITE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

StaffId = Annotated[
    str, Field(pattern=STAFF_ID_PATTERN, description="A staff member's id: their token's `sub`")
]
Code = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]
SiteCode = Annotated[str, StringConstraints(pattern=SITE_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Role = Annotated[
    str,
    Field(
        pattern=r"^(intake_worker|caseworker|supervisor|crisis_worker|site_manager|regional_admin)$"
    ),
]


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(
        str_strip_whitespace=True, extra="forbid", json_schema_extra={"examples": [example]}
    )


def _timezone(value: str | None) -> str | None:
    if value is not None and value not in available_timezones():
        raise ValueError("not an IANA timezone name (e.g. Europe/London)")
    return value


class TeamIn(BaseModel):
    model_config = _example({"team": "north-adults", "name": "North adult community team"})

    team: Code
    name: Name


class TeamOut(BaseModel):
    site: str
    team: str
    name: str


class ProfileIn(BaseModel):
    """A member of staff's whole profile (a change sends all of it)."""

    model_config = _example(
        {
            "name": "Carl Jones",
            "email": "carl.jones@agency.example",
            "sites": ["north"],
            "team": "north-adults",
            "roles": ["caseworker"],
            "newly_qualified": True,
            "started_on": "2026-09-01",
            "capacity_points": 24,
            "timezone": "Europe/London",
        }
    )

    name: Name
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)] | None = None
    sites: list[SiteCode] = Field(min_length=1, max_length=20)
    team: Code | None = Field(default=None, description="Their team within their first site")
    roles: list[Role] = Field(min_length=1, max_length=6)
    newly_qualified: StrictBool = False
    started_on: IsoDate
    capacity_points: int | None = Field(default=None, ge=1, le=1000)
    timezone: str | None = Field(default=None, max_length=64)

    _check_timezone = field_validator("timezone")(_timezone)


class StaffIn(ProfileIn):
    model_config = _example(
        {
            "staff_id": "carl",
            "name": "Carl Jones",
            "sites": ["north"],
            "team": "north-adults",
            "roles": ["caseworker"],
            "started_on": "2026-09-01",
        }
    )

    staff_id: StaffId


class DelegationOut(BaseModel):
    delegation_id: str
    delegate_id: str
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None


class StaffOut(BaseModel):
    staff_id: str
    name: str
    email: str | None
    sites: list[str]
    team: str | None
    roles: list[str]
    newly_qualified: bool
    started_on: date
    capacity_points: int | None
    timezone: str | None
    supervisor_id: str | None
    active: bool
    delegations: list[DelegationOut] = []
    version: int | None = None


class SupervisorIn(BaseModel):
    model_config = _example({"supervisor_id": "sue"})

    supervisor_id: StaffId


class DelegationIn(BaseModel):
    model_config = _example(
        {
            "delegate_id": "sam",
            "starts_at": "2026-12-21T09:00:00Z",
            "ends_at": "2027-01-04T09:00:00Z",
        }
    )

    delegation_id: Code | None = Field(default=None, description="Chosen by the server if absent")
    delegate_id: StaffId
    starts_at: AwareDatetime | None = Field(default=None, description="Now if absent")
    ends_at: AwareDatetime


class ShiftIn(BaseModel):
    model_config = _example(
        {
            "staff_id": "cara",
            "backup_id": "sue",
            "starts_at": "2026-12-05T18:00:00Z",
            "ends_at": "2026-12-06T08:00:00Z",
        }
    )

    shift_id: Code | None = Field(default=None, description="Chosen by the server if absent")
    staff_id: StaffId
    backup_id: StaffId | None = None
    starts_at: AwareDatetime = Field(description="On a whole minute")
    ends_at: AwareDatetime = Field(description="On a whole minute; the next shift may start then")


class ShiftOut(BaseModel):
    site: str
    shift_id: str
    staff_id: str
    backup_id: str | None
    starts_at: datetime
    ends_at: datetime


class RotaOut(BaseModel):
    site: str
    at: datetime
    on_call: ShiftOut | None = Field(description="The shift covering `at`, if any")
    shifts: list[ShiftOut] = Field(description="Live shifts ending after `at`, earliest first")
