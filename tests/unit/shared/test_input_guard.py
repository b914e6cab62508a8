"""The HTTP edge refuses input that could break a service, in one place for every service.

Each test sends what an outside tester sent (issue 7) and checks that the route never ran
and that the answer is a problem document of the one shape: `code`, and `errors[]` with
`field`, `code` and `message`.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from casework.auth import build_verifier, mint_dev_token
from casework.http import MAX_JSON_DEPTH, check_json_body, create_http_app, text_body
from casework.metrics import Metrics
from casework.settings import Settings

COMMAND_LIMIT = 2048
TEXT_LIMIT = 8192


class Note(BaseModel):
    site: str
    text: str
    count: int = 0
    tags: list[str] = []
    extra: dict[str, Any] = {}


def _settings(tmp_path: Path) -> Settings:
    return Settings.for_service(
        "cases",
        8002,
        environment="test",
        jwt_dev_key_path=tmp_path / "dev.pem",
        http_max_body_bytes=COMMAND_LIMIT,
        http_max_text_body_bytes=TEXT_LIMIT,
    )


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CASEWORK_"):
            monkeypatch.delenv(name)


class Calls:
    def __init__(self) -> None:
        self.seen: list[Any] = []


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def app(tmp_path: Path, calls: Calls) -> FastAPI:
    router = APIRouter()

    @router.post("/cases/{case_id}/notes")
    async def add_note(case_id: str, note: Note) -> dict[str, str]:
        calls.seen.append((case_id, note))
        return {"ok": "yes"}

    @router.post("/cases/{case_id}/assessment", openapi_extra=text_body())
    async def assess(case_id: str, note: Note) -> dict[str, str]:
        calls.seen.append((case_id, note))
        return {"ok": "yes"}

    @router.get("/cases/{case_id}")
    async def read(case_id: str, site: str = "north") -> dict[str, str]:
        calls.seen.append((case_id, site))
        return {"case_id": case_id}

    @router.delete("/cases/{case_id}")
    async def forget(case_id: str) -> dict[str, str]:
        return {"case_id": case_id}

    @router.post("/cases/{case_id}/accept")
    async def accept(case_id: str) -> dict[str, str]:
        calls.seen.append(case_id)
        return {"ok": "yes"}

    settings = _settings(tmp_path)
    return create_http_app(
        settings=settings,
        title="Cases",
        description="",
        version="1",
        routers=[router],
        lifespan=None,
        readiness={},
        metrics=Metrics("cases"),
        verifier=build_verifier(settings),
    )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cases") as client:
        yield client


def _note(**fields: Any) -> dict[str, Any]:
    return {"site": "north", "text": "slept badly", **fields}


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["code"], str)
    assert body["code"]
    assert body["errors"], "every refusal names what is wrong"
    for error in body["errors"]:
        assert set(error) >= {"field", "code", "message"}
    return body


def _fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body["errors"]]


# --- control characters ------------------------------------------------------------------


async def test_nul_in_a_body_string_is_refused_naming_the_field(
    client: httpx.AsyncClient, calls: Calls
) -> None:
    response = await client.post("/cases/c1/notes", json=_note(text="bad\u0000value"))

    body = _problem(response, 422)
    assert _fields(body) == ["body.text"]
    assert body["errors"][0]["code"] == "control_character"
    assert "bad" not in response.text  # the value is not echoed
    assert calls.seen == []


@pytest.mark.parametrize("char", ["\u0001", "\u0007", "\u001b", "\u001f", "\u000b"])
async def test_other_c0_controls_are_refused(
    client: httpx.AsyncClient, calls: Calls, char: str
) -> None:
    response = await client.post("/cases/c1/notes", json=_note(tags=["ok", f"x{char}"]))

    assert _fields(_problem(response, 422)) == ["body.tags.1"]
    assert calls.seen == []


async def test_tab_newline_and_carriage_return_are_free_text(
    client: httpx.AsyncClient, calls: Calls
) -> None:
    response = await client.post("/cases/c1/notes", json=_note(text="a\tb\nc\r\nd"))

    assert response.status_code == 200
    assert calls.seen[0][1].text == "a\tb\nc\r\nd"


async def test_a_control_character_in_a_key_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/cases/c1/notes", json=_note(extra={"k\u0000": 1}))

    assert _fields(_problem(response, 422)) == ["body.extra"]


async def test_a_lone_surrogate_is_refused(client: httpx.AsyncClient, calls: Calls) -> None:
    raw = b'{"site": "north", "text": "\\ud800 alone"}'
    response = await client.post(
        "/cases/c1/notes", content=raw, headers={"content-type": "application/json"}
    )

    body = _problem(response, 422)
    assert body["errors"][0] == {
        "field": "body.text",
        "code": "invalid_unicode",
        "message": body["errors"][0]["message"],
        "type": "invalid_unicode",
    }
    assert calls.seen == []


async def test_nul_in_a_query_parameter_is_refused(client: httpx.AsyncClient, calls: Calls) -> None:
    response = await client.get("/cases/c1?site=%00north")

    assert _fields(_problem(response, 422)) == ["query.site"]
    assert calls.seen == []


async def test_a_newline_in_a_query_parameter_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/cases/c1?site=no%0Arth")

    assert _fields(_problem(response, 422)) == ["query.site"]


async def test_nul_in_a_path_parameter_is_refused_naming_it(
    client: httpx.AsyncClient, calls: Calls
) -> None:
    response = await client.get("/cases/%00")

    assert _fields(_problem(response, 422)) == ["path.case_id"]
    assert calls.seen == []


async def test_nul_in_a_path_parameter_of_a_body_route_is_refused(
    client: httpx.AsyncClient, calls: Calls
) -> None:
    response = await client.post("/cases/a%01b/notes", json=_note())

    assert _fields(_problem(response, 422)) == ["path.case_id"]
    assert calls.seen == []


async def test_an_integer_beyond_64_bits_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/cases/c1/notes", json=_note(count=2**64))

    assert _fields(_problem(response, 422)) == ["body.count"]


# --- size --------------------------------------------------------------------------------


async def test_a_body_above_the_command_limit_is_413(
    client: httpx.AsyncClient, calls: Calls
) -> None:
    response = await client.post("/cases/c1/notes", json=_note(text="x" * COMMAND_LIMIT))

    body = _problem(response, 413)
    assert body["code"] == "BodyTooLarge"
    assert str(COMMAND_LIMIT) in body["detail"]
    assert calls.seen == []


async def test_a_text_route_takes_more_up_to_its_own_limit(
    client: httpx.AsyncClient, calls: Calls
) -> None:
    fits = await client.post("/cases/c1/assessment", json=_note(text="x" * (TEXT_LIMIT // 2)))
    too_big = await client.post("/cases/c1/assessment", json=_note(text="x" * TEXT_LIMIT))

    assert fits.status_code == 200
    assert str(TEXT_LIMIT) in _problem(too_big, 413)["detail"]
    assert len(calls.seen) == 1


async def test_five_megabytes_are_refused_before_they_are_read(
    client: httpx.AsyncClient, calls: Calls
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(80):
            sent += 1
            yield b"x" * 65536

    response = await client.post(
        "/cases/c1/notes", content=chunks(), headers={"content-type": "application/json"}
    )

    _problem(response, 413)
    assert calls.seen == []


async def test_a_declared_length_above_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/cases/c1/notes",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": str(10**7)},
    )

    _problem(response, 413)


# --- media type and syntax ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
    ],
)
async def test_a_body_that_is_not_utf8_json_is_415(
    client: httpx.AsyncClient, calls: Calls, content_type: str
) -> None:
    response = await client.post(
        "/cases/c1/notes",
        content=json.dumps(_note()).encode(),
        headers={"content-type": content_type},
    )

    assert _fields(_problem(response, 415)) == ["header.content-type"]
    assert calls.seen == []


async def test_a_body_without_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/cases/c1/notes", content=json.dumps(_note()).encode())

    _problem(response, 415)


async def test_utf8_json_with_a_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/cases/c1/notes",
        content=json.dumps(_note()).encode(),
        headers={"content-type": "application/json; charset=UTF-8"},
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"site": "north", "text": "\xff\xfe"}', "invalid_utf8"),
        (b'{"site": ', "json_invalid"),
        (b'{"site": "north", "text": "x", "count": NaN}', "json_invalid"),
        (b'{"site": "north", "text": "x", "count": 1e999}', "json_invalid"),
        # deeper than Python's recursion limit, and just deeper than the platform's
        (b"[" * 3000 + b"]" * 3000, "too_deep"),
        (
            b'{"extra": ' + b'{"a": ' * MAX_JSON_DEPTH + b"1" + b"}" * (MAX_JSON_DEPTH + 1),
            "too_deep",
        ),
    ],
)
async def test_unparseable_bodies_are_400_problems(
    client: httpx.AsyncClient, calls: Calls, raw: bytes, code: str
) -> None:
    response = await client.post(
        "/cases/c1/assessment", content=raw, headers={"content-type": "application/json"}
    )

    body = _problem(response, 400)
    assert body["code"] == code
    assert _fields(body) == ["body"]
    assert calls.seen == []


async def test_a_route_without_a_body_refuses_a_non_json_body(
    client: httpx.AsyncClient, calls: Calls
) -> None:
    response = await client.post(
        "/cases/c1/accept", content=b"hello", headers={"content-type": "text/plain"}
    )

    _problem(response, 415)
    assert calls.seen == []


async def test_a_refused_request_keeps_the_callers_principal_for_the_audit(
    tmp_path: Path,
) -> None:
    # The refusal happens before the route's own authentication runs; the audit record
    # still needs to know who sent it.
    settings = _settings(tmp_path)
    seen: dict[str, Any] = {}

    async def capture(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        seen.update(scope.get("state") or {})

    app = create_http_app(
        settings=settings,
        title="t",
        description="",
        version="1",
        routers=[],
        lifespan=None,
        readiness={},
        metrics=Metrics("cases"),
        verifier=build_verifier(settings),
    )
    token = mint_dev_token(settings, "ivy", ["intake_worker"], ["north"])
    transport = httpx.ASGITransport(app=capture)
    async with httpx.AsyncClient(transport=transport, base_url="http://cases") as client:
        response = await client.get("/anything?x=%00", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 422
    assert seen["principal"].sub == "ivy"


def test_check_json_body_accepts_clean_json() -> None:
    assert check_json_body(b'{"a": ["x\\ty", 1, 2.5, true, null, {"b": "c"}]}') == []


async def test_a_wrong_method_names_every_documented_method_in_allow(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put("/cases/c1", json={})

    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["allow"] == "DELETE, GET"
