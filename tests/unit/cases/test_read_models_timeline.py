"""Timeline entries: one-line summaries, who did it, storable detail, and the reading order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from casework.contracts import registry
from casework.contracts.cases import (
    AssessmentRecorded,
    AssessmentReturned,
    AssessmentSignedOff,
    BreakGlassUsed,
    CaseClosed,
    CaseNoteRecorded,
    CaseOpened,
    CaseOutcome,
    CasePlanApproved,
    CasePlanProposed,
    CasePlanReturned,
    CaseReopened,
    CaseTransferAccepted,
    CaseTransferRejected,
    CaseTransferRequested,
    CaseworkerAssigned,
    ClosureRequested,
    ClosureReturned,
    CrisisDeclared,
    CrisisResolved,
    Goal,
    GoalProgress,
    GoalProgressRecorded,
    InpatientAdmissionRecorded,
    InpatientDischargeRecorded,
    Intervention,
    RiskLevelChanged,
)
from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.contracts.contacts import (
    AttemptReason,
    CancelReason,
    ContactCancelled,
    ContactCorrected,
    ContactLogged,
    ContactMissed,
    ContactScheduled,
    CorrectionKind,
    Medium,
    MissReason,
    Outcome,
    Participant,
    ParticipantKind,
)
from casework.contracts.intake import (
    ClientDetails,
    ClientMatchConfirmed,
    ClientMatchOverridden,
    ClientRegistered,
    DuplicateClientsFound,
    ReferralAccepted,
    ReferralDeclined,
    ReferralReceived,
    RiskScreened,
    ScreeningAnswers,
)
from casework.envelope import Envelope
from casework.events import DomainEvent

from casework_cases.adapters.read_models.documents import escape_keys, unescape_keys
from casework_cases.adapters.read_models.timeline import (
    CONTACT_EVENTS_SHOWN,
    _sentence,
    actor,
    describe,
    entry,
    merged,
)
from support.envelopes import envelope_of

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)


def envelope(
    event: DomainEvent, stream: str, version: int, at: datetime = T0, event_id: str | None = None
) -> Envelope:
    return envelope_of(event, stream, version, at, event_id=event_id or f"{stream}-{version}")


ASSIGNED = CaseworkerAssigned(
    case_id="c1", caseworker_id="carl", team="t1", assigned_by="sam", assigned_at=T0
)
APPROVED = CasePlanApproved(case_id="c1", plan_version=2, approved_by="sue", approved_at=T0)
CRISIS = CrisisDeclared(
    case_id="c1",
    crisis_id="x1",
    site="north",
    risk_level=RiskLevel.IMMINENT,
    summary="Says they have a plan for tonight.",
    declared_by="ana",
    declared_at=T0,
)


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (ASSIGNED, "Caseworker carl assigned (team t1) by sam"),
        (
            CaseworkerAssigned(
                case_id="c1",
                caseworker_id="cara",
                previous_caseworker_id="carl",
                assigned_by="sam",
                assigned_at=T0,
            ),
            "Caseworker cara assigned by sam, replacing carl",
        ),
        (APPROVED, "Plan v2 approved by sue"),
        (CRISIS, "Crisis declared by ana: risk imminent"),
        (
            CasePlanProposed(
                case_id="c1",
                plan_version=1,
                goals=(Goal(goal_id="g1", description="x", target_date=date(2026, 3, 1)),),
                interventions=(),
                proposed_by="carl",
                proposed_at=T0,
            ),
            "Plan v1 proposed by carl: 1 goal, 0 interventions",
        ),
        (
            RiskLevelChanged(
                case_id="c1",
                site="north",
                previous_level=RiskLevel.MEDIUM,
                risk_level=RiskLevel.HIGH,
                reason="secret",
                changed_by="carl",
                changed_at=T0,
            ),
            "Risk level changed from medium to high by carl",
        ),
        (
            GoalProgressRecorded(
                case_id="c1",
                goal_id="g1",
                progress=GoalProgress.IN_PROGRESS,
                recorded_by="carl",
                recorded_at=T0,
            ),
            "Goal g1: in progress, recorded by carl",
        ),
        (
            CaseClosed(
                case_id="c1", outcome=CaseOutcome.GOALS_MET, approved_by="sue", closed_at=T0
            ),
            "Case closed by sue: goals met",
        ),
        (
            CaseOpened(
                case_id="c1",
                client_id="k1",
                referral_id="r1",
                site="north",
                risk_level=RiskLevel.HIGH,
                opened_at=T0,
            ),
            "Case opened at north (risk high)",
        ),
        (
            ReferralReceived(
                referral_id="r1",
                site="north",
                client=ClientDetails(
                    given_name="Alex", family_name="Morgan", date_of_birth=date(1990, 4, 12)
                ),
                source=ReferralSource.OTHER_AGENCY,
                presenting_concerns="secret",
                urgency=Urgency.URGENT,
                received_by="ivy",
                received_at=T0,
            ),
            "Referral received from other agency (urgency urgent) by ivy",
        ),
        (
            DuplicateClientsFound(referral_id="r1", candidate_client_ids=("a", "b"), found_at=T0),
            "2 possible duplicate clients found",
        ),
    ],
)
def test_each_event_reads_as_one_line(event: DomainEvent, line: str) -> None:
    assert describe(event) == line


SECRET = "SENSITIVE-TEXT"


def every_event() -> list[DomainEvent]:
    """One of each intake and cases event, sensitive free text set to `SECRET`."""
    client = ClientDetails(given_name="Alex", family_name="Morgan", date_of_birth=date(1990, 4, 12))
    answers = ScreeningAnswers(wish_to_be_dead=True, suicidal_thoughts=False)
    goal = Goal(goal_id="g1", description="Housing", target_date=date(2026, 3, 1))
    act = Intervention(intervention_id="i1", description="Visit", responsible="carl")
    c, r, k = "c1", "r1", "k1"
    return [
        ReferralReceived(
            referral_id=r,
            site="north",
            client=client,
            source=ReferralSource.GP,
            presenting_concerns=SECRET,
            urgency=Urgency.SOON,
            received_by="ivy",
            received_at=T0,
        ),
        DuplicateClientsFound(referral_id=r, candidate_client_ids=(k,), found_at=T0),
        ClientMatchConfirmed(referral_id=r, client_id=k, confirmed_by="ivy", confirmed_at=T0),
        ClientMatchOverridden(referral_id=r, overridden_by="ivy", overridden_at=T0),
        RiskScreened(
            referral_id=r,
            site="north",
            answers=answers,
            risk_level=RiskLevel.MEDIUM,
            rule="wish",
            screened_by="ivy",
            screened_at=T0,
        ),
        ReferralAccepted(
            referral_id=r, case_id=c, client_id=k, site="north", accepted_by="ivy", accepted_at=T0
        ),
        ReferralDeclined(
            referral_id=r, site="north", reason="no", declined_by="ivy", declined_at=T0
        ),
        ClientRegistered(
            client_id=k,
            site="north",
            given_name="Alex",
            family_name="Morgan",
            date_of_birth=date(1990, 4, 12),
            match_key="m",
            registered_at=T0,
        ),
        CaseOpened(case_id=c, client_id=k, referral_id=r, site="north", opened_at=T0),
        ASSIGNED,
        CaseTransferRequested(
            case_id=c,
            from_site="north",
            to_site="south",
            reason="moved",
            requested_by="carl",
            requested_at=T0,
        ),
        CaseTransferAccepted(
            case_id=c, from_site="north", to_site="south", accepted_by="mo", accepted_at=T0
        ),
        CaseTransferRejected(
            case_id=c,
            from_site="north",
            to_site="south",
            reason="full",
            rejected_by="mo",
            rejected_at=T0,
        ),
        AssessmentRecorded(
            case_id=c,
            assessment_id="a1",
            needs={"housing": SECRET},
            risk_factors=(SECRET,),
            narrative=SECRET,
            recorded_by="carl",
            recorded_at=T0,
        ),
        CasePlanProposed(
            case_id=c,
            plan_version=1,
            goals=(goal,),
            interventions=(act,),
            proposed_by="carl",
            proposed_at=T0,
        ),
        APPROVED,
        CasePlanReturned(case_id=c, plan_version=1, reason="r", returned_by="sue", returned_at=T0),
        AssessmentSignedOff(
            case_id=c,
            assessment_id="a1",
            approval_id="c1:assessment:a1",
            signed_off_by="del",
            on_behalf_of="sue",
            signed_off_at=T0,
        ),
        AssessmentReturned(
            case_id=c,
            assessment_id="a1",
            approval_id="c1:assessment:a1",
            reason="r",
            returned_by="sue",
            returned_at=T0,
        ),
        GoalProgressRecorded(
            case_id=c,
            goal_id="g1",
            progress=GoalProgress.ACHIEVED,
            note=SECRET,
            recorded_by="carl",
            recorded_at=T0,
        ),
        RiskLevelChanged(
            case_id=c,
            site="north",
            previous_level=None,
            risk_level=RiskLevel.HIGH,
            reason=SECRET,
            changed_by="carl",
            changed_at=T0,
        ),
        CRISIS.model_copy(update={"summary": SECRET}),
        CrisisResolved(
            case_id=c, crisis_id="x1", resolution=SECRET, resolved_by="ana", resolved_at=T0
        ),
        CaseNoteRecorded(case_id=c, note_id="n1", text=SECRET, recorded_by="carl", recorded_at=T0),
        ClosureRequested(
            case_id=c,
            outcome=CaseOutcome.GOALS_MET,
            evaluation=SECRET,
            requested_by="carl",
            requested_at=T0,
        ),
        ClosureReturned(case_id=c, reason="not yet", returned_by="sue", returned_at=T0),
        CaseClosed(case_id=c, outcome=CaseOutcome.GOALS_MET, approved_by="sue", closed_at=T0),
        CaseReopened(case_id=c, reason="relapse", reopened_by="sue", reopened_at=T0),
        BreakGlassUsed(
            case_id=c,
            client_id="cl-1",
            site="north",
            reason=SECRET,
            used_by="cora",
            used_by_sites=("south",),
            used_at=T0,
        ),
        InpatientAdmissionRecorded(
            case_id=c, admission_id="a1", admitted_at=T0, recorded_by="carl", recorded_at=T0
        ),
        InpatientDischargeRecorded(
            case_id=c, admission_id="a1", discharged_at=T0, recorded_by="carl", recorded_at=T0
        ),
    ]


def test_every_intake_and_cases_event_has_its_own_line_without_sensitive_text() -> None:
    events = every_event()
    # A client's data-protection record (holds, erasures: stream `erasure-<client>`) belongs
    # to no case or referral, and its events carry no personal data: not on the timeline.
    contracts = {
        m
        for m in registry().types()
        if m.service in {"intake", "cases"}
        and ({"case_id", "referral_id"} & set(m.model_fields) or m is ClientRegistered)
    }
    assert {type(e) for e in events} == contracts

    for event in events:
        line = describe(event)
        # the fallback is the class name in words; every event deserves a real sentence
        assert line != _sentence(type(event).__name__), type(event).__name__
        assert SECRET not in line, type(event).__name__
        env = envelope(event, "some-stream", 1)
        doc = entry(env, event)
        if isinstance(event, ClientRegistered):
            assert doc is None
        else:
            assert doc is not None
            assert doc["summary"] == line


def test_the_actor_is_the_events_by_field() -> None:
    assert actor(ASSIGNED) == "sam"
    assert actor(CRISIS) == "ana"
    assert (
        actor(DuplicateClientsFound(referral_id="r1", candidate_client_ids=(), found_at=T0)) is None
    )


def test_an_entry_keeps_every_field_and_makes_odd_keys_storable() -> None:
    event = AssessmentRecorded(
        case_id="c1",
        assessment_id="a1",
        needs={"housing.status": "sofa surfing", "$money": "debts"},
        narrative="Long narrative.",
        recorded_by="carl",
        recorded_at=T0,
    )
    env = envelope(event, "case-c1", 3)

    doc = entry(env, event)

    assert doc is not None
    # one entry per place in a stream, so that a timeline is read by exact `_id` lookups
    assert (doc["_id"], doc["event_id"]) == ("case-c1:0000000003", env.id)
    assert (doc["case_id"], doc["referral_id"]) == ("c1", None)
    assert (doc["stream"], doc["version"], doc["time"]) == ("case-c1", 3, T0)
    assert (doc["event"], doc["actor"]) == ("AssessmentRecorded", "carl")
    assert doc["summary"] == "Assessment recorded by carl"
    stored_keys = set(doc["detail"]["needs"])
    assert all("." not in k and not k.startswith("$") for k in stored_keys)
    assert doc["detail"]["narrative"] == "Long narrative."  # sensitive text is kept
    assert unescape_keys(doc["detail"])["needs"] == {
        "housing.status": "sofa surfing",
        "$money": "debts",
    }


def test_escaping_round_trips_nested_values() -> None:
    value = {"a.b": [{"$c": 1, "d": {"e.f.g": "h"}}], "plain": ("x", "y")}
    assert unescape_keys(escape_keys(value)) == {
        "a.b": [{"$c": 1, "d": {"e.f.g": "h"}}],
        "plain": ["x", "y"],
    }


def test_the_client_registry_is_not_on_any_timeline() -> None:
    event = ClientRegistered(
        client_id="k1",
        site="north",
        given_name="Alex",
        family_name="Morgan",
        date_of_birth=date(1990, 4, 12),
        match_key="morgan|alex|1990-04-12",
        registered_at=T0,
    )
    assert entry(envelope(event, "client-k1", 1), event) is None


def test_entries_merge_without_repeats_by_time_then_version() -> None:
    note = CaseNoteRecorded(
        case_id="c1", note_id="n1", text="x", recorded_by="carl", recorded_at=T0
    )
    second = T0 + timedelta(minutes=1)
    docs = [
        entry(envelope(note, "case-c1", 2, second, event_id="id-a"), note),
        # the same time: the version decides, not the id
        entry(envelope(ASSIGNED, "case-c1", 1, second, event_id="id-b"), ASSIGNED),
        entry(envelope(CRISIS, "case-c1", 3, T0 - timedelta(days=1)), CRISIS),
    ]
    both = [d for d in docs if d is not None]

    timeline = merged([*both, both[0]])  # one entry found by case id and by referral id

    assert [e.event for e in timeline] == [
        "CrisisDeclared",
        "CaseworkerAssigned",
        "CaseNoteRecorded",
    ]
    assert merged(reversed(both)) == timeline


def test_an_event_newer_than_this_code_still_gets_a_line() -> None:
    assert _sentence("CaseHandedOver") == "Case handed over"


def test_contact_events_shown_on_a_case_timeline_have_lines_without_sensitive_text() -> None:
    client = (Participant(kind=ParticipantKind.CLIENT),)
    c, k = "c1", "k1"
    refs = {"contact_id": k, "case_id": c, "client_id": "cl1", "site": "north"}
    shown = [
        ContactScheduled(
            **refs, medium=Medium.HOME_VISIT, participants=client, planned_for=T0,
            assigned_to="carl", purpose=SECRET, scheduled_by="carl", scheduled_at=T0,
        ),
        ContactLogged(
            **refs, medium=Medium.PHONE, occurred_at=T0, participants=client,
            outcome=Outcome.ATTEMPTED, attempt_reason=AttemptReason.VOICEMAIL, notes=SECRET,
            wellbeing=SECRET, logged_by="carl", logged_at=T0,
        ),
        ContactMissed(
            **refs, reason=MissReason.NO_SHOW, missed_at=T0, recorded_by="carl", recorded_at=T0
        ),
        ContactCancelled(
            **refs, reason=CancelReason.CLIENT_REQUEST, cancelled_by="carl", cancelled_at=T0
        ),
        ContactCorrected(
            **refs, correction_id="x1", kind=CorrectionKind.ADDENDUM, text=SECRET,
            corrected_by="carl", corrected_at=T0,
        ),
    ]  # fmt: skip
    assert {type(e) for e in shown} <= set(CONTACT_EVENTS_SHOWN)
    for event in shown:
        line = describe(event)
        assert line != _sentence(type(event).__name__), type(event).__name__
        assert SECRET not in line, type(event).__name__
        doc = entry(envelope(event, f"contact-{k}", 1), event)
        assert doc is not None
        assert doc["case_id"] == c
