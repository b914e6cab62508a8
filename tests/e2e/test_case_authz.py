"""Who may do what to a case, over HTTP on the real stack: every role, every endpoint, and a
principal at the case's own site (and team) or at another site.

The expectations are the issue's words, not the service's tables:

- a role that may not issue the command is refused with 403, before anything is looked up;
- a role that may, but does not reach the case (another site, another team), gets 404;
- a regional admin reaches every case; everyone else who may, and reaches it, gets 200.

Break-glass (a crisis worker opening a case out of reach with `X-Break-Glass: <reason>`)
and the purpose of use (`X-Purpose-Of-Use`, or the role's default) are tried on the case
read, down to the audit record each request left in the audit store.

A transfer is answered at the RECEIVING site, so for accept/reject "own" means a principal
at the site the case is being transferred to. Each allowed call gets a fresh case in the
right phase (it changes it); refused calls share one case per phase (they change nothing).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from support.approvals import approve, case_when, closure_approval, plan_approval
from support.audit import clients_shown, wait_for_records
from support.authz import (
    READERS,
    ROLES,
    WHERE,
    Callers,
    Who,
    accepted_case,
    expected,
    matrix,
    register_site,
)
from support.directory import assign_case, register_staff, register_team
from support.polling import eventually
from support.stack import Stack

TEAM = "t-authz"
OTHER = "elsewhere"  # a site none of the cases here is at

# Who may, in the words (READERS: support.authz).
ASSIGNERS = {"supervisor", "site_manager", "regional_admin"}
SITE_LEADS = {"supervisor", "site_manager"}
CASEWORK = {"caseworker", "supervisor"}
RISK = {"caseworker", "supervisor", "crisis_worker"}

ASSESSMENT = {"needs": {"housing": "arrears"}, "narrative": "Feels trapped."}
PLAN = {
    "goals": [
        {"goal_id": "tenancy", "description": "Keep the tenancy", "target_date": "2026-06-30"}
    ]
}
CLOSURE = {"outcome": "goals_met", "evaluation": "Tenancy secure"}
REASON = {"reason": "Because"}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    state: str
    """The phase (or situation) the case must be in for the call to succeed."""
    may: frozenset[str]
    body: dict[str, Any] | None = None
    answered_by_receiving_site: bool = False

    @property
    def changes_the_case(self) -> bool:
        return self.method != "GET"


def endpoint(
    method: str, path: str, state: str, may: set[str], body: dict[str, Any] | None = None
) -> Endpoint:
    return Endpoint(method, path, state, frozenset(may), body, "/transfer/" in path)


ENDPOINTS = [
    endpoint("GET", "", "assigned", READERS),
    endpoint("POST", "/assignment", "assigned", ASSIGNERS, {"caseworker_id": "cw-2", "team": TEAM}),
    endpoint("POST", "/transfer", "assigned", SITE_LEADS, {"to_site": "{away}", **REASON}),
    endpoint("POST", "/transfer/accept", "transfer pending", SITE_LEADS),
    endpoint("POST", "/transfer/reject", "transfer pending", SITE_LEADS, REASON),
    endpoint("POST", "/assessment", "assigned", CASEWORK, ASSESSMENT),
    endpoint("POST", "/plan", "planning", CASEWORK, PLAN),
    endpoint("POST", "/goals/tenancy/progress", "active", CASEWORK, {"progress": "achieved"}),
    endpoint("POST", "/risk", "assigned", RISK, {"risk_level": "high", **REASON}),
    endpoint("POST", "/crisis", "assigned", RISK, {"summary": "Overdose"}),
    endpoint("POST", "/crisis/resolve", "in crisis", RISK, {"resolution": "Safe"}),
    endpoint("POST", "/notes", "assigned", CASEWORK, {"text": "Phoned"}),
    endpoint("POST", "/closure", "active", CASEWORK, CLOSURE),
    endpoint("POST", "/reopen", "closed", SITE_LEADS, REASON),
]


APPROVE_PLAN = "approve the plan in supervision"
APPROVE_CLOSURE = "approve the closure in supervision"

# How the setup actors bring a case into each state: (actor role, path, body).
SETUP: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
    "assigned": [("site_manager", "/assignment", {"caseworker_id": "caseworker-own", "team": TEAM})]
}
SETUP["planning"] = [*SETUP["assigned"], ("caseworker", "/assessment", ASSESSMENT)]
SETUP["plan proposed"] = [*SETUP["planning"], ("caseworker", "/plan", PLAN)]
# approvals are decided in the supervision service (tests/e2e/test_approvals_authz.py)
SETUP["active"] = [*SETUP["plan proposed"], ("supervisor", APPROVE_PLAN, None)]
SETUP["review"] = [*SETUP["active"], ("caseworker", "/closure", CLOSURE)]
SETUP["closed"] = [*SETUP["review"], ("supervisor", APPROVE_CLOSURE, None)]
SETUP["transfer pending"] = [*SETUP["assigned"], ("site_manager", "/transfer", None)]
SETUP["in crisis"] = [*SETUP["assigned"], ("caseworker", "/crisis", {"summary": "Overdose"})]


# The state an allowed call leaves a case in, when that is a state another call can use
# (the case is handed on, so that fewer cases need opening). Missing: not reused.
LEAVES: dict[str, str] = {
    "/transfer": "transfer pending",
    "/transfer/reject": "assigned",
    "/assessment": "planning",
    "/goals/tenancy/progress": "active",
    "/crisis": "in crisis",
    "/crisis/resolve": "assigned",
    "/notes": "assigned",
    "/reopen": "assigned",
}


@dataclass
class World:
    """Two registered sites, one principal per (role, where) and the receiving site's leads,
    and cases on demand."""

    callers: Callers
    away: str
    shared: dict[str, str] = field(default_factory=dict)
    ready: dict[str, list[str]] = field(default_factory=dict)
    pool: list[str] = field(default_factory=list)

    @property
    def stack(self) -> Stack:
        return self.callers.stack

    @property
    def home(self) -> str:
        return self.callers.home

    def principal(self, role: str, where: str, receiving: bool = False) -> Who:
        if where == "own" and receiving and role in SITE_LEADS:
            return Who(f"{role}-recv", role, self.away, "t-away")
        return self.callers.who(role, where)

    def receivers(self) -> list[Who]:
        return [self.principal(r, "own", receiving=True) for r in SITE_LEADS]

    def client(self, role: str, where: str = "own", receiving: bool = False) -> httpx.Client:
        return self.callers.client(self.principal(role, where, receiving), "cases")

    def open_cases(self, count: int) -> list[str]:
        """Referral → screening → acceptance, `count` times; the cases once readable."""
        intake = self.callers.client(self.principal("intake_worker", "own"), "intake")
        case_ids = [accepted_case(intake, self.home, "Authz") for _ in range(count)]
        manager = self.client("site_manager")
        for case_id in case_ids:
            opened = eventually(
                lambda c=case_id: manager.get(f"/cases/{c}"), lambda r: r.status_code == 200
            )
            assert opened.status_code == 200, opened.text
        return case_ids

    def case_in(self, state: str, fresh: bool) -> str:
        """A case in `state`: a new one when the call will change it, else a shared one."""
        if not fresh and state in self.shared:
            return self.shared[state]
        if fresh and self.ready.get(state):
            return self.ready[state].pop()
        if not self.pool:
            self.pool.extend(self.open_cases(8))
        case_id = self.pool.pop()
        version = 0
        for role, path, body in SETUP[state]:
            actor = self.client(role)
            if path in (APPROVE_PLAN, APPROVE_CLOSURE):
                self.approve(case_id, path, version)
                continue
            if path == "/transfer":  # the cases service learns of sites from the directory
                body = {"to_site": self.away, **REASON}
                done = eventually(
                    lambda a=actor, url=f"/cases/{case_id}{path}", b=body: a.post(url, json=b),
                    lambda r: r.status_code != 422,
                )
            elif path == "/assignment":  # the cases service learns of staff from the directory
                assert body is not None
                done = assign_case(actor, case_id, body["caseworker_id"], body["team"])
            else:
                done = actor.post(f"/cases/{case_id}{path}", json=body)
            assert done.status_code == 200, (state, path, done.text)
            version = done.json()["version"]
        if not fresh:
            self.shared[state] = case_id
        return case_id

    def approve(self, case_id: str, what: str, version: int) -> None:
        """Decided by the supervisor in supervision; the case acts on it when it hears."""
        supervisor = self.callers.client(self.callers.who("supervisor"), "supervision")
        if what == APPROVE_PLAN:
            approve(supervisor, plan_approval(case_id, 1))
            phase = "active"
        else:
            approve(supervisor, closure_approval(case_id, version))
            phase = "closed"
        case_when(self.client("site_manager"), case_id, lambda c: c["phase"] == phase)

    def hand_on(self, case_id: str, path: str) -> None:
        """After an allowed call: offer the case to calls that need the state it is now in."""
        if path in LEAVES:
            self.ready.setdefault(LEAVES[path], []).append(case_id)


@pytest.fixture(scope="module")
def world(stack: Stack) -> Iterator[World]:
    callers = Callers(stack, register_site(stack, "authz"), TEAM, other_site=OTHER)
    world = World(callers, register_site(stack, "recv"))
    # the caseworkers assigned here, in the organisation directory (the cases service checks)
    with stack.client("supervision", stack.token("root", "regional_admin")) as directory:
        register_team(directory, world.home, TEAM)
        for worker in ("caseworker-own", "cw-2", "cw-next"):
            register_staff(
                directory, worker, "caseworker", sites=[world.home], team=TEAM, places=False
            )
    callers.mint(world.receivers())
    try:
        yield world
    finally:
        callers.close()


MATRIX = matrix(ENDPOINTS, lambda ep: ep.may, lambda ep: f"{ep.method} /cases/{{id}}{ep.path}")


@pytest.mark.parametrize(("ep", "role", "where", "status"), MATRIX)
def test_who_may_call_which_endpoint(
    world: World, ep: Endpoint, role: str, where: str, status: int
) -> None:
    case_id = world.case_in(ep.state, fresh=status == 200 and ep.changes_the_case)
    caller = world.client(role, where, receiving=ep.answered_by_receiving_site)
    body = ep.body
    if body is not None and body.get("to_site") == "{away}":
        body = {**body, "to_site": world.away}
    if ep.path == "/assignment":  # sent again while the cases service has not heard of cw-2
        assert body is not None
        response = assign_case(caller, case_id, body["caseworker_id"], body["team"])
    else:
        response = caller.request(ep.method, f"/cases/{case_id}{ep.path}", json=body)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.headers["etag"] == f'"{response.json()["version"]}"'
        if ep.changes_the_case:
            world.hand_on(case_id, ep.path)
    else:
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("role", "where", "status"),
    [
        pytest.param(role, where, expected(ASSIGNERS, role, where), id=f"{role} | {where} site")
        for role in ROLES
        for where in WHERE
    ],
)
def test_who_may_move_a_caseload(world: World, role: str, where: str, status: int) -> None:
    """A caseload move answers 200 with a report; cases out of reach are counted, not moved."""
    caller = world.client(role, where)
    worker = f"w-{uuid.uuid4().hex[:8]}"
    move = {"to_caseworker_id": "cw-next", "to_team": TEAM, "reason": "Leave"}
    if status == 403:
        response = caller.post(f"/caseloads/{worker}/move", json=move)
        assert response.status_code == 403, response.text
        return
    case_id = world.case_in("assigned", fresh=True)
    with world.stack.client("supervision", world.stack.token("root", "regional_admin")) as d:
        register_staff(d, worker, "caseworker", sites=[world.home], team=TEAM, places=False)
    assigned = assign_case(world.client("site_manager"), case_id, worker, TEAM)
    assert assigned.status_code == 200, assigned.text
    # the worker's cases are found in an index that trails the events by a moment
    report = eventually(
        lambda: caller.post(f"/caseloads/{worker}/move", json=move),
        lambda r: r.status_code != 200 or bool(r.json()["moved"] or r.json()["out_of_reach"]),
    )
    assert report.status_code == 200, report.text
    if status == 200:  # reaches the case
        assert [m["case_id"] for m in report.json()["moved"]] == [case_id]
    else:  # 404 in the matrix's terms: out of reach, so not moved (and not named)
        assert (report.json()["moved"], report.json()["out_of_reach"]) == ([], 1)


# Break-glass and purpose of use (issue 8): the same world, the case read.
GLASS_REASON = "Crisis line call: client at immediate risk, home team unreachable"
GLASS = {"X-Break-Glass": GLASS_REASON}


def glass_expected(role: str, where: str) -> int:
    """Only a crisis worker may break the glass; anyone else sending it is refused (403),
    whether or not they reach the case. A crisis worker is shown the case either way: at
    their own site as an ordinary read, elsewhere as a break-glass access."""
    return 200 if role == "crisis_worker" else 403


def _version(world: World, case_id: str) -> int:
    read = world.client("site_manager").get(f"/cases/{case_id}")
    assert read.status_code == 200, read.text
    return int(read.json()["version"])


@pytest.mark.parametrize(
    ("role", "where", "status"),
    [
        pytest.param(role, where, glass_expected(role, where), id=f"{role} | {where} site")
        for role in ROLES
        for where in WHERE
    ],
)
def test_who_may_break_the_glass(world: World, role: str, where: str, status: int) -> None:
    breaks = status == 200 and where == "other"
    case_id = world.case_in("assigned", fresh=breaks)
    before = _version(world, case_id)
    request_id = f"glass-{uuid.uuid4().hex}"
    response = world.client(role, where).get(
        f"/cases/{case_id}", headers={**GLASS, "X-Request-ID": request_id}
    )
    assert response.status_code == status, response.text
    [record] = wait_for_records(world.stack, {"request_id": request_id})
    assert GLASS_REASON not in json.dumps(record, default=str)  # the reason is not audited
    if status != 200:
        assert response.headers["content-type"] == "application/problem+json"
        assert _version(world, case_id) == before  # nothing raised
        assert record["purpose"] != "BTG"
        return
    client_id = response.json()["client_id"]
    assert clients_shown(record) == [f"client:{client_id}"]
    if not breaks:  # within reach: an ordinary read, nothing to review
        assert response.json()["version"] == before
        assert record["purpose"] == "TREAT"
        return
    # The review was raised before the case was shown: the answer already carries it.
    assert response.json()["version"] == before + 1
    assert record["purpose"] == "BTG"
    review = f"case-{case_id}@{before + 1}"
    assert {"url": "urn:casework:audit:break-glass-review", "valueString": review} in record[
        "event"
    ]["extension"]
    # The case's supervisor sees it: on the timeline, with the reason, and in the caseload.
    supervisor = world.client("supervisor")
    timeline = eventually(
        lambda: supervisor.get(f"/cases/{case_id}/timeline"),
        lambda r: any(e["event"] == "BreakGlassUsed" for e in r.json().get("entries", [])),
    )
    [entry] = [e for e in timeline.json()["entries"] if e["event"] == "BreakGlassUsed"]
    assert entry["actor"] == "crisis_worker-other"
    assert entry["detail"]["reason"] == GLASS_REASON
    caseload = eventually(
        lambda: supervisor.get("/caseloads/caseworker-own"),
        lambda r: any(c["case_id"] == case_id and c["break_glass"] for c in r.json()["cases"]),
    )
    [summary] = [c for c in caseload.json()["cases"] if c["case_id"] == case_id]
    assert [u["used_by"] for u in summary["break_glass"]] == ["crisis_worker-other"]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        pytest.param("", "header.X-Break-Glass", id="no reason"),
        pytest.param("x" * 501, "header.X-Break-Glass", id="reason too long"),
    ],
)
def test_breaking_the_glass_needs_a_reason(world: World, value: str, field: str) -> None:
    case_id = world.case_in("assigned", fresh=False)
    before = _version(world, case_id)
    response = world.client("crisis_worker", "other").get(
        f"/cases/{case_id}", headers={"X-Break-Glass": value}
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert "client_name" not in response.text
    assert _version(world, case_id) == before  # no review raised, nothing shown


@pytest.mark.parametrize(
    ("role", "stated", "code"),
    [
        pytest.param("caseworker", None, "TREAT", id="caseworker, default: direct care"),
        pytest.param("crisis_worker", None, "TREAT", id="crisis worker, default: direct care"),
        pytest.param("supervisor", None, "HOPERAT", id="supervisor, default: supervision"),
        pytest.param("site_manager", None, "HOPERAT", id="site manager, default: supervision"),
        pytest.param("regional_admin", None, "HOPERAT", id="regional admin, default"),
        pytest.param("supervisor", "direct-care", "TREAT", id="supervisor states direct care"),
        pytest.param("site_manager", "audit", "HCOMPL", id="site manager states audit"),
        pytest.param("regional_admin", "HOPERAT", "HOPERAT", id="stated by its HL7 code"),
        pytest.param("caseworker", "integration", "COC", id="caseworker states integration"),
    ],
)
def test_a_read_is_recorded_with_its_purpose_of_use(
    world: World, role: str, stated: str | None, code: str
) -> None:
    case_id = world.case_in("assigned", fresh=False)
    request_id = f"pou-{uuid.uuid4().hex}"
    headers = {"X-Request-ID": request_id}
    if stated is not None:
        headers["X-Purpose-Of-Use"] = stated
    response = world.client(role).get(f"/cases/{case_id}", headers=headers)
    assert response.status_code == 200, response.text
    [record] = wait_for_records(world.stack, {"request_id": request_id})
    assert record["purpose"] == code
    assert record["sub"] == f"{role}-own"
    assert clients_shown(record) == [f"client:{response.json()['client_id']}"]


@pytest.mark.parametrize("role", ["caseworker", "supervisor", "intake_worker", "ops"])
def test_an_unknown_purpose_of_use_is_refused_and_recorded(world: World, role: str) -> None:
    case_id = world.case_in("assigned", fresh=False)
    request_id = f"pou-{uuid.uuid4().hex}"
    response = world.client(role).get(
        f"/cases/{case_id}", headers={"X-Purpose-Of-Use": "curiosity", "X-Request-ID": request_id}
    )
    assert response.status_code == 422, response.text
    [problem] = response.json()["errors"]
    assert (problem["field"], problem["code"]) == ("header.X-Purpose-Of-Use", "unknown_purpose")
    assert "curiosity" not in response.text
    [record] = wait_for_records(world.stack, {"request_id": request_id})
    assert (record["outcome"], record["sub"], record["subjects"]) == (422, f"{role}-own", [])


def test_a_crisis_worker_reads_a_timeline_out_of_reach_only_by_breaking_the_glass(
    world: World,
) -> None:
    case_id = world.case_in("assigned", fresh=True)
    crisis = world.client("crisis_worker", "other")
    assert crisis.get(f"/cases/{case_id}/timeline").status_code == 404
    before = _version(world, case_id)

    read = crisis.get(f"/cases/{case_id}/timeline", headers=GLASS)

    assert read.status_code == 200, read.text
    assert read.json()["case_id"] == case_id
    assert "CaseOpened" in [e["event"] for e in read.json()["entries"]]
    assert _version(world, case_id) == before + 1  # the review, committed before the answer
    refused = world.client("caseworker").get(f"/cases/{case_id}/timeline", headers=GLASS)
    assert refused.status_code == 403, refused.text
    assert _version(world, case_id) == before + 1
