"""Why supervision sessions, action items, cadences and concerns refuse a command, in the
words of supervision. The HTTP status of each is decided once, in the wiring (409 unless
said otherwise). Messages name ids and states, never what a review or a note says."""

from __future__ import annotations


class SessionError(Exception):
    """A rule of supervision sessions refused a command (409)."""


class InvalidSessionRequest(SessionError):
    """A request that names something impossible (422, about one field)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class SessionAlreadyExists(SessionError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id} already exists: choose another id")


class SessionNotOpen(SessionError):
    """The session is not in a state that takes this command."""

    def __init__(self, session_id: str, status: str, hint: str) -> None:
        super().__init__(f"session {session_id} is {status}: {hint}")
        self.status = status


class AgendaNotPrepared(SessionError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id} has no agenda yet: prepare it first")


class CaseAlreadyReviewed(SessionError):
    def __init__(self, session_id: str, case_id: str) -> None:
        super().__init__(f"case {case_id} is already reviewed in session {session_id}")


class NotTheWorkersCase(SessionError):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} is not held by the session's worker")


class NotTheSupervisor(SessionError):
    """Only someone who supervises the worker (or their delegate) runs their sessions."""

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"you do not supervise {worker_id} (per the directory)")


class SelfSupervision(SessionError):
    def __init__(self) -> None:
        super().__init__("a supervisor cannot hold a supervision session with themselves")


class NotTheWorker(SessionError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"only the session's worker acknowledges session {session_id}")


class ActionItemAlreadyExists(SessionError):
    def __init__(self, item_id: str) -> None:
        super().__init__(f"action item {item_id} already exists")


class ActionItemAlreadyDone(SessionError):
    def __init__(self, item_id: str) -> None:
        super().__init__(f"action item {item_id} is already done")


class ConcernAlreadyExists(SessionError):
    def __init__(self, concern_id: str) -> None:
        super().__init__(f"concern {concern_id} already exists")


class ConcernAlreadyResolved(SessionError):
    def __init__(self, concern_id: str) -> None:
        super().__init__(f"concern {concern_id} is already resolved")
