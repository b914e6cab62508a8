"""A database outage is answered with a prompt 503 problem and `Retry-After`, not a 500 after
the request hung: here against a MongoDB URL where nothing listens (a real refused
connection, through the service's own client settings) — audited as in a service, whose
record would go to the same unreachable database."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
from fastapi import APIRouter

from casework.audit import AuditMiddleware, AuditTrail
from casework.auth import build_verifier
from casework.http import create_http_app
from casework.metrics import Metrics
from casework.runtime import SERVER_SELECTION_TIMEOUT_MS, mongo_client
from casework.settings import Settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens


async def test_a_database_outage_is_a_prompt_503_with_retry_after(tmp_path: Path) -> None:
    settings = Settings.for_service(
        "cases",
        8002,
        environment="test",
        jwt_dev_key_path=tmp_path / "dev.pem",
        mongo_url=f"mongodb://127.0.0.1:{_closed_port()}",
    )
    client = mongo_client(settings)
    router = APIRouter()

    @router.get("/cases/{case_id}")
    async def get_case(case_id: str) -> dict[str, str]:
        await client[settings.database_name]["cases"].find_one({"_id": case_id})
        return {"id": case_id}

    app = create_http_app(
        settings=settings,
        title="Cases",
        description="Cases",
        version="1",
        routers=[router],
        lifespan=None,
        readiness={},
        metrics=Metrics("cases"),
        verifier=build_verifier(settings),
        error_status={},
    )
    outbox = client[settings.database_name]["audit_outbox"]
    app.add_middleware(AuditMiddleware, trail=AuditTrail(outbox, service="cases"))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://cases") as http:
            started = time.perf_counter()
            response = await http.get("/cases/c1")
            elapsed = time.perf_counter() - started
    finally:
        await client.close()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (503, "DatabaseUnavailable")
    # one server selection, not a hang, and not a second one for an audit record bound for
    # the same database (that took 2 s here): the client's timeout and a margin
    assert elapsed < SERVER_SELECTION_TIMEOUT_MS / 1000 + 0.8, elapsed
