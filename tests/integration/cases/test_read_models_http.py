"""The read-side routes over HTTP, on the platform's edge and the real MongoDB-wire server:
who gets an answer, who gets 403 or 404, and the shape of the answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from casework.auth import InvalidToken, Principal
from casework.clock import FixedClock
from casework.contracts.cases import CaseOpened, CaseworkerAssigned, CrisisDeclared
from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.contracts.intake import ClientDetails, ReferralAccepted, ReferralReceived
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.http import create_http_app
from casework.metrics import Metrics
from casework.runtime import events_topic
from casework.service import PLATFORM_ERRORS
from casework.settings import Settings

from casework_cases.adapters.read_models import ReadModels, build_read_models
from casework_cases.domain.access import CaseScope
from casework_cases.entrypoints.queries import router
from support.envelopes import envelope_of

NOW = datetime(2026, 2, 25, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 2, 23, 9, 0, tzinfo=UTC)


def person(
    role: str, sub: str, sites: tuple[str, ...] = ("north",), team: str | None = None
) -> Principal:
    return Principal(sub=sub, name=sub, roles=frozenset({role}), sites=frozenset(sites), team=team)


PEOPLE = {
    p.sub: p
    for p in [
        person("caseworker", "carl", team="t1"),
        person("caseworker", "cole", team="t2"),
        person("supervisor", "sue", team="t1"),
        person("crisis_worker", "ana"),
        person("site_manager", "mia"),
        person("site_manager", "mo", sites=("south",)),
        person("regional_admin", "ray", sites=()),
        person("intake_worker", "ivy"),
    ]
}


class TokenIsTheName:
    """Test verifier: the bearer token is the person's id."""

    def verify(self, token: str) -> Principal:
        try:
            return PEOPLE[token]
        except KeyError:
            raise InvalidToken("unknown test token") from None


def envelope(event: DomainEvent, stream: str, version: int, at: datetime) -> Envelope:
    return envelope_of(event, stream, version, at)


async def feed(read_models: ReadModels) -> None:
    received = ReferralReceived(
        referral_id="R1",
        site="north",
        client=ClientDetails(given_name="Alex", family_name="Morgan", date_of_birth=T0.date()),
        source=ReferralSource.GP,
        presenting_concerns="Low mood.",
        urgency=Urgency.SOON,
        received_by="ivy",
        received_at=T0,
    )
    accepted = ReferralAccepted(
        referral_id="R1",
        case_id="C1",
        client_id="K1",
        site="north",
        accepted_by="ivy",
        accepted_at=T0 + timedelta(hours=4),
    )
    opened = CaseOpened(
        case_id="C1",
        client_id="K1",
        referral_id="R1",
        site="north",
        risk_level=RiskLevel.HIGH,
        opened_at=T0 + timedelta(hours=5),
        client_name="Alex Morgan",
        referral_received_at=T0,  # the opening policy repeats the referral's arrival
    )
    assigned = CaseworkerAssigned(
        case_id="C1",
        caseworker_id="carl",
        team="t1",
        assigned_by="sue",
        assigned_at=T0 + timedelta(hours=6),
    )
    crisis = CrisisDeclared(
        case_id="C1",
        crisis_id="X1",
        site="north",
        risk_level=RiskLevel.IMMINENT,
        summary="Called saying goodbye.",
        declared_by="ana",
        declared_at=T0 + timedelta(hours=7),
    )
    deliveries = [
        (envelope(opened, "case-C1", 1, opened.opened_at), opened),
        (envelope(assigned, "case-C1", 2, assigned.assigned_at), assigned),
        (envelope(crisis, "case-C1", 3, crisis.declared_at), crisis),
        (envelope(received, "referral-R1", 1, T0), received),
        (envelope(accepted, "referral-R1", 2, accepted.accepted_at), accepted),
    ]
    for env, event in deliveries:
        for projection in read_models.projections:
            if events_topic(event.service) in projection.topics:
                await projection.handle(env, event)


class StreamScopes:
    """Stands in for `Cases.current_scopes`: who holds each case as its stream says (here
    the same as the events fed to the read models; e2e tests try it against a real stream)."""

    async def current_scopes(self, case_ids: Sequence[str]) -> dict[str, CaseScope]:
        known = {"C1": CaseScope(site="north", caseworker_id="carl", team="t1")}
        return {case_id: known[case_id] for case_id in case_ids if case_id in known}


@pytest.fixture
async def client(database: AsyncDatabase[Document]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_http_app(
        settings=Settings.for_service("cases", 8002, environment="test"),
        title="cases",
        description="cases",
        version="0",
        routers=[router],
        lifespan=None,
        readiness={},
        metrics=Metrics("cases"),
        verifier=TokenIsTheName(),
        error_status=PLATFORM_ERRORS,
    )
    read_models = build_read_models(database, FixedClock(NOW))
    app.state.read_models = read_models
    app.state.cases = StreamScopes()
    await feed(read_models)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cases") as c:
        yield c


def as_(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {sub}"}


async def test_a_caseworker_reads_their_caseload(client: httpx.AsyncClient) -> None:
    response = await client.get("/caseloads/carl", headers=as_("carl"))

    assert response.status_code == 200
    body = response.json()
    assert body["worker_id"] == "carl"
    (case,) = body["cases"]
    assert case["case_id"] == "C1"
    assert case["client_name"] == "Alex Morgan"
    assert (case["phase"], case["risk_level"], case["crisis_open"]) == (
        "assessment",
        "high",
        True,
    )
    assert case["plan_status"] == "none"
    assert case["first_assigned_at"] == "2026-02-23T15:00:00Z"
    assert case["last_activity_at"] == "2026-02-23T16:00:00Z"
    assert case["next_activity_due"] is None


@pytest.mark.parametrize(
    ("who", "status", "cases"),
    [
        ("sue", 200, 1),  # the team's supervisor
        ("mia", 200, 1),  # the site's manager
        ("mo", 200, 0),  # another site's manager: nothing in reach
        ("ray", 200, 1),
        ("cole", 403, None),  # another caseworker
        ("ana", 403, None),  # crisis workers have no caseload view
        ("ivy", 403, None),
    ],
)
async def test_who_reads_someone_elses_caseload(
    client: httpx.AsyncClient, who: str, status: int, cases: int | None
) -> None:
    response = await client.get("/caseloads/carl", headers=as_(who))
    assert response.status_code == status
    if cases is None:
        assert response.headers["content-type"] == "application/problem+json"
    else:
        assert len(response.json()["cases"]) == cases


async def test_the_timeline_has_intake_and_case_events_in_order(client: httpx.AsyncClient) -> None:
    response = await client.get("/cases/C1/timeline", headers=as_("ana"))

    assert response.status_code == 200
    body = response.json()
    assert (body["case_id"], body["referral_id"]) == ("C1", "R1")
    assert [e["event"] for e in body["entries"]] == [
        "ReferralReceived",
        "ReferralAccepted",
        "CaseOpened",
        "CaseworkerAssigned",
        "CrisisDeclared",
    ]
    assert body["entries"][3]["summary"] == "Caseworker carl assigned (team t1) by sue"
    assert body["entries"][4]["detail"]["summary"] == "Called saying goodbye."


@pytest.mark.parametrize(
    ("who", "path"),
    [("cole", "/cases/C1/timeline"), ("mo", "/cases/C1/timeline"), ("ray", "/cases/C404/timeline")],
)
async def test_a_timeline_out_of_reach_is_not_found(
    client: httpx.AsyncClient, who: str, path: str
) -> None:
    response = await client.get(path, headers=as_(who))
    assert response.status_code == 404
    assert response.json()["code"] == "NotVisible"


async def test_intake_workers_read_no_timelines(client: httpx.AsyncClient) -> None:
    assert (await client.get("/cases/C1/timeline", headers=as_("ivy"))).status_code == 403
    assert (await client.get("/cases/C1/timeline")).status_code == 401


async def test_a_site_manager_reads_their_sites_register(client: httpx.AsyncClient) -> None:
    response = await client.get("/sites/north/register", params={"weeks": 2}, headers=as_("mia"))

    assert response.status_code == 200
    body = response.json()
    assert body["site"] == "north"
    assert body["cases_by_phase"]["assessment"] == 1
    assert body["cases_by_risk"]["high"] == 1
    assert body["open_crises"] == 1
    assert body["referrals_per_week"] == [
        {
            "week": "2026-W08",
            "starts_on": "2026-02-16",
            "received": 0,
            "accepted": 0,
            "declined": 0,
        },
        {
            "week": "2026-W09",
            "starts_on": "2026-02-23",
            "received": 1,
            "accepted": 1,
            "declined": 0,
        },
    ]
    # read from histograms: within 2.2%
    assert body["referral_to_acceptance"] == {
        "count": 1,
        "median_hours": pytest.approx(4.0, rel=0.022),
        "p90_hours": pytest.approx(4.0, rel=0.022),
    }
    assert body["referral_to_first_assignment"] == {
        "count": 1,
        "median_hours": pytest.approx(6.0, rel=0.022),
        "p90_hours": pytest.approx(6.0, rel=0.022),
    }
    default = await client.get("/sites/north/register", headers=as_("ray"))
    assert len(default.json()["referrals_per_week"]) == 12


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("mo", "/sites/north/register", 403),  # not their site
        ("sue", "/sites/north/register", 403),  # supervisors have no register
        ("carl", "/sites/north/register", 403),
        ("mia", "/sites/north/register?weeks=0", 422),
        ("mia", "/sites/north/register?weeks=105", 422),
    ],
)
async def test_the_register_is_refused_outside_its_audience(
    client: httpx.AsyncClient, who: str, path: str, status: int
) -> None:
    response = await client.get(path, headers=as_(who))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
