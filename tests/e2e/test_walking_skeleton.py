"""Referral → acceptance → case visible, over HTTP, on the real stack, with CLI tokens; and
invalid input refused with field-level messages and nothing stored."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from support.audit import wait_for_records
from support.polling import eventually
from support.stack import Stack

REFERRAL: dict[str, Any] = {
    "client": {
        "given_name": "Alex",
        "family_name": "Morgan",
        "date_of_birth": "1990-04-12",
        "phone": "+44 7700 900123",
    },
    "source": "gp",
    "referrer_name": "Dr Patel",
    "presenting_concerns": "Low mood for three months, stopped going to work.",
    "urgency": "soon",
    "consent_to_share": True,
}


@pytest.fixture(scope="module")
def site(stack: Stack) -> str:
    """A site registered in the directory and known to intake."""
    code = f"site-{uuid.uuid4().hex[:6]}"
    admin = stack.token("root", "regional_admin")
    with stack.client("supervision", admin) as supervision:
        created = supervision.post("/sites", json={"site": code, "name": "North Hub"})
        assert created.status_code == 201, created.text
        again = supervision.post("/sites", json={"site": code, "name": "North Hub"})
        assert again.status_code == 409
        assert again.json()["code"] == "SiteAlreadyRegistered"
    # intake learns of the site from the supervision topic
    worker = stack.token("ivy", "intake_worker", sites=(code,))
    with stack.client("intake", worker) as intake:
        response = eventually(
            lambda: intake.post("/referrals", json={**REFERRAL, "site": code}),
            lambda r: r.status_code != 422,
        )
        assert response.status_code == 201, response.text
    return code


def stored_events(stack: Stack, service: str) -> int:
    with MongoClient(stack.env["CASEWORK_MONGO_URL"]) as client:
        return client[stack.databases[service]]["events"].count_documents({})


def test_referral_acceptance_opens_a_case_visible_over_http(stack: Stack, site: str) -> None:
    worker = stack.token("ivy", "intake_worker", sites=(site,))
    # a person no earlier test referred, so no duplicate-client candidates hold up acceptance
    client = {**REFERRAL["client"], "given_name": f"Sky{uuid.uuid4().hex[:6]}", "phone": None}
    with stack.client("intake", worker) as intake:
        taken = intake.post("/referrals", json={**REFERRAL, "client": client, "site": site})
        assert taken.status_code == 201, taken.text
        referral = taken.json()
        assert referral["status"] == "waiting"
        assert taken.headers["location"] == f"/referrals/{referral['referral_id']}"

        screened = intake.post(
            f"/referrals/{referral['referral_id']}/screening",
            json={"wish_to_be_dead": False, "suicidal_thoughts": False},
        )
        assert screened.status_code == 200, screened.text
        assert screened.json()["risk_level"] == "low"
        accepted = intake.post(f"/referrals/{referral['referral_id']}/accept")
        assert accepted.status_code == 200, accepted.text
        ids = accepted.json()
        again = intake.post(f"/referrals/{referral['referral_id']}/accept")
        assert again.status_code == 409
        assert again.json()["code"] == "ReferralAlreadyDecided"

    # a new case has no caseworker yet: the site's manager sees it
    manager = stack.token("mia", "site_manager", sites=(site,))
    with stack.client("cases", manager) as cases:
        response = eventually(
            lambda: cases.get(f"/cases/{ids['case_id']}"), lambda r: r.status_code == 200
        )
        assert response.status_code == 200, response.text
        case = response.json()
        assert case["phase"] == "assessment"
        assert case["site"] == site
        assert case["client_id"] == ids["client_id"]
        assert case["referral_id"] == referral["referral_id"]
        assert case["version"] == 1
        assert response.headers["etag"] == '"1"'

    elsewhere = stack.token("olga", "site_manager", sites=("another-site",))
    with stack.client("cases", elsewhere) as cases:
        assert cases.get(f"/cases/{ids['case_id']}").status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.pop("client"), "body.client"),
        (lambda r: r.pop("urgency"), "body.urgency"),
        (lambda r: r["client"].update(date_of_birth="1990-02-30"), "body.client.date_of_birth"),
        (lambda r: r["client"].update(date_of_birth="2999-01-01"), "body.client.date_of_birth"),
        (lambda r: r.update(source="carrier pigeon"), "body.source"),
        (lambda r: r.update(site="nowhere"), "body.site"),
    ],
    ids=[
        "no client",
        "no urgency",
        "impossible date",
        "future birth",
        "bad source",
        "unknown site",
    ],
)
def test_invalid_referrals_get_field_level_422_and_store_nothing(
    stack: Stack, site: str, change: Callable[[dict[str, Any]], object], field: str
) -> None:
    body = {**REFERRAL, "client": dict(REFERRAL["client"]), "site": site}
    change(body)
    worker = stack.token("ivy", "intake_worker", sites=(site, "nowhere"))
    before = stored_events(stack, "intake")
    with stack.client("intake", worker) as intake:
        response = intake.post("/referrals", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]
    assert stored_events(stack, "intake") == before


def test_no_token_wrong_role_and_other_site_are_refused(stack: Stack, site: str) -> None:
    body = {**REFERRAL, "site": site}
    before = stored_events(stack, "intake")
    with stack.client("intake") as anonymous:
        response = anonymous.post("/referrals", json=body)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    with stack.client("intake", "not-a-jwt") as forged:
        assert forged.post("/referrals", json=body).status_code == 401
    with stack.client("intake", stack.token("carl", "caseworker", sites=(site,))) as wrong_role:
        response = wrong_role.post("/referrals", json=body)
        assert response.status_code == 403
        assert "intake_worker" in response.json()["detail"]
    other = stack.token("ola", "intake_worker", sites=("another-site",))
    with stack.client("intake", other) as other_site:
        response = other_site.post("/referrals", json=body)
        assert response.status_code == 403
    assert stored_events(stack, "intake") == before


def test_every_service_reports_ready_and_exposes_metrics(stack: Stack) -> None:
    for service, url in stack.urls.items():
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200, (service, ready.text)
        body = ready.json()
        assert (body["database"]["status"], body["broker"]["status"]) == ("ok", "ok"), service
        assert body["relay"]["state"] in ("publishing", "standby"), service
        assert body["status"] in ("ok", "degraded"), (service, body["reasons"])
        metrics = httpx.get(f"{url}/metrics").text
        assert "casework_outbox_backlog" in metrics
    intake_metrics = httpx.get(f"{stack.urls['intake']}/metrics").text
    assert (
        'casework_events_appended_total{type="casework.intake.ReferralReceived.v1"}'
        in intake_metrics
    )


def test_every_api_request_leaves_an_audit_record(stack: Stack, site: str) -> None:
    worker = stack.token("audra", "intake_worker", sites=(site,))
    with stack.client("intake", worker) as intake:
        taken = intake.post("/referrals", json={**REFERRAL, "site": site})
        referral_id = taken.json()["referral_id"]
        read = intake.get(f"/referrals/{referral_id}")
    with stack.client("intake") as anonymous:
        anonymous.get(f"/referrals/{referral_id}")
    # in the audit store, through the audit topic
    records = wait_for_records(stack, {"resource": f"/referrals/{referral_id}"}, count=2)
    mine = wait_for_records(stack, {"sub": "audra"}, count=2)
    assert {(r["operation"], r["outcome"], r["sub"]) for r in records} == {
        ("GET /referrals/{referral_id}", 200, "audra"),
        ("GET /referrals/{referral_id}", 401, None),
    }
    assert ("POST /referrals", 201) in {(r["operation"], r["outcome"]) for r in mine}
    assert all(r["request_id"] for r in mine)
    assert read.headers["x-request-id"] in {r["request_id"] for r in records}
