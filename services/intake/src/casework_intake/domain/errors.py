"""Why intake refuses a command, in the words of intake: referrals, the client registry and
erasure.

Every message names what it refers to and says what would make the command possible. The
HTTP status of each is decided once, in `bootstrap` (409 unless said otherwise there). An
error with a `field` class attribute is about one field of the request body.
"""

from __future__ import annotations

from collections.abc import Sequence


class IntakeError(Exception):
    """A rule of intake refused a command."""


class ReferralAlreadyReceived(IntakeError):
    def __init__(self, referral_id: str) -> None:
        super().__init__(f"referral {referral_id} was already received")


class ReferralAlreadyDecided(IntakeError):
    def __init__(self, referral_id: str, status: str) -> None:
        super().__init__(
            f"referral {referral_id} is already {status}; a decided referral cannot be "
            "screened, matched or decided again"
        )


class ReferralNotReceived(IntakeError):
    def __init__(self, referral_id: str) -> None:
        super().__init__(f"referral {referral_id} has not been received")


class ReferralNotScreened(IntakeError):
    def __init__(self, referral_id: str) -> None:
        super().__init__(
            f"referral {referral_id} has not been risk-screened: record the screening answers "
            "first, then accept it"
        )


class ClientMatchUndecided(IntakeError):
    def __init__(self, referral_id: str, candidates: Sequence[str]) -> None:
        super().__init__(
            f"referral {referral_id} may be about a client already registered "
            f"({len(candidates)} candidate(s): {', '.join(candidates)}): confirm one of them, "
            "or override the match to register a new client, then accept"
        )


class NoClientMatchToDecide(IntakeError):
    def __init__(self, referral_id: str) -> None:
        super().__init__(
            f"referral {referral_id} has no duplicate candidates: there is no match to confirm "
            "or override, and accepting it registers a new client"
        )


class UnknownCandidate(IntakeError):
    """The client named is not one of the referral's duplicate candidates."""

    field = "body.client_id"

    def __init__(self, client_id: str, candidates: Sequence[str]) -> None:
        super().__init__(
            f"client {client_id} is not a duplicate candidate of this referral; "
            f"the candidates are: {', '.join(candidates)}"
        )


class UnknownSite(IntakeError):
    """The site named is not in the organisation directory."""

    field = "body.site"

    def __init__(self, site: str, field: str | None = None) -> None:
        super().__init__(f"no site {site!r} is registered in the organisation directory")
        if field is not None:
            self.field = field


class ClientError(Exception):
    """A rule of the client registry refused a command."""


class ClientAlreadyRegistered(ClientError):
    def __init__(self, client_id: str) -> None:
        super().__init__(f"client {client_id} is already registered")


class ErasureError(Exception):
    """A data-protection rule refused a command."""


class ClientAlreadyErased(ErasureError):
    def __init__(self, client_id: str, erasure_id: str) -> None:
        super().__init__(
            f"client {client_id} is already erased (erasure {erasure_id}): there is nothing "
            "left to erase or to hold"
        )
        self.erasure_id = erasure_id


class ErasureInProgress(ErasureError):
    def __init__(self, client_id: str, erasure_id: str) -> None:
        super().__init__(
            f"erasure {erasure_id} of client {client_id} is being carried out: wait for it to "
            "complete (GET /erasures/{erasure_id})"
        )
        self.erasure_id = erasure_id


class UnknownHold(ErasureError):
    def __init__(self, client_id: str, hold_id: str) -> None:
        super().__init__(f"client {client_id} has no legal hold {hold_id}")


class UnknownErasure(ErasureError):
    def __init__(self, client_id: str, erasure_id: str) -> None:
        super().__init__(f"client {client_id} has no erasure {erasure_id}")


class NotDecidedToCarryOut(ErasureError):
    def __init__(self, erasure_id: str) -> None:
        super().__init__(f"erasure {erasure_id} was not decided to be carried out")
