"""Intake's referral routes: turn a request into a command, dispatch it, shape the answer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status

from casework import audit
from casework.auth import Principal
from casework.contracts.intake import (
    ClientDetails,
    ClientMatchConfirmed,
    ClientMatchOverridden,
    ScreeningAnswers,
)
from casework.http import text_body
from casework.requests import Context, IfMatch

from casework_intake.application.handlers import Candidate, Intake
from casework_intake.domain.commands import (
    AcceptReferral,
    ConfirmClientMatch,
    DeclineReferral,
    OverrideClientMatch,
    ReceiveReferral,
    ScreenRisk,
)
from casework_intake.domain.referral import Referral
from casework_intake.domain.screening import meaning_of
from casework_intake.entrypoints.dependencies import (
    NOT_FOUND,
    STALE,
    IntakeApp,
    IntakeStaff,
    ReferralId,
    problems,
)
from casework_intake.entrypoints.schemas import (
    CLIENT_MATCH_EXAMPLES,
    DECLINE_EXAMPLES,
    REFERRAL_EXAMPLES,
    SCREENING_EXAMPLES,
    Accepted,
    CandidateOut,
    ClientMatchIn,
    ClientMatchOut,
    ClientOut,
    DecisionOut,
    DeclineIn,
    ReferralIn,
    ReferralOut,
    ScreeningIn,
    ScreeningOut,
    ScreeningSummary,
)

router = APIRouter(prefix="/referrals", tags=["referrals"])


def _etag(response: Response, referral: Referral) -> None:
    response.headers["ETag"] = f'"{referral.version}"'


def _candidate(candidate: Candidate) -> CandidateOut:
    details = candidate.details
    if details is not None and not candidate.visible:
        # Another site's client: enough to recognise, not enough to identify.
        return CandidateOut(
            client_id=candidate.client_id,
            given_name=None,
            family_name=None,
            date_of_birth=None,
            matched_on=candidate.matched_on,
            site=candidate.site,
            masked=True,
            initials=candidate.initials,
            birth_year=candidate.birth_year,
            access=f"Registered at site {candidate.site}, where you do not work: ask a site "
            "manager there for access before confirming this match.",
        )
    return CandidateOut(
        client_id=candidate.client_id,
        given_name=details.given_name if details else None,
        family_name=details.family_name if details else None,
        date_of_birth=details.date_of_birth if details else None,
        matched_on=candidate.matched_on,
        site=candidate.site,
    )


def _client_match(referral: Referral) -> ClientMatchOut:
    match referral.match_decision:
        case ClientMatchConfirmed() as confirmed:
            return ClientMatchOut(
                state=referral.client_match,
                client_id=confirmed.client_id,
                decided_by=confirmed.confirmed_by,
                decided_at=confirmed.confirmed_at,
            )
        case ClientMatchOverridden() as overridden:
            return ClientMatchOut(
                state=referral.client_match,
                client_id=None,
                reason=overridden.reason,
                decided_by=overridden.overridden_by,
                decided_at=overridden.overridden_at,
            )
    return ClientMatchOut(state=referral.client_match, client_id=None)


def _decision(referral: Referral) -> DecisionOut | None:
    if referral.accepted is not None:
        accepted = referral.accepted
        return DecisionOut(
            outcome="accepted",
            decided_by=accepted.accepted_by,
            decided_at=accepted.accepted_at,
            new_client=accepted.new_client,
        )
    if referral.declined is not None:
        declined = referral.declined
        return DecisionOut(
            outcome="declined",
            decided_by=declined.declined_by,
            decided_at=declined.declined_at,
            reason=declined.reason,
            signposted_to=declined.signposted_to,
        )
    return None


async def _view(
    referral: Referral, intake: Intake, principal: Principal, request: Request
) -> ReferralOut:
    received, screening = referral.received, referral.screening
    candidates = await intake.duplicate_candidates(referral, principal)
    # The audit record names the referral, its client, and every candidate it showed.
    client_id = referral.accepted.client_id if referral.accepted else referral.matched_client_id
    audit.note(
        request,
        referral_id=referral.id,
        client_id=client_id,
        client_ids=[c.client_id for c in candidates],
    )
    return ReferralOut(
        referral_id=referral.id,
        status=referral.status.value,
        site=referral.site,
        source=received.source if received else None,
        referrer_name=received.referrer_name if received else None,
        urgency=received.urgency if received else None,
        consent_to_share=received.consent_to_share if received else None,
        presenting_concerns=received.presenting_concerns if received else None,
        client=ClientOut(**received.client.model_dump()) if received else None,
        received_by=received.received_by if received else None,
        received_at=received.received_at if received else None,
        risk_level=referral.risk_level,
        screening=ScreeningSummary(
            risk_level=screening.risk_level,
            rule=screening.rule,
            # the rule names the screening item that decided: sealed like the answers
            meaning=meaning_of(await intake.reveal.open_value(screening.rule)),
            answers=screening.answers
            if isinstance(screening.answers, str)
            else screening.answers.model_dump(mode="json"),
            screened_by=screening.screened_by,
            screened_at=screening.screened_at,
        )
        if screening
        else None,
        duplicate_candidates=[_candidate(c) for c in candidates],
        client_match=_client_match(referral),
        case_id=referral.accepted.case_id if referral.accepted else None,
        client_id=referral.accepted.client_id if referral.accepted else None,
        decision=_decision(referral),
        version=referral.version,
    )


@router.post(
    "",
    openapi_extra=text_body(),
    status_code=status.HTTP_201_CREATED,
    summary="Take a referral",
    description=(
        "Records a referral for the site, where it waits in the intake queue for a decision.\n\n"
        "The client registry is searched for people who may be the same person — the same "
        "name and date of birth (ignoring case, accents, spaces, hyphens and apostrophes) or "
        "the same phone number. Any found are listed in `duplicate_candidates`, and the "
        "referral cannot be accepted until the match is confirmed or overridden "
        "(`POST /referrals/{referral_id}/client-match`).\n\n"
        "The caller must work at the site (regional administrators: any site). The `Location` "
        "header names the new referral; `ETag` is its version."
    ),
    response_description="The referral, waiting for an intake decision",
    responses=problems(r403="You do not work at that site, or lack an intake role"),
)
async def receive_referral(
    body: Annotated[ReferralIn, Body(openapi_examples=REFERRAL_EXAMPLES)],
    principal: IntakeStaff,
    intake: IntakeApp,
    ctx: Context,
    response: Response,
    request: Request,
) -> ReferralOut:
    cmd = ReceiveReferral(
        referral_id=str(uuid.uuid4()),
        site=body.site,
        client=ClientDetails(**body.client.model_dump()),
        source=body.source,
        referrer_name=body.referrer_name,
        presenting_concerns=body.presenting_concerns,
        urgency=body.urgency,
        consent_to_share=body.consent_to_share,
        received_by=principal.sub,
    )
    referral = await intake.receive_referral(cmd, principal, ctx)
    response.headers["Location"] = f"/referrals/{referral.id}"
    _etag(response, referral)
    return await _view(referral, intake, principal, request)


@router.get(
    "/{referral_id}",
    summary="Read a referral",
    description=(
        "The referral with its status (`waiting`, `accepted`, `declined`), the latest risk "
        "screen, the duplicate candidates and the client match decision, and the intake "
        "decision once made. `ETag` is the version to send as `If-Match` with a change."
    ),
    responses=problems(r404=NOT_FOUND),
)
async def get_referral(
    referral_id: ReferralId,
    principal: IntakeStaff,
    intake: IntakeApp,
    response: Response,
    request: Request,
) -> ReferralOut:
    referral = await intake.referral(referral_id, principal)
    _etag(response, referral)
    return await _view(referral, intake, principal, request)


@router.post(
    "/{referral_id}/screening",
    summary="Record a risk screen",
    description=(
        "Records the answers of the structured risk screen; the screening rule turns them into "
        "a risk level — `low`, `medium`, `high` or `imminent` — and names the clause that "
        "decided (`rule`). The highest level any clause reaches wins:\n\n"
        "- **imminent**: suicidal intent with a plan; suicidal behaviour now or in the past "
        "week; intent to harm others\n"
        "- **high**: suicidal intent without a plan; behaviour in the past month; thoughts "
        "with a method; suicidal thoughts with severe substance use; thoughts of harming "
        "others; a child or vulnerable adult at risk at home\n"
        "- **medium**: suicidal thoughts; a wish to be dead; severe substance use\n"
        "- **low**: none of these\n\n"
        "The screen can be repeated while the referral waits; the latest counts. An accepted "
        "referral whose screen is `imminent` opens its case in crisis. This is a triage rule "
        "in the style of the C-SSRS screener, not a clinical instrument."
    ),
    responses=problems(
        r404=NOT_FOUND,
        r409="The referral is already accepted or declined",
        r412=STALE,
    ),
)
async def screen_risk(
    referral_id: ReferralId,
    body: Annotated[ScreeningIn, Body(openapi_examples=SCREENING_EXAMPLES)],
    principal: IntakeStaff,
    intake: IntakeApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> ScreeningOut:
    cmd = ScreenRisk(
        referral_id=referral_id,
        answers=ScreeningAnswers(**body.model_dump()),
        screened_by=principal.sub,
        expected_version=if_match,
    )
    referral = await intake.screen_risk(cmd, principal, ctx)
    _etag(response, referral)
    screening = referral.screening
    assert screening is not None  # just recorded
    return ScreeningOut(
        referral_id=referral.id,
        risk_level=screening.risk_level,
        rule=screening.rule,
        meaning=meaning_of(screening.rule),
        screened_by=screening.screened_by,
        screened_at=screening.screened_at,
        version=referral.version,
    )


@router.post(
    "/{referral_id}/client-match",
    summary="Confirm or override the duplicate-client match",
    description=(
        "When the referral lists `duplicate_candidates`, decide who it is about before "
        "accepting it:\n\n"
        '- `{"client_id": "..."}` — it is that registered client: the case opens for them.\n'
        '- `{"new_client": true, "reason": "..."}` — it is someone new: acceptance registers '
        "a new client.\n\n"
        "The decision can be changed until the referral is decided; the latest counts."
    ),
    responses=problems(
        r404=NOT_FOUND,
        r409="The referral has no candidates, or is already accepted or declined",
        r412=STALE,
    ),
)
async def decide_client_match(
    referral_id: ReferralId,
    body: Annotated[ClientMatchIn, Body(openapi_examples=CLIENT_MATCH_EXAMPLES)],
    principal: IntakeStaff,
    intake: IntakeApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
    request: Request,
) -> ReferralOut:
    if body.client_id is not None:
        referral = await intake.confirm_client_match(
            ConfirmClientMatch(
                referral_id=referral_id,
                client_id=body.client_id,
                confirmed_by=principal.sub,
                expected_version=if_match,
            ),
            principal,
            ctx,
        )
    else:
        referral = await intake.override_client_match(
            OverrideClientMatch(
                referral_id=referral_id,
                reason=body.reason or "",
                overridden_by=principal.sub,
                expected_version=if_match,
            ),
            principal,
            ctx,
        )
    _etag(response, referral)
    return await _view(referral, intake, principal, request)


@router.post(
    "/{referral_id}/accept",
    summary="Accept a referral",
    description=(
        "Accepts the referral: the cases service opens a case for the client, at the "
        "referral's site, with the screened risk level (`imminent` opens it in crisis). No "
        "request body is needed.\n\n"
        "The referral must have been risk-screened (else 409 `ReferralNotScreened`), and if "
        "it lists duplicate candidates the match must have been confirmed or overridden "
        "(else 409 `ClientMatchUndecided`). A confirmed match uses that client's id; otherwise "
        "a new client is registered (`new_client: true`)."
    ),
    response_description="The ids of the case the cases service opens and of the client",
    responses=problems(
        r404=NOT_FOUND,
        r409="Not screened, match undecided, or already accepted or declined",
        r412=STALE,
    ),
)
async def accept_referral(
    referral_id: ReferralId,
    principal: IntakeStaff,
    intake: IntakeApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
    request: Request,
) -> Accepted:
    cmd = AcceptReferral(
        referral_id=referral_id,
        accepted_by=principal.sub,
        case_id=str(uuid.uuid4()),
        new_client_id=str(uuid.uuid4()),
        expected_version=if_match,
    )
    referral = await intake.accept_referral(cmd, principal, ctx)
    _etag(response, referral)
    accepted = referral.accepted
    assert accepted is not None  # just accepted
    assert accepted.risk_level is not None  # acceptance needs a screen
    audit.note(request, client_id=accepted.client_id, case_id=accepted.case_id)
    return Accepted(
        referral_id=referral.id,
        case_id=accepted.case_id,
        client_id=accepted.client_id,
        new_client=accepted.new_client,
        risk_level=accepted.risk_level,
        version=referral.version,
    )


@router.post(
    "/{referral_id}/decline",
    summary="Decline a referral",
    description=(
        "Declines the referral, recording why and where the person was signposted instead. "
        "It leaves the intake queue; nothing more can be done with it."
    ),
    responses=problems(
        r404=NOT_FOUND,
        r409="The referral is already accepted or declined",
        r412=STALE,
    ),
)
async def decline_referral(
    referral_id: ReferralId,
    body: Annotated[DeclineIn, Body(openapi_examples=DECLINE_EXAMPLES)],
    principal: IntakeStaff,
    intake: IntakeApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
    request: Request,
) -> ReferralOut:
    cmd = DeclineReferral(
        referral_id=referral_id,
        reason=body.reason,
        signposted_to=body.signposted_to,
        declined_by=principal.sub,
        expected_version=if_match,
    )
    referral = await intake.decline_referral(cmd, principal, ctx)
    _etag(response, referral)
    return await _view(referral, intake, principal, request)
