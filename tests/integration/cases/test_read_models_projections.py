"""The cases read models on the real MongoDB-wire server, fed event by event as the consumer
groups would feed them: idempotent under redelivery, indifferent to the order of topics,
deaf to stale versions, and answering caseload, timeline and register queries."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from casework.access import AccessDenied, NotVisible
from casework.auth import Principal
from casework.clock import FixedClock
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
from casework.counters import is_counter
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.runtime import events_topic

from casework_cases.adapters.read_models import ReadModels, build_read_models
from support.envelopes import position_of

NOW = datetime(2026, 2, 25, 12, 0, tzinfo=UTC)  # Wednesday of 2026-W09


def at(day: str, time: str = "00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{time}:00+00:00")


def person(
    role: str, sub: str = "u", sites: tuple[str, ...] = ("north",), team: str | None = None
) -> Principal:
    return Principal(sub=sub, name=sub, roles=frozenset({role}), sites=frozenset(sites), team=team)


ADMIN = person("regional_admin", "ray", sites=())

# --- building event streams ---------------------------------------------------------------

Delivery = tuple[Envelope, DomainEvent]


@dataclass
class Stream:
    id: str
    service: str
    items: list[Delivery] = field(default_factory=list)

    def add(self, event: DomainEvent, when: datetime) -> Delivery:
        envelope = Envelope(
            type=event.type_name(),
            source=f"/casework/{self.service}",
            subject=self.id,
            time=when,
            data=event.model_dump(mode="json"),
            stream_version=len(self.items) + 1,
            site=getattr(event, "site", None),
            position=position_of(self.id, self.service),
        )
        self.items.append((envelope, event))
        return envelope, event


@dataclass
class Story:
    streams: dict[str, Stream] = field(default_factory=dict)

    def stream(self, stream_id: str, service: str) -> Stream:
        return self.streams.setdefault(stream_id, Stream(stream_id, service))

    def referral(self, referral_id: str) -> Stream:
        return self.stream(f"referral-{referral_id}", "intake")

    def case(self, case_id: str) -> Stream:
        return self.stream(f"case-{case_id}", "cases")

    def of(self, service: str) -> list[Delivery]:
        return [d for s in self.streams.values() if s.service == service for d in s.items]

    def intake_then_cases(self) -> list[Delivery]:
        return self.of("intake") + self.of("cases")

    def cases_then_intake(self) -> list[Delivery]:
        return self.of("cases") + self.of("intake")

    def interleaved(self, seed: int) -> list[Delivery]:
        """A random merge of all streams that keeps each stream's own order (as Kafka does)."""
        rng = random.Random(seed)
        queues = [list(s.items) for s in self.streams.values()]
        merged: list[Delivery] = []
        while any(queues):
            queue = rng.choice([q for q in queues if q])
            merged.append(queue.pop(0))
        return merged


async def deliver(
    read_models: ReadModels, deliveries: list[Delivery]
) -> list[tuple[str, str, bool]]:
    """Hand each event to every projection subscribed to its topic, as the consumer groups do;
    returns (projection, event, changed) for each hand-over."""
    results = []
    for envelope, event in deliveries:
        topic = events_topic(envelope.source.rsplit("/", 1)[-1])
        for projection in read_models.projections:
            if topic in projection.topics:
                changed = await projection.handle(envelope, event)
                results.append((projection.name, type(event).__name__, changed))
    return results


async def snapshot(database: AsyncDatabase[Document], read_models: ReadModels) -> dict[str, Any]:
    return {
        p.name: sorted(
            [dict(d) async for d in database[p.name].find({})], key=lambda d: str(d["_id"])
        )
        for p in read_models.projections
    }


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def read_models(database: AsyncDatabase[Document], clock: FixedClock) -> ReadModels:
    models = build_read_models(database, clock)
    for projection in models.projections:
        await projection.ensure_indexes()
    return models


# --- the story: three referrals, two cases, every event type ------------------------------


def client(given: str, family: str) -> ClientDetails:
    return ClientDetails(given_name=given, family_name=family, date_of_birth=date(1990, 4, 12))


def goal(goal_id: str, target: str) -> Goal:
    return Goal(
        goal_id=goal_id, description=f"Goal {goal_id}", target_date=date.fromisoformat(target)
    )


def plan(case_id: str, version: int, *goals: Goal, when: datetime) -> CasePlanProposed:
    visit = Intervention(intervention_id="i1", description="Weekly visit", responsible="carl")
    return CasePlanProposed(
        case_id=case_id,
        plan_version=version,
        goals=goals,
        interventions=(visit,),
        proposed_by="carl",
        proposed_at=when,
    )


def the_story() -> Story:
    story = Story()
    # R1 → C1: north, still open, in crisis, high risk
    r1, c1 = story.referral("R1"), story.case("C1")
    t = at("2026-02-16", "09:00")
    r1.add(
        ReferralReceived(
            referral_id="R1",
            site="north",
            client=client("Alex", "Morgan"),
            source=ReferralSource.GP,
            presenting_concerns="Low mood for three months.",
            urgency=Urgency.SOON,
            received_by="ivy",
            received_at=t,
        ),
        t,
    )
    t = at("2026-02-16", "09:01")
    r1.add(DuplicateClientsFound(referral_id="R1", candidate_client_ids=("K0",), found_at=t), t)
    t = at("2026-02-16", "09:05")
    r1.add(ClientMatchOverridden(referral_id="R1", overridden_by="ivy", overridden_at=t), t)
    t = at("2026-02-16", "10:00")
    r1.add(
        RiskScreened(
            referral_id="R1",
            site="north",
            answers=ScreeningAnswers(wish_to_be_dead=True, suicidal_thoughts=False),
            risk_level=RiskLevel.MEDIUM,
            rule="wish to be dead",
            screened_by="ivy",
            screened_at=t,
        ),
        t,
    )
    t = at("2026-02-17", "11:00")
    r1.add(
        ReferralAccepted(
            referral_id="R1",
            case_id="C1",
            client_id="K1",
            site="north",
            risk_level=RiskLevel.MEDIUM,
            accepted_by="ivy",
            accepted_at=t,
        ),
        t,
    )
    story.stream("client-K1", "intake").add(
        ClientRegistered(
            client_id="K1",
            site="north",
            given_name="Alex",
            family_name="Morgan",
            date_of_birth=date(1990, 4, 12),
            match_key="morgan|alex|1990-04-12",
            registered_at=t,
        ),
        t,
    )
    t = at("2026-02-17", "11:01")
    c1.add(
        CaseOpened(
            case_id="C1",
            client_id="K1",
            referral_id="R1",
            site="north",
            risk_level=RiskLevel.MEDIUM,
            opened_at=t,
            referral_received_at=at("2026-02-16", "09:00"),  # as the opening policy copies it
        ),
        t,
    )
    t = at("2026-02-18", "09:00")
    c1.add(
        CaseworkerAssigned(
            case_id="C1", caseworker_id="carl", team="t1", assigned_by="sam", assigned_at=t
        ),
        t,
    )
    t = at("2026-02-18", "15:00")
    c1.add(
        AssessmentRecorded(
            case_id="C1",
            assessment_id="A1",
            needs={"housing.status": "sofa surfing", "$debt": "rent arrears"},
            narrative="Isolated since losing work.",
            recorded_by="carl",
            recorded_at=t,
        ),
        t,
    )
    t = at("2026-02-19", "10:00")
    c1.add(plan("C1", 1, goal("g1", "2026-03-15"), when=t), t)
    t = at("2026-02-19", "12:00")
    c1.add(
        CasePlanReturned(
            case_id="C1", plan_version=1, reason="Add a goal", returned_by="sue", returned_at=t
        ),
        t,
    )
    t = at("2026-02-20", "10:00")
    c1.add(plan("C1", 2, goal("g1", "2026-03-15"), goal("g2", "2026-03-05"), when=t), t)
    t = at("2026-02-20", "12:00")
    c1.add(CasePlanApproved(case_id="C1", plan_version=2, approved_by="sue", approved_at=t), t)
    t = at("2026-02-23", "10:00")
    c1.add(
        GoalProgressRecorded(
            case_id="C1",
            goal_id="g2",
            progress=GoalProgress.ACHIEVED,
            note="Signed up.",
            recorded_by="carl",
            recorded_at=t,
        ),
        t,
    )
    t = at("2026-02-24", "09:00")
    c1.add(
        RiskLevelChanged(
            case_id="C1",
            site="north",
            previous_level=RiskLevel.MEDIUM,
            risk_level=RiskLevel.HIGH,
            reason="Stopped eating.",
            changed_by="carl",
            changed_at=t,
        ),
        t,
    )
    t = at("2026-02-24", "22:00")
    c1.add(
        CrisisDeclared(
            case_id="C1",
            crisis_id="X1",
            site="north",
            caseworker_id="carl",
            team="t1",
            risk_level=RiskLevel.IMMINENT,
            summary="Called saying goodbye.",
            declared_by="ana",
            declared_at=t,
        ),
        t,
    )
    t = at("2026-02-24", "22:30")
    c1.add(
        CaseNoteRecorded(
            case_id="C1",
            note_id="N1",
            text="Police welfare check.",
            recorded_by="ana",
            recorded_at=t,
        ),
        t,
    )
    t = at("2026-02-25", "08:00")
    c1.add(
        CaseTransferRequested(
            case_id="C1",
            from_site="north",
            to_site="south",
            reason="Moving",
            requested_by="carl",
            requested_at=t,
        ),
        t,
    )
    t = at("2026-02-25", "09:00")
    c1.add(
        CaseTransferRejected(
            case_id="C1",
            from_site="north",
            to_site="south",
            reason="Not during a crisis",
            rejected_by="mo",
            rejected_at=t,
        ),
        t,
    )
    t = at("2026-02-25", "10:00")
    c1.add(
        AssessmentSignedOff(  # supervision's approval (late, by a delegate), on the case
            case_id="C1",
            assessment_id="A1",
            approval_id="C1:assessment:A1",
            signed_off_by="del",
            on_behalf_of="sue",
            signed_off_at=t,
        ),
        t,
    )

    # R2 → C2: closed, reopened, transferred to south (unassigned there)
    r2, c2 = story.referral("R2"), story.case("C2")
    t = at("2026-02-19", "08:00")
    r2.add(
        ReferralReceived(
            referral_id="R2",
            site="north",
            client=client("Sam", "Lee"),
            source=ReferralSource.SELF,
            presenting_concerns="Panic attacks.",
            urgency=Urgency.ROUTINE,
            received_by="ivy",
            received_at=t,
        ),
        t,
    )
    t = at("2026-02-19", "08:30")
    r2.add(
        ClientMatchConfirmed(referral_id="R2", client_id="K2", confirmed_by="ivy", confirmed_at=t),
        t,
    )
    t = at("2026-02-19", "10:00")
    r2.add(
        ReferralAccepted(
            referral_id="R2",
            case_id="C2",
            client_id="K2",
            site="north",
            accepted_by="ivy",
            accepted_at=t,
            new_client=False,
        ),
        t,
    )
    steps: list[tuple[str, DomainEvent]] = [
        (
            "2026-02-19T10:01",
            CaseOpened(
                case_id="C2",
                client_id="K2",
                referral_id="R2",
                site="north",
                risk_level=RiskLevel.LOW,
                opened_at=at("2026-02-19", "10:01"),
                referral_received_at=at("2026-02-19", "08:00"),
                client_name="Sam Lee",
            ),
        ),
        (
            "2026-02-20T08:00",
            CaseworkerAssigned(
                case_id="C2",
                caseworker_id="carl",
                team="t1",
                assigned_by="sam",
                assigned_at=at("2026-02-20", "08:00"),
            ),
        ),
        (
            "2026-02-20T12:00",
            AssessmentRecorded(
                case_id="C2",
                assessment_id="A2",
                needs={},
                narrative="...",
                recorded_by="carl",
                recorded_at=at("2026-02-20", "12:00"),
            ),
        ),
        (
            "2026-02-20T12:20",
            AssessmentReturned(  # supervision's decision, carried out on the case
                case_id="C2",
                assessment_id="A2",
                approval_id="C2:assessment:A2",
                reason="Name the protective factors",
                returned_by="sue",
                returned_at=at("2026-02-20", "12:20"),
            ),
        ),
        (
            "2026-02-20T13:00",
            plan("C2", 1, goal("g1", "2026-04-01"), when=at("2026-02-20", "13:00")),
        ),
        (
            "2026-02-20T14:00",
            CasePlanApproved(
                case_id="C2",
                plan_version=1,
                approved_by="sue",
                approved_at=at("2026-02-20", "14:00"),
            ),
        ),
        (
            "2026-02-20T20:00",
            CrisisDeclared(
                case_id="C2",
                crisis_id="X2",
                site="north",
                risk_level=RiskLevel.HIGH,
                summary="...",
                declared_by="ana",
                declared_at=at("2026-02-20", "20:00"),
            ),
        ),
        (
            "2026-02-21T08:00",
            CrisisResolved(
                case_id="C2",
                crisis_id="X2",
                resolution="...",
                resolved_by="ana",
                resolved_at=at("2026-02-21", "08:00"),
            ),
        ),
        (
            "2026-02-21T09:00",
            ClosureRequested(
                case_id="C2",
                outcome=CaseOutcome.GOALS_MET,
                evaluation="...",
                requested_by="carl",
                requested_at=at("2026-02-21", "09:00"),
            ),
        ),
        (
            "2026-02-21T10:00",
            ClosureReturned(
                case_id="C2",
                reason="Too soon",
                returned_by="sue",
                returned_at=at("2026-02-21", "10:00"),
            ),
        ),
        (
            "2026-02-21T11:00",
            ClosureRequested(
                case_id="C2",
                outcome=CaseOutcome.GOALS_MET,
                evaluation="...",
                requested_by="carl",
                requested_at=at("2026-02-21", "11:00"),
            ),
        ),
        (
            "2026-02-21T12:00",
            CaseClosed(
                case_id="C2",
                outcome=CaseOutcome.GOALS_MET,
                approved_by="sue",
                closed_at=at("2026-02-21", "12:00"),
            ),
        ),
        (
            "2026-02-22T09:00",
            CaseReopened(
                case_id="C2",
                reason="Relapse",
                reopened_by="sue",
                reopened_at=at("2026-02-22", "09:00"),
            ),
        ),
        (
            "2026-02-22T09:20",
            InpatientAdmissionRecorded(
                case_id="C2",
                admission_id="A2",
                admitted_at=at("2026-02-22", "09:10"),
                recorded_by="carl",
                recorded_at=at("2026-02-22", "09:20"),
            ),
        ),
        (
            "2026-02-22T09:40",
            InpatientDischargeRecorded(
                case_id="C2",
                admission_id="A2",
                discharged_at=at("2026-02-22", "09:30"),
                recorded_by="carl",
                recorded_at=at("2026-02-22", "09:40"),
            ),
        ),
        (
            "2026-02-22T10:00",
            CaseTransferRequested(
                case_id="C2",
                from_site="north",
                to_site="south",
                reason="Moved",
                requested_by="sue",
                requested_at=at("2026-02-22", "10:00"),
            ),
        ),
        (
            "2026-02-22T11:00",
            CaseTransferAccepted(
                case_id="C2",
                from_site="north",
                to_site="south",
                accepted_by="mo",
                accepted_at=at("2026-02-22", "11:00"),
            ),
        ),
        (
            "2026-02-22T23:00",
            BreakGlassUsed(
                case_id="C2",
                client_id="CL1",
                site="south",
                reason="Crisis line call",
                used_by="cris",
                used_by_sites=("east",),
                used_at=at("2026-02-22", "23:00"),
            ),
        ),
    ]
    for when, event in steps:
        c2.add(event, datetime.fromisoformat(when).replace(tzinfo=UTC))

    # R3: declined
    r3 = story.referral("R3")
    t = at("2026-02-23", "09:00")
    r3.add(
        ReferralReceived(
            referral_id="R3",
            site="north",
            client=client("Jo", "Bloggs"),
            source=ReferralSource.POLICE,
            presenting_concerns="...",
            urgency=Urgency.URGENT,
            received_by="ivy",
            received_at=t,
        ),
        t,
    )
    t = at("2026-02-23", "15:00")
    r3.add(
        ReferralDeclined(
            referral_id="R3",
            site="north",
            reason="Out of area",
            signposted_to="South team",
            declined_by="ivy",
            declined_at=t,
        ),
        t,
    )
    return story


STORY = the_story()


def test_the_story_has_every_intake_and_cases_event() -> None:
    told = {type(event) for _, event in STORY.intake_then_cases()}
    # a client's data-protection record (holds, erasures) is about no case or referral: the
    # cases read models do not read it (intake's `erasure_proofs` does)
    assert told == {
        m
        for m in registry().types()
        if m.service in {"intake", "cases"}
        and ({"case_id", "referral_id"} & set(m.model_fields) or m.__name__ == "ClientRegistered")
    }


# --- idempotency --------------------------------------------------------------------------


async def test_redelivering_every_event_changes_nothing(
    database: AsyncDatabase[Document], read_models: ReadModels
) -> None:
    first = await deliver(read_models, STORY.intake_then_cases())

    # every event counted where it belongs: summaries of its own kind, the timeline unless
    # it is the client registry's
    for projection, event, changed in first:
        if projection == "referral_summaries" or projection == "timeline":
            assert changed is (event != "ClientRegistered"), (projection, event)
        else:
            assert changed is True, (projection, event)
    before = await snapshot(database, read_models)
    entities = {k: [d for d in v if not is_counter(d)] for k, v in before.items()}
    assert {k: len(v) for k, v in entities.items()} == {
        "case_summaries": 2,
        "referral_summaries": 3,
        "timeline": len(STORY.intake_then_cases()) - 1,
    }
    # beside them, the register's counters: per site (and week) and partition
    assert any(is_counter(d) for d in before["case_summaries"])
    assert any(is_counter(d) for d in before["referral_summaries"])

    # redelivered: in order, and again in any order
    again = await deliver(read_models, STORY.intake_then_cases())
    shuffled = STORY.intake_then_cases()
    random.Random(7).shuffle(shuffled)
    again += await deliver(read_models, shuffled)

    assert [r for r in again if r[2]] == []
    assert await snapshot(database, read_models) == before


async def test_a_stale_lower_version_is_ignored(
    database: AsyncDatabase[Document], read_models: ReadModels
) -> None:
    c1 = STORY.streams["case-C1"].items
    await deliver(read_models, STORY.of("intake") + c1[:9])  # up to the risk change to high
    before = await snapshot(database, read_models)
    case = await read_models.case_summaries.get("C1")
    assert case is not None
    assert case["risk_level"] == "high"

    # an event this stream already went past, under another id (a replay with new ids)
    envelope, _ = c1[4]
    stale = RiskLevelChanged(
        case_id="C1",
        site="north",
        previous_level=RiskLevel.HIGH,
        risk_level=RiskLevel.LOW,
        reason="...",
        changed_by="carl",
        changed_at=NOW,
    )
    stale_envelope = Envelope(
        type=stale.type_name(),
        source=envelope.source,
        subject=envelope.subject,
        time=NOW,
        data=stale.model_dump(mode="json"),
        stream_version=5,
    )
    assert await read_models.case_summaries.handle(stale_envelope, stale) is False

    old_envelope, old_referral = STORY.streams["referral-R1"].items[0]
    renamed = old_referral.model_copy(update={"site": "south"})
    replayed = Envelope(
        type=old_envelope.type,
        source=old_envelope.source,
        subject=old_envelope.subject,
        time=NOW,
        data=renamed.model_dump(mode="json"),
        stream_version=1,
    )
    assert await read_models.referral_summaries.handle(replayed, renamed) is False

    after = await snapshot(database, read_models)
    assert after["case_summaries"] == before["case_summaries"]
    assert after["referral_summaries"] == before["referral_summaries"]

    # the next version still applies
    assert await read_models.case_summaries.handle(*c1[9]) is True
    case = await read_models.case_summaries.get("C1")
    assert case is not None
    assert case["crisis_open"] is True


# --- order across topics ------------------------------------------------------------------


async def answers(read_models: ReadModels) -> dict[str, Any]:
    return {
        "timeline C1": await read_models.case_timeline("C1", ADMIN),
        "timeline C2": await read_models.case_timeline("C2", ADMIN),
        "register north": await read_models.site_register("north", ADMIN, 2),
        "register south": await read_models.site_register("south", ADMIN, 2),
        "caseload carl": await read_models.caseload("carl", ADMIN),
    }


async def drop(database: AsyncDatabase[Document], read_models: ReadModels) -> None:
    for projection in read_models.projections:
        await database.drop_collection(projection.name)


async def test_intake_and_cases_events_in_either_order_give_the_same_answers(
    database: AsyncDatabase[Document], read_models: ReadModels
) -> None:
    orders = {
        "intake first": STORY.intake_then_cases(),
        "cases first": STORY.cases_then_intake(),
        **{f"interleaved {seed}": STORY.interleaved(seed) for seed in (1, 2, 3)},
    }
    results = {}
    for name, order in orders.items():
        await drop(database, read_models)
        await deliver(read_models, order)
        results[name] = await answers(read_models)

    expected = results.pop("intake first")
    for name, got in results.items():
        assert got == expected, name
    # and the answers are the story's
    assert len(expected["timeline C1"].entries) == 5 + 14
    assert expected["register north"].cases_by_phase["active"] == 1


async def test_a_case_opened_before_its_referral_arrives_has_its_timeline_completed_later(
    read_models: ReadModels,
) -> None:
    await deliver(read_models, STORY.of("cases"))
    early = await read_models.case_timeline("C1", ADMIN)
    assert [e.stream for e in early.entries] == ["case-C1"] * 14

    await deliver(read_models, STORY.of("intake"))
    late = await read_models.case_timeline("C1", ADMIN)
    assert [e.event for e in late.entries][:6] == [
        "ReferralReceived",
        "DuplicateClientsFound",
        "ClientMatchOverridden",
        "RiskScreened",
        "ReferralAccepted",
        "CaseOpened",
    ]


# --- what the queries answer --------------------------------------------------------------


async def test_the_timeline_reads_every_event_of_the_case_in_order(read_models: ReadModels) -> None:
    await deliver(read_models, STORY.cases_then_intake())

    timeline = await read_models.case_timeline("C1", ADMIN)

    assert timeline.referral_id == "R1"
    assert [e.event for e in timeline.entries] == [
        "ReferralReceived",
        "DuplicateClientsFound",
        "ClientMatchOverridden",
        "RiskScreened",
        "ReferralAccepted",
        "CaseOpened",
        "CaseworkerAssigned",
        "AssessmentRecorded",
        "CasePlanProposed",
        "CasePlanReturned",
        "CasePlanProposed",
        "CasePlanApproved",
        "GoalProgressRecorded",
        "RiskLevelChanged",
        "CrisisDeclared",
        "CaseNoteRecorded",
        "CaseTransferRequested",
        "CaseTransferRejected",
        "AssessmentSignedOff",
    ]
    times = [e.time for e in timeline.entries]
    assert times == sorted(times)
    lines = {e.summary for e in timeline.entries}
    assert "Caseworker carl assigned (team t1) by sam" in lines
    assert "Plan v2 approved by sue" in lines
    assert "Assessment signed off by del for sue" in lines
    assert "Crisis declared by ana: risk imminent" in lines
    by_event = {e.event: e for e in timeline.entries}
    assessment = by_event["AssessmentRecorded"]
    assert assessment.actor == "carl"
    assert assessment.detail["narrative"] == "Isolated since losing work."
    assert assessment.detail["needs"] == {"housing.status": "sofa surfing", "$debt": "rent arrears"}
    assert (
        by_event["ReferralReceived"].detail["presenting_concerns"] == "Low mood for three months."
    )
    assert by_event["ReferralReceived"].stream == "referral-R1"
    assert by_event["CaseOpened"].version == 1


async def feed(projection: Any, deliveries: list[Delivery]) -> None:
    """Hand events to one projection only (as if the others' consumer groups lagged)."""
    for envelope, event in deliveries:
        if events_topic(envelope.source.rsplit("/", 1)[-1]) in projection.topics:
            await projection.handle(envelope, event)


async def test_the_timeline_does_not_wait_for_the_summaries_to_catch_up(
    read_models: ReadModels,
) -> None:
    # the timeline has read everything; the case summary only the first five events of the
    # case, and the referral summary nothing at all
    await feed(read_models.timeline, STORY.intake_then_cases())
    await feed(read_models.case_summaries, STORY.streams["case-C1"].items[:5])

    timeline = await read_models.case_timeline("C1", ADMIN)

    assert len(timeline.entries) == 5 + 14
    assert [e.version for e in timeline.entries if e.stream == "case-C1"] == list(range(1, 15))


async def test_an_event_the_timeline_skipped_leaves_a_gap_not_a_cut(
    read_models: ReadModels,
) -> None:
    # version 3 of the case is an event type this code does not know: the runner skips it
    everything = STORY.intake_then_cases()
    skipped = STORY.streams["case-C1"].items[2]
    await deliver(read_models, [d for d in everything if d is not skipped])

    timeline = await read_models.case_timeline("C1", ADMIN)

    versions = [e.version for e in timeline.entries if e.stream == "case-C1"]
    assert versions == [1, 2, *range(4, 15)]


async def test_the_timeline_is_for_those_who_reach_the_case(read_models: ReadModels) -> None:
    await deliver(read_models, STORY.intake_then_cases())

    for allowed in [
        person("caseworker", "carl", team="t1"),
        person("caseworker", "cara", team="t1"),
        person("supervisor", "sue", team="t1"),
        person("crisis_worker", "ana"),
        person("site_manager", "mia"),
    ]:
        assert (await read_models.case_timeline("C1", allowed)).entries, allowed
    for refused in [
        person("caseworker", "cole", team="t2"),
        person("supervisor", "sid", team="t2"),
        person("site_manager", "mo", sites=("south",)),
        person("crisis_worker", "al", sites=("south",)),
        person("intake_worker", "ivy"),
    ]:
        with pytest.raises(NotVisible):
            await read_models.case_timeline("C1", refused)
    with pytest.raises(NotVisible):
        await read_models.case_timeline("no-such-case", ADMIN)
    # C2 moved to south: north's manager no longer reaches it, south's does
    with pytest.raises(NotVisible):
        await read_models.case_timeline("C2", person("site_manager", "mia"))
    assert await read_models.case_timeline("C2", person("site_manager", "mo", sites=("south",)))


async def test_the_register_counts_the_story(read_models: ReadModels) -> None:
    await deliver(read_models, STORY.interleaved(11))

    north = await read_models.site_register("north", ADMIN, 2)

    assert north.cases_by_phase == {
        "assessment": 0,
        "planning": 0,
        "active": 1,
        "review": 0,
        "closed": 0,
    }  # C2 went to south
    assert north.cases_by_risk == {"low": 0, "medium": 0, "high": 1, "imminent": 0, "unrated": 0}
    assert north.open_crises == 1
    crises = await read_models.case_summaries.open_crises_at("north")
    assert [c["_id"] for c in crises] == ["C1"]
    assert await read_models.case_summaries.open_crises_at("south") == []
    assert [(w.week, w.received, w.accepted, w.declined) for w in north.referrals_per_week] == [
        ("2026-W08", 2, 2, 0),
        ("2026-W09", 1, 0, 1),
    ]
    # R1 accepted after 26 h, R2 after 2 h (read from histograms: within 2.2%)
    assert north.referral_to_acceptance.model_dump() == {
        "count": 2,
        "median_hours": pytest.approx(14.0, rel=0.022),
        "p90_hours": pytest.approx(23.6, rel=0.022),
    }
    # C1 first assigned 48 h after R1 arrived, C2 24 h after R2 (then transferred away)
    assert north.referral_to_first_assignment.model_dump() == {
        "count": 2,
        "median_hours": pytest.approx(36.0, rel=0.022),
        "p90_hours": pytest.approx(45.6, rel=0.022),
    }

    south = await read_models.site_register("south", ADMIN, 2)
    assert south.cases_by_phase["assessment"] == 1
    assert south.cases_by_risk["low"] == 1
    assert south.referral_to_first_assignment.count == 0

    # one week: only this week's referral and nothing accepted in it
    this_week = await read_models.site_register("north", ADMIN, 1)
    assert [(w.week, w.received, w.declined) for w in this_week.referrals_per_week] == [
        ("2026-W09", 1, 1)
    ]
    assert this_week.referral_to_acceptance.count == 0


async def test_the_register_times_a_referral_decided_before_the_window_by_its_case(
    read_models: ReadModels, clock: FixedClock
) -> None:
    story = Story()
    received = at("2026-01-05", "09:00")
    story.referral("R9").add(
        ReferralReceived(
            referral_id="R9",
            site="north",
            client=client("Old", "Referral"),
            source=ReferralSource.GP,
            presenting_concerns="...",
            urgency=Urgency.ROUTINE,
            received_by="ivy",
            received_at=received,
        ),
        received,
    )
    accepted = at("2026-01-06", "09:00")
    story.referral("R9").add(
        ReferralAccepted(
            referral_id="R9",
            case_id="C9",
            client_id="K9",
            site="north",
            accepted_by="ivy",
            accepted_at=accepted,
        ),
        accepted,
    )
    # the case's opening repeats the arrival time (the opening policy copies it from the
    # acceptance); its first assignment is this week
    story.case("C9").add(
        CaseOpened(
            case_id="C9",
            client_id="K9",
            referral_id="R9",
            site="north",
            opened_at=accepted,
            referral_received_at=received,
        ),
        accepted,
    )
    assigned = at("2026-02-24", "09:00")
    story.case("C9").add(
        CaseworkerAssigned(
            case_id="C9", caseworker_id="carl", team="t1", assigned_by="sam", assigned_at=assigned
        ),
        assigned,
    )
    await deliver(read_models, story.intake_then_cases())

    register = await read_models.site_register("north", ADMIN, 2)

    assert register.referral_to_first_assignment.count == 1
    assert register.referral_to_first_assignment.median_hours == pytest.approx(
        (assigned - received) / timedelta(hours=1), rel=0.022
    )
    assert register.referral_to_acceptance.count == 0  # accepted long before the window


async def test_the_register_is_for_the_sites_own_managers(read_models: ReadModels) -> None:
    with pytest.raises(AccessDenied):
        await read_models.site_register("south", person("site_manager", "mia"), 12)
    register = await read_models.site_register("north", person("site_manager", "mia"), 12)
    assert len(register.referrals_per_week) == 12


def caseload_case(
    story: Story,
    case_id: str,
    *,
    worker: str = "carl",
    team: str = "t1",
    risk: RiskLevel | None = None,
    due: str | None = None,
    crisis: bool = False,
    closed: bool = False,
) -> None:
    stream = story.case(case_id)
    t = at("2026-02-01", "09:00")
    opened = CaseOpened(
        case_id=case_id,
        client_id=f"K-{case_id}",
        referral_id=f"R-{case_id}",
        site="north",
        risk_level=risk,
        opened_at=t,
        client_name=f"Client {case_id}",
    )
    events: list[DomainEvent] = [
        opened,
        CaseworkerAssigned(
            case_id=case_id, caseworker_id=worker, team=team, assigned_by="sam", assigned_at=t
        ),
    ]
    if due or closed:
        events += [
            AssessmentRecorded(
                case_id=case_id,
                assessment_id="A",
                needs={},
                narrative="...",
                recorded_by=worker,
                recorded_at=t,
            ),
            plan(case_id, 1, goal("g1", due or "2026-12-31"), when=t),
            CasePlanApproved(case_id=case_id, plan_version=1, approved_by="sue", approved_at=t),
        ]
    if crisis:
        events.append(
            CrisisDeclared(
                case_id=case_id,
                crisis_id=f"X-{case_id}",
                site="north",
                risk_level=RiskLevel.IMMINENT,
                summary="...",
                declared_by="ana",
                declared_at=t,
            )
        )
    if closed:
        events += [
            ClosureRequested(
                case_id=case_id,
                outcome=CaseOutcome.GOALS_MET,
                evaluation="...",
                requested_by=worker,
                requested_at=t,
            ),
            CaseClosed(
                case_id=case_id, outcome=CaseOutcome.GOALS_MET, approved_by="sue", closed_at=t
            ),
        ]
    for n, event in enumerate(events):
        stream.add(event, t + timedelta(minutes=n))


@pytest.fixture
async def caseloads(read_models: ReadModels) -> ReadModels:
    story = Story()
    caseload_case(story, "low-soon", risk=RiskLevel.LOW, due="2026-03-01")
    caseload_case(story, "high-late", risk=RiskLevel.HIGH, due="2026-04-01")
    caseload_case(story, "medium-crisis", risk=RiskLevel.MEDIUM, crisis=True)
    caseload_case(story, "high-soon", risk=RiskLevel.HIGH, due="2026-03-10")
    caseload_case(story, "closed", risk=RiskLevel.IMMINENT, closed=True)
    caseload_case(story, "other-team", team="t9")
    caseload_case(story, "caras", worker="cara", risk=RiskLevel.IMMINENT)
    await deliver(read_models, story.cases_then_intake())
    return read_models


def ids(caseload: Any) -> list[str]:
    return [c.case_id for c in caseload.cases]


async def test_a_caseload_is_the_workers_open_cases_most_pressing_first(
    caseloads: ReadModels,
) -> None:
    carl = person("caseworker", "carl", team="t1")

    caseload = await caseloads.caseload("carl", carl)

    assert ids(caseload) == ["medium-crisis", "high-soon", "high-late", "low-soon", "other-team"]
    first = caseload.cases[0]
    assert (first.crisis_open, first.phase, first.client_name) == (
        True,
        "assessment",
        "Client medium-crisis",
    )
    second = caseload.cases[1]
    assert (second.phase, second.plan_status, second.next_activity_due) == (
        "active",
        "approved",
        date(2026, 3, 10),
    )
    assert second.first_assigned_at == at("2026-02-01", "09:00")
    assert second.last_activity_at == at("2026-02-01", "09:04")


async def test_a_caseload_comes_in_pages(caseloads: ReadModels) -> None:
    carl = person("caseworker", "carl", team="t1")

    first = await caseloads.caseload("carl", carl, limit=2)
    second = await caseloads.caseload("carl", carl, limit=2, after=first.next_after)
    last = await caseloads.caseload("carl", carl, limit=2, after=second.next_after)

    assert (ids(first), first.next_after) == (["medium-crisis", "high-soon"], "high-soon")
    assert (ids(second), second.next_after) == (["high-late", "low-soon"], "low-soon")
    assert (ids(last), last.next_after) == (["other-team"], None)
    assert ids(await caseloads.caseload("carl", carl, after="not-in-it")) == []


async def test_a_case_moves_between_caseloads_and_register_counts(read_models: ReadModels) -> None:
    story = Story()
    stream = story.case("M1")
    t = at("2026-02-23", "09:00")
    steps: list[DomainEvent] = [
        CaseOpened(
            case_id="M1",
            client_id="K",
            referral_id="RM1",
            site="north",
            risk_level=RiskLevel.LOW,
            opened_at=t,
            referral_received_at=t - timedelta(hours=5),
        ),
        CaseworkerAssigned(
            case_id="M1", caseworker_id="carl", team="t1", assigned_by="sam", assigned_at=t
        ),
    ]
    for n, event in enumerate(steps):
        stream.add(event, t + timedelta(minutes=n))
    await deliver(read_models, story.of("cases"))
    carl, cara = person("caseworker", "carl", team="t1"), person("caseworker", "cara", team="t1")
    assert ids(await read_models.caseload("carl", carl)) == ["M1"]
    north = await read_models.site_register("north", ADMIN, 1)
    assert (north.cases_by_phase["assessment"], north.cases_by_risk["low"]) == (1, 1)
    assert north.referral_to_first_assignment.count == 1

    more: list[DomainEvent] = [
        CaseworkerAssigned(
            case_id="M1",
            caseworker_id="cara",
            team="t1",
            assigned_by="sam",
            assigned_at=t,
            previous_caseworker_id="carl",
        ),
        RiskLevelChanged(
            case_id="M1",
            site="north",
            previous_level=RiskLevel.LOW,
            risk_level=RiskLevel.HIGH,
            reason="...",
            changed_by="cara",
            changed_at=t,
        ),
        AssessmentRecorded(
            case_id="M1",
            assessment_id="A",
            needs={},
            narrative="...",
            recorded_by="cara",
            recorded_at=t,
        ),
    ]
    for n, event in enumerate(more, start=len(steps)):
        stream.add(event, t + timedelta(minutes=n))
    await deliver(read_models, story.of("cases"))  # the first two again, then the rest

    assert ids(await read_models.caseload("carl", carl)) == []
    assert ids(await read_models.caseload("cara", cara)) == ["M1"]
    north = await read_models.site_register("north", ADMIN, 1)
    assert north.cases_by_phase == {
        "assessment": 0,
        "planning": 1,
        "active": 0,
        "review": 0,
        "closed": 0,
    }
    assert (north.cases_by_risk["low"], north.cases_by_risk["high"]) == (0, 1)
    assert north.referral_to_first_assignment.count == 1  # the first assignment only

    closing: list[DomainEvent] = [
        ClosureRequested(
            case_id="M1",
            outcome=CaseOutcome.GOALS_MET,
            evaluation="...",
            requested_by="cara",
            requested_at=t,
        ),
        CaseClosed(case_id="M1", outcome=CaseOutcome.GOALS_MET, approved_by="sue", closed_at=t),
    ]
    for n, event in enumerate(closing, start=len(steps) + len(more)):
        stream.add(event, t + timedelta(minutes=n))
    await deliver(read_models, story.of("cases"))

    assert ids(await read_models.caseload("cara", cara)) == []
    north = await read_models.site_register("north", ADMIN, 1)
    assert (north.cases_by_phase["closed"], north.cases_by_phase["planning"]) == (1, 0)
    assert sum(north.cases_by_risk.values()) == 0  # closed cases have no risk count


async def test_others_see_the_cases_of_a_caseload_they_reach(caseloads: ReadModels) -> None:
    everything = ["medium-crisis", "high-soon", "high-late", "low-soon", "other-team"]
    assert ids(await caseloads.caseload("carl", ADMIN)) == everything
    assert ids(await caseloads.caseload("carl", person("site_manager", "mia"))) == everything
    # a supervisor sees only the team's cases
    supervisor = person("supervisor", "sue", team="t1")
    assert ids(await caseloads.caseload("carl", supervisor)) == everything[:-1]
    assert (
        ids(await caseloads.caseload("carl", person("site_manager", "mo", sites=("south",)))) == []
    )


@pytest.mark.parametrize(
    "principal",
    [
        person("caseworker", "cara", team="t1"),  # a teammate
        person("crisis_worker", "ana"),
        person("intake_worker", "ivy"),
    ],
)
async def test_a_caseload_is_refused_to_others(caseloads: ReadModels, principal: Principal) -> None:
    with pytest.raises(AccessDenied):
        await caseloads.caseload("carl", principal)


async def test_a_caseload_names_clients_from_their_referral_when_the_case_does_not(
    read_models: ReadModels,
) -> None:
    # C1 opens without a client name; the referral knows it, whichever arrived first
    await deliver(read_models, STORY.cases_then_intake())
    caseload = await read_models.caseload("carl", ADMIN)
    assert [(c.case_id, c.client_name) for c in caseload.cases] == [("C1", "Alex Morgan")]
