"""The board's approvals waiting per worker, from the approvals work's events (pinned names;
their contracts live on that branch, so this test defines look-alikes with the same names and
fields): requested counts, decided or withdrawn does not, a redelivery changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from casework.contracts.supervision import SupervisionEvent
from casework.eventstore import Document

from casework_supervision.adapters.session_read_models import ApprovalsWaiting
from support.envelopes import envelope_of

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class ApprovalRequested(SupervisionEvent):
    approval_id: str
    kind: str
    case_id: str
    site: str
    caseworker_id: str | None = None
    requested_at: datetime


class ApprovalGranted(SupervisionEvent):
    approval_id: str
    kind: str
    case_id: str
    decided_by: str
    decided_at: datetime


class ApprovalWithdrawn(SupervisionEvent):
    approval_id: str
    kind: str
    case_id: str
    reason: str
    withdrawn_at: datetime


def requested(approval_id: str, worker: str) -> ApprovalRequested:
    return ApprovalRequested(
        approval_id=approval_id,
        kind="plan",
        case_id=approval_id.split(":")[0],
        site="north",
        caseworker_id=worker,
        requested_at=NOW,
    )


async def test_pending_approvals_per_worker(database: AsyncDatabase[Document]) -> None:
    view = ApprovalsWaiting(database)
    await view.ensure_indexes()
    history = [
        ("c1:plan:1", 1, requested("c1:plan:1", "carl")),
        ("c2:plan:1", 1, requested("c2:plan:1", "carl")),
        ("c3:closure:7", 1, requested("c3:closure:7", "carl")),
        ("c4:plan:1", 1, requested("c4:plan:1", "cleo")),
        (
            "c2:plan:1",
            2,
            ApprovalGranted(
                approval_id="c2:plan:1", kind="plan", case_id="c2", decided_by="sue", decided_at=NOW
            ),
        ),
        (
            "c3:closure:7",
            2,
            ApprovalWithdrawn(
                approval_id="c3:closure:7",
                kind="closure",
                case_id="c3",
                reason="superseded",
                withdrawn_at=NOW,
            ),
        ),
    ]
    for approval_id, version, event in history:
        envelope = envelope_of(event, f"approval-{approval_id}", version, NOW)
        assert await view.handle(envelope, event)
    for approval_id, version, event in history:  # delivered again
        envelope = envelope_of(event, f"approval-{approval_id}", version, NOW)
        assert not await view.handle(envelope, event)
    carl = await view.pending_for("carl")
    assert [(a["approval_id"], a["kind"], a["case_id"]) for a in carl] == [
        ("c1:plan:1", "plan", "c1")
    ]
    assert [a["approval_id"] for a in await view.pending_for("cleo")] == ["c4:plan:1"]
