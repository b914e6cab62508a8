"""A contacts history for the read-model tests, made by the contacts service's own application
from the cases of a `casework.samples.story`: the events are the ones the service decides
(every obligation event as the policy table makes it), not hand-written look-alikes.

Each case's events of the story go through the replan policy (`case_facts`, obligations
opened, replanned on a risk change, cancelled at closure) at the event's time; after each,
while the case is open, a worker does something the read models show — a made or attempted
call, a home visit scheduled, checked in, logged and checked out, a visit missed or cancelled,
an addendum, a record struck through — and obligations that fell due in between are marked
due soon and overdue, as their deadlines would. The commits are read back from the contacts
event store as the relay would publish them.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from casework.auth import Principal
from casework.contracts.contacts import (
    AttemptReason,
    CancelReason,
    CorrectionKind,
    Medium,
    MissReason,
    Outcome,
    Participant,
    ParticipantKind,
)
from casework.envelope import Envelope
from casework.eventstore import CommitContext
from casework.samples import SITES, Story

from casework_contacts.application.policies import WhenCaseChangedReplanObligations
from casework_contacts.bootstrap import Wired
from casework_contacts.domain.commands import (
    CancelContact,
    CheckIn,
    CheckOut,
    CorrectContact,
    LogContact,
    MarkMissed,
    ScheduleContact,
)

WORKER = Principal(
    sub="w-story", name="w-story", roles=frozenset({"crisis_worker"}), sites=frozenset(SITES)
)
CLIENT = (Participant(kind=ParticipantKind.CLIENT),)
CASES_TOPIC = "casework.cases.events"


class SettableClock:
    """A clock the story sets to each event's time."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


async def contacts_history(wired: Wired, story: Story, *, cases: int, seed: int = 3) -> Story:
    """Drive the contacts application of `wired` (built with a `SettableClock`) through the
    first `cases` cases of `story`; the contacts topic's records it made."""
    clock = wired.contacts.clock
    assert isinstance(clock, SettableClock)
    policy = next(
        h for h in wired.runtime.handlers if isinstance(h, WhenCaseChangedReplanObligations)
    )
    registry = wired.runtime.registry
    streams: dict[str, list[Envelope]] = {}
    for envelope in story.records.get(CASES_TOPIC, []):
        streams.setdefault(envelope.subject, []).append(envelope)
    rnd = random.Random(seed)
    for stream in list(streams)[:cases]:
        clock.at = datetime(2000, 1, 1, tzinfo=UTC)
        for envelope in streams[stream]:
            clock.at = max(clock.at, envelope.time)
            event = registry.parse(envelope.type, dict(envelope.data))
            await policy.handle(envelope, event)
            case_id = str(getattr(event, "case_id"))  # noqa: B009 - every cases event has one
            clock.at += timedelta(minutes=30)
            await _work(wired, clock, case_id, rnd)
    return Story(records={"casework.contacts.events": await _published(wired)})


async def _work(wired: Wired, clock: SettableClock, case_id: str, rnd: random.Random) -> None:
    """One thing a worker does on an open case, then the deadlines that fell due."""
    contacts = wired.contacts
    ctx = CommitContext()
    doc = await contacts.cases.get(case_id)
    if doc is None or doc.get("phase") == "closed":
        return
    case = await contacts.case_ref(case_id, WORKER, for_writing=True)
    new_id = f"k-{uuid.UUID(int=rnd.getrandbits(128))}"

    def logged(medium: Medium, outcome: Outcome, contact_id: str = new_id) -> LogContact:
        return LogContact(
            contact_id=contact_id, case=case, medium=medium, occurred_at=clock.now(),
            participants=CLIENT, outcome=outcome, logged_by=WORKER.sub,
            attempt_reason=AttemptReason.NO_ANSWER if outcome is Outcome.ATTEMPTED else None,
            duration_minutes=30, notes="Talked about the week." if rnd.random() < 0.5 else None,
        )  # fmt: skip

    def scheduled(medium: Medium) -> ScheduleContact:
        return ScheduleContact(
            contact_id=new_id, case=case, medium=medium, participants=CLIENT,
            planned_for=clock.now() + timedelta(hours=1), assigned_to=WORKER.sub,
            scheduled_by=WORKER.sub, expected_duration_minutes=45,
        )  # fmt: skip

    match rnd.randrange(8):
        case 0 | 1:
            await contacts.execute(logged(Medium.PHONE, Outcome.MADE), WORKER, ctx)
        case 2:
            await contacts.execute(logged(Medium.PHONE, Outcome.ATTEMPTED), WORKER, ctx)
        case 3:
            await contacts.execute(scheduled(Medium.HOME_VISIT), WORKER, ctx)
            clock.at += timedelta(hours=1)
            await contacts.execute(CheckIn(new_id, WORKER.sub, 45, timedelta(minutes=15)),
                                   WORKER, ctx)  # fmt: skip
            clock.at += timedelta(minutes=40)
            await contacts.execute(logged(Medium.HOME_VISIT, Outcome.MADE), WORKER, ctx)
            if rnd.random() < 0.7:
                await contacts.execute(CheckOut(new_id, WORKER.sub), WORKER, ctx)
            else:  # not back in time: the lone-worker deadline fires
                visit = (await contacts.contacts.get(new_id)).visit
                assert visit is not None
                clock.at = visit.due_back_at + timedelta(minutes=1)
                await contacts.raise_lone_worker_overdue(new_id, visit.due_back_at)
        case 4:
            await contacts.execute(scheduled(Medium.OFFICE_VISIT), WORKER, ctx)
            clock.at += timedelta(hours=2)
            await contacts.execute(MarkMissed(new_id, MissReason.NO_SHOW, WORKER.sub), WORKER, ctx)
        case 5:
            await contacts.execute(scheduled(Medium.VIDEO), WORKER, ctx)
            cancel = CancelContact(new_id, CancelReason.CLIENT_REQUEST, WORKER.sub)
            await contacts.execute(cancel, WORKER, ctx)
        case 6:
            await contacts.execute(logged(Medium.HOME_VISIT, Outcome.MADE), WORKER, ctx)
            kind = rnd.choice((CorrectionKind.ADDENDUM, CorrectionKind.STRUCK_THROUGH))
            correction = CorrectContact(new_id, f"x-{new_id}", kind, "Wrong time.", WORKER.sub)
            await contacts.execute(correction, WORKER, ctx)
        case _:
            pass  # nothing this time: obligations fall due
    obligations = await contacts.obligations.find(case_id)
    if obligations is None:
        return
    for ob in sorted(obligations.open.values(), key=lambda o: o.obligation_id):
        if ob.due_at <= clock.now() + timedelta(hours=24):
            await contacts.mark_due_soon(case_id, ob.obligation_id, ob.due_at)
        if ob.due_at <= clock.now():
            await contacts.mark_overdue(case_id, ob.obligation_id, ob.due_at)


async def _published(wired: Wired) -> list[Envelope]:
    """Every stored commit's events, stream by stream in version order (what the relay
    publishes, keyed by stream: per-stream order is all Kafka keeps)."""
    store = wired.runtime.store
    found: list[Envelope] = []
    cursor = store.commits.find({}).sort([("stream_id", 1), ("first", 1)])
    async for commit in cursor:
        found += [Envelope.from_document(e) for e in commit.get("events", ())]
    return found
