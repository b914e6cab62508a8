"""What the approval rules refuse, in domain words (mapped to HTTP statuses once, in
`bootstrap`: 409 for a refusal of the state, 403 for who may not decide, 422 for input)."""

from __future__ import annotations


class ApprovalError(Exception):
    """A rule of approvals refused a command (409 unless a subclass says otherwise)."""


class ApprovalAlreadyDecided(ApprovalError):
    """Granted, returned or withdrawn: an approval never changes again (409). A later
    revision is a new approval."""

    def __init__(self, approval_id: str, status: str) -> None:
        super().__init__(f"approval {approval_id} is {status}: a decided approval never changes")


class SelfApprovalNotAllowed(ApprovalError):
    """Four eyes: who asked for it does not decide on it (403)."""

    def __init__(self, approval_id: str, by: str) -> None:
        super().__init__(
            f"approval {approval_id} was requested by {by}: another supervisor decides on it"
        )


class NotAnApprover(ApprovalError):
    """The decider is neither the worker's supervisor nor their delegate now (nor, when the
    worker has no supervisor in the directory, a supervisor of the case's site and team)
    (403)."""

    def __init__(self, approval_id: str, by: str) -> None:
        super().__init__(
            f"{by} may not decide approval {approval_id}: the case's caseworker's supervisor "
            "or their delegate decides (or, without one in the directory, a supervisor of the "
            "case's site and team)"
        )


class ReasonRequired(ApprovalError):
    """A return says why (422)."""

    def __init__(self) -> None:
        super().__init__("a returned approval needs a reason")
