"""Why a contact refuses a command, in the words of casework.

The HTTP status of each is decided once, in `bootstrap` (409 unless said otherwise there).
An error with a `field` attribute is about one field of the request body (422). Messages name
ids and states, never what a note or an observation says.
"""

from __future__ import annotations


class ContactError(Exception):
    """A rule of the contact record refused a command."""


class ContactAlreadyExists(ContactError):
    def __init__(self, contact_id: str) -> None:
        super().__init__(f"contact {contact_id} already exists: choose another id")


class ContactNotScheduled(ContactError):
    """The command needs a scheduled contact that is still to happen."""

    def __init__(self, contact_id: str, status: str, hint: str) -> None:
        super().__init__(f"contact {contact_id} is {status}: {hint}")
        self.status = status


class ContactNotLogged(ContactError):
    def __init__(self, contact_id: str) -> None:
        super().__init__(f"contact {contact_id} is not logged: only a logged contact is corrected")


class AlreadyStruckThrough(ContactError):
    def __init__(self, contact_id: str) -> None:
        super().__init__(f"contact {contact_id} is already struck through; add an addendum")


class CorrectionIdUsed(ContactError):
    def __init__(self, contact_id: str, correction_id: str) -> None:
        super().__init__(f"contact {contact_id} already has a correction {correction_id}")


class LoneWorkerStateConflict(ContactError):
    """A check-in or check-out that does not fit where the visit stands."""

    def __init__(self, contact_id: str, hint: str) -> None:
        super().__init__(f"contact {contact_id}: {hint}")


class CaseClosedForContacts(ContactError):
    def __init__(self, case_id: str) -> None:
        super().__init__(
            f"case {case_id} is closed: contacts are scheduled and logged on open cases"
        )


class InvalidContact(ContactError):
    """A request that names an impossible contact (422, about one field)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field
