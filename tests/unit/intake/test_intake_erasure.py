"""The erasure record of a client: legal holds, the decision, the steps of a carried-out
erasure, and retention rules (given past events, when a command, then new events)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from casework.contracts.intake import (
    ErasureCompleted,
    ErasureDecided,
    ErasureOutcome,
    ErasureReason,
    ErasureRequested,
    HoldBasis,
    HoldFound,
    LegalHoldPlaced,
    LegalHoldReleased,
    Requester,
    SubjectKeyDestroyed,
)
from casework.events import DomainEvent

from casework_intake.application.data_protection import RetentionSchedule
from casework_intake.application.ports import CLOSED, OPEN, KnownCase
from casework_intake.domain.commands import PlaceLegalHold, ReleaseLegalHold, RequestErasure
from casework_intake.domain.erasure import Erasure, OpenCase
from casework_intake.domain.errors import (
    ClientAlreadyErased,
    ErasureInProgress,
    NotDecidedToCarryOut,
    UnknownHold,
)
from casework_intake.domain.retention import (
    DEFAULT_RULES,
    RetentionPeriod,
    RetentionRules,
)

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
CLIENT = "c-1"


def given(*events: DomainEvent) -> Erasure:
    return Erasure.rehydrate(CLIENT, events)


def request(erasure_id: str = "e-1", record_class: str | None = None) -> RequestErasure:
    return RequestErasure(
        client_id=CLIENT,
        erasure_id=erasure_id,
        reason=ErasureReason.DATA_SUBJECT_REQUEST,
        requester=Requester.DATA_SUBJECT,
        requested_by="dora",
        reference="DPO-1",
        record_class=record_class,
    )


def requested(erasure_id: str = "e-1", record_class: str | None = None) -> ErasureRequested:
    return ErasureRequested(
        erasure_id=erasure_id,
        client_id=CLIENT,
        subject=f"client:{CLIENT}",
        record_class=record_class,
        reason=ErasureReason.DATA_SUBJECT_REQUEST,
        requester=Requester.DATA_SUBJECT,
        reference="DPO-1",
        requested_by="dora",
        requested_at=AT,
    )


def decided(erasure_id: str = "e-1", *holds: HoldFound) -> ErasureDecided:
    return ErasureDecided(
        erasure_id=erasure_id,
        client_id=CLIENT,
        outcome=ErasureOutcome.REFUSED if holds else ErasureOutcome.CARRIED_OUT,
        holds=holds,
        decided_by="dora",
        decided_at=AT,
    )


def destroyed(erasure_id: str = "e-1") -> SubjectKeyDestroyed:
    return SubjectKeyDestroyed(
        erasure_id=erasure_id,
        client_id=CLIENT,
        subject=f"client:{CLIENT}",
        key_ids=("client:c-1/identity/v1",),
        destroyed_at=AT,
    )


def completed(erasure_id: str = "e-1") -> ErasureCompleted:
    return ErasureCompleted(
        erasure_id=erasure_id, client_id=CLIENT, index_entries_deleted=2, completed_at=AT
    )


def hold_placed(hold_id: str = "h-1") -> LegalHoldPlaced:
    return LegalHoldPlaced(
        client_id=CLIENT,
        hold_id=hold_id,
        basis=HoldBasis.SAFEGUARDING_CHILD,
        site="north",
        placed_by="mia",
        placed_at=AT,
    )


# --- the decision ----------------------------------------------------------------------------


def test_without_holds_the_request_and_its_decision_to_carry_out_are_one_commit() -> None:
    erasure = given()
    erasure.request(request(), [], AT)
    assert erasure.pending_events == [requested(), decided()]
    assert erasure.unfinished() == ["e-1"]
    assert erasure.erasures["e-1"].status == "carrying_out"


def test_an_open_case_refuses_the_erasure_naming_the_case() -> None:
    erasure = given()
    erasure.request(request(), [OpenCase("case-9", "north")], AT)
    decision = erasure.pending_events[1]
    assert isinstance(decision, ErasureDecided)
    assert decision.outcome is ErasureOutcome.REFUSED
    assert decision.holds == (HoldFound(kind="open_case", id="case-9", site="north"),)
    assert erasure.unfinished() == []
    assert erasure.erasures["e-1"].status == "refused"


def test_a_safeguarding_hold_refuses_the_erasure_naming_the_hold() -> None:
    erasure = given(hold_placed())
    erasure.request(request(), [], AT)
    decision = erasure.pending_events[1]
    assert isinstance(decision, ErasureDecided)
    assert decision.holds == (
        HoldFound(kind="legal_hold", id="h-1", basis=HoldBasis.SAFEGUARDING_CHILD, site="north"),
    )


def test_a_released_hold_no_longer_refuses() -> None:
    erasure = given(
        hold_placed(),
        LegalHoldReleased(client_id=CLIENT, hold_id="h-1", released_by="dora", released_at=AT),
    )
    erasure.request(request(), [], AT)
    assert erasure.pending_events[1] == decided()


def test_a_refused_erasure_can_be_asked_for_again_and_then_carried_out() -> None:
    erasure = given(requested("e-1"), decided("e-1", HoldFound(kind="open_case", id="k")))
    erasure.request(request("e-2"), [], AT)
    assert erasure.pending_events == [requested("e-2"), decided("e-2")]


def test_asking_again_with_the_same_erasure_id_changes_nothing() -> None:
    erasure = given(requested(), decided())
    erasure.request(request(), [OpenCase("case-9")], AT)
    assert erasure.pending_events == []


def test_an_erasure_under_way_refuses_another() -> None:
    erasure = given(requested(), decided())
    with pytest.raises(ErasureInProgress):
        erasure.request(request("e-2"), [], AT)


def test_erasures_of_other_record_classes_may_run_side_by_side() -> None:
    erasure = given(requested("r-1", "notes"), decided("r-1"))
    erasure.request(request("r-2", "clinical"), [], AT)
    assert erasure.pending_events == [requested("r-2", "clinical"), decided("r-2")]
    with pytest.raises(ErasureInProgress):
        erasure.request(request("r-3", "notes"), [], AT)
    with pytest.raises(ErasureInProgress):
        erasure.request(request("e-4"), [], AT)


def test_an_erased_client_cannot_be_erased_again_nor_held() -> None:
    erasure = given(requested(), decided(), destroyed(), completed())
    with pytest.raises(ClientAlreadyErased):
        erasure.request(request("e-2"), [], AT)
    with pytest.raises(ClientAlreadyErased):
        erasure.place_hold(PlaceLegalHold(CLIENT, "h-2", HoldBasis.LITIGATION, placed_by="mia"), AT)


def test_a_record_class_erased_by_retention_does_not_stop_a_later_whole_erasure() -> None:
    erasure = given(requested("r-1", "notes"), decided("r-1"), destroyed("r-1"), completed("r-1"))
    erasure.request(request("e-2"), [], AT)
    assert erasure.pending_events == [requested("e-2"), decided("e-2")]


# --- the steps -------------------------------------------------------------------------------


def test_each_step_is_recorded_once() -> None:
    erasure = given(requested(), decided())
    erasure.record_keys_destroyed("e-1", ["client:c-1/identity/v1"], AT)
    erasure.record_keys_destroyed("e-1", ["client:c-1/identity/v1"], AT)
    erasure.complete("e-1", 2, AT)
    erasure.complete("e-1", 2, AT)
    assert erasure.pending_events == [destroyed(), completed()]
    assert erasure.unfinished() == []
    assert erasure.erased_by() is not None


def test_completion_waits_for_the_keys() -> None:
    erasure = given(requested(), decided())
    with pytest.raises(Exception, match="keys are not destroyed"):
        erasure.complete("e-1", 0, AT)


def test_a_refused_erasure_destroys_nothing() -> None:
    erasure = given(requested(), decided("e-1", HoldFound(kind="legal_hold", id="h")))
    with pytest.raises(NotDecidedToCarryOut):
        erasure.record_keys_destroyed("e-1", [], AT)


# --- holds -----------------------------------------------------------------------------------


def test_holds_are_placed_and_released_once() -> None:
    erasure = given()
    cmd = PlaceLegalHold(CLIENT, "h-1", HoldBasis.SAFEGUARDING_CHILD, "mia", site="north")
    erasure.place_hold(cmd, AT)
    erasure.place_hold(cmd, AT)
    erasure.release_hold(ReleaseLegalHold(CLIENT, "h-1", "dora"), AT)
    erasure.release_hold(ReleaseLegalHold(CLIENT, "h-1", "dora"), AT)
    assert [type(e) for e in erasure.pending_events] == [LegalHoldPlaced, LegalHoldReleased]
    assert erasure.holds == {}


def test_releasing_an_unknown_hold_is_refused() -> None:
    with pytest.raises(UnknownHold):
        given().release_hold(ReleaseLegalHold(CLIENT, "nope", "dora"), AT)


def test_no_event_of_the_erasure_stream_has_a_personal_field() -> None:
    for event in (requested(), decided(), destroyed(), completed(), hold_placed()):
        assert type(event).personal_fields() == []


# --- retention rules -------------------------------------------------------------------------


def test_the_default_rules_keep_notes_and_clinical_records_eight_years() -> None:
    assert DEFAULT_RULES.for_site("north") == {
        "clinical": RetentionPeriod(years=8),
        "notes": RetentionPeriod(years=8),
    }


def test_a_site_overrides_or_keeps_a_class_and_bad_rules_are_refused() -> None:
    rules = RetentionRules.parse(
        {
            "default": {"notes": {"years": 8}, "clinical": {"years": 8}},
            "sites": {"south": {"notes": {"years": 10}, "clinical": None}},
        }
    )
    assert rules.for_site("south") == {"notes": RetentionPeriod(years=10)}
    assert rules.rule_name("north", "notes") == "notes:8y"
    assert rules.rule_name("south", "clinical") is None
    with pytest.raises(ValueError, match="unknown record class"):
        RetentionRules.parse({"default": {"diary": {"years": 1}}})
    with pytest.raises(ValueError, match="positive number"):
        RetentionRules.parse({"default": {"notes": {"years": 0}}})


def test_a_period_of_years_lands_on_28_february_from_a_leap_day() -> None:
    leap = datetime(2024, 2, 29, 12, tzinfo=UTC)
    assert RetentionPeriod(years=1).after(leap) == datetime(2025, 2, 28, 12, tzinfo=UTC)
    assert RetentionPeriod(days=3).after(leap) == datetime(2024, 3, 3, 12, tzinfo=UTC)


def _schedule(rules: RetentionRules) -> RetentionSchedule:
    return RetentionSchedule(rules, None, None, None, None)  # type: ignore[arg-type]


def test_retention_runs_out_only_when_every_case_of_the_client_allows_it() -> None:
    schedule = _schedule(DEFAULT_RULES)
    closed = datetime(2020, 1, 1, tzinfo=UTC)
    later = closed + timedelta(days=400)
    eight_years_on = RetentionPeriod(years=8).after(closed)
    old = KnownCase("a", CLIENT, "north", CLOSED, closed)
    assert schedule.expired([old], "notes", eight_years_on)
    assert not schedule.expired([old], "notes", eight_years_on - timedelta(seconds=1))
    assert not schedule.expired([old], "identity", eight_years_on)  # no rule: kept
    assert not schedule.expired([old, KnownCase("b", CLIENT, "north", OPEN)], "notes", later)
    newer = KnownCase("b", CLIENT, "north", CLOSED, later)
    assert not schedule.expired([old, newer], "notes", eight_years_on)
    assert schedule.expired([old, newer], "notes", RetentionPeriod(years=8).after(later))
    assert not schedule.expired([], "notes", eight_years_on)
