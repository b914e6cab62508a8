"""The agenda's and the board's approvals waiting per worker come from the approvals' own
read model (`approval_queue`; sessions kept a copy of their own before): requested counts,
granted, returned or withdrawn does not, a redelivery changes nothing. Real MongoDB wire."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from casework.contracts.supervision import (
    ApprovalGranted,
    ApprovalRequested,
    ApprovalReturned,
    ApprovalWithdrawn,
)
from casework.eventstore import Document

from casework_supervision.adapters.approval_queue import ApprovalQueue
from support.envelopes import envelope_of

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def requested(approval_id: str, worker: str) -> ApprovalRequested:
    case_id, kind, version = approval_id.split(":")
    return ApprovalRequested(
        approval_id=approval_id,
        kind=kind,
        case_id=case_id,
        site="north",
        caseworker_id=worker,
        subject_version=int(version),
        requested_by=worker,
        requested_at=NOW,
        due_at=NOW,
        client_id=f"cl-{case_id}",
    )


async def test_pending_approvals_per_worker(database: AsyncDatabase[Document]) -> None:
    view = ApprovalQueue(database)
    await view.ensure_indexes()
    history = [
        ("c1:plan:1", 1, requested("c1:plan:1", "carl")),
        ("c2:plan:1", 1, requested("c2:plan:1", "carl")),
        ("c3:closure:7", 1, requested("c3:closure:7", "carl")),
        ("c4:plan:1", 1, requested("c4:plan:1", "cleo")),
        ("c5:plan:1", 1, requested("c5:plan:1", "carl")),
        (
            "c2:plan:1",
            2,
            ApprovalGranted(
                approval_id="c2:plan:1",
                kind="plan",
                case_id="c2",
                subject_version=1,
                decided_by="sue",
                decided_at=NOW,
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
        (
            "c5:plan:1",
            2,
            ApprovalReturned(
                approval_id="c5:plan:1",
                kind="plan",
                case_id="c5",
                subject_version=1,
                reason="enc:v1:client:cl-c5/notes/v1:" + "A" * 40,
                decided_by="sue",
                decided_at=NOW,
                client_id="cl-c5",
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
