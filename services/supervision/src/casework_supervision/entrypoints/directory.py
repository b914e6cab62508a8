"""The organisation directory's HTTP edge: teams, staff, supervision, the on-call rota.

Writes: `regional_admin`, or `site_manager` for their own sites (a supervisor may also
delegate their own supervision); reads: staff of the site. Object-level rules are in
`application.directory`. 422 names the field; 409 names the rule (`domain/errors.py`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import AwareDatetime

from casework.auth import Principal, require_roles
from casework.requests import Context

from casework_supervision.application.directory import Directory
from casework_supervision.domain.commands import (
    AssignSupervisor,
    CancelOnCallShift,
    ChangeStaffProfile,
    DelegateSupervision,
    EndDelegation,
    RecordStaffMemberLeft,
    RegisterStaffMember,
    RegisterTeam,
    ScheduleOnCallShift,
    StaffProfile,
)
from casework_supervision.domain.rota import Rota, Shift
from casework_supervision.domain.staff import StaffMember
from casework_supervision.entrypoints.directory_schemas import (
    CODE_PATTERN,
    SITE_PATTERN,
    STAFF_ID_PATTERN,
    DelegationIn,
    DelegationOut,
    ProfileIn,
    RotaOut,
    ShiftIn,
    ShiftOut,
    StaffIn,
    StaffOut,
    SupervisorIn,
    TeamIn,
    TeamOut,
)

router = APIRouter(tags=["organisation directory"])

Manages = Annotated[Principal, Depends(require_roles("regional_admin", "site_manager"))]
Delegates = Annotated[
    Principal, Depends(require_roles("regional_admin", "site_manager", "supervisor"))
]
Staff = Annotated[
    Principal,
    Depends(
        require_roles(
            "intake_worker",
            "caseworker",
            "supervisor",
            "crisis_worker",
            "site_manager",
            "regional_admin",
        )
    ),
]
SitePath = Annotated[str, Path(pattern=SITE_PATTERN)]
StaffPath = Annotated[str, Path(pattern=STAFF_ID_PATTERN)]
CodePath = Annotated[str, Path(pattern=CODE_PATTERN)]


def _directory(request: Request) -> Directory:
    app: Directory = request.app.state.directory
    return app


DirectoryApp = Annotated[Directory, Depends(_directory)]


def _profile(body: ProfileIn) -> StaffProfile:
    return StaffProfile(
        name=body.name,
        sites=tuple(body.sites),
        roles=tuple(body.roles),
        started_on=body.started_on,
        email=body.email,
        team=body.team,
        newly_qualified=body.newly_qualified,
        capacity_points=body.capacity_points,
        timezone=body.timezone,
    )


def staff_out(member: StaffMember) -> StaffOut:
    p = member.profile
    assert p is not None
    return StaffOut(
        staff_id=member.id,
        name=p.name,
        email=p.email,
        sites=list(p.sites),
        team=p.team,
        roles=list(p.roles),
        newly_qualified=p.newly_qualified,
        started_on=p.started_on,
        capacity_points=p.capacity_points,
        timezone=p.timezone,
        supervisor_id=member.supervisor_id,
        active=member.active,
        delegations=[
            DelegationOut(
                delegation_id=d.delegation_id,
                delegate_id=d.delegate_id,
                starts_at=d.starts_at,
                ends_at=d.ends_at,
                ended_at=d.ended_at,
            )
            for d in member.delegations.values()
        ],
        version=member.version,
    )


def _shift_out(site: str, shift: Shift) -> ShiftOut:
    return ShiftOut(
        site=site,
        shift_id=shift.shift_id,
        staff_id=shift.staff_id,
        backup_id=shift.backup_id,
        starts_at=shift.starts_at,
        ends_at=shift.ends_at,
    )


def _rota_out(rota: Rota, at: datetime) -> RotaOut:
    on_call = rota.on_call(at)
    return RotaOut(
        site=rota.id,
        at=at,
        on_call=_shift_out(rota.id, on_call) if on_call else None,
        shifts=[_shift_out(rota.id, s) for s in rota.upcoming(at)],
    )


# --- teams -------------------------------------------------------------------------------------


@router.post("/sites/{site}/teams", status_code=status.HTTP_201_CREATED, summary="Register a team")
async def register_team(
    site: SitePath,
    body: TeamIn,
    principal: Manages,
    directory: DirectoryApp,
    ctx: Context,
    response: Response,
) -> TeamOut:
    await directory.register_team(
        RegisterTeam(site=site, team=body.team, name=body.name), principal, ctx
    )
    response.headers["Location"] = f"/sites/{site}/teams/{body.team}"
    return TeamOut(site=site, team=body.team, name=body.name)


@router.get("/sites/{site}/teams", summary="List a site's teams")
async def list_teams(site: SitePath, principal: Staff, directory: DirectoryApp) -> list[TeamOut]:
    return [TeamOut(**t) for t in await directory.teams_of(site, principal)]


# --- staff -------------------------------------------------------------------------------------


@router.post("/staff", status_code=status.HTTP_201_CREATED, summary="Register a member of staff")
async def register_staff_member(
    body: StaffIn, principal: Manages, directory: DirectoryApp, ctx: Context, response: Response
) -> StaffOut:
    member = await directory.register_staff_member(
        RegisterStaffMember(staff_id=body.staff_id, profile=_profile(body)), principal, ctx
    )
    response.headers["Location"] = f"/staff/{member.id}"
    return staff_out(member)


@router.get("/staff", summary="List the active staff of a site (or of one team there)")
async def list_staff(
    principal: Staff,
    directory: DirectoryApp,
    site: Annotated[str, Query(pattern=SITE_PATTERN)],
    team: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
) -> list[StaffOut]:
    return [
        StaffOut(
            staff_id=s.staff_id,
            name=s.name,
            email=s.email,
            sites=list(s.sites),
            team=s.team,
            roles=list(s.roles),
            newly_qualified=s.newly_qualified,
            started_on=s.started_on,
            capacity_points=s.capacity_points,
            timezone=s.timezone,
            supervisor_id=s.supervisor_id,
            active=s.active,
        )
        for s in await directory.staff_at(site, team, principal)
    ]


@router.get("/staff/{staff_id}", summary="Read one member of staff")
async def read_staff_member(
    staff_id: StaffPath, principal: Staff, directory: DirectoryApp
) -> StaffOut:
    return staff_out(await directory.staff_member(staff_id, principal))


@router.put("/staff/{staff_id}", summary="Change a member of staff's profile (all of it)")
async def change_staff_profile(
    staff_id: StaffPath, body: ProfileIn, principal: Manages, directory: DirectoryApp, ctx: Context
) -> StaffOut:
    member = await directory.change_staff_profile(
        ChangeStaffProfile(staff_id=staff_id, profile=_profile(body)), principal, ctx
    )
    return staff_out(member)


@router.post("/staff/{staff_id}/leave", summary="Record that a member of staff left the agency")
async def record_staff_member_left(
    staff_id: StaffPath, principal: Manages, directory: DirectoryApp, ctx: Context
) -> StaffOut:
    member = await directory.record_staff_member_left(
        RecordStaffMemberLeft(staff_id=staff_id), principal, ctx
    )
    return staff_out(member)


@router.put("/staff/{staff_id}/supervisor", summary="Set who supervises a member of staff")
async def assign_supervisor(
    staff_id: StaffPath,
    body: SupervisorIn,
    principal: Manages,
    directory: DirectoryApp,
    ctx: Context,
) -> StaffOut:
    member = await directory.assign_supervisor(
        AssignSupervisor(
            staff_id=staff_id, supervisor_id=body.supervisor_id, assigned_by=principal.sub
        ),
        principal,
        ctx,
    )
    return staff_out(member)


@router.post(
    "/staff/{staff_id}/delegations",
    status_code=status.HTTP_201_CREATED,
    summary="Delegate a supervisor's supervision while they are away",
)
async def delegate_supervision(
    staff_id: StaffPath,
    body: DelegationIn,
    principal: Delegates,
    directory: DirectoryApp,
    ctx: Context,
    response: Response,
) -> StaffOut:
    delegation_id = body.delegation_id or uuid.uuid4().hex
    member = await directory.delegate_supervision(
        DelegateSupervision(
            supervisor_id=staff_id,
            delegation_id=delegation_id,
            delegate_id=body.delegate_id,
            starts_at=(body.starts_at or await directory.now()).astimezone(UTC),
            ends_at=body.ends_at.astimezone(UTC),
            delegated_by=principal.sub,
        ),
        principal,
        ctx,
    )
    response.headers["Location"] = f"/staff/{staff_id}/delegations/{delegation_id}"
    return staff_out(member)


@router.post(
    "/staff/{staff_id}/delegations/{delegation_id}/end",
    summary="End a delegation early (the supervisor is back)",
)
async def end_delegation(
    staff_id: StaffPath,
    delegation_id: CodePath,
    principal: Delegates,
    directory: DirectoryApp,
    ctx: Context,
) -> StaffOut:
    member = await directory.end_delegation(
        EndDelegation(supervisor_id=staff_id, delegation_id=delegation_id, ended_by=principal.sub),
        principal,
        ctx,
    )
    return staff_out(member)


# --- on-call rota ------------------------------------------------------------------------------


@router.post(
    "/sites/{site}/rota/shifts",
    status_code=status.HTTP_201_CREATED,
    summary="Schedule an on-call shift",
)
async def schedule_shift(
    site: SitePath,
    body: ShiftIn,
    principal: Manages,
    directory: DirectoryApp,
    ctx: Context,
    response: Response,
) -> ShiftOut:
    shift_id = body.shift_id or uuid.uuid4().hex
    rota = await directory.schedule_shift(
        ScheduleOnCallShift(
            site=site,
            shift_id=shift_id,
            staff_id=body.staff_id,
            backup_id=body.backup_id,
            starts_at=body.starts_at.astimezone(UTC),
            ends_at=body.ends_at.astimezone(UTC),
            scheduled_by=principal.sub,
        ),
        principal,
        ctx,
    )
    response.headers["Location"] = f"/sites/{site}/rota/shifts/{shift_id}"
    return _shift_out(site, rota.shifts[shift_id])


@router.post("/sites/{site}/rota/shifts/{shift_id}/cancel", summary="Cancel an on-call shift")
async def cancel_shift(
    site: SitePath,
    shift_id: CodePath,
    principal: Manages,
    directory: DirectoryApp,
    ctx: Context,
) -> ShiftOut:
    rota = await directory.cancel_shift(
        CancelOnCallShift(site=site, shift_id=shift_id, cancelled_by=principal.sub),
        principal,
        ctx,
    )
    return _shift_out(site, rota.shifts[shift_id])


@router.get("/sites/{site}/rota", summary="Who is on call at a time, and the shifts to come")
async def read_rota(
    site: SitePath,
    principal: Staff,
    directory: DirectoryApp,
    at: Annotated[
        AwareDatetime | None, Query(description="A time with its offset; now if absent")
    ] = None,
) -> RotaOut:
    rota = await directory.rota(site, principal)
    return _rota_out(rota, at.astimezone(UTC) if at is not None else await directory.now())
