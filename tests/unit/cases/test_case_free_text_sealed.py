"""Every free text a case event carries — a decision's reason or comment, why a case was
assigned, moved, declined or reopened — is the client's data: the event names the case's
client, and the event store seals the text under that client's notes key, so it is never on
the stream in plain text and an erasure makes it unreadable."""

from __future__ import annotations

from dataclasses import replace

import pytest

from casework.contracts import all_events
from casework.contracts.cases import (
    AssessmentReturned,
    AssessmentSignedOff,
    CaseClosed,
    CaseEvent,
    CasePlanApproved,
    CasePlanReturned,
    CaseReopened,
    CaseTransferRejected,
    CaseTransferRequested,
    CaseworkerAssigned,
    ClosureReturned,
)
from casework.events import DomainEvent
from casework.privacy.sealing import Opener, Sealer

from .case_fixtures import (
    APPROVE_CLOSURE,
    APPROVE_PLAN,
    ASSESSED,
    ASSIGN,
    IN_ASSESSMENT,
    IN_CLOSED,
    IN_PLANNING,
    IN_REVIEW,
    OPENED,
    REJECT_TRANSFER,
    REOPEN,
    REQUEST_TRANSFER,
    RETURN_ASSESSMENT,
    RETURN_CLOSURE,
    RETURN_PLAN,
    SIGN_OFF,
    TRANSFER_REQUESTED,
    given,
    when,
)
from casework_cases.domain.commands import CaseCommand
from support.fake_keys import FakeKeys

SECRET = "Her brother is back in the flat"
CLIENT = OPENED.client_id

CASES: list[tuple[tuple[DomainEvent, ...], CaseCommand, type[DomainEvent], str]] = [
    (IN_ASSESSMENT, replace(ASSIGN, reason=SECRET), CaseworkerAssigned, "reason"),
    (
        IN_ASSESSMENT,
        replace(ASSIGN, capacity_override_reason=SECRET),
        CaseworkerAssigned,
        "capacity_override_reason",
    ),
    (IN_ASSESSMENT, replace(REQUEST_TRANSFER, reason=SECRET), CaseTransferRequested, "reason"),
    (
        (*IN_ASSESSMENT, TRANSFER_REQUESTED),
        replace(REJECT_TRANSFER, reason=SECRET),
        CaseTransferRejected,
        "reason",
    ),
    ((*IN_ASSESSMENT, ASSESSED), replace(SIGN_OFF, comment=SECRET), AssessmentSignedOff, "comment"),
    (
        (*IN_ASSESSMENT, ASSESSED),
        replace(RETURN_ASSESSMENT, reason=SECRET),
        AssessmentReturned,
        "reason",
    ),
    (IN_PLANNING, replace(APPROVE_PLAN, comment=SECRET), CasePlanApproved, "comment"),
    (IN_PLANNING, replace(RETURN_PLAN, reason=SECRET), CasePlanReturned, "reason"),
    (IN_REVIEW, replace(APPROVE_CLOSURE, comment=SECRET), CaseClosed, "comment"),
    (IN_REVIEW, replace(RETURN_CLOSURE, reason=SECRET), ClosureReturned, "reason"),
    (IN_CLOSED, replace(REOPEN, reason=SECRET), CaseReopened, "reason"),
]


@pytest.mark.parametrize(
    ("history", "command", "kind", "field"),
    CASES,
    ids=[f"{kind.__name__}.{field}" for _, _, kind, field in CASES],
)
async def test_the_text_is_sealed_under_the_cases_client_and_opens_again(
    history: tuple[DomainEvent, ...], command: CaseCommand, kind: type[DomainEvent], field: str
) -> None:
    (event,) = [e for e in when(given(history), command) if isinstance(e, kind)]
    assert event.client_id == CLIENT
    assert getattr(event, field) == SECRET
    keys = FakeKeys()
    stored = await Sealer(keys).seal(event)  # type: ignore[arg-type]
    assert stored[field].startswith(f"enc:v1:client:{CLIENT}/notes/v1:")
    assert SECRET not in str(stored)
    opened, subjects = await Opener(keys).open(stored)  # type: ignore[arg-type]
    assert opened[field] == SECRET
    assert subjects == [f"client:{CLIENT}"]
    keys.destroy(f"client:{CLIENT}")
    erased, _ = await Opener(keys).open(stored)  # type: ignore[arg-type]
    assert SECRET not in str(erased)


def test_every_reason_and_comment_of_a_case_event_is_personal() -> None:
    """A new free-text reason or comment on a case event is marked personal (and gets a line
    above): none reaches the stream in plain text."""
    free_text = {
        (kind.__name__, name)
        for kind in all_events()
        if issubclass(kind, CaseEvent)
        for name in kind.model_fields
        if name in ("reason", "comment") or name.endswith("_reason")
    }
    personal = {
        (kind.__name__, f.dotted)
        for kind in all_events()
        if issubclass(kind, CaseEvent)
        for f in kind.personal_fields()
    }
    assert free_text <= personal, free_text - personal
    clinical = {("RiskLevelChanged", "reason"), ("BreakGlassUsed", "reason")}  # own tests
    assert {(kind.__name__, field) for _, _, kind, field in CASES} == free_text - clinical
