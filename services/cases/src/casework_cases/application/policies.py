"""How the cases service reacts to other services' events (`when_<event>_<action>`)."""

from __future__ import annotations

import uuid

from casework.contracts.intake import ReferralAccepted
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import CommitContext, ConcurrencyConflict
from casework.projections import EventHandler
from casework.runtime import events_topic

from casework_cases.application.handlers import Cases
from casework_cases.domain.commands import OpenCase
from casework_cases.domain.errors import CaseAlreadyOpened


class WhenReferralAcceptedOpenCase(EventHandler):
    """An accepted referral opens its case — exactly once, however often the event arrives.

    A referral screened at imminent risk opens its case in crisis: the case's first commit
    holds both `CaseOpened` and `CrisisDeclared`, declared by the worker who accepted it.
    """

    name = "when_referral_accepted_open_case"
    topics = (events_topic("intake"),)

    def __init__(self, cases: Cases) -> None:
        self._cases = cases

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, ReferralAccepted):
            return False
        cmd = OpenCase(
            case_id=event.case_id,
            client_id=event.client_id,
            referral_id=event.referral_id,
            site=event.site,
            opened_by=event.accepted_by,
            crisis_id=str(uuid.uuid4()),
            risk_level=event.risk_level,
            referral_received_at=event.received_at,
            client_name=event.client_name,
        )
        ctx = CommitContext(correlation_id=envelope.correlation_id, causation_id=envelope.id)
        try:
            await self._cases.open_case(cmd, ctx)
        except (CaseAlreadyOpened, ConcurrencyConflict):
            return False  # a redelivery, or a replica that got there first
        return True
