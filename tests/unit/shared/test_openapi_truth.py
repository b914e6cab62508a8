"""Each service's OpenAPI document states what the edge answers (issue 7)."""

from __future__ import annotations

import asyncio
import importlib
import os
import re
from pathlib import Path
from typing import Any

import pytest

from casework.requests import IF_MATCH_PATTERN
from casework.settings import Settings

SERVICES = {"intake": 8001, "cases": 8002, "contacts": 8003, "supervision": 8004,
            "notifications": 8005}  # fmt: skip
PROBLEM = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    keys = tmp_path_factory.mktemp("keys")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CASEWORK_")}

    async def build() -> dict[str, dict[str, Any]]:
        # The apps are built (Kafka clients need a running loop), never started.
        docs = {}
        for name, port in SERVICES.items():
            bootstrap = importlib.import_module(f"casework_{name}.bootstrap")
            settings = Settings.for_service(
                name, port, environment="test", jwt_dev_key_path=Path(keys) / "dev.pem"
            )
            docs[name] = bootstrap.create_app(settings).openapi()
        return docs

    try:
        return asyncio.run(build())
    finally:
        os.environ.update(saved)


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_is_documented_as_a_problem_document(
    documents: dict[str, dict[str, Any]], service: str
) -> None:
    for path, method, operation in _operations(documents[service]):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}, (
                    path, method, status
                )  # fmt: skip


@pytest.mark.parametrize("service", SERVICES)
def test_the_edges_statuses_are_on_the_operations_that_can_get_them(
    documents: dict[str, dict[str, Any]], service: str
) -> None:
    for path, method, operation in _operations(documents[service]):
        statuses = set(operation["responses"])
        where = (service, method, path)
        assert "422" in statuses, where
        if method in ("post", "put", "patch", "delete"):
            assert {"400", "413", "415"} <= statuses, where
        if "{" in path:
            assert "404" in statuses, where
        if operation.get("security"):
            assert {"401", "403", "503"} <= statuses, where
        if any(p["name"].lower() == "if-match" for p in operation.get("parameters", [])):
            assert "412" in statuses, where


def test_if_match_is_documented_with_its_pattern(documents: dict[str, dict[str, Any]]) -> None:
    headers = [
        p
        for _, _, operation in _operations(documents["cases"])
        for p in operation.get("parameters", [])
        if p["name"].lower() == "if-match"
    ]
    assert headers
    for header in headers:
        assert header["schema"]["pattern"] == IF_MATCH_PATTERN
        assert "anyOf" not in header["schema"]
    assert re.fullmatch(IF_MATCH_PATTERN, '"3"')
    assert re.fullmatch(IF_MATCH_PATTERN, 'W/"12"')
    assert not re.fullmatch(IF_MATCH_PATTERN, "yesterday")


def test_the_client_match_rule_is_in_the_schema(documents: dict[str, dict[str, Any]]) -> None:
    schema = documents["intake"]["components"]["schemas"]["ClientMatchIn"]
    confirm, override = schema["oneOf"]
    assert confirm["required"] == ["client_id"]
    assert override["properties"]["new_client"] == {"const": True}
    assert override["required"] == ["new_client", "reason"]


def test_body_limits_are_documented_per_route_class(
    documents: dict[str, dict[str, Any]],
) -> None:
    cases = documents["cases"]["paths"]
    notes = cases["/cases/{case_id}/notes"]["post"]["responses"]["413"]["description"]
    risk = cases["/cases/{case_id}/risk"]["post"]["responses"]["413"]["description"]
    assert "262144 bytes" in notes
    assert "65536 bytes" in risk


@pytest.mark.parametrize("service", SERVICES)
def test_the_asyncapi_page_is_html(documents: dict[str, dict[str, Any]], service: str) -> None:
    page = documents[service]["paths"]["/asyncapi"]["get"]["responses"]["200"]
    assert list(page["content"]) == ["text/html"]
