"""The organisation directory's aggregates: StaffMember (profile, supervisor, delegations,
leaving) and Rota (on-call shifts). Given events, when a command, then events or a refusal."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from casework.contracts.supervision import (
    CaseloadPolicySet,
    OnCallShiftCancelled,
    OnCallShiftScheduled,
    StaffMemberLeft,
    StaffMemberRegistered,
    StaffProfileChanged,
    SupervisionDelegated,
    SupervisionDelegationEnded,
    SupervisorAssigned,
)

from casework_supervision.domain.caseload_policy import CaseloadPolicyRecord, SetCaseloadPolicy
from casework_supervision.domain.commands import (
    AssignSupervisor,
    CancelOnCallShift,
    ChangeStaffProfile,
    DelegateSupervision,
    EndDelegation,
    RegisterStaffMember,
    ScheduleOnCallShift,
    StaffProfile,
)
from casework_supervision.domain.errors import (
    DelegationAlreadyOver,
    DelegationIdUsed,
    DelegationNotFound,
    InvalidDirectoryEntry,
    NotASupervisor,
    NotOnCallEligible,
    ShiftAlreadyCancelled,
    ShiftAlreadyOver,
    ShiftOverlaps,
    StaffMemberAlreadyRegistered,
    StaffMemberHasLeft,
    StillRostered,
    SupervisesThemselves,
)
from casework_supervision.domain.rota import Rota
from casework_supervision.domain.staff import StaffMember

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def profile(
    *roles: str, sites: tuple[str, ...] = ("north",), team: str | None = "t1"
) -> StaffProfile:
    return StaffProfile(
        name="Someone", sites=sites, roles=roles, started_on=date(2026, 1, 5), team=team
    )


def member(staff_id: str, *roles: str, sites: tuple[str, ...] = ("north",)) -> StaffMember:
    m = StaffMember(staff_id)
    m.register(RegisterStaffMember(staff_id, profile(*roles, sites=sites)), NOW)
    m.mark_committed()
    return m


def left(m: StaffMember) -> StaffMember:
    m.leave(NOW, [])
    m.mark_committed()
    return m


# --- staff -------------------------------------------------------------------------------------


def test_registering_records_the_whole_profile_once() -> None:
    m = StaffMember("carl")
    m.register(RegisterStaffMember("carl", profile("caseworker")), NOW)
    [event] = m.pending_events
    assert isinstance(event, StaffMemberRegistered)
    assert (event.staff_id, event.sites, event.roles, event.team) == (
        "carl",
        ("north",),
        ("caseworker",),
        "t1",
    )
    m.mark_committed()
    with pytest.raises(StaffMemberAlreadyRegistered):
        m.register(RegisterStaffMember("carl", profile("caseworker")), NOW)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (profile(), "body.roles"),
        (profile("caseworker", sites=()), "body.sites"),
        (profile("caseworker", sites=("north", "north")), "body.sites"),
        (profile("caseworker", "caseworker"), "body.roles"),
        (profile("wizard"), "body.roles"),
    ],
)
def test_an_impossible_profile_names_its_field(bad: StaffProfile, field: str) -> None:
    with pytest.raises(InvalidDirectoryEntry) as refused:
        StaffMember("x").register(RegisterStaffMember("x", bad), NOW)
    assert refused.value.field == field


def test_a_profile_change_carries_the_whole_profile_and_nothing_when_unchanged() -> None:
    m = member("carl", "caseworker")
    m.change_profile(ChangeStaffProfile("carl", profile("caseworker")), NOW)
    assert m.pending_events == []
    m.change_profile(ChangeStaffProfile("carl", profile("caseworker", "crisis_worker")), NOW)
    [event] = m.pending_events
    assert isinstance(event, StaffProfileChanged)
    assert event.roles == ("caseworker", "crisis_worker")
    assert event.sites == ("north",)


def test_a_supervisor_holds_the_role_and_is_not_the_supervisee() -> None:
    carl, sue, cole = (
        member("carl", "caseworker"),
        member("sue", "supervisor"),
        member("cole", "caseworker"),
    )
    with pytest.raises(SupervisesThemselves):
        sue.assign_supervisor(AssignSupervisor("sue", "sue", "ray"), sue, NOW)
    with pytest.raises(NotASupervisor):
        carl.assign_supervisor(AssignSupervisor("carl", "cole", "ray"), cole, NOW)
    carl.assign_supervisor(AssignSupervisor("carl", "sue", "ray"), sue, NOW)
    [event] = carl.pending_events
    assert isinstance(event, SupervisorAssigned)
    assert (event.supervisor_id, event.previous_supervisor_id) == ("sue", None)
    carl.mark_committed()
    # setting the same supervisor again (a repeated PUT) is no change, not a refusal
    carl.assign_supervisor(AssignSupervisor("carl", "sue", "ray"), sue, NOW)
    assert carl.pending_events == []


def test_a_leaver_is_given_nothing_new_and_supervises_nobody() -> None:
    carl, sue = member("carl", "caseworker"), left(member("sue", "supervisor"))
    with pytest.raises(StaffMemberHasLeft):
        carl.assign_supervisor(AssignSupervisor("carl", "sue", "ray"), sue, NOW)
    left(carl)
    with pytest.raises(StaffMemberHasLeft):
        carl.change_profile(ChangeStaffProfile("carl", profile("supervisor")), NOW)
    with pytest.raises(StaffMemberHasLeft):
        carl.leave(NOW, [])


def test_leaving_is_refused_while_rostered() -> None:
    cara = member("cara", "crisis_worker")
    with pytest.raises(StillRostered):
        cara.leave(NOW, ["north/s1"])
    cara.leave(NOW, [])
    assert isinstance(cara.pending_events[0], StaffMemberLeft)


def delegation(
    delegation_id: str = "d1", delegate: str = "sam", hours: tuple[int, int] = (0, 48)
) -> DelegateSupervision:
    return DelegateSupervision(
        "sue",
        delegation_id,
        delegate,
        NOW + timedelta(hours=hours[0]),
        NOW + timedelta(hours=hours[1]),
        "sue",
    )


def test_a_supervisor_delegates_to_another_supervisor_for_a_window() -> None:
    sue, sam, carl = (
        member("sue", "supervisor"),
        member("sam", "supervisor"),
        member("carl", "caseworker"),
    )
    with pytest.raises(NotASupervisor):
        sue.delegate(delegation(delegate="carl"), carl, NOW)
    with pytest.raises(NotASupervisor):
        carl.delegate(delegation(), sam, NOW)
    with pytest.raises(InvalidDirectoryEntry):
        sue.delegate(delegation(delegate="sue"), sue, NOW)
    with pytest.raises(InvalidDirectoryEntry):
        sue.delegate(delegation(hours=(5, 5)), sam, NOW)
    with pytest.raises(InvalidDirectoryEntry):
        sue.delegate(delegation(hours=(-5, -1)), sam, NOW)
    with pytest.raises(StaffMemberHasLeft):
        sue.delegate(delegation(), left(member("sid", "supervisor")), NOW)
    sue.delegate(delegation(), sam, NOW)
    [event] = sue.pending_events
    assert isinstance(event, SupervisionDelegated)
    sue.mark_committed()
    assert sue.delegates_at(NOW) == ["sam"]
    assert sue.delegates_at(NOW + timedelta(hours=48)) == []  # the end is exclusive
    with pytest.raises(DelegationIdUsed):
        sue.delegate(delegation(), sam, NOW)


def test_a_delegation_ends_early_once_and_not_after_it_is_over() -> None:
    sue, sam = member("sue", "supervisor"), member("sam", "supervisor")
    sue.delegate(delegation(), sam, NOW)
    sue.mark_committed()
    with pytest.raises(DelegationNotFound):
        sue.end_delegation(EndDelegation("sue", "nope", "sue"), NOW)
    back = NOW + timedelta(hours=10)
    sue.end_delegation(EndDelegation("sue", "d1", "sue"), back)
    assert isinstance(sue.pending_events[0], SupervisionDelegationEnded)
    sue.mark_committed()
    assert sue.delegates_at(back - timedelta(minutes=1)) == ["sam"]
    assert sue.delegates_at(back) == []
    with pytest.raises(DelegationAlreadyOver):
        sue.end_delegation(EndDelegation("sue", "d1", "sue"), back + timedelta(hours=1))


# --- rota --------------------------------------------------------------------------------------


def shift(
    shift_id: str, start_h: int, end_h: int, staff: str = "cara", backup: str | None = "sue"
) -> ScheduleOnCallShift:
    return ScheduleOnCallShift(
        "north",
        shift_id,
        staff,
        backup,
        NOW + timedelta(hours=start_h),
        NOW + timedelta(hours=end_h),
        "mia",
    )


@pytest.fixture
def people() -> dict[str, StaffMember]:
    return {
        "cara": member("cara", "crisis_worker"),
        "sue": member("sue", "supervisor"),
        "carl": member("carl", "caseworker"),
        "sol": member("sol", "crisis_worker", sites=("south",)),
    }


def test_shifts_of_a_site_do_not_overlap_but_hand_over_at_the_minute(
    people: dict[str, StaffMember],
) -> None:
    rota = Rota("north")
    rota.schedule(shift("s1", 0, 12), people["cara"], people["sue"], NOW)
    rota.mark_committed()
    with pytest.raises(ShiftOverlaps):
        rota.schedule(shift("s2", 11, 20, "sue", "cara"), people["sue"], people["cara"], NOW)
    rota.schedule(shift("s2", 12, 20, "sue", "cara"), people["sue"], people["cara"], NOW)
    [event] = rota.pending_events
    assert isinstance(event, OnCallShiftScheduled)
    rota.mark_committed()
    on_call = rota.on_call(NOW + timedelta(hours=12))
    assert on_call is not None
    assert on_call.shift_id == "s2"
    before = rota.on_call(NOW + timedelta(hours=12) - timedelta(microseconds=1))
    assert before is not None
    assert before.shift_id == "s1"
    assert rota.on_call(NOW + timedelta(hours=20)) is None


def test_who_may_be_on_call(people: dict[str, StaffMember]) -> None:
    rota = Rota("north")
    with pytest.raises(NotOnCallEligible):
        rota.schedule(shift("s1", 0, 12, "carl", None), people["carl"], None, NOW)
    with pytest.raises(NotOnCallEligible):
        rota.schedule(shift("s1", 0, 12, "sol", None), people["sol"], None, NOW)
    with pytest.raises(NotOnCallEligible):
        rota.schedule(shift("s1", 0, 12, "cara", "carl"), people["cara"], people["carl"], NOW)
    with pytest.raises(InvalidDirectoryEntry) as same:
        rota.schedule(shift("s1", 0, 12, "cara", "cara"), people["cara"], people["cara"], NOW)
    assert same.value.field == "body.backup_id"
    with pytest.raises(StaffMemberHasLeft):
        rota.schedule(shift("s1", 0, 12, "sue", None), left(people["sue"]), None, NOW)
    assert rota.pending_events == []


@pytest.mark.parametrize(
    ("starts", "ends", "field"),
    [
        (NOW + timedelta(seconds=30), NOW + timedelta(hours=2), "body.starts_at"),
        (NOW + timedelta(hours=2), NOW + timedelta(hours=1), "body.ends_at"),
        (NOW - timedelta(hours=5), NOW - timedelta(hours=1), "body.ends_at"),
        (NOW, NOW + timedelta(days=15), "body.ends_at"),
    ],
)
def test_impossible_shift_times(
    people: dict[str, StaffMember], starts: datetime, ends: datetime, field: str
) -> None:
    cmd = ScheduleOnCallShift("north", "s1", "cara", None, starts, ends, "mia")
    with pytest.raises(InvalidDirectoryEntry) as refused:
        Rota("north").schedule(cmd, people["cara"], None, NOW)
    assert refused.value.field == field


def test_a_cancelled_shift_frees_its_slot_and_an_ended_one_stays(
    people: dict[str, StaffMember],
) -> None:
    rota = Rota("north")
    rota.schedule(shift("s1", 0, 12), people["cara"], people["sue"], NOW)
    rota.mark_committed()
    assert rota.rostering("sue", NOW) == ["s1"]
    rota.cancel(CancelOnCallShift("north", "s1", "mia"), NOW)
    assert isinstance(rota.pending_events[0], OnCallShiftCancelled)
    rota.mark_committed()
    assert rota.on_call(NOW) is None
    assert rota.rostering("sue", NOW) == []
    with pytest.raises(ShiftAlreadyCancelled):
        rota.cancel(CancelOnCallShift("north", "s1", "mia"), NOW)
    rota.schedule(shift("s2", 0, 12), people["cara"], None, NOW)
    rota.mark_committed()
    with pytest.raises(ShiftAlreadyOver):
        rota.cancel(CancelOnCallShift("north", "s2", "mia"), NOW + timedelta(hours=12))


# --- caseload policy ---------------------------------------------------------------------------


def policy_cmd(**changes: object) -> SetCaseloadPolicy:
    base: dict[str, object] = {
        "points_by_risk": {"imminent": 4, "high": 3, "medium": 2, "low": 1, "none": 1},
        "crisis_bonus": 2,
        "default_capacity": 20,
        "amber_at_percent": 100,
        "red_at_percent": 110,
        "set_by": "ray",
    }
    return SetCaseloadPolicy(**{**base, **changes})  # type: ignore[arg-type]


def test_a_caseload_policy_is_whole_and_its_bands_in_order() -> None:
    record = CaseloadPolicyRecord("agency")
    with pytest.raises(InvalidDirectoryEntry):
        record.set(policy_cmd(points_by_risk={"high": 3}), NOW)
    with pytest.raises(InvalidDirectoryEntry):
        record.set(policy_cmd(amber_at_percent=110, red_at_percent=110), NOW)
    record.set(policy_cmd(), NOW)
    [event] = record.pending_events
    assert isinstance(event, CaseloadPolicySet)
    assert event.points_by_risk["imminent"] == 4
    record.mark_committed()
    record.set(policy_cmd(set_by="someone else"), NOW)
    assert record.pending_events == []  # the same policy again records nothing
    record.set(policy_cmd(crisis_bonus=3), NOW)
    assert len(record.pending_events) == 1
