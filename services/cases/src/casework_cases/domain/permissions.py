"""Which roles may issue which command (the first half of authorisation).

The second half is reach — whether the principal may touch this case at all — decided by
`casework_cases.domain.access.can_reach_case`, except for answering a transfer, which the
receiving site does before it reaches the case.

| command                                         | roles                                      |
|-------------------------------------------------|--------------------------------------------|
| read a case                                     | caseworker, supervisor, crisis_worker,     |
|                                                 | site_manager, regional_admin               |
| assign / reassign, move a caseload              | supervisor, site_manager, regional_admin   |
| request a transfer (at the case's current site) | supervisor, site_manager                   |
| accept / reject a transfer (at the receiving    | supervisor, site_manager                   |
| site)                                           |                                            |
| assessment, plan proposal, goal progress,       | caseworker, supervisor                     |
| notes, closure request                          |                                            |
| approve / return an assessment, a plan or a     | no route here: supervision decides         |
| closure                                         | (`/approvals`) and a policy carries the    |
|                                                 | decision out (the case keeps four eyes)    |
| risk level, declare / resolve a crisis          | caseworker, supervisor, crisis_worker      |
| reopen                                          | supervisor, site_manager                   |
| break the glass: open a case out of reach in an | crisis_worker (a stated reason; raises a   |
| emergency                                       | review for the case's supervisor)          |
| inpatient admission / discharge                 | caseworker, supervisor, crisis_worker      |
"""

from __future__ import annotations

from collections.abc import Mapping

from casework_cases.domain.access import CASE_ROLES
from casework_cases.domain.commands import (
    AcceptTransfer,
    ApproveClosure,
    ApprovePlan,
    AssignCaseworker,
    ChangeRiskLevel,
    DeclareCrisis,
    MoveCaseload,
    ProposePlan,
    RecordAssessment,
    RecordCaseNote,
    RecordGoalProgress,
    RecordInpatientAdmission,
    RecordInpatientDischarge,
    RejectTransfer,
    ReopenCase,
    RequestClosure,
    RequestTransfer,
    ResolveCrisis,
    ReturnAssessment,
    ReturnClosure,
    ReturnPlan,
    SignOffAssessment,
    UseBreakGlass,
)

READERS = CASE_ROLES
ASSIGNERS = frozenset({"supervisor", "site_manager", "regional_admin"})
SITE_LEADS = frozenset({"supervisor", "site_manager"})
CASE_WORKERS = frozenset({"caseworker", "supervisor"})
SUPERVISORS = frozenset({"supervisor"})
RISK_WORKERS = frozenset({"caseworker", "supervisor", "crisis_worker"})
GLASS_BREAKERS = frozenset({"crisis_worker"})

MAY_ISSUE: Mapping[type, frozenset[str]] = {
    AssignCaseworker: ASSIGNERS,
    MoveCaseload: ASSIGNERS,
    RequestTransfer: SITE_LEADS,
    AcceptTransfer: SITE_LEADS,
    RejectTransfer: SITE_LEADS,
    RecordAssessment: CASE_WORKERS,
    ProposePlan: CASE_WORKERS,
    ApprovePlan: SUPERVISORS,
    ReturnPlan: SUPERVISORS,
    RecordGoalProgress: CASE_WORKERS,
    ChangeRiskLevel: RISK_WORKERS,
    DeclareCrisis: RISK_WORKERS,
    ResolveCrisis: RISK_WORKERS,
    RecordCaseNote: CASE_WORKERS,
    RequestClosure: CASE_WORKERS,
    ApproveClosure: SUPERVISORS,
    ReturnClosure: SUPERVISORS,
    SignOffAssessment: SUPERVISORS,
    ReturnAssessment: SUPERVISORS,
    ReopenCase: SITE_LEADS,
    UseBreakGlass: GLASS_BREAKERS,
    RecordInpatientAdmission: RISK_WORKERS,
    RecordInpatientDischarge: RISK_WORKERS,
}
"""Command class → the roles that may issue it (any one of them suffices)."""


def roles_for(command: type) -> tuple[str, ...]:
    """The roles that may issue a command of this class, sorted (for `require_roles`)."""
    return tuple(sorted(MAY_ISSUE[command]))
