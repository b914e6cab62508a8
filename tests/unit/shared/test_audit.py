"""The audit trail fails closed and records, as a FHIR AuditEvent, what a request was about,
the data subjects it showed and why it was made (issues 7 and 8)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request

from casework.audit import (
    EXT_REQUEST_ID,
    AuditMiddleware,
    AuditTrail,
    action_code,
    note,
    purpose_code,
    subjects_of,
    subjects_shown,
)
from casework.auth import build_verifier, mint_dev_token
from casework.http import create_http_app
from casework.metrics import Metrics
from casework.settings import Settings


def entities(record: dict[str, Any], system: str) -> list[str]:
    return [
        e["what"]["identifier"]["value"]
        for e in record["event"]["entity"]
        if e["what"].get("identifier", {}).get("system") == system
    ]


class FakeRecords:
    """Stands in for the audit collection; `fail` makes every insert raise."""

    def __init__(self) -> None:
        self.inserted: list[dict[str, Any]] = []
        self.fail = False

    async def insert_one(self, document: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("audit store unreachable")
        self.inserted.append(document)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CASEWORK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.for_service(
        "intake", 8001, environment="test", jwt_dev_key_path=tmp_path / "dev.pem"
    )


@pytest.fixture
def records() -> FakeRecords:
    return FakeRecords()


@pytest.fixture
def app(settings: Settings, records: FakeRecords) -> FastAPI:
    router = APIRouter()

    @router.get("/referrals/{referral_id}")
    async def read(referral_id: str, request: Request) -> dict[str, str]:
        note(request, client_id="client-7")
        subjects_shown(["client:client-7"])
        return {"client_name": "Alex Morgan"}

    @router.get("/clients/{client_id}")
    async def slow_read(client_id: str) -> dict[str, str]:
        # two requests interleave here: each record must name only its own subject
        subjects_shown([f"client:{client_id}"])
        await asyncio.sleep(0.05)
        subjects_shown([f"client:{client_id}"])
        return {}

    @router.get("/intake-queue")
    async def queue(site: str, request: Request) -> list[str]:
        note(request, referral_ids=["r1", "r2"], client_ids=["c1"])
        note(request, referral_ids=["r2", "r3"])
        subjects_shown(["client:c1", "client:c2"])
        return ["r1", "r2", "r3"]

    app = create_http_app(
        settings=settings,
        title="t",
        description="",
        version="1",
        routers=[router],
        lifespan=None,
        readiness={},
        metrics=Metrics("intake"),
        verifier=build_verifier(settings),
    )
    app.add_middleware(
        AuditMiddleware,
        trail=AuditTrail(records, service="intake"),  # type: ignore[arg-type]
    )
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        yield client


async def test_when_the_record_cannot_be_written_the_answer_is_503_and_not_sent(
    client: httpx.AsyncClient, records: FakeRecords
) -> None:
    records.fail = True

    response = await client.get("/referrals/r-1", headers={"X-Request-ID": "req-9"})

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Request-ID"] == "req-9"
    assert response.json()["code"] == "AuditUnavailable"
    assert "Alex" not in response.text  # the client data was withheld


async def test_a_record_is_an_audit_event_naming_the_resource_and_the_subjects_shown(
    client: httpx.AsyncClient, records: FakeRecords, settings: Settings
) -> None:
    token = mint_dev_token(settings, "ivy", ["intake_worker"], ["north"], team="t1")

    response = await client.get(
        "/referrals/r-1?view=full", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200
    [record] = records.inserted
    event = record["event"]
    assert record["_id"] == event["id"]
    assert event["resourceType"] == "AuditEvent"
    assert event["action"] == "R"
    assert event["subtype"][0]["code"] == "read"
    assert event["outcome"]["code"]["code"] == "0"
    assert event["outcome"]["detail"] == [{"text": "HTTP 200"}]
    [agent] = event["agent"]
    assert agent["who"]["identifier"]["value"] == "ivy"
    assert agent["role"] == [{"text": "intake_worker"}]
    assert agent["site"] == ["north"]
    assert event["source"]["observer"]["display"] == "casework/intake"
    assert event["entity"][0]["what"]["reference"] == "/referrals/r-1"
    assert event["entity"][0]["description"] == "GET /referrals/{referral_id}"
    assert entities(record, "urn:casework:referral_id") == ["r-1"]
    assert entities(record, "urn:casework:client_id") == ["client-7"]
    assert subjects_of(event) == ["client:client-7"]
    # an undeclared query parameter is recorded by name only
    assert "view" in __import__("base64").b64decode(event["entity"][0]["query"]).decode()
    assert "full" not in str(event)
    assert "Alex" not in str(event)
    assert purpose_code(event) == "TREAT"  # the intake worker's default


async def test_a_list_read_records_every_subject_it_showed(
    client: httpx.AsyncClient, records: FakeRecords
) -> None:
    await client.get("/intake-queue?site=north")

    [record] = records.inserted
    assert entities(record, "urn:casework:referral_ids") == ["r1", "r2", "r3"]
    assert subjects_of(record["event"]) == ["client:c1", "client:c2"]
    query = __import__("base64").b64decode(record["event"]["entity"][0]["query"]).decode()
    assert query == "site=north"  # a declared parameter keeps its value


async def test_subjects_shown_is_per_request_when_requests_interleave(
    client: httpx.AsyncClient, records: FakeRecords
) -> None:
    await asyncio.gather(client.get("/clients/a"), client.get("/clients/b"))

    shown = sorted(subjects_of(r["event"]) for r in records.inserted)
    assert shown == [["client:a"], ["client:b"]]


async def test_a_stated_purpose_is_recorded_by_word_or_by_code(
    client: httpx.AsyncClient, records: FakeRecords, settings: Settings
) -> None:
    token = mint_dev_token(settings, "sue", ["supervisor"], ["north"])
    auth = {"Authorization": f"Bearer {token}"}

    default = await client.get("/referrals/r-1", headers=auth)
    by_word = await client.get("/referrals/r-1", headers={**auth, "X-Purpose-Of-Use": "audit"})
    by_code = await client.get("/referrals/r-1", headers={**auth, "X-Purpose-Of-Use": "treat"})

    assert [default.status_code, by_word.status_code, by_code.status_code] == [200, 200, 200]
    assert [purpose_code(r["event"]) for r in records.inserted] == ["HOPERAT", "HCOMPL", "TREAT"]


async def test_an_unknown_purpose_is_refused_with_422_and_recorded(
    client: httpx.AsyncClient, records: FakeRecords, settings: Settings
) -> None:
    token = mint_dev_token(settings, "sue", ["supervisor"], ["north"])

    response = await client.get(
        "/referrals/r-1",
        headers={
            "Authorization": f"Bearer {token}",
            "X-Purpose-Of-Use": "curiosity",
            "X-Request-ID": "req-7",
        },
    )

    assert response.status_code == 422
    assert response.headers["X-Request-ID"] == "req-7"
    [problem] = response.json()["errors"]
    assert problem["field"] == "header.X-Purpose-Of-Use"
    assert problem["code"] == "unknown_purpose"
    assert "curiosity" not in response.text
    assert "Alex" not in response.text  # the route never ran
    [record] = records.inserted
    assert record["event"]["outcome"]["detail"] == [{"text": "HTTP 422"}]
    assert record["event"]["agent"][0]["who"]["identifier"]["value"] == "sue"
    assert {"url": EXT_REQUEST_ID, "valueString": "req-7"} in record["event"]["extension"]
    assert subjects_of(record["event"]) == []


async def test_an_unknown_purpose_whose_record_fails_is_503(
    client: httpx.AsyncClient, records: FakeRecords
) -> None:
    records.fail = True

    response = await client.get("/referrals/r-1", headers={"X-Purpose-Of-Use": "nosy"})

    assert response.status_code == 503


@pytest.mark.parametrize(
    ("method", "template", "expected"),
    [
        ("GET", "/cases/{case_id}", ("R", "read")),
        ("GET", "/intake-queue", ("R", "search-type")),
        ("POST", "/referrals", ("C", "create")),
        ("POST", "/cases/{case_id}/assignment", ("E", "operation")),
        ("PUT", "/x/{id}", ("U", "update")),
        ("DELETE", "/x/{id}", ("D", "delete")),
    ],
)
def test_actions_map_to_the_audit_event_codes(
    method: str, template: str, expected: tuple[str, str]
) -> None:
    assert action_code(method, template) == expected


async def test_a_request_refused_for_a_nul_is_recorded_without_it(
    client: httpx.AsyncClient, records: FakeRecords, settings: Settings
) -> None:
    token = mint_dev_token(settings, "ivy", ["intake_worker"], ["north"])

    response = await client.get(
        "/intake-queue?site=no%00rth", headers={"Authorization": f"Bearer {token}"}
    )
    in_path = await client.get("/referrals/r%001")

    assert response.status_code == 422
    assert in_path.status_code == 422
    first, second = records.inserted
    assert first["event"]["outcome"]["detail"] == [{"text": "HTTP 422"}]
    assert first["event"]["agent"][0]["who"]["identifier"]["value"] == "ivy"
    assert "\x00" not in str(first)
    assert "\x00" not in str(second)
    assert entities(second, "urn:casework:referral_id") == []  # a bad id is not a subject


async def test_a_refused_request_whose_record_fails_is_503_too(
    client: httpx.AsyncClient, records: FakeRecords
) -> None:
    records.fail = True

    response = await client.get("/intake-queue?site=%00")

    assert response.status_code == 503
