"""The Referral aggregate: a request for help, from its arrival to the intake decision."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from casework.aggregate import Aggregate
from casework.contracts.intake import ReferralAccepted, ReferralReceived
from casework.events import DomainEvent

from casework_intake.domain.commands import AcceptReferral, ReceiveReferral


class ReferralStatus(StrEnum):
    NEW = "new"
    WAITING = "waiting"
    ACCEPTED = "accepted"


class IntakeError(Exception):
    """A rule of intake refused a command."""


class ReferralAlreadyReceived(IntakeError):
    def __init__(self, referral_id: str) -> None:
        super().__init__(f"referral {referral_id} was already received")


class ReferralAlreadyDecided(IntakeError):
    def __init__(self, referral_id: str, status: str) -> None:
        super().__init__(f"referral {referral_id} is already {status}; it cannot be decided again")


class UnknownSite(IntakeError):
    """The site named is not in the organisation directory."""

    field = "body.site"

    def __init__(self, site: str) -> None:
        super().__init__(f"no site {site!r} is registered in the organisation directory")


class Referral(Aggregate):
    stream_type = "referral"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status = ReferralStatus.NEW
        self.received: ReferralReceived | None = None
        self.accepted: ReferralAccepted | None = None

    def receive(self, cmd: ReceiveReferral, at: datetime) -> None:
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
            )
        )

    def accept(self, cmd: AcceptReferral, at: datetime) -> None:
        if self.status is not ReferralStatus.WAITING or self.received is None:
            raise ReferralAlreadyDecided(self.id, self.status.value)
        self._trigger(
            ReferralAccepted(
                referral_id=self.id,
                case_id=cmd.case_id,
                client_id=cmd.client_id,
                site=self.received.site,
                accepted_by=cmd.accepted_by,
                accepted_at=at,
            )
        )

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case ReferralReceived():
                self.status = ReferralStatus.WAITING
                self.site = event.site
                self.received = event
            case ReferralAccepted():
                self.status = ReferralStatus.ACCEPTED
                self.accepted = event
