"""How intake reacts to its own events (`when_<event>_<action>`)."""

from __future__ import annotations

from casework.contracts.intake import ReferralAccepted
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import CommitContext
from casework.projections import EventHandler
from casework.runtime import events_topic

from casework_intake.application.handlers import Intake


class WhenReferralAcceptedRegisterClient(EventHandler):
    """An accepted referral about a new person registers that person — exactly once.

    The accepting request registers the client straight away; this policy is the guarantee
    behind it, for when the request failed between storing the acceptance and storing the
    registration (the two are separate streams, and there are no transactions, DESIGN §7).
    """

    name = "when_referral_accepted_register_client"
    topics = (events_topic("intake"),)

    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, ReferralAccepted) or not event.new_client:
            return False
        ctx = CommitContext(correlation_id=envelope.correlation_id, causation_id=envelope.id)
        return await self._intake.register_client_of_accepted_referral(event.referral_id, ctx)
