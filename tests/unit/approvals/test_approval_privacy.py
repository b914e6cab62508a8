"""A decision's comment and reason are the client's personal data (notes): marked in the
contract, carried with the request's client id, sealed under `client:<id>` at append, copied
sealed, and read `[erased]` once the client's keys are destroyed. No servers."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from casework.contracts.supervision import ApprovalGranted, ApprovalReturned
from casework.events import PersonalField
from casework.privacy import REPLACEMENT
from casework.privacy.sealing import MissingSubject, Opener, Sealer

from casework_supervision.domain.approval import Approval
from casework_supervision.domain.approval_commands import (
    GrantApproval,
    RequestApproval,
    ReturnApproval,
)
from casework_supervision.domain.approval_rules import Authority, plan_approval_id
from support.fake_keys import FakeKeys

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ID = plan_approval_id("c-1", 2)
REQUEST = RequestApproval(
    approval_id=ID,
    kind="plan",
    case_id="c-1",
    site="north",
    team="t1",
    caseworker_id="carl",
    subject_version=2,
    subject_id=None,
    requested_by="carl",
    requested_at=T0,
    due_at=T0 + timedelta(hours=72),
    client_id="cl-1",
)
SUE = Authority(supervisors=("sue",))
REASON = "Mum's new partner is back in the house"


def decided(request: RequestApproval, decide: str) -> ApprovalGranted | ApprovalReturned:
    approval = Approval(ID)
    approval.request(request)
    approval.mark_committed()
    if decide == "grant":
        approval.grant(GrantApproval(ID, "sue", SUE, REASON), T0 + timedelta(hours=1))
    else:
        approval.return_(ReturnApproval(ID, "sue", SUE, REASON), T0 + timedelta(hours=1))
    (event,) = approval.pending_events
    assert isinstance(event, ApprovalGranted | ApprovalReturned)
    return event


def test_the_comment_and_the_reason_are_marked_personal_under_the_client() -> None:
    assert ApprovalGranted.personal_fields() == [PersonalField(("comment",), "client_id", "notes")]
    assert ApprovalReturned.personal_fields() == [PersonalField(("reason",), "client_id", "notes")]


@pytest.mark.parametrize("decide", ["grant", "return"])
def test_a_decision_names_the_requests_client(decide: str) -> None:
    assert decided(REQUEST, decide).client_id == "cl-1"


@pytest.mark.parametrize("decide", ["grant", "return"])
async def test_the_words_are_sealed_copied_sealed_and_erased_with_the_client(decide: str) -> None:
    keys = FakeKeys()
    data = await Sealer(keys).seal(decided(REQUEST, decide))  # type: ignore[arg-type]
    field = "comment" if decide == "grant" else "reason"
    assert data[field].startswith("enc:v1:client:cl-1/notes/v1:")
    assert REASON not in json.dumps(data)
    # what a consumer reads (the cases service copies the value into its own event as it is)
    stored = (ApprovalGranted if decide == "grant" else ApprovalReturned).model_validate(data)
    copied = {"reason": getattr(stored, field)}
    opener = Opener(keys)  # type: ignore[arg-type]
    opened, shown = await opener.open(copied)
    assert (opened, shown) == ({"reason": REASON}, ["client:cl-1"])
    keys.destroy("client:cl-1")
    opened, _ = await opener.open(copied)
    assert opened == {"reason": REPLACEMENT}


async def test_a_return_without_a_client_is_refused_never_stored_open() -> None:
    event = decided(replace(REQUEST, client_id=None), "return")
    with pytest.raises(MissingSubject):
        await Sealer(FakeKeys()).seal(event)  # type: ignore[arg-type]


async def test_a_grant_without_a_comment_needs_no_client() -> None:
    approval = Approval(ID)
    approval.request(replace(REQUEST, client_id=None))
    approval.mark_committed()
    approval.grant(GrantApproval(ID, "sue", SUE, None), T0 + timedelta(hours=1))
    (event,) = approval.pending_events
    data = await Sealer(FakeKeys()).seal(event)  # type: ignore[arg-type]
    assert data["comment"] is None
