"""Building a supervision session's agenda from what the read models say at that moment.

Each item says why it is there (`reason`, words and figures, no client data) and keeps a
snapshot of the figures it was built from, so that the record of the session stands on its
own later, whatever the cases became since. Items, in this order:

| kind | one per | when |
|---|---|---|
| `crisis` | case | a crisis is open |
| `high_risk` | case | risk high or imminent (and no crisis open: that item says it) |
| `missed_follow_up` | obligation | a 72-hour follow-up (crisis, discharge) is overdue |
| `overdue_contacts` | case | other contact obligations are overdue (count, oldest due time) |
| `review_due` | case | the case's review is due within `review_window` or overdue |
| `approval_pending` | approval | an approval of the worker's case waits for a decision |
| `action_item` | item | an action item is open (carried over; overdue ones say so) |

Cases are the worker's open cases; a closed case brings nothing. Within a kind, items are
ordered by risk (imminent first), then by how long they have waited.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from casework.contracts.supervision import AgendaItem, AgendaItemKind

RISK_ORDER = {"imminent": 0, "high": 1, "medium": 2, "low": 3, None: 4}


@dataclass(frozen=True)
class CaseView:
    case_id: str
    risk_level: str | None
    phase: str
    opened_at: datetime | None = None
    crisis_open_since: datetime | None = None


@dataclass(frozen=True)
class ObligationView:
    case_id: str
    obligation_id: str
    rule_id: str
    due_at: datetime
    overdue: bool
    follow_up: bool


@dataclass(frozen=True)
class ReviewView:
    case_id: str
    due_at: datetime | None
    last_reviewed_at: datetime | None


@dataclass(frozen=True)
class ApprovalView:
    approval_id: str
    kind: str
    case_id: str | None
    requested_at: datetime


@dataclass(frozen=True)
class ActionView:
    action_item_id: str
    owner_id: str
    due_at: datetime
    case_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class AgendaInputs:
    """What the read models said about one worker at `at`."""

    at: datetime
    cases: tuple[CaseView, ...] = ()
    obligations: tuple[ObligationView, ...] = ()
    reviews: tuple[ReviewView, ...] = ()
    approvals: tuple[ApprovalView, ...] = ()
    actions: tuple[ActionView, ...] = ()


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _hours(since: datetime, at: datetime) -> int:
    return max(0, int((at - since).total_seconds() // 3600))


def _by_risk(cases: Iterable[CaseView]) -> list[CaseView]:
    return sorted(cases, key=lambda c: (RISK_ORDER.get(c.risk_level, 4), c.case_id))


def build_agenda(
    inputs: AgendaInputs, *, review_window: timedelta = timedelta(days=7)
) -> tuple[AgendaItem, ...]:
    """The agenda for a worker's session, from `inputs` (a pure function)."""
    at = inputs.at
    open_cases = {c.case_id: c for c in inputs.cases if c.phase != "closed"}
    risk = {c.case_id: c.risk_level for c in open_cases.values()}
    items: list[AgendaItem] = []

    crises = [c for c in open_cases.values() if c.crisis_open_since is not None]
    for case in sorted(crises, key=lambda c: (c.crisis_open_since, c.case_id)):
        since = case.crisis_open_since
        assert since is not None
        items.append(
            AgendaItem(
                item_id=f"crisis:{case.case_id}",
                kind=AgendaItemKind.CRISIS,
                case_id=case.case_id,
                reason=f"crisis open for {_hours(since, at)} h (since {since.isoformat()})",
                snapshot={
                    "risk_level": case.risk_level,
                    "phase": case.phase,
                    "crisis_open_since": since.isoformat(),
                    "hours_open": _hours(since, at),
                },
            )
        )
    for case in _by_risk(open_cases.values()):
        if case.crisis_open_since is None and case.risk_level in ("high", "imminent"):
            items.append(
                AgendaItem(
                    item_id=f"high_risk:{case.case_id}",
                    kind=AgendaItemKind.HIGH_RISK,
                    case_id=case.case_id,
                    reason=f"risk {case.risk_level}",
                    snapshot={
                        "risk_level": case.risk_level,
                        "phase": case.phase,
                        "opened_at": _iso(case.opened_at),
                    },
                )
            )

    overdue = [o for o in inputs.obligations if o.overdue and o.case_id in open_cases]
    follow_ups = sorted(
        (o for o in overdue if o.follow_up),
        key=lambda o: (RISK_ORDER.get(risk.get(o.case_id), 4), o.due_at, o.obligation_id),
    )
    for ob in follow_ups:
        items.append(
            AgendaItem(
                item_id=f"missed_follow_up:{ob.case_id}:{ob.obligation_id}",
                kind=AgendaItemKind.MISSED_FOLLOW_UP,
                case_id=ob.case_id,
                reason=f"follow-up {ob.rule_id} missed: due {ob.due_at.isoformat()}, "
                f"{_hours(ob.due_at, at)} h overdue",
                snapshot={
                    "rule_id": ob.rule_id,
                    "obligation_id": ob.obligation_id,
                    "due_at": ob.due_at.isoformat(),
                    "hours_overdue": _hours(ob.due_at, at),
                    "risk_level": risk.get(ob.case_id),
                },
            )
        )
    by_case: dict[str, list[ObligationView]] = {}
    for ob in overdue:
        if not ob.follow_up:
            by_case.setdefault(ob.case_id, []).append(ob)
    for case in _by_risk(open_cases[c] for c in by_case):
        obs = by_case[case.case_id]
        oldest = min(o.due_at for o in obs)
        items.append(
            AgendaItem(
                item_id=f"overdue_contacts:{case.case_id}",
                kind=AgendaItemKind.OVERDUE_CONTACTS,
                case_id=case.case_id,
                reason=f"{len(obs)} contact obligation(s) overdue, the oldest due "
                f"{oldest.isoformat()}",
                snapshot={
                    "overdue": len(obs),
                    "oldest_due_at": oldest.isoformat(),
                    "rules": ",".join(sorted({o.rule_id for o in obs})),
                    "risk_level": case.risk_level,
                },
            )
        )

    due_reviews = [
        r
        for r in inputs.reviews
        if r.case_id in open_cases and r.due_at is not None and r.due_at <= at + review_window
    ]
    for review in sorted(due_reviews, key=lambda r: (r.due_at, r.case_id)):
        assert review.due_at is not None
        late = review.due_at <= at
        items.append(
            AgendaItem(
                item_id=f"review_due:{review.case_id}",
                kind=AgendaItemKind.REVIEW_DUE,
                case_id=review.case_id,
                reason=(
                    f"review overdue since {review.due_at.isoformat()}"
                    if late
                    else f"review due {review.due_at.isoformat()}"
                ),
                snapshot={
                    "due_at": review.due_at.isoformat(),
                    "overdue": late,
                    "last_reviewed_at": _iso(review.last_reviewed_at),
                    "risk_level": risk.get(review.case_id),
                },
            )
        )

    for approval in sorted(inputs.approvals, key=lambda a: (a.requested_at, a.approval_id)):
        items.append(
            AgendaItem(
                item_id=f"approval_pending:{approval.approval_id}",
                kind=AgendaItemKind.APPROVAL_PENDING,
                case_id=approval.case_id,
                reason=f"{approval.kind} approval waiting {_hours(approval.requested_at, at)} h",
                snapshot={
                    "approval_id": approval.approval_id,
                    "kind": approval.kind,
                    "requested_at": approval.requested_at.isoformat(),
                    "hours_waiting": _hours(approval.requested_at, at),
                },
            )
        )

    for action in sorted(inputs.actions, key=lambda a: (a.due_at, a.action_item_id)):
        late = action.due_at <= at
        items.append(
            AgendaItem(
                item_id=f"action_item:{action.action_item_id}",
                kind=AgendaItemKind.ACTION_ITEM,
                case_id=action.case_id,
                reason=(
                    f"action item overdue since {action.due_at.isoformat()}"
                    if late
                    else f"action item open, due {action.due_at.isoformat()}"
                ),
                snapshot={
                    "action_item_id": action.action_item_id,
                    "owner_id": action.owner_id,
                    "due_at": action.due_at.isoformat(),
                    "overdue": late,
                    "set_in_session": action.session_id,
                },
            )
        )
    return tuple(items)
