"""The phase table of the Case aggregate: every command in every phase, legal and illegal.

Given a case in a phase (a canonical history), when a command arrives, then either these
events follow and the case is in this phase, or the case refuses with this error.
"""

from __future__ import annotations

import pytest
from unit.cases.case_fixtures import (
    ACCEPT_TRANSFER,
    ADMIT,
    APPROVE_CLOSURE,
    APPROVE_PLAN,
    ASSESS,
    ASSIGN,
    DECLARE,
    DISCHARGE,
    IN_ACTIVE,
    IN_ASSESSMENT,
    IN_CLOSED,
    IN_PLANNING,
    IN_REVIEW,
    NOTE_2,
    NOW,
    OPEN,
    PROGRESS,
    PROPOSE,
    RAISE_RISK,
    REJECT_TRANSFER,
    REOPEN,
    REQUEST_CLOSURE,
    REQUEST_TRANSFER,
    RESOLVE,
    RETURN_ASSESSMENT,
    RETURN_CLOSURE,
    RETURN_PLAN,
    SIGN_OFF,
    C,
    given,
    when,
)

from casework.contracts.cases import (
    AssessmentRecorded,
    AssessmentReturned,
    AssessmentSignedOff,
    BreakGlassUsed,
    CaseClosed,
    CaseNoteRecorded,
    CaseOpened,
    CasePlanApproved,
    CasePlanProposed,
    CasePlanReturned,
    CaseReopened,
    CaseTransferRequested,
    CaseworkerAssigned,
    ClosureRequested,
    ClosureReturned,
    CrisisDeclared,
    GoalProgressRecorded,
    InpatientAdmissionRecorded,
    RiskLevelChanged,
)
from casework.events import DomainEvent

from casework_cases.domain.case import Phase
from casework_cases.domain.commands import CaseCommand, UseBreakGlass
from casework_cases.domain.errors import (
    CaseAlreadyClosed,
    CaseAlreadyOpened,
    CaseError,
    CaseNotOpened,
    DecisionNotCurrent,
    InpatientStateConflict,
    NoOpenCrisis,
    NoPendingTransfer,
    NoPlanAwaitingApproval,
    PlanNotApproved,
    WrongPhase,
)

HISTORIES: dict[str, tuple[DomainEvent, ...]] = {
    "new": (),
    "assessment": IN_ASSESSMENT,
    "planning": IN_PLANNING,
    "active": IN_ACTIVE,
    "review": IN_REVIEW,
    "closed": IN_CLOSED,
}
PHASES = list(HISTORIES)

Ok = tuple[tuple[type[DomainEvent], ...], Phase]
Outcome = Ok | type[CaseError]


def ok(*events: type[DomainEvent], then: str) -> Ok:
    return events, Phase(then)


BREAK_GLASS = UseBreakGlass(
    case_id=C, reason="client phoned in crisis", used_by="cora", used_by_sites=("south",)
)


def stays(phase: str, *events: type[DomainEvent]) -> Ok:
    return events, Phase(phase)


# Columns: new, assessment, planning (a plan awaits approval), active, review, closed.
TABLE: dict[str, tuple[CaseCommand, list[Outcome]]] = {
    "open": (
        OPEN,
        [ok(CaseOpened, then="assessment"), *[CaseAlreadyOpened] * 5],
    ),
    "assign": (
        ASSIGN,
        [
            CaseNotOpened,
            *(stays(p, CaseworkerAssigned) for p in ("assessment", "planning", "active", "review")),
            CaseAlreadyClosed,
        ],
    ),
    "request transfer": (
        REQUEST_TRANSFER,
        [
            CaseNotOpened,
            *(stays(p, CaseTransferRequested) for p in ("assessment", "planning", "active")),
            WrongPhase,
            CaseAlreadyClosed,
        ],
    ),
    "accept transfer": (
        ACCEPT_TRANSFER,
        [CaseNotOpened, *[NoPendingTransfer] * 4, CaseAlreadyClosed],
    ),
    "reject transfer": (
        REJECT_TRANSFER,
        [CaseNotOpened, *[NoPendingTransfer] * 4, CaseAlreadyClosed],
    ),
    "record assessment": (
        ASSESS,
        [
            CaseNotOpened,
            ok(AssessmentRecorded, then="planning"),
            WrongPhase,
            WrongPhase,
            WrongPhase,
            CaseAlreadyClosed,
        ],
    ),
    "sign off the assessment": (
        SIGN_OFF,
        [
            CaseNotOpened,
            DecisionNotCurrent,  # no assessment recorded yet
            *(stays(p, AssessmentSignedOff) for p in ("planning", "active", "review")),
            CaseAlreadyClosed,
        ],
    ),
    "return the assessment": (
        RETURN_ASSESSMENT,
        [
            CaseNotOpened,
            DecisionNotCurrent,
            *(stays(p, AssessmentReturned) for p in ("planning", "active", "review")),
            CaseAlreadyClosed,
        ],
    ),
    "propose plan": (
        PROPOSE,
        [
            CaseNotOpened,
            WrongPhase,
            stays("planning", CasePlanProposed),
            stays("active", CasePlanProposed),
            WrongPhase,
            CaseAlreadyClosed,
        ],
    ),
    "approve plan": (
        APPROVE_PLAN,
        [
            CaseNotOpened,
            WrongPhase,
            ok(CasePlanApproved, then="active"),
            NoPlanAwaitingApproval,
            WrongPhase,
            CaseAlreadyClosed,
        ],
    ),
    "return plan": (
        RETURN_PLAN,
        [
            CaseNotOpened,
            WrongPhase,
            stays("planning", CasePlanReturned),
            NoPlanAwaitingApproval,
            WrongPhase,
            CaseAlreadyClosed,
        ],
    ),
    "record goal progress": (
        PROGRESS,
        [
            CaseNotOpened,
            PlanNotApproved,
            PlanNotApproved,
            stays("active", GoalProgressRecorded),
            stays("review", GoalProgressRecorded),
            CaseAlreadyClosed,
        ],
    ),
    "change risk level": (
        RAISE_RISK,
        [
            CaseNotOpened,
            *(stays(p, RiskLevelChanged) for p in ("assessment", "planning", "active", "review")),
            CaseAlreadyClosed,
        ],
    ),
    "declare crisis": (
        DECLARE,
        [
            CaseNotOpened,
            *(
                stays(p, CrisisDeclared, RiskLevelChanged)
                for p in ("assessment", "planning", "active", "review")
            ),
            CaseAlreadyClosed,
        ],
    ),
    "resolve crisis": (
        RESOLVE,
        [CaseNotOpened, *[NoOpenCrisis] * 4, CaseAlreadyClosed],
    ),
    "record note": (
        NOTE_2,
        [
            CaseNotOpened,
            *(stays(p, CaseNoteRecorded) for p in ("assessment", "planning", "active", "review")),
            CaseAlreadyClosed,
        ],
    ),
    "request closure": (
        REQUEST_CLOSURE,
        [
            CaseNotOpened,
            WrongPhase,
            WrongPhase,
            ok(ClosureRequested, then="review"),
            WrongPhase,
            CaseAlreadyClosed,
        ],
    ),
    "approve closure": (
        APPROVE_CLOSURE,
        [CaseNotOpened, *[WrongPhase] * 3, ok(CaseClosed, then="closed"), CaseAlreadyClosed],
    ),
    "return closure": (
        RETURN_CLOSURE,
        [CaseNotOpened, *[WrongPhase] * 3, ok(ClosureReturned, then="active"), CaseAlreadyClosed],
    ),
    "record inpatient admission": (
        ADMIT,
        [
            CaseNotOpened,
            *(
                stays(p, InpatientAdmissionRecorded)
                for p in ("assessment", "planning", "active", "review")
            ),
            CaseAlreadyClosed,
        ],
    ),
    "record inpatient discharge": (
        DISCHARGE,
        [CaseNotOpened, *[InpatientStateConflict] * 4, CaseAlreadyClosed],
    ),
    "reopen": (
        REOPEN,
        [CaseNotOpened, *[WrongPhase] * 4, ok(CaseReopened, then="assessment")],
    ),
    # an emergency may need any opened case, a closed one included; the phase stays
    "break the glass": (
        BREAK_GLASS,
        [
            CaseNotOpened,
            *(
                stays(p, BreakGlassUsed)
                for p in ("assessment", "planning", "active", "review", "closed")
            ),
        ],
    ),
}

CASES = [
    pytest.param(phase, command, outcome, id=f"{name} in {phase}")
    for name, (command, outcomes) in TABLE.items()
    for phase, outcome in zip(PHASES, outcomes, strict=True)
]


@pytest.mark.parametrize(("phase", "command", "outcome"), CASES)
def test_every_command_in_every_phase(phase: str, command: CaseCommand, outcome: Outcome) -> None:
    case = given(HISTORIES[phase])
    if isinstance(outcome, tuple):
        events, phase_after = outcome
        assert [type(e) for e in when(case, command)] == list(events)
        assert case.phase is phase_after
    else:
        version, before = case.version, case.phase
        with pytest.raises(outcome):
            when(case, command)
        assert case.pending_events == []  # a refusal changes nothing
        assert (case.version, case.phase) == (version, before)


def test_the_table_covers_every_command_and_phase() -> None:
    from casework_cases.domain import commands

    all_commands = set(commands.CaseCommand.__args__)
    assert {type(command) for command, _ in TABLE.values()} == all_commands
    assert len(CASES) == len(all_commands) * len(PHASES)


def test_the_whole_procedure_with_a_reopening() -> None:
    case = given()
    for command, phase in [
        (OPEN, "assessment"),
        (ASSIGN, "assessment"),
        (ASSESS, "planning"),
        (PROPOSE, "planning"),
        (APPROVE_PLAN, "active"),
        (PROGRESS, "active"),
        (DECLARE, "active"),
        (RESOLVE, "active"),
        (REQUEST_CLOSURE, "review"),
        (RETURN_CLOSURE, "active"),
        (REQUEST_CLOSURE, "review"),
        (APPROVE_CLOSURE, "closed"),
        (REOPEN, "assessment"),
        (ASSESS, "planning"),
    ]:
        case.handle(command, NOW)
        assert case.phase is Phase(phase), command
    assert [type(e).__name__ for e in case.pending_events] == [
        "CaseOpened",
        "CaseworkerAssigned",
        "AssessmentRecorded",
        "CasePlanProposed",
        "CasePlanApproved",
        "GoalProgressRecorded",
        "CrisisDeclared",
        "RiskLevelChanged",  # a crisis means imminent risk
        "CrisisResolved",
        "ClosureRequested",
        "ClosureReturned",
        "ClosureRequested",
        "CaseClosed",
        "CaseReopened",
        "AssessmentRecorded",
    ]
