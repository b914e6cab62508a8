"""A month of a small team, simulated on one fake clock over the real Kafka broker and
MongoDB-wire server, and the supervisor board checked against an outside count of the topics.

The cases, contacts and supervision services run in-process on one namespace and share one
`FixedClock`; the directory is seeded through supervision's own store (its relay publishes it
and every service's `KnownStaff` projects it, as in production). A supervisor (sue) and three
caseworkers (carl, cleo, and cody, newly qualified: weekly supervision) hold a handful of
cases of mixed risk. Day by day, with a seeded random generator: cases are opened and
assigned, risks change, contacts are logged by the case's worker or not (so the contacts
service's deadlines raise `ContactDueSoon`/`ContactOverdue`), a crisis is declared and
resolved and its 72-hour follow-up missed, assessments and plans are requested and approved
by the supervisor (the cases service acting on the approvals' events), a closure is signed
off, reviews and supervision fall due and overdue on supervision's cadence deadlines, and
sessions are scheduled, prepared (agenda built from the read models), reviewed, held with
action items, acknowledged; one item is done, one falls overdue. Each day the clock moves one
day, every service's scheduler fires what fell due (`fire_due()`), the day's work is done,
and the test waits until nothing is in flight (`support.quiescence`: outboxes empty, every
consumer group committed to the end of its topics).

Invariant tried, at several points of the month: the board (`BoardQueries.board`, what
`GET /board` answers) equals, worker by worker and in its totals, what an outside consumer
counts from the topics alone — a plain `AIOKafkaConsumer` reading the three topics from the
beginning, parsing the CloudEvents headers and the JSON values (no service class), each stream
folded in version order, duplicates dropped. Also from the topics: every open obligation
past its due time was raised overdue exactly once, and every open case past its review's due
time had its `CaseReviewOverdue` raised for that due time.

`CASEWORK_MONTH_DAYS` (default 30) and `CASEWORK_MONTH_SEED` (default 10) size and seed a
longer or different run; `CASEWORK_MONTH_CASES` (default 8, at least 6) the caseload.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from casework.auth import Principal
from casework.clock import FixedClock
from casework.contracts.cases import CaseOutcome, Goal
from casework.contracts.common import RiskLevel
from casework.contracts.contacts import (
    AttemptReason,
    Medium,
    Outcome,
    Participant,
    ParticipantKind,
)
from casework.contracts.supervision import SessionKind
from casework.eventstore import CommitContext
from casework.runtime import ServiceRuntime, events_topic, topic_prefix

from casework_cases.application.handlers import Cases
from casework_cases.bootstrap import build as build_cases
from casework_cases.domain.commands import (
    AssignCaseworker,
    ChangeRiskLevel,
    DeclareCrisis,
    OpenCase,
    ProposePlan,
    RecordAssessment,
    RequestClosure,
    ResolveCrisis,
)
from casework_contacts.application.handlers import Contacts
from casework_contacts.bootstrap import build as build_contacts
from casework_contacts.domain.commands import LogContact
from casework_supervision.adapters.board import SupervisorBoard
from casework_supervision.bootstrap import Wired as SupervisionWired
from casework_supervision.bootstrap import build as build_supervision
from support.directory import seed_directory, staff
from support.namespaced import dropped_afterwards, namespaced_settings
from support.quiescence import Quiescence

DAYS = max(20, int(os.environ.get("CASEWORK_MONTH_DAYS", "30")))
SEED = int(os.environ.get("CASEWORK_MONTH_SEED", "10"))
CASES = max(6, int(os.environ.get("CASEWORK_MONTH_CASES", "8")))
SITE, TEAM = "north", "t1"
WORKERS = ("carl", "cleo", "cody")
CHECKPOINTS = frozenset({7, 14, 21})
"""Days (besides the end) on which the board is compared with the outside count."""
REVIEW_WINDOW = timedelta(days=7)
"""The board's default window for reviews due (`SessionsSettings.review_window`)."""
FOLLOW_UP_TRIGGERS = {"crisis_resolved", "inpatient_discharge"}
FOLLOW_UP_RULES = {"crisis-follow-up-72h", "discharge-follow-up-72h"}
CTX = CommitContext()
GOAL = Goal(goal_id="g1", description="Keep the tenancy", target_date=date(2030, 1, 1))


def person(sub: str, *roles: str) -> Principal:
    return Principal(sub=sub, name=sub, roles=frozenset(roles), sites=frozenset({SITE}), team=TEAM)


SUE = person("sue", "supervisor")
RAY = Principal(sub="ray", name="ray", roles=frozenset({"regional_admin"}), sites=frozenset())
PEOPLE = {w: person(w, "caseworker") for w in WORKERS}


@dataclass
class Wiring:
    cases: Cases
    contacts: Contacts
    supervision: SupervisionWired


@dataclass
class Month:
    clock: FixedClock
    start: datetime
    cases_rt: ServiceRuntime
    contacts_rt: ServiceRuntime
    supervision_rt: ServiceRuntime
    wired: Wiring
    quiet: Quiescence
    kafka: str
    rng: random.Random
    held_by: dict[str, str] = field(default_factory=dict)
    open_cases: set[str] = field(default_factory=set)
    scripted: frozenset[str] = frozenset()
    """The cases the month plans, crisis and closure for (never at imminent risk)."""
    no_contacts_until: dict[str, int] = field(default_factory=dict)
    """Case → the last day its worker makes no contact (opened that day, or a follow-up to
    miss)."""

    def day(self, n: int, hours: int = 0) -> datetime:
        return self.start + timedelta(days=n, hours=hours)

    async def settle(self) -> None:
        """Until nothing is in flight and nothing fires (events applied may schedule deadlines
        already due: fire again after each wait). The clock moved: `fire()` first."""
        while True:
            await self.quiet.wait(within=60)
            if not await self.fire():
                return

    async def fire(self) -> int:
        fired = 0
        # the cases service keeps no deadlines
        for runtime in (self.contacts_rt, self.supervision_rt):
            fired += await runtime.scheduler.fire_due()
        return fired

    async def board(self) -> SupervisorBoard:
        board: SupervisorBoard = await self.wired.supervision.sessions.board.board("sue")
        return board


@pytest.fixture
async def month(kafka_bootstrap: str, mongo_url: str) -> AsyncIterator[Month]:
    namespace = f"month{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(start)
    every = {
        s: namespaced_settings(s, namespace, kafka_bootstrap, mongo_url, relay_poll_interval_s=0.1)
        for s in ("cases", "contacts", "supervision")
    }
    cases_runtime, cases, _ = build_cases(every["cases"], clock)
    contacts = build_contacts(every["contacts"], clock)
    supervision = build_supervision(every["supervision"], clock)
    runtimes = (cases_runtime, contacts.runtime, supervision.runtime)
    async with dropped_afterwards(mongo_url, *every.values()), contextlib.AsyncExitStack() as stack:
        for runtime in runtimes:
            await stack.enter_async_context(runtime.running())
        quiet = await stack.enter_async_context(Quiescence(kafka_bootstrap, runtimes))
        yield Month(
            clock=clock,
            start=start,
            cases_rt=cases_runtime,
            contacts_rt=contacts.runtime,
            supervision_rt=supervision.runtime,
            wired=Wiring(cases, contacts.contacts, supervision),
            quiet=quiet,
            kafka=kafka_bootstrap,
            rng=random.Random(SEED),
        )


# --- the month -----------------------------------------------------------------------------


RISKS = (RiskLevel.IMMINENT, RiskLevel.HIGH, RiskLevel.MEDIUM, RiskLevel.LOW, None)
CALM = (RiskLevel.HIGH, RiskLevel.MEDIUM, RiskLevel.LOW, None)
"""Risks a case the month scripts may have: a case opened at imminent risk is in crisis at
once, and a crisis open stops a closure or a second declaration."""


async def open_case(m: Month, case_id: str, worker: str, day: int) -> None:
    risk = m.rng.choice(RISKS if case_id not in m.scripted else CALM)
    await m.wired.cases.open_case(
        OpenCase(
            case_id=case_id,
            client_id=f"cl-{case_id}",
            referral_id=str(uuid.UUID(int=m.rng.getrandbits(128))),
            site=SITE,
            opened_by="ivy",
            crisis_id=str(uuid.UUID(int=m.rng.getrandbits(128))),
            risk_level=risk,
        ),
        CTX,
    )
    await m.wired.cases.execute(
        AssignCaseworker(case_id=case_id, caseworker_id=worker, team=TEAM, assigned_by="ray"),
        RAY,
        CTX,
    )
    m.held_by[case_id] = worker
    m.open_cases.add(case_id)
    m.no_contacts_until[case_id] = day  # the contacts service hears of it by tomorrow


async def ask_for_plan(m: Month, case_id: str) -> None:
    """The case's worker records an assessment and proposes a plan: two approvals."""
    worker = PEOPLE[m.held_by[case_id]]
    await m.wired.cases.execute(
        RecordAssessment(
            case_id=case_id,
            assessment_id=f"a-{case_id}",
            needs={"housing": "arrears"},
            narrative="n",
            recorded_by=worker.sub,
        ),
        worker,
        CTX,
    )
    await m.wired.cases.execute(
        ProposePlan(case_id=case_id, goals=(GOAL,), interventions=(), proposed_by=worker.sub),
        worker,
        CTX,
    )


async def approve_plan(m: Month, case_id: str) -> None:
    approvals = m.wired.supervision.approvals
    await approvals.grant(f"{case_id}:assessment:a-{case_id}", SUE, "Thorough", CTX)
    await approvals.grant(f"{case_id}:plan:1", SUE, "Good", CTX)


async def log_contacts(m: Month, day: int) -> None:
    """Each open case's worker makes contact or not, at random (never on a case whose
    follow-up the month means to miss)."""
    contacts = m.wired.contacts
    for case_id in sorted(m.open_cases):
        if m.no_contacts_until.get(case_id, -1) >= day:
            continue
        draw = m.rng.random()
        if draw < 0.45:
            continue  # nothing today: obligations fall due
        worker = PEOPLE[m.held_by[case_id]]
        made = draw < 0.9
        medium = m.rng.choice((Medium.PHONE, Medium.HOME_VISIT, Medium.VIDEO))
        case = await contacts.case_ref(case_id, worker, for_writing=True)
        await contacts.execute(
            LogContact(
                contact_id=f"k-{uuid.UUID(int=m.rng.getrandbits(128))}",
                case=case,
                medium=medium,
                occurred_at=m.clock.now() - timedelta(hours=1),
                participants=(Participant(kind=ParticipantKind.CLIENT),),
                outcome=Outcome.MADE if made else Outcome.ATTEMPTED,
                attempt_reason=None if made else AttemptReason.NO_ANSWER,
                logged_by=worker.sub,
                duration_minutes=30,
            ),
            worker,
            CTX,
        )


async def change_a_risk(m: Month) -> None:
    case_id = m.rng.choice(sorted(m.open_cases))
    worker = PEOPLE[m.held_by[case_id]]
    case = await m.wired.cases.cases.find(case_id)
    assert case is not None
    choices = RISKS if case_id not in m.scripted else CALM
    risk = m.rng.choice([r for r in choices if r is not None and r != case.risk_level])
    await m.wired.cases.execute(
        ChangeRiskLevel(case_id=case_id, risk_level=risk, reason="review", changed_by=worker.sub),
        worker,
        CTX,
    )


async def the_day(m: Month, day: int, cases: list[str]) -> None:
    """What happens on `day` (the clock is at the day's start)."""
    sessions = m.wired.supervision.sessions.sessions
    cases_app = m.wired.cases
    plan, closing, waiting, crisis, crisis_open = cases[:5]
    openings = {0: cases[:5], 3: cases[5:6], 8: cases[6:7], 13: cases[7:]}
    workers = list(WORKERS)
    for case_id in openings.get(day, []):
        await open_case(m, case_id, workers[cases.index(case_id) % len(workers)], day)
    carl_case = next(c for c in cases if m.held_by.get(c) == "carl")
    match day:
        case 1:
            await ask_for_plan(m, plan)
            await ask_for_plan(m, closing)
            await m.settle()  # requested: decided the same day, before they fall overdue
            await approve_plan(m, plan)
            await approve_plan(m, closing)
        case 4:
            await sessions.schedule(
                session_id="s-cody-1",
                worker_id="cody",
                kind=SessionKind.ONE_TO_ONE,
                planned_for=m.day(5),
                principal=SUE,
                ctx=CTX,
            )
        case 5:
            await sessions.prepare("s-cody-1", SUE, CTX)
            await sessions.hold("s-cody-1", SUE, CTX)
        case 9:
            worker = PEOPLE[m.held_by[crisis]]
            await cases_app.execute(
                DeclareCrisis(case_id=crisis, crisis_id="k-9", summary="s", declared_by=worker.sub),
                worker,
                CTX,
            )
            await sessions.schedule(
                session_id="s-carl-1",
                worker_id="carl",
                kind=SessionKind.ONE_TO_ONE,
                planned_for=m.day(12),
                principal=SUE,
                ctx=CTX,
            )
        case 11:
            worker = PEOPLE[m.held_by[crisis]]
            await cases_app.execute(
                ResolveCrisis(case_id=crisis, resolution="r", resolved_by=worker.sub),
                worker,
                CTX,
            )
            m.no_contacts_until[crisis] = 15  # the 72-hour follow-up is missed
        case 12:
            session = await sessions.prepare("s-carl-1", SUE, CTX)
            assert session.agenda, "the agenda is built from the caseload"
            await sessions.record_review(
                "s-carl-1",
                case_id=carl_case,
                findings="f",
                decision="d",
                reasons="r",
                principal=SUE,
                ctx=CTX,
            )
            items: tuple[tuple[str, datetime, str | None], ...] = (
                ("a-1", m.day(20), carl_case),
                ("a-2", m.day(DAYS + 15), None),
                ("a-3", m.day(14), None),
            )
            for item_id, due, about in items:
                await sessions.set_action_item(
                    "s-carl-1",
                    action_item_id=item_id,
                    owner_id="carl",
                    due_at=due,
                    description="d",
                    case_id=about,
                    principal=SUE,
                    ctx=CTX,
                )
            await sessions.hold("s-carl-1", SUE, CTX)
            await sessions.acknowledge("s-carl-1", PEOPLE["carl"], CTX)
        case 13:
            await sessions.complete_action_item("a-3", PEOPLE["carl"], CTX)
        case 15:
            worker = PEOPLE[m.held_by[closing]]
            requested = await cases_app.execute(
                RequestClosure(
                    case_id=closing,
                    outcome=CaseOutcome.GOALS_MET,
                    evaluation="e",
                    requested_by=worker.sub,
                ),
                worker,
                CTX,
            )
            await m.settle()  # requested: signed off the same day
            approval_id = f"{closing}:closure:{requested.version}"
            await m.wired.supervision.approvals.grant(approval_id, SUE, None, CTX)
            m.open_cases.discard(closing)
        case 19:
            await ask_for_plan(m, waiting)  # never decided: waits, then falls overdue
        case 21:
            # cody's case with the approvals waiting goes to carl: they wait on carl's line now
            await cases_app.execute(
                AssignCaseworker(
                    case_id=waiting, caseworker_id="carl", team=TEAM, assigned_by="ray"
                ),
                RAY,
                CTX,
            )
            m.held_by[waiting] = "carl"
        case 22:
            await sessions.schedule(
                session_id="s-cleo-1",
                worker_id="cleo",
                kind=SessionKind.REMOTE,
                planned_for=m.day(DAYS + 3),
                principal=SUE,
                ctx=CTX,
            )
    if day == DAYS - 3:
        worker = PEOPLE[m.held_by[crisis_open]]
        await cases_app.execute(
            DeclareCrisis(
                case_id=crisis_open, crisis_id="k-27", summary="s", declared_by=worker.sub
            ),
            worker,
            CTX,
        )
    if day in (6, 18, 24):
        await change_a_risk(m)
    if day:
        await log_contacts(m, day)


@pytest.mark.timeout(300)
async def test_a_month_of_a_team_the_board_equals_an_outside_count(month: Month) -> None:
    m = month
    await seed_directory(
        m.supervision_rt.store,
        staff("sue", "supervisor", team=TEAM),
        *(
            staff(
                w,
                "caseworker",
                team=TEAM,
                supervisor="sue",
                capacity_points=1000,
                newly_qualified=w == "cody",
                started_on=(m.start - timedelta(days=20)).date()
                if w == "cody"
                else date(2020, 1, 6),
            )
            for w in WORKERS
        ),
    )
    await m.settle()
    cases = [f"m{i}" for i in range(CASES)]
    m.scripted = frozenset(cases[:5])
    compared: list[int] = []
    for day in range(DAYS + 1):
        if day:
            m.clock.advance(timedelta(days=1))
        await m.fire()  # what fell due overnight (its events applied as the day goes)
        if day < DAYS:
            await the_day(m, day, cases)
        await m.settle()
        if day in CHECKPOINTS or day == DAYS:
            await compare(m, day)
            compared.append(day)
    assert compared == [*sorted(CHECKPOINTS), DAYS]


# --- the outside count ---------------------------------------------------------------------


@dataclass
class Topics:
    """Every event of the three topics, per stream in version order (duplicates dropped):
    (type, data) from the CloudEvents headers and the JSON value, nothing else."""

    streams: dict[str, dict[str, list[tuple[str, dict[str, Any]]]]]

    def of(self, service: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        return self.streams.get(service, {})

    def events(self, service: str, kind: str) -> list[dict[str, Any]]:
        return [d for evs in self.of(service).values() for t, d in evs if t == kind]


async def read_topics(m: Month) -> Topics:
    prefix = topic_prefix(m.supervision_rt.settings)
    names = {prefix + events_topic(s): s for s in ("cases", "contacts", "supervision")}
    consumer = AIOKafkaConsumer(bootstrap_servers=m.kafka, enable_auto_commit=False, group_id=None)
    await consumer.start()
    seen: dict[str, dict[str, dict[int, tuple[str, dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    try:
        count = m.supervision_rt.settings.kafka_topic_partitions
        parts = [TopicPartition(t, p) for t in names for p in range(count)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await behind():
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    headers = {k: v.decode() if v else "" for k, v in record.headers}
                    kind = headers["ce_type"].split(".")[2]
                    data = json.loads(record.value)
                    stream, version = headers["ce_subject"], int(headers["ce_streamversion"])
                    seen[names[tp.topic]][stream][version] = (kind, data)
    finally:
        await consumer.stop()
    return Topics(
        {
            service: {s: [v[k] for k in sorted(v)] for s, v in streams.items()}
            for service, streams in seen.items()
        }
    )


def at(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    # to the millisecond, as the read models keep times (MongoDB's date type): a time taken
    # from the system clock (the directory's seed) has microseconds on the topic
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def expected_board(topics: Topics, now: datetime) -> dict[str, dict[str, Any]]:
    """Per worker sue supervises, the board's figures counted from the topics alone."""
    supervisor_of: dict[str, str | None] = {}
    for evs in topics.of("supervision").values():
        for kind, data in evs:
            if kind == "SupervisorAssigned":
                supervisor_of[data["staff_id"]] = data["supervisor_id"]
            elif kind == "StaffMemberLeft":
                supervisor_of[data["staff_id"]] = None
    workers = sorted(w for w, s in supervisor_of.items() if s == "sue")
    capacity_of = {
        d["staff_id"]: d.get("capacity_points") or DEFAULT_CAPACITY
        for d in topics.events("supervision", "StaffMemberRegistered")
    }

    # cases: who holds each open case, at what risk, in crisis or not
    held: dict[str, dict[str, Any]] = {}
    for evs in topics.of("cases").values():
        case: dict[str, Any] = {}
        for kind, data in evs:
            match kind:
                case "CaseOpened":
                    case = {
                        "id": data["case_id"],
                        "risk": data.get("risk_level"),
                        "open": True,
                        "worker": None,
                        "crisis": False,
                    }
                case "CaseworkerAssigned":
                    case["worker"] = data["caseworker_id"]
                case "CaseTransferAccepted":
                    case["worker"] = None
                case "RiskLevelChanged":
                    case["risk"] = data["risk_level"]
                case "CrisisDeclared":
                    case["risk"], case["crisis"] = data["risk_level"], True
                case "CrisisResolved":
                    case["crisis"] = False
                case "CaseClosed":
                    case["open"], case["crisis"] = False, False
                case "CaseReopened":
                    case["open"] = True
        if case.get("open") and case.get("worker"):
            held[case["id"]] = case

    # contacts: each case's open obligations
    obligations: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for stream, evs in topics.of("contacts").items():
        if not stream.startswith("obligations-"):
            continue
        for kind, data in evs:
            open_ = obligations[data.get("case_id", stream.removeprefix("obligations-"))]
            ob = str(data.get("obligation_id"))
            match kind:
                case "ContactObligationOpened":
                    open_[ob] = {
                        "rule": data["rule_id"],
                        "trigger": data.get("trigger"),
                        "due_at": at(data["due_at"]),
                        "overdue": False,
                        "due_soon": False,
                    }
                case "ContactObligationRescheduled" if ob in open_:
                    open_[ob]["due_at"] = at(data["due_at"])
                case "ContactOverdue" if ob in open_:
                    open_[ob]["overdue"] = True
                case "ContactDueSoon" if ob in open_:
                    open_[ob]["due_soon"] = True
                case "ContactObligationMet" | "ContactObligationCancelled":
                    open_.pop(ob, None)

    # supervision: review and supervision cadences, approvals, action items, sessions
    review_due: dict[str, datetime | None] = {}
    supervision_due: dict[str, datetime | None] = {}
    waiting: dict[str, str] = {}
    items: dict[str, dict[str, Any]] = {}
    sessions: dict[str, dict[str, Any]] = {}
    for evs in topics.of("supervision").values():
        for kind, data in evs:
            match kind:
                case "CaseReviewCadenceSet":
                    review_due[data["case_id"]] = at(data.get("due_at"))
                case "SupervisionCadenceSet":
                    supervision_due[data["worker_id"]] = at(data.get("due_at"))
                case "ApprovalRequested":
                    waiting[data["approval_id"]] = data["case_id"]
                case "ApprovalGranted" | "ApprovalReturned" | "ApprovalWithdrawn":
                    waiting.pop(data["approval_id"], None)
                case "ActionItemSet":
                    items[data["action_item_id"]] = {
                        "worker": data["worker_id"],
                        "due_at": at(data["due_at"]),
                        "open": True,
                    }
                case "ActionItemDone":
                    items[data["action_item_id"]]["open"] = False
                case "SupervisionSessionScheduled":
                    sessions[data["session_id"]] = {
                        "worker": data["worker_id"],
                        "planned_for": at(data["planned_for"]),
                        "status": "scheduled",
                        "held_at": None,
                    }
                case "SupervisionAgendaPrepared":
                    sessions[data["session_id"]]["status"] = "prepared"
                case "SupervisionSessionHeld":
                    sessions[data["session_id"]].update(status="held", held_at=at(data["held_at"]))
                case "SupervisionRecordAcknowledged":
                    sessions[data["session_id"]]["status"] = "acknowledged"
                case "SupervisionSessionCancelled":
                    sessions[data["session_id"]]["status"] = "cancelled"
                case "SupervisionSessionRescheduled":
                    sessions[data["session_id"]]["planned_for"] = at(data["planned_for"])

    board: dict[str, dict[str, Any]] = {}
    for worker in workers:
        mine = sorted(c for c, case in held.items() if case["worker"] == worker)
        caseload = Counter(held[c]["risk"] or "unrated" for c in mine)
        open_obs = [ob for c in mine for ob in obligations.get(c, {}).values()]

        def follow_up(ob: dict[str, Any]) -> bool:
            return ob["trigger"] in FOLLOW_UP_TRIGGERS or ob["rule"] in FOLLOW_UP_RULES

        dues = [d for c in mine if (d := review_due.get(c)) is not None]
        own_items = [i for i in items.values() if i["worker"] == worker and i["open"]]
        own_sessions = [s for s in sessions.values() if s["worker"] == worker]
        held_at = [s["held_at"] for s in own_sessions if s["held_at"]]
        planned = [
            s["planned_for"] for s in own_sessions if s["status"] in ("scheduled", "prepared")
        ]
        due = supervision_due.get(worker)
        load = sum(POINTS[held[c]["risk"] or "none"] + 2 * held[c]["crisis"] for c in mine)
        capacity = capacity_of[worker]
        percent = 100.0 * load / capacity
        board[worker] = {
            "caseload": {
                **{r: caseload[r] for r in ("imminent", "high", "medium", "low", "unrated")},
                "total": len(mine),
            },
            "case_ids": mine,
            "crises": sum(1 for c in mine if held[c]["crisis"]),
            "overdue_contacts": sum(1 for o in open_obs if o["overdue"] and not follow_up(o)),
            "missed_follow_ups": sum(1 for o in open_obs if o["overdue"] and follow_up(o)),
            "contacts_due_soon": sum(1 for o in open_obs if not o["overdue"] and o["due_soon"]),
            "reviews_due": sum(1 for d in dues if now < d <= now + REVIEW_WINDOW),
            "reviews_overdue": sum(1 for d in dues if d <= now),
            # the approvals of the worker's cases (whoever held the case when it was asked)
            "approvals_waiting": sum(1 for c in waiting.values() if c in mine),
            "action_items_open": len(own_items),
            "action_items_overdue": sum(1 for i in own_items if i["due_at"] <= now),
            "last_supervision_at": max(held_at) if held_at else None,
            "next_supervision_planned_for": min(planned) if planned else None,
            "supervision_due_at": due,
            "supervision_overdue": due is not None and due <= now,
            "weighted_load": load,
            "capacity": capacity,
            "load_percent": round(percent, 1),
            "band": "red" if percent >= 110 else "amber" if percent >= 100 else "green",
        }
    return board


POINTS = {"imminent": 4, "high": 3, "medium": 2, "low": 1, "none": 1}
"""The default caseload policy's points (the month sets none), +2 while in crisis."""
DEFAULT_CAPACITY = 20


def check_the_deadlines_fired(topics: Topics, now: datetime) -> None:
    """From the topics: every open obligation past due was raised overdue, and no obligation
    more than once; every open case's review past due had its overdue raised for that time."""
    raised = Counter(
        (d["case_id"], d["obligation_id"]) for d in topics.events("contacts", "ContactOverdue")
    )
    assert not [k for k, n in raised.items() if n > 1], "an obligation raised overdue twice"
    for stream, evs in topics.of("contacts").items():
        if not stream.startswith("obligations-"):
            continue
        open_: dict[str, datetime | None] = {}
        for kind, data in evs:
            ob = str(data.get("obligation_id"))
            if kind == "ContactObligationOpened" or (
                kind == "ContactObligationRescheduled" and ob in open_
            ):
                open_[ob] = at(data["due_at"])
            elif kind in ("ContactObligationMet", "ContactObligationCancelled"):
                open_.pop(data["obligation_id"], None)
        case_id = stream.removeprefix("obligations-")
        for ob, due in open_.items():
            if due is not None and due <= now:
                assert (case_id, ob) in raised, f"{case_id}/{ob} past due, never raised"
    overdue = {
        (d["case_id"], at(d["due_at"])) for d in topics.events("supervision", "CaseReviewOverdue")
    }
    open_cases = set()
    for evs in topics.of("cases").values():
        state = None
        for kind, data in evs:
            if kind in ("CaseOpened", "CaseReopened"):
                state = data["case_id"]
            elif kind == "CaseClosed":
                state = None
        if state:
            open_cases.add(state)
    for stream, evs in topics.of("supervision").items():
        sets = [d for k, d in evs if k == "CaseReviewCadenceSet"]
        if sets and sets[-1]["case_id"] in open_cases:
            due = at(sets[-1].get("due_at"))
            if due is not None and due <= now:
                assert (sets[-1]["case_id"], due) in overdue, f"{stream}: review overdue not raised"


def board_figures(board: SupervisorBoard) -> dict[str, dict[str, Any]]:
    figures = {}
    for line in board.workers:
        data = line.model_dump()
        worker = data.pop("worker_id")
        for name in ("last_supervision_at", "next_supervision_planned_for", "supervision_due_at"):
            if data[name] is not None and data[name].tzinfo is None:
                data[name] = data[name].replace(tzinfo=UTC)
        figures[worker] = data
    return figures


async def compare(m: Month, day: int) -> None:
    now = m.clock.now()
    topics = await read_topics(m)
    check_the_deadlines_fired(topics, now)
    expected = expected_board(topics, now)
    board = await m.board()
    assert board.at == now
    shown = board_figures(board)
    differences = [
        (worker, name, shown.get(worker, {}).get(name), figures[name])
        for worker, figures in expected.items()
        for name in figures
        if shown.get(worker, {}).get(name) != figures[name]
    ]
    assert shown == expected, f"day {day}: (worker, figure, board, counted) {differences}"
    totals = board.totals.model_dump()
    assert totals["workers"] == len(expected) == len(WORKERS)
    assert totals["bands"] == {
        band: sum(1 for w in expected.values() if w["band"] == band)
        for band in ("green", "amber", "red")
    }
    for name, value in totals.items():
        if name in ("workers", "caseload", "bands"):
            continue
        assert value == sum(int(w[name]) for w in expected.values()), (day, name)
    assert totals["caseload"] == {
        k: sum(w["caseload"][k] for w in expected.values()) for k in totals["caseload"]
    }
    await what_the_month_did(topics, expected, day)


async def what_the_month_did(topics: Topics, expected: dict[str, dict[str, Any]], day: int) -> None:
    """The scenario did what it says (else the equality above proves little)."""
    total = {k: sum(int(w[k]) for w in expected.values()) for k in expected["carl"] if k in (
        "crises", "overdue_contacts", "missed_follow_ups", "reviews_overdue",
        "approvals_waiting", "action_items_open", "action_items_overdue",
    )}  # fmt: skip
    assert topics.events("contacts", "ContactOverdue"), "no contact was ever missed"
    if day == 14:
        assert total["missed_follow_ups"] >= 1, "the crisis follow-up was missed"
        assert total["action_items_open"] == 2  # a-3 done the day before
    if day >= 14:
        held = topics.events("supervision", "SupervisionSessionHeld")
        assert {d["session_id"] for d in held} == {"s-cody-1", "s-carl-1"}
        (agenda,) = [
            d
            for d in topics.events("supervision", "SupervisionAgendaPrepared")
            if d["session_id"] == "s-carl-1"
        ]
        assert agenda["items"]
        assert len(topics.events("cases", "CasePlanApproved")) == 2
    if day == DAYS:
        closed = topics.events("cases", "CaseClosed")
        assert [d["case_id"] for d in closed] == ["m1"]
        granted = topics.events("supervision", "ApprovalGranted")
        assert Counter(d["kind"] for d in granted) == {"assessment": 2, "plan": 2, "closure": 1}
        assert total["approvals_waiting"] == 2  # m2's assessment and plan
        overdue = topics.events("supervision", "ApprovalOverdue")
        assert {d["approval_id"] for d in overdue} == {"m2:assessment:a-m2", "m2:plan:1"}
        assert total["reviews_overdue"] >= 1
        assert topics.events("supervision", "CaseReviewOverdue")
        assert total["crises"] >= 1  # m4's (and any case opened at imminent risk)
        assert (total["action_items_open"], total["action_items_overdue"]) == (2, 1)
        assert [d["action_item_id"] for d in topics.events("supervision", "ActionItemOverdue")] == [
            "a-1"
        ]
        assert topics.events("supervision", "SupervisionOverdue")
        assert expected["cleo"]["next_supervision_planned_for"] is not None
