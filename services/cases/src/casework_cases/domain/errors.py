"""Why a case refuses a command, in the words of casework.

Every message names the case and says what would make the command possible. The HTTP
status of each is decided once, in `bootstrap` (409 unless said otherwise there). An error
with a `field` class attribute is about one field of the request body.
"""

from __future__ import annotations


class CaseError(Exception):
    """A rule of casework refused a command."""


class CaseAlreadyOpened(CaseError):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} is already open")


class CaseNotOpened(CaseError):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} was never opened: it opens when its referral is accepted")


class CaseAlreadyClosed(CaseError):
    def __init__(self, case_id: str) -> None:
        super().__init__(
            f"case {case_id} is closed: reopen it, with a reason, before changing anything"
        )


class WrongPhase(CaseError):
    """The command belongs to another step of the procedure than the one the case is at."""

    def __init__(self, case_id: str, phase: str, hint: str) -> None:
        super().__init__(f"case {case_id} is in {phase}: {hint}")
        self.phase = phase


class PlanNotApproved(WrongPhase):
    """Work that needs the approved plan, asked for before a supervisor approved one."""


class AlreadyAssigned(CaseError):
    def __init__(self, case_id: str, caseworker_id: str, team: str | None) -> None:
        in_team = f" in team {team}" if team else ""
        super().__init__(f"case {case_id} is already with {caseworker_id}{in_team}")


class CaseworkerChanged(CaseError):
    """A caseload move found the case no longer with the worker whose caseload moves."""

    def __init__(self, case_id: str, expected: str, actual: str | None) -> None:
        now = f"it is with {actual}" if actual else "it has no caseworker"
        super().__init__(f"case {case_id} is no longer with {expected} ({now}); it was not moved")


class UnknownSite(CaseError):
    field = "body.to_site"

    def __init__(self, site: str) -> None:
        super().__init__(f"no site {site!r} is registered in the organisation directory")


class TransferToSameSite(CaseError):
    field = "body.to_site"

    def __init__(self, case_id: str, site: str) -> None:
        super().__init__(f"case {case_id} is already at site {site}: name another site")


class TransferPending(CaseError):
    def __init__(self, case_id: str, to_site: str, before: str) -> None:
        super().__init__(
            f"case {case_id} has a transfer to site {to_site} pending: site {to_site} must "
            f"accept or reject it before {before}"
        )


class NoPendingTransfer(CaseError):
    def __init__(self, case_id: str) -> None:
        super().__init__(
            f"case {case_id} has no transfer pending: a supervisor or site manager of its "
            "site requests one first"
        )


class InvalidPlan(CaseError):
    def __init__(self, problem: str, field: str) -> None:
        super().__init__(f"the plan is not consistent: {problem}")
        self.field = field


class NoPlanAwaitingApproval(CaseError):
    def __init__(self, case_id: str) -> None:
        super().__init__(
            f"case {case_id} has no plan awaiting approval: propose a plan (or a revision) first"
        )


class PlanAwaitingApproval(CaseError):
    def __init__(self, case_id: str, plan_version: int) -> None:
        super().__init__(
            f"case {case_id} has plan version {plan_version} awaiting approval: a supervisor "
            "approves or returns it before closure is requested"
        )


class GoalNotInPlan(CaseError):
    def __init__(self, case_id: str, goal_id: str, plan_version: int) -> None:
        super().__init__(
            f"case {case_id} has no goal {goal_id} in its approved plan (version "
            f"{plan_version}): record progress against one of that plan's goals"
        )


class RiskLevelUnchanged(CaseError):
    field = "body.risk_level"

    def __init__(self, case_id: str, level: str) -> None:
        super().__init__(f"case {case_id} is already at risk level {level}")


class CrisisAlreadyOpen(CaseError):
    def __init__(self, case_id: str, crisis_id: str) -> None:
        super().__init__(
            f"case {case_id} already has crisis {crisis_id} open: resolve it before declaring "
            "another (one open crisis at a time)"
        )


class NoOpenCrisis(CaseError):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} has no open crisis to resolve")


class CrisisStillOpen(CaseError):
    def __init__(self, case_id: str, crisis_id: str, action: str) -> None:
        super().__init__(f"case {case_id} has crisis {crisis_id} open: resolve it before {action}")


class IdAlreadyUsed(CaseError):
    """A client-chosen id for a new note or crisis names one already recorded."""

    def __init__(self, case_id: str, kind: str, id: str) -> None:
        super().__init__(f"case {case_id} already has a {kind} {id}: choose a new id or omit it")


class NoteNotFound(CaseError):
    field = "body.addendum_to"

    def __init__(self, case_id: str, note_id: str) -> None:
        super().__init__(
            f"case {case_id} has no note {note_id}: an addendum names a note already recorded"
        )


class SelfApprovalNotAllowed(CaseError):
    """Four eyes: who proposed a plan or requested closure does not also decide on it."""

    def __init__(self, case_id: str, what: str, by: str) -> None:
        super().__init__(
            f"{what} of case {case_id} was put forward by {by}: another supervisor decides on it"
        )


class InpatientStateConflict(CaseError):
    """An admission while the client is already admitted, or a discharge with none open."""

    def __init__(self, case_id: str, hint: str) -> None:
        super().__init__(f"case {case_id}: {hint}")


class InpatientTimeInvalid(CaseError):
    """An admission or discharge time in the future, or a discharge before its admission."""

    def __init__(self, hint: str, field: str) -> None:
        super().__init__(hint)
        self.field = field


class DecisionNotCurrent(CaseError):
    """Supervision decided on something the case no longer waits for: a superseded plan
    version, an earlier closure request, another assessment, or a decision already carried
    out (a redelivery). The policy that carries decisions out logs it by id and goes on."""

    def __init__(self, case_id: str, approval_id: str | None, why: str) -> None:
        self.approval_id = approval_id
        super().__init__(f"case {case_id}: approval {approval_id} is not current: {why}")


# --- assignment against the organisation directory ----------------------------------------------


class AssigneeRefused(CaseError):
    """The organisation directory does not let this person carry this case."""


class AssigneeNotInDirectory(AssigneeRefused):
    def __init__(self, case_id: str, caseworker_id: str) -> None:
        super().__init__(
            f"case {case_id}: {caseworker_id} is not in the organisation directory (as this "
            "service has heard it): register them in supervision first"
        )


class AssigneeHasLeft(AssigneeRefused):
    def __init__(self, case_id: str, caseworker_id: str) -> None:
        super().__init__(f"case {case_id}: {caseworker_id} has left the agency")


class AssigneeNotCaseworker(AssigneeRefused):
    def __init__(self, case_id: str, caseworker_id: str) -> None:
        super().__init__(
            f"case {case_id}: {caseworker_id} does not hold the caseworker role in the directory"
        )


class AssigneeNotAtSite(AssigneeRefused):
    def __init__(self, case_id: str, caseworker_id: str, site: str | None) -> None:
        super().__init__(f"case {case_id}: {caseworker_id} does not work at site {site}")


class AssigneeHasNoTeamAtSite(AssigneeRefused):
    """A case is carried in a team of its site; the directory gives the worker none there (a
    worker's team is within their first site)."""

    def __init__(self, case_id: str, caseworker_id: str, site: str | None) -> None:
        super().__init__(
            f"case {case_id}: {caseworker_id} has no team at site {site} in the directory"
        )


class AssigneeTeamMismatch(AssigneeRefused):
    def __init__(self, case_id: str, caseworker_id: str, asked: str, actual: str) -> None:
        super().__init__(
            f"case {case_id}: {caseworker_id} is in team {actual} per the directory, not {asked} "
            "(leave the team out: the directory's is recorded)"
        )


class CapacityExceeded(CaseError):
    """The assignment would take the worker's weighted caseload into the red band, and no
    `capacity_override_reason` was given. The figures are in the message and on the error."""

    def __init__(
        self, case_id: str, caseworker_id: str, load: int, weight: int, capacity: int, red: int
    ) -> None:
        after = load + weight
        super().__init__(
            f"case {case_id}: {caseworker_id} carries {load} points; this case weighs {weight}, "
            f"making {after} of a capacity of {capacity} ({100 * after / capacity:.0f} %, red "
            f"from {red} %): give capacity_override_reason to assign anyway"
        )
        self.load, self.weight, self.capacity = load, weight, capacity
