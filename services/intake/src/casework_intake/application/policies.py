"""How intake reacts to its own events (`when_<event>_<action>`)."""

from __future__ import annotations

from casework.contracts.intake import (
    ErasureDecided,
    ErasureOutcome,
    ReferralAccepted,
    SubjectKeyDestroyed,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import CommitContext
from casework.projections import EventHandler
from casework.runtime import events_topic

from casework_intake.application.data_protection import DataProtection
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


class WhenErasureDecidedCarryOut(EventHandler):
    """An erasure decided `carried_out` is carried out to completion — also when the request
    that decided it died half-way (`casework_intake.application.data_protection`).

    The request carries the erasure out at once; this policy is the guarantee behind it: the
    decision is a stored commit, so the relay publishes it (after a restart too), and this
    consumer commits its offset only after `carry_out` returned, which does whatever steps
    the stream does not record yet (nothing, when the request finished)."""

    name = "when_erasure_decided_carry_out"
    topics = (events_topic("intake"),)

    def __init__(self, data_protection: DataProtection) -> None:
        self._data_protection = data_protection

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        match event:
            case ErasureDecided(outcome=ErasureOutcome.CARRIED_OUT) | SubjectKeyDestroyed():
                pass
            case _:
                return False
        ctx = CommitContext(correlation_id=envelope.correlation_id, causation_id=envelope.id)
        before = await self._data_protection.erasures.get(event.client_id)
        if before.erasures[event.erasure_id].finished:
            return False
        await self._data_protection.carry_out(event.client_id, event.erasure_id, ctx)
        return True
