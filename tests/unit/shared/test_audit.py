"""The audit trail fails closed and records what a request was about (issue 7)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request

from casework.audit import AuditMiddleware, AuditTrail, note
from casework.auth import build_verifier, mint_dev_token
from casework.http import create_http_app
from casework.metrics import Metrics
from casework.settings import Settings


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
        return {"client_name": "Alex Morgan"}

    @router.get("/intake-queue")
    async def queue(site: str, request: Request) -> list[str]:
        note(request, referral_ids=["r1", "r2"], client_ids=["c1"])
        note(request, referral_ids=["r2", "r3"])
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
    app.add_middleware(AuditMiddleware, trail=AuditTrail(records))  # type: ignore[arg-type]
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


async def test_a_record_carries_the_subject_and_the_query(
    client: httpx.AsyncClient, records: FakeRecords
) -> None:
    response = await client.get("/referrals/r-1?view=full")

    assert response.status_code == 200
    [record] = records.inserted
    assert record["action"] == "GET /referrals/{referral_id}"
    assert record["referral_id"] == "r-1"
    assert record["client_id"] == "client-7"
    assert record["query"] == "view=full"
    assert record["outcome"] == 200


async def test_a_list_read_records_the_ids_it_showed(
    client: httpx.AsyncClient, records: FakeRecords
) -> None:
    await client.get("/intake-queue?site=north")

    [record] = records.inserted
    assert record["referral_ids"] == ["r1", "r2", "r3"]
    assert record["client_ids"] == ["c1"]
    assert record["query"] == "site=north"


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
    assert first["outcome"] == 422
    assert first["sub"] == "ivy"
    assert "\x00" not in first["query"]
    assert first["query"] == "site=no%EF%BF%BDrth"
    assert "\x00" not in second["resource"]
    assert "referral_id" not in second  # a bad id is not a subject


async def test_a_refused_request_whose_record_fails_is_503_too(
    client: httpx.AsyncClient, records: FakeRecords
) -> None:
    records.fail = True

    response = await client.get("/intake-queue?site=%00")

    assert response.status_code == 503
