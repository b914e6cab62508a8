"""The Referral aggregate, given-when-then: given these past events, when this command, then
these new events — or this error, and no events at all."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.contracts.intake import (
    ClientDetails,
    ClientMatchConfirmed,
    ClientMatchOverridden,
    DuplicateClientsFound,
    Frequency,
    ReferralAccepted,
    ReferralDeclined,
    ReferralReceived,
    RiskScreened,
    ScreeningAnswers,
)
from casework.events import DomainEvent

from casework_intake.domain.commands import (
    AcceptReferral,
    ConfirmClientMatch,
    DeclineReferral,
    OverrideClientMatch,
    ReceiveReferral,
    ScreenRisk,
)
from casework_intake.domain.errors import (
    ClientMatchUndecided,
    IntakeError,
    NoClientMatchToDecide,
    ReferralAlreadyDecided,
    ReferralAlreadyReceived,
    ReferralNotReceived,
    ReferralNotScreened,
    UnknownCandidate,
)
from casework_intake.domain.referral import ClientMatch, Referral, ReferralStatus

RID = "r-1"
RECEIVED_AT = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
NOW = RECEIVED_AT + timedelta(hours=2)
CLIENT = ClientDetails(
    given_name="Alex", family_name="Morgan", date_of_birth=date(1990, 4, 12), phone="07700900123"
)
NO_RISK = ScreeningAnswers(wish_to_be_dead=False, suicidal_thoughts=False)
PLAN = ScreeningAnswers(
    wish_to_be_dead=True, suicidal_thoughts=True, suicidal_intent=True, intent_with_plan=True
)

# --- past events -------------------------------------------------------------------------


def received(urgency: Urgency = Urgency.SOON) -> ReferralReceived:
    return ReferralReceived(
        referral_id=RID,
        site="north",
        client=CLIENT,
        source=ReferralSource.GP,
        referrer_name="Dr Patel",
        presenting_concerns="Low mood.",
        urgency=urgency,
        consent_to_share=True,
        received_by="ivy",
        received_at=RECEIVED_AT,
    )


def duplicates(*ids: str) -> DuplicateClientsFound:
    return DuplicateClientsFound(
        referral_id=RID, candidate_client_ids=ids or ("c-1", "c-2"), found_at=RECEIVED_AT
    )


def screened(level: RiskLevel = RiskLevel.LOW, rule: str = "no_risk_indicators") -> RiskScreened:
    return RiskScreened(
        referral_id=RID,
        site="north",
        answers=NO_RISK,
        risk_level=level,
        rule=rule,
        screened_by="ivy",
        screened_at=RECEIVED_AT + timedelta(minutes=10),
    )


def confirmed(client_id: str = "c-2") -> ClientMatchConfirmed:
    return ClientMatchConfirmed(
        referral_id=RID, client_id=client_id, confirmed_by="ivy", confirmed_at=RECEIVED_AT
    )


def overridden() -> ClientMatchOverridden:
    return ClientMatchOverridden(
        referral_id=RID, overridden_by="ivy", overridden_at=RECEIVED_AT, reason="different GP"
    )


def accepted() -> ReferralAccepted:
    return ReferralAccepted(
        referral_id=RID,
        case_id="case-1",
        client_id="new-client",
        site="north",
        risk_level=RiskLevel.LOW,
        accepted_by="ivy",
        accepted_at=RECEIVED_AT,
    )


def declined() -> ReferralDeclined:
    return ReferralDeclined(
        referral_id=RID, site="north", reason="out of area", declined_by="ivy", declined_at=NOW
    )


def given(*events: DomainEvent) -> Referral:
    return Referral.rehydrate(RID, events)


# --- commands ----------------------------------------------------------------------------

RECEIVE = ReceiveReferral(
    referral_id=RID,
    site="north",
    client=CLIENT,
    source=ReferralSource.GP,
    presenting_concerns="Low mood.",
    urgency=Urgency.SOON,
    received_by="ivy",
    referrer_name="Dr Patel",
    consent_to_share=True,
)


def screen(answers: ScreeningAnswers = NO_RISK) -> Callable[[Referral], None]:
    return lambda r: r.screen_risk(ScreenRisk(RID, answers, screened_by="ivy"), NOW)


def confirm(client_id: str = "c-2") -> Callable[[Referral], None]:
    return lambda r: r.confirm_client_match(ConfirmClientMatch(RID, client_id, "ivy"), NOW)


def override() -> Callable[[Referral], None]:
    return lambda r: r.override_client_match(OverrideClientMatch(RID, "different GP", "ivy"), NOW)


def accept() -> Callable[[Referral], None]:
    return lambda r: r.accept(AcceptReferral(RID, "ivy", "case-9", new_client_id="c-new"), NOW)


def decline() -> Callable[[Referral], None]:
    return lambda r: r.decline(
        DeclineReferral(RID, "housing need", "ivy", signposted_to="Housing Advice"), NOW
    )


def match_state(referral: Referral) -> ClientMatch:
    return referral.client_match


def then_refused(
    referral: Referral, command: Callable[[Referral], None], error: type[IntakeError]
) -> IntakeError:
    """The command raises `error`, and the referral is left exactly as it was."""
    version, status = referral.version, referral.status
    with pytest.raises(error) as caught:
        command(referral)
    assert referral.pending_events == []
    assert (referral.version, referral.status) == (version, status)
    return caught.value


# --- receiving ---------------------------------------------------------------------------


def test_receiving_a_referral_puts_it_in_waiting() -> None:
    referral = given()
    referral.receive(RECEIVE, RECEIVED_AT)
    assert referral.pending_events == [received()]
    assert referral.status is ReferralStatus.WAITING
    assert referral.client_match is ClientMatch.NO_CANDIDATES
    assert referral.site == "north"


def test_candidates_found_at_receipt_are_recorded_in_the_same_commit_once_each() -> None:
    referral = given()
    referral.receive(RECEIVE, RECEIVED_AT, candidates=["c-1", "c-2", "c-1"])
    assert referral.pending_events == [received(), duplicates("c-1", "c-2")]
    assert referral.client_match is ClientMatch.UNDECIDED
    assert referral.candidates == ("c-1", "c-2")


def test_a_referral_is_received_only_once() -> None:
    referral = given(received())
    with pytest.raises(ReferralAlreadyReceived):
        referral.receive(RECEIVE, NOW)
    assert referral.pending_events == []


# --- screening ---------------------------------------------------------------------------


def test_screening_records_the_level_and_the_deciding_clause() -> None:
    referral = given(received())
    screen(PLAN)(referral)
    assert referral.pending_events == [
        RiskScreened(
            referral_id=RID,
            site="north",
            answers=PLAN,
            risk_level=RiskLevel.IMMINENT,
            rule="suicidal_intent_with_plan",
            screened_by="ivy",
            screened_at=NOW,
        )
    ]
    assert referral.risk_level is RiskLevel.IMMINENT


def test_screening_again_before_the_decision_replaces_the_level() -> None:
    referral = given(received(), screened(RiskLevel.IMMINENT, "recent_suicidal_behaviour"))
    screen(NO_RISK)(referral)
    (event,) = referral.pending_events
    assert isinstance(event, RiskScreened)
    assert (event.risk_level, event.rule) == (RiskLevel.LOW, "no_risk_indicators")
    assert referral.risk_level is RiskLevel.LOW


@pytest.mark.parametrize(
    "command",
    [screen(), confirm(), override(), accept(), decline()],
    ids=["screen", "confirm", "override", "accept", "decline"],
)
@pytest.mark.parametrize(
    "history",
    [
        (received(), duplicates(), screened(), confirmed(), accepted()),
        (received(), duplicates(), declined()),
    ],
    ids=["accepted", "declined"],
)
def test_a_decided_referral_takes_no_more_commands(
    history: tuple[DomainEvent, ...], command: Callable[[Referral], None]
) -> None:
    referral = given(*history)
    error = then_refused(referral, command, ReferralAlreadyDecided)
    assert "already" in str(error)


@pytest.mark.parametrize(
    "command",
    [screen(), confirm(), override(), accept(), decline()],
    ids=["screen", "confirm", "override", "accept", "decline"],
)
def test_a_referral_never_received_takes_no_commands(
    command: Callable[[Referral], None],
) -> None:
    then_refused(given(), command, ReferralNotReceived)


# --- client match ------------------------------------------------------------------------


def test_confirming_a_candidate_links_the_referral_to_that_client() -> None:
    referral = given(received(), duplicates("c-1", "c-2"))
    confirm("c-2")(referral)
    assert referral.pending_events == [confirmed("c-2").model_copy(update={"confirmed_at": NOW})]
    assert referral.client_match is ClientMatch.CONFIRMED
    assert referral.matched_client_id == "c-2"


def test_confirming_a_client_who_is_not_a_candidate_is_refused_as_a_field_error() -> None:
    referral = given(received(), duplicates("c-1", "c-2"))
    error = then_refused(referral, confirm("c-3"), UnknownCandidate)
    assert getattr(error, "field", None) == "body.client_id"
    assert "c-1, c-2" in str(error)


def test_overriding_the_match_records_the_reason() -> None:
    referral = given(received(), duplicates())
    override()(referral)
    assert referral.pending_events == [
        ClientMatchOverridden(
            referral_id=RID, overridden_by="ivy", overridden_at=NOW, reason="different GP"
        )
    ]
    assert referral.client_match is ClientMatch.OVERRIDDEN
    assert referral.matched_client_id is None


@pytest.mark.parametrize("command", [confirm(), override()], ids=["confirm", "override"])
def test_without_candidates_there_is_no_match_to_decide(
    command: Callable[[Referral], None],
) -> None:
    then_refused(given(received()), command, NoClientMatchToDecide)


def test_the_match_decision_can_change_until_the_referral_is_decided() -> None:
    referral = given(received(), duplicates(), confirmed("c-1"))
    override()(referral)
    assert match_state(referral) is ClientMatch.OVERRIDDEN
    confirm("c-2")(referral)
    assert match_state(referral) is ClientMatch.CONFIRMED
    assert referral.matched_client_id == "c-2"
    assert [type(e).__name__ for e in referral.pending_events] == [
        "ClientMatchOverridden",
        "ClientMatchConfirmed",
    ]


# --- accepting ---------------------------------------------------------------------------


def test_accepting_a_screened_referral_about_a_new_person_registers_a_new_client() -> None:
    referral = given(received(Urgency.URGENT), screened(RiskLevel.HIGH, "harm_to_others"))
    accept()(referral)
    assert referral.pending_events == [
        ReferralAccepted(
            referral_id=RID,
            case_id="case-9",
            client_id="c-new",
            site="north",
            risk_level=RiskLevel.HIGH,
            accepted_by="ivy",
            accepted_at=NOW,
            new_client=True,
            urgency=Urgency.URGENT,
            received_at=RECEIVED_AT,
            client_name="Alex Morgan",
        )
    ]
    assert referral.status is ReferralStatus.ACCEPTED


def test_accepting_carries_the_latest_screen() -> None:
    referral = given(
        received(),
        screened(RiskLevel.LOW),
        screened(RiskLevel.IMMINENT, "suicidal_intent_with_plan"),
    )
    accept()(referral)
    (event,) = referral.pending_events
    assert isinstance(event, ReferralAccepted)
    assert event.risk_level is RiskLevel.IMMINENT


def test_accepting_a_confirmed_match_uses_the_existing_client() -> None:
    referral = given(received(), duplicates("c-1", "c-2"), confirmed("c-2"), screened())
    accept()(referral)
    (event,) = referral.pending_events
    assert isinstance(event, ReferralAccepted)
    assert (event.client_id, event.new_client) == ("c-2", False)


def test_accepting_after_an_overridden_match_registers_a_new_client() -> None:
    referral = given(received(), duplicates("c-1"), overridden(), screened())
    accept()(referral)
    (event,) = referral.pending_events
    assert isinstance(event, ReferralAccepted)
    assert (event.client_id, event.new_client) == ("c-new", True)


def test_an_unscreened_referral_cannot_be_accepted() -> None:
    error = then_refused(given(received()), accept(), ReferralNotScreened)
    assert "screen" in str(error)


def test_candidates_must_be_confirmed_or_overridden_before_acceptance() -> None:
    referral = given(received(), duplicates("c-1", "c-2"), screened())
    error = then_refused(referral, accept(), ClientMatchUndecided)
    assert "confirm" in str(error)
    assert "override" in str(error)


# --- declining ---------------------------------------------------------------------------


def test_declining_records_the_reason_and_the_signposting() -> None:
    referral = given(received())  # no screen needed to decline
    decline()(referral)
    assert referral.pending_events == [
        ReferralDeclined(
            referral_id=RID,
            site="north",
            reason="housing need",
            signposted_to="Housing Advice",
            declined_by="ivy",
            declined_at=NOW,
        )
    ]
    assert referral.status is ReferralStatus.DECLINED


# --- history -----------------------------------------------------------------------------


def test_state_is_rebuilt_from_history() -> None:
    referral = given(
        received(),
        duplicates("c-1", "c-2"),
        screened(RiskLevel.MEDIUM, "suicidal_thoughts"),
        confirmed("c-1"),
    )
    assert referral.version == 4
    assert referral.status is ReferralStatus.WAITING
    assert referral.risk_level is RiskLevel.MEDIUM
    assert referral.client_match is ClientMatch.CONFIRMED
    assert referral.matched_client_id == "c-1"
    assert referral.client_name == "Alex Morgan"
    assert referral.pending_events == []


def test_behaviour_in_the_past_week_screens_as_imminent_on_the_aggregate() -> None:
    referral = given(received())
    screen(
        ScreeningAnswers(
            wish_to_be_dead=False, suicidal_thoughts=False, suicidal_behaviour=Frequency.PAST_WEEK
        )
    )(referral)
    assert referral.risk_level is RiskLevel.IMMINENT
