"""Supervision's contracts with personal fields, driven over HTTP for the privacy test
(`tests/e2e/test_privacy.py`): a session with the case's caseworker — a case review, a
practice note, an action item about the case —, a session cancelled with a reason, and a
concern about the case escalated and resolved. Every value carries the person's marker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from support.directory import register_staff
from support.polling import eventually
from support.stack import Stack

SUPERVISOR = "sue"  # decides the approvals too: the directory makes them carl's supervisor


def _ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def supervise(
    stack: Stack, site: str, case_id: str, worker: str, team: str, text: Callable[[str], str]
) -> dict[str, str]:
    """The supervision records about the case (its caseworker is `worker`); their ids, by
    stream prefix (`session`, `cancelled`, `action`, `concern`)."""
    with stack.client("supervision", stack.token("root", "regional_admin")) as admin:
        register_staff(admin, SUPERVISOR, "supervisor", sites=(site,), team=team)
        register_staff(admin, worker, "caseworker", sites=(site,), team=team, supervisor=SUPERVISOR)
    token = stack.token(SUPERVISOR, "supervisor", sites=(site,), team=team)
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    with stack.client("supervision", token) as sue:
        body = {"worker_id": worker, "planned_for": later}
        made = eventually(lambda: sue.post("/sessions", json=body), lambda r: r.status_code == 201)
        session = _ok(made)["session_id"]
        _ok(sue.post(f"/sessions/{session}/prepare"))
        review = {
            "case_id": case_id,
            "findings": text("Calmer since the move"),
            "decision": text("Fortnightly visits"),
            "reasons": text("No crisis in a month"),
        }
        # supervision hears of the case and its caseworker through Kafka
        _ok(
            eventually(
                lambda: sue.post(f"/sessions/{session}/reviews", json=review),
                lambda r: r.status_code == 201,
            )
        )
        note = {"topic": "wellbeing", "text": text("Worried about this client")}
        _ok(sue.post(f"/sessions/{session}/practice-notes", json=note))
        item = {"due_at": later, "description": text("Call her sister"), "case_id": case_id}
        action = _ok(sue.post(f"/sessions/{session}/action-items", json=item))["action_item_id"]
        _ok(sue.post(f"/sessions/{session}/hold"))
        other = _ok(sue.post("/sessions", json=body))["session_id"]
        _ok(sue.post(f"/sessions/{other}/cancel", json={"reason": text("Sister's funeral")}))
        concern_body = {"site": site, "case_id": case_id, "summary": text("Neighbour threats")}
        concern = _ok(sue.post("/concerns", json=concern_body))["concern_id"]
    manager = stack.token("sam", "site_manager", sites=(site,))
    with stack.client("supervision", manager) as sam:
        _ok(sam.post(f"/concerns/{concern}/resolve", json={"resolution": text("Police told")}))
    return {"session": session, "cancelled": other, "action": action, "concern": concern}
