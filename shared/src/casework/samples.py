"""Development tooling, like `casework.devstack`: synthetic but realistic event histories of
referrals and their cases, for the rebuild tests and the rebuild benchmark. Every event type
the intake and cases read models handle, in each stream's order, with stream ids by the
platform's convention (`<type>-<id>`)."""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from casework.contracts import cases as c
from casework.contracts import intake as i
from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.contracts.supervision import (
    ApprovalGranted,
    ApprovalRequested,
    CaseloadPolicySet,
    SiteRegistered,
    StaffMemberRegistered,
)
from casework.envelope import Envelope
from casework.events import DomainEvent

SITES = ("north", "south", "east", "west")
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@dataclass
class Story:
    """The records of one history, by the topic (without namespace) they go to."""

    records: dict[str, list[Envelope]]

    @property
    def events(self) -> int:
        return sum(len(v) for v in self.records.values())


class _Streams:
    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.records: dict[str, list[Envelope]] = {}

    def add(self, topic: str, stream: str, event: DomainEvent, at: datetime, site: str) -> None:
        version = self.versions.get(stream, 0) + 1
        self.versions[stream] = version
        self.records.setdefault(topic, []).append(
            Envelope(
                type=event.type_name(),
                source=f"/casework/{event.service}",
                subject=stream,
                time=at,
                data=event.model_dump(mode="json"),
                stream_version=version,
                site=site,
            )
        )


def story(referrals: int, seed: int = 7, prefix: str = "") -> Story:
    """`referrals` referrals (most accepted, each accepted one a case with its assessment,
    plan, notes, and for some a crisis, a transfer, a closure and a reopening, or an erasure of
    the client after the closure); about 16 events per referral."""
    rnd = random.Random(seed)
    s = _Streams()
    intake, cases = "casework.intake.events", "casework.cases.events"
    for site in SITES:
        s.add(
            "casework.supervision.events",
            f"site-{site}",
            SiteRegistered(site=site, name=site.title(), registered_at=T0),
            T0,
            site,
        )
    # the directory: the caseworkers the cases are assigned to, and the caseload policy
    for k in range(40):
        s.add(
            "casework.supervision.events",
            f"staff-w{k}",
            StaffMemberRegistered(
                staff_id=f"w{k}",
                name=f"Worker {k}",
                sites=tuple(SITES),
                team=f"t{k % 8}",
                roles=("caseworker",),
                started_on=T0.date(),
                registered_at=T0,
            ),
            T0,
            SITES[0],
        )
    s.add(
        "casework.supervision.events",
        "caseload_policy-agency",
        CaseloadPolicySet(
            points_by_risk={"imminent": 4, "high": 3, "medium": 2, "low": 1, "none": 1},
            crisis_bonus=2,
            default_capacity=30,
            amber_at_percent=100,
            red_at_percent=110,
            set_by="admin",
            set_at=T0,
        ),
        T0,
        SITES[0],
    )
    for n in range(referrals):
        for event, at, site in _referral(rnd, f"{prefix}{n}"):
            topic = {"intake": intake, "cases": cases}.get(
                event.service, "casework.supervision.events"
            )
            stream = _stream_of(event)
            s.add(topic, stream, event, at, site)
    return Story(records=s.records)


def _stream_of(event: DomainEvent) -> str:
    if isinstance(event, ApprovalRequested | ApprovalGranted):
        return f"approval-{event.approval_id}"
    if isinstance(event, i.ClientRegistered):
        return f"client-{event.client_id}"
    if isinstance(event, i.LegalHoldPlaced | i.LegalHoldReleased) or hasattr(event, "erasure_id"):
        return f"erasure-{event.client_id}"  # type: ignore[attr-defined]
    if event.service == "intake":
        return f"referral-{event.referral_id}"  # type: ignore[attr-defined]
    return f"case-{event.case_id}"  # type: ignore[attr-defined]


def _referral(rnd: random.Random, n: str) -> Iterator[tuple[DomainEvent, datetime, str]]:
    site = rnd.choice(SITES)
    # microseconds too, as real clocks give them: the database keeps milliseconds, and a
    # rebuild must come out the same as the live read model all the same
    at = T0 + timedelta(
        minutes=rnd.randrange(0, 60 * 24 * 90), microseconds=rnd.randrange(1_000_000)
    )
    rid, cid, kid = f"R{n}", f"C{n}", f"K{n}"
    worker, team = f"w{rnd.randrange(40)}", f"t{rnd.randrange(8)}"
    urgency = rnd.choice(list(Urgency))
    client = i.ClientDetails(
        given_name=rnd.choice(("Alex", "Sam", "Jo", "Kim", "Lee")),
        family_name=f"Person{n}",
        date_of_birth=date(1960 + rnd.randrange(50), 1 + rnd.randrange(12), 1 + rnd.randrange(28)),
        phone=f"07{rnd.randrange(10**9):09d}" if rnd.random() < 0.7 else None,
    )
    yield (
        i.ReferralReceived(
            referral_id=rid,
            site=site,
            client=client,
            source=rnd.choice(list(ReferralSource)),
            presenting_concerns="Low mood and poor sleep for several weeks.",
            urgency=urgency,
            received_by="ivy",
            received_at=at,
        ),
        at,
        site,
    )
    at += timedelta(hours=1)
    risk = rnd.choice(list(RiskLevel))
    yield (
        i.RiskScreened(
            referral_id=rid,
            site=site,
            answers=i.ScreeningAnswers(wish_to_be_dead=False, suicidal_thoughts=False),
            risk_level=risk,
            rule="no-risk-indicators",
            screened_by="ivy",
            screened_at=at,
        ),
        at,
        site,
    )
    at += timedelta(hours=2)
    if rnd.random() < 0.15:
        yield (
            i.ReferralDeclined(
                referral_id=rid, site=site, reason="not eligible", declined_by="ivy", declined_at=at
            ),
            at,
            site,
        )
        return
    name = f"{client.given_name} {client.family_name}"
    yield (
        i.ReferralAccepted(
            referral_id=rid,
            case_id=cid,
            client_id=kid,
            site=site,
            risk_level=risk,
            accepted_by="ivy",
            accepted_at=at,
            urgency=urgency,
            received_at=at - timedelta(hours=3),
            client_name=name,
        ),
        at,
        site,
    )
    yield (
        i.ClientRegistered(
            client_id=kid,
            site=site,
            given_name=client.given_name,
            family_name=client.family_name,
            date_of_birth=client.date_of_birth,
            phone=client.phone,
            match_key=f"{client.family_name}|{client.given_name}|{client.date_of_birth}".lower(),
            registered_at=at,
        ),
        at,
        site,
    )
    at += timedelta(minutes=5)
    yield (
        c.CaseOpened(
            case_id=cid,
            client_id=kid,
            referral_id=rid,
            site=site,
            risk_level=risk,
            opened_at=at,
            referral_received_at=at - timedelta(hours=3),
            client_name=name,
        ),
        at,
        site,
    )
    at += timedelta(days=1)
    yield (
        c.CaseworkerAssigned(
            case_id=cid, caseworker_id=worker, team=team, assigned_by="sue", assigned_at=at
        ),
        at,
        site,
    )
    at += timedelta(days=2)
    yield (
        c.AssessmentRecorded(
            case_id=cid,
            assessment_id=f"A{n}",
            needs={"housing": "stable", "health": "sleep"},
            narrative="Engaged well.",
            recorded_by=worker,
            recorded_at=at,
        ),
        at,
        site,
    )
    at += timedelta(days=1)
    goal = c.Goal(goal_id="g1", description="Sleep better", target_date=(at + timedelta(90)).date())
    yield (
        c.CasePlanProposed(
            case_id=cid,
            plan_version=1,
            goals=(goal,),
            interventions=(
                c.Intervention(
                    intervention_id="i1", description="Weekly visit", responsible=worker
                ),
            ),
            proposed_by=worker,
            proposed_at=at,
        ),
        at,
        site,
    )
    # the supervision service asks for the plan's approval and sue grants it
    approval = f"{cid}:plan:1"
    yield (
        ApprovalRequested(
            approval_id=approval,
            kind="plan",
            case_id=cid,
            site=site,
            caseworker_id=worker,
            subject_version=1,
            requested_by=worker,
            requested_at=at,
            due_at=at + timedelta(hours=72),
        ),
        at,
        site,
    )
    at += timedelta(hours=4)
    yield (
        ApprovalGranted(
            approval_id=approval,
            kind="plan",
            case_id=cid,
            subject_version=1,
            decided_by="sue",
            decided_at=at,
        ),
        at,
        site,
    )
    yield (
        c.CasePlanApproved(
            case_id=cid, plan_version=1, approved_by="sue", approved_at=at, approval_id=approval
        ),
        at,
        site,
    )
    for k in range(rnd.randrange(1, 6)):
        at += timedelta(days=7)
        yield (
            c.CaseNoteRecorded(
                case_id=cid, note_id=f"N{n}-{k}", text="Visit.", recorded_by=worker, recorded_at=at
            ),
            at,
            site,
        )
    if rnd.random() < 0.5:
        at += timedelta(days=3)
        yield (
            c.GoalProgressRecorded(
                case_id=cid,
                goal_id="g1",
                progress=c.GoalProgress.IN_PROGRESS,
                recorded_by=worker,
                recorded_at=at,
            ),
            at,
            site,
        )
    if rnd.random() < 0.3:
        at += timedelta(days=1)
        new = rnd.choice([r for r in RiskLevel if r != risk])
        yield (
            c.RiskLevelChanged(
                case_id=cid,
                site=site,
                previous_level=risk,
                risk_level=new,
                reason="Change.",
                changed_by=worker,
                changed_at=at,
            ),
            at,
            site,
        )
    if rnd.random() < 0.15:
        at += timedelta(days=1)
        yield (
            c.CrisisDeclared(
                case_id=cid,
                crisis_id=f"X{n}",
                site=site,
                caseworker_id=worker,
                team=team,
                risk_level=RiskLevel.IMMINENT,
                summary="Crisis.",
                declared_by=worker,
                declared_at=at,
            ),
            at,
            site,
        )
        if rnd.random() < 0.7:
            at += timedelta(hours=6)
            yield (
                c.CrisisResolved(
                    case_id=cid,
                    crisis_id=f"X{n}",
                    resolution="Settled.",
                    resolved_by=worker,
                    resolved_at=at,
                ),
                at,
                site,
            )
    if rnd.random() < 0.1:
        to = rnd.choice([x for x in SITES if x != site])
        at += timedelta(days=1)
        yield (
            c.CaseTransferRequested(
                case_id=cid,
                from_site=site,
                to_site=to,
                reason="Moved.",
                requested_by=worker,
                requested_at=at,
            ),
            at,
            site,
        )
        at += timedelta(days=1)
        yield (
            c.CaseTransferAccepted(
                case_id=cid, from_site=site, to_site=to, accepted_by="mo", accepted_at=at
            ),
            at,
            to,
        )
        site = to
    if rnd.random() < 0.4:
        at += timedelta(days=30)
        outcome = rnd.choice(list(c.CaseOutcome))
        yield (
            c.ClosureRequested(
                case_id=cid,
                outcome=outcome,
                evaluation="Better.",
                requested_by=worker,
                requested_at=at,
            ),
            at,
            site,
        )
        at += timedelta(days=1)
        yield c.CaseClosed(case_id=cid, outcome=outcome, approved_by="sue", closed_at=at), at, site
        if rnd.random() < 0.1:
            at += timedelta(days=20)
            yield (
                c.CaseReopened(case_id=cid, reason="Relapse.", reopened_by="sue", reopened_at=at),
                at,
                site,
            )
        elif zlib.crc32(n.encode()) % 3 == 0:  # not from `rnd`: the rest of the story stays
            yield from _erased(kid, n, at + timedelta(days=10), site)


def _erased(
    kid: str, n: str, at: datetime, site: str
) -> Iterator[tuple[DomainEvent, datetime, str]]:
    """A closed case's client held, refused erasure, released, then erased."""
    subject = f"client:{kid}"
    yield (
        i.LegalHoldPlaced(
            client_id=kid,
            hold_id=f"H{n}",
            basis=i.HoldBasis.SAFEGUARDING_ADULT,
            site=site,
            placed_by="mia",
            placed_at=at,
        ),
        at,
        site,
    )
    asked = {
        "client_id": kid,
        "subject": subject,
        "reason": i.ErasureReason.DATA_SUBJECT_REQUEST,
        "requester": i.Requester.DATA_SUBJECT,
        "requested_by": "dora",
    }
    hold = i.HoldFound(kind="legal_hold", id=f"H{n}", basis=i.HoldBasis.SAFEGUARDING_ADULT)
    at += timedelta(days=1)
    yield i.ErasureRequested(erasure_id=f"E{n}a", requested_at=at, **asked), at, site
    yield (
        i.ErasureDecided(
            erasure_id=f"E{n}a",
            client_id=kid,
            outcome=i.ErasureOutcome.REFUSED,
            holds=(hold,),
            decided_by="dora",
            decided_at=at,
        ),
        at,
        site,
    )
    at += timedelta(days=30)
    released = i.LegalHoldReleased(
        client_id=kid, hold_id=f"H{n}", released_by="mia", released_at=at
    )
    yield released, at, site
    at += timedelta(days=1)
    yield i.ErasureRequested(erasure_id=f"E{n}b", requested_at=at, **asked), at, site
    yield (
        i.ErasureDecided(
            erasure_id=f"E{n}b",
            client_id=kid,
            outcome=i.ErasureOutcome.CARRIED_OUT,
            decided_by="dora",
            decided_at=at,
        ),
        at,
        site,
    )
    yield (
        i.SubjectKeyDestroyed(
            erasure_id=f"E{n}b",
            client_id=kid,
            subject=subject,
            key_ids=(f"{subject}/identity/v1", f"{subject}/notes/v1"),
            destroyed_at=at,
        ),
        at,
        site,
    )
    yield (
        i.ErasureCompleted(
            erasure_id=f"E{n}b", client_id=kid, index_entries_deleted=3, completed_at=at
        ),
        at,
        site,
    )
