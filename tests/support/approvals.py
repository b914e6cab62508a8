"""Deciding approvals over HTTP in the end-to-end tests and benchmarks: approvals live in the
supervision service, requested by the cases service's events, so a test waits for the
approval to exist, decides it, then waits for the case to act on the decision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from support.polling import eventually


def plan_approval(case_id: str, version: int) -> str:
    return f"{case_id}:plan:{version}"


def closure_approval(case_id: str, case_version: int) -> str:
    """`case_version`: the case's version right after the closure request (its answer's)."""
    return f"{case_id}:closure:{case_version}"


def assessment_approval(case_id: str, assessment_id: str) -> str:
    return f"{case_id}:assessment:{assessment_id}"


def decide(
    supervision: httpx.Client,
    approval_id: str,
    decision: str = "approve",
    body: dict[str, Any] | None = None,
    within: float = 30.0,
) -> httpx.Response:
    """POST the decision once the approval exists (404 until its request arrives); the
    answer, whatever it is, for the test to check."""
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    return eventually(
        lambda: supervision.post(f"/approvals/{approval_id}/{decision}", **kwargs),
        lambda r: r.status_code != 404,
        within,
    )


def approve(
    supervision: httpx.Client, approval_id: str, comment: str | None = None
) -> dict[str, Any]:
    """Approve, and check it was granted."""
    answer = decide(supervision, approval_id, "approve", {"comment": comment} if comment else None)
    assert answer.status_code == 200, answer.text
    granted: dict[str, Any] = answer.json()
    assert granted["status"] == "granted", granted
    return granted


def return_(supervision: httpx.Client, approval_id: str, reason: str) -> dict[str, Any]:
    """Return with a reason, and check it was returned."""
    answer = decide(supervision, approval_id, "return", {"reason": reason})
    assert answer.status_code == 200, answer.text
    returned: dict[str, Any] = answer.json()
    assert returned["status"] == "returned", returned
    return returned


def case_when(
    cases: httpx.Client, case_id: str, done: Callable[[dict[str, Any]], bool], within: float = 30.0
) -> dict[str, Any]:
    """The case once `done` says it acted on the decision (checked: the test fails if not)."""
    answer = eventually(
        lambda: cases.get(f"/cases/{case_id}"),
        lambda r: r.status_code == 200 and done(r.json()),
        within,
    )
    assert answer.status_code == 200, answer.text
    case: dict[str, Any] = answer.json()
    assert done(case), case
    return case
