"""The read-side routes are documented: summary, description and a true response example."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from casework.auth import Principal
from casework.http import create_http_app
from casework.metrics import Metrics
from casework.settings import Settings

from casework_cases.adapters.read_models import Caseload
from casework_cases.adapters.read_models.register import SiteRegister
from casework_cases.adapters.read_models.timeline import CaseTimeline
from casework_cases.entrypoints.queries import (
    CASELOAD_EXAMPLE,
    REGISTER_EXAMPLE,
    TIMELINE_EXAMPLE,
    router,
)


class NoTokens:
    def verify(self, token: str) -> Principal:
        raise AssertionError("not called")


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    app: FastAPI = create_http_app(
        settings=Settings.for_service("cases", 8002, environment="test"),
        title="cases",
        description="cases",
        version="0",
        routers=[router],
        lifespan=None,
        readiness={},
        metrics=Metrics("cases"),
        verifier=NoTokens(),
    )
    return app.openapi()


def without_nulls(value: Any) -> Any:
    """FastAPI leaves null values out of the OpenAPI document."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


ROUTES = [
    ("/caseloads/{worker_id}", Caseload, CASELOAD_EXAMPLE),
    ("/cases/{case_id}/timeline", CaseTimeline, TIMELINE_EXAMPLE),
    ("/sites/{site}/register", SiteRegister, REGISTER_EXAMPLE),
]


@pytest.mark.parametrize(("path", "model", "example"), ROUTES)
def test_each_route_has_a_summary_a_description_and_its_example(
    openapi: dict[str, Any], path: str, model: type[BaseModel], example: dict[str, Any]
) -> None:
    operation = openapi["paths"][path]["get"]
    assert operation["summary"]
    assert len(operation["description"]) > 80
    ok = operation["responses"]["200"]["content"]["application/json"]
    assert ok["example"] == without_nulls(example)
    assert ok["schema"] == {"$ref": f"#/components/schemas/{model.__name__}"}
    # refusals are documented as problem details
    refusals = {"403", "404"} & set(operation["responses"])
    assert refusals
    for status in refusals:
        content = operation["responses"][status]["content"]
        assert content["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }


@pytest.mark.parametrize(("path", "model", "example"), ROUTES)
def test_each_example_is_a_valid_answer(
    path: str, model: type[BaseModel], example: dict[str, Any]
) -> None:
    parsed = model.model_validate(example)
    assert parsed.model_dump(mode="json", exclude_unset=True).keys() == example.keys()


def test_the_register_window_is_bounded(openapi: dict[str, Any]) -> None:
    (weeks,) = openapi["paths"]["/sites/{site}/register"]["get"]["parameters"][1:]
    assert weeks["name"] == "weeks"
    assert (weeks["schema"]["minimum"], weeks["schema"]["maximum"]) == (1, 104)
    assert weeks["schema"]["default"] == 12
