"""The intake queue route: a site's referrals waiting for a decision."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from casework import audit

from casework_intake.entrypoints.dependencies import IntakeApp, IntakeStaff, problems
from casework_intake.entrypoints.schemas import QueueEntryOut

router = APIRouter(tags=["intake queue"])


@router.get(
    "/intake-queue",
    summary="The intake queue of a site",
    description=(
        "The site's referrals waiting for an intake decision, most urgent first (`emergency`, "
        "`urgent`, `soon`, `routine`) and oldest first within an urgency, with the screened "
        "risk (null until screened) and how long each has waited, in seconds, as of this "
        "response. The caller must work at the site (regional administrators: any site).\n\n"
        "The queue is a read model fed by events: a referral taken or decided a moment ago "
        "may take a second to appear or leave. Paged: at most `limit` entries; for the next "
        "page pass the last entry's `referral_id` as `after`."
    ),
    responses=problems(r403="You do not work at that site, or lack an intake role"),
)
async def intake_queue(
    site: Annotated[
        str, Query(min_length=1, max_length=64, description="Site code", examples=["north"])
    ],
    principal: IntakeStaff,
    intake: IntakeApp,
    request: Request,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="At most this many referrals, from the front")
    ] = 500,
    after: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            description="The next page: the `referral_id` of the previous page's last entry",
        ),
    ] = None,
) -> list[QueueEntryOut]:
    waiting = await intake.intake_queue(site, principal, limit, after)
    audit.note(request, referral_ids=[q.referral.referral_id for q in waiting])
    return [
        QueueEntryOut(
            referral_id=q.referral.referral_id,
            site=q.referral.site,
            client_name=q.referral.client_name,
            urgency=q.referral.urgency,
            risk_level=q.referral.risk_level,
            source=q.referral.source,
            received_at=q.referral.received_at,
            waiting_seconds=q.waiting_seconds,
            client_match=q.referral.client_match,
        )
        for q in waiting
    ]
