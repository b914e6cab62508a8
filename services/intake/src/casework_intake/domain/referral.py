"""The Referral aggregate: a request for help, from its arrival to the intake decision.

    received ──► waiting ──► accepted
                    │
                    └──────► declined

While it waits, a referral can be risk-screened (again and again: the latest screen counts)
and, when registered clients may be the same person, the intake worker confirms one of them
or overrides the match. Acceptance needs a screen, and a match decision when there were
candidates; a decided referral changes no more.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from casework.aggregate import Aggregate
from casework.contracts.common import RiskLevel
from casework.contracts.intake import (
    ClientMatchConfirmed,
    ClientMatchOverridden,
    DuplicateClientsFound,
    ReferralAccepted,
    ReferralDeclined,
    ReferralReceived,
    RiskScreened,
)
from casework.events import DomainEvent

from casework_intake.domain.commands import (
    AcceptReferral,
    ConfirmClientMatch,
    DeclineReferral,
    OverrideClientMatch,
    ReceiveReferral,
    ScreenRisk,
)
from casework_intake.domain.errors import (
    ClientMatchUndecided,
    NoClientMatchToDecide,
    ReferralAlreadyDecided,
    ReferralAlreadyReceived,
    ReferralNotReceived,
    ReferralNotScreened,
    UnknownCandidate,
)
from casework_intake.domain.screening import screen


class ReferralStatus(StrEnum):
    NEW = "new"
    WAITING = "waiting"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class ClientMatch(StrEnum):
    """Where the question "is this someone we already know?" stands."""

    NO_CANDIDATES = "no_candidates"
    """No registered client looked like the person referred: a new client."""
    UNDECIDED = "undecided"
    """Candidates were found; the intake worker has not confirmed or overridden them yet."""
    CONFIRMED = "confirmed"
    """The referral is about one of the candidates."""
    OVERRIDDEN = "overridden"
    """The referral is about a new person after all."""


class Referral(Aggregate):
    stream_type = "referral"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status = ReferralStatus.NEW
        self.received: ReferralReceived | None = None
        self.candidates: tuple[str, ...] = ()
        self.client_match = ClientMatch.NO_CANDIDATES
        self.matched_client_id: str | None = None
        self.match_decision: ClientMatchConfirmed | ClientMatchOverridden | None = None
        self.screening: RiskScreened | None = None
        self.accepted: ReferralAccepted | None = None
        self.declined: ReferralDeclined | None = None

    @property
    def risk_level(self) -> RiskLevel | None:
        """The level of the latest screen, or None before the first."""
        return self.screening.risk_level if self.screening else None

    @property
    def subject_id(self) -> str | None:
        """The data subject of the person referred (`person:<uuid>`), once received."""
        return self.received.subject_id if self.received else None

    @property
    def client_name(self) -> str | None:
        if self.received is None:
            return None
        return f"{self.received.client.given_name} {self.received.client.family_name}"

    # --- commands -----------------------------------------------------------------------

    def receive(self, cmd: ReceiveReferral, at: datetime, candidates: Sequence[str] = ()) -> None:
        """Take the referral; `candidates` are registered clients who may be the same person."""
        if self.status is not ReferralStatus.NEW:
            raise ReferralAlreadyReceived(self.id)
        self._trigger(
            ReferralReceived(
                referral_id=self.id,
                site=cmd.site,
                client=cmd.client,
                source=cmd.source,
                referrer_name=cmd.referrer_name,
                presenting_concerns=cmd.presenting_concerns,
                urgency=cmd.urgency,
                consent_to_share=cmd.consent_to_share,
                received_by=cmd.received_by,
                received_at=at,
                subject_id=cmd.subject_id,
            )
        )
        if candidates:
            self._trigger(
                DuplicateClientsFound(
                    referral_id=self.id,
                    candidate_client_ids=tuple(dict.fromkeys(candidates)),
                    found_at=at,
                )
            )

    def screen_risk(self, cmd: ScreenRisk, at: datetime) -> None:
        """Record a risk screen; the level follows from the screening rule."""
        received = self._waiting()
        result = screen(cmd.answers)
        self._trigger(
            RiskScreened(
                referral_id=self.id,
                site=received.site,
                answers=cmd.answers,
                risk_level=result.risk_level,
                rule=result.rule,
                screened_by=cmd.screened_by,
                screened_at=at,
                subject_id=received.subject_id,
            )
        )

    def confirm_client_match(self, cmd: ConfirmClientMatch, at: datetime) -> None:
        self._waiting()
        if not self.candidates:
            raise NoClientMatchToDecide(self.id)
        if cmd.client_id not in self.candidates:
            raise UnknownCandidate(cmd.client_id, self.candidates)
        self._trigger(
            ClientMatchConfirmed(
                referral_id=self.id,
                client_id=cmd.client_id,
                confirmed_by=cmd.confirmed_by,
                confirmed_at=at,
            )
        )

    def override_client_match(self, cmd: OverrideClientMatch, at: datetime) -> None:
        self._waiting()
        if not self.candidates:
            raise NoClientMatchToDecide(self.id)
        self._trigger(
            ClientMatchOverridden(
                referral_id=self.id,
                overridden_by=cmd.overridden_by,
                overridden_at=at,
                reason=cmd.reason,
                subject_id=self.subject_id,
            )
        )

    def accept(self, cmd: AcceptReferral, at: datetime) -> None:
        """Accept: a case opens for the matched client, or for a new one."""
        received = self._waiting()
        if self.screening is None:
            raise ReferralNotScreened(self.id)
        if self.client_match is ClientMatch.UNDECIDED:
            raise ClientMatchUndecided(self.id, self.candidates)
        existing = self.matched_client_id if self.client_match is ClientMatch.CONFIRMED else None
        self._trigger(
            ReferralAccepted(
                referral_id=self.id,
                case_id=cmd.case_id,
                client_id=existing or cmd.new_client_id,
                site=received.site,
                risk_level=self.screening.risk_level,
                accepted_by=cmd.accepted_by,
                accepted_at=at,
                new_client=existing is None,
                urgency=received.urgency,
                received_at=received.received_at,
                client_name=self.client_name,
            )
        )

    def decline(self, cmd: DeclineReferral, at: datetime) -> None:
        """Decline, saying why and where the person was signposted."""
        received = self._waiting()
        self._trigger(
            ReferralDeclined(
                referral_id=self.id,
                site=received.site,
                reason=cmd.reason,
                signposted_to=cmd.signposted_to,
                declined_by=cmd.declined_by,
                declined_at=at,
                subject_id=received.subject_id,
            )
        )

    def _waiting(self) -> ReferralReceived:
        """The referral as received, if it still waits for its decision; refuses any other."""
        if self.received is None:
            raise ReferralNotReceived(self.id)
        if self.status is not ReferralStatus.WAITING:
            raise ReferralAlreadyDecided(self.id, self.status.value)
        return self.received

    # --- state --------------------------------------------------------------------------

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case ReferralReceived():
                self.status = ReferralStatus.WAITING
                self.site = event.site
                self.received = event
            case DuplicateClientsFound():
                self.candidates = event.candidate_client_ids
                self.client_match = ClientMatch.UNDECIDED
            case ClientMatchConfirmed():
                self.client_match = ClientMatch.CONFIRMED
                self.matched_client_id = event.client_id
                self.match_decision = event
            case ClientMatchOverridden():
                self.client_match = ClientMatch.OVERRIDDEN
                self.matched_client_id = None
                self.match_decision = event
            case RiskScreened():
                self.screening = event
            case ReferralAccepted():
                self.status = ReferralStatus.ACCEPTED
                self.accepted = event
            case ReferralDeclined():
                self.status = ReferralStatus.DECLINED
                self.declined = event
