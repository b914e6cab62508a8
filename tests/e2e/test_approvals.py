"""Approvals over HTTP on the real stack (issue 10, "Approvals"): a plan proposed in the cases
service is approved in the supervision service and the case becomes active; a plan returned
with its reason; an assessment signed off and shown on the case timeline; four eyes (403),
a decided approval immutable (409), a supervisor of another team not an approver (403); the
queue oldest first with waited hours; every read audited with the case it concerns; and the
authorisation matrix of the four routes for every role at the case's own site and another.

The caseworker here is supervised by `supervisor-own` in the directory (registered over
HTTP, as an administrator would): that supervisor decides, and while they delegate, their
delegate decides for them; a supervisor of the site's other team does not.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from casework.auth import mint_dev_token
from casework.settings import Settings

from support.approvals import (
    approve,
    assessment_approval,
    case_when,
    decide,
    plan_approval,
    return_,
)
from support.audit import wait_for_records
from support.directory import assign_case, delegate, register_staff
from support.polling import eventually
from support.stack import Stack

TEAM = "t-approvals"
OTHER = "elsewhere-approvals"
ROLES = (
    "regional_admin",
    "site_manager",
    "supervisor",
    "caseworker",
    "crisis_worker",
    "intake_worker",
    "ops",
)
WHERE = ("own", "other")
ASSESSMENT = {"needs": {"housing": "arrears"}, "narrative": "Feels trapped."}
PLAN = {
    "goals": [
        {"goal_id": "tenancy", "description": "Keep the tenancy", "target_date": "2027-06-30"}
    ]
}


@dataclass
class World:
    stack: Stack
    site: str
    clients: dict[tuple[str, str, str], httpx.Client] = field(default_factory=dict)

    def who(self, role: str, where: str = "own", team: str | None = TEAM) -> tuple[str, ...]:
        if where == "other":
            return (f"{role}-other", role, OTHER, "t-other")
        return (f"{role}-own" if team == TEAM else f"{role}-{team}", role, self.site, team or "")

    def client(
        self, service: str, role: str, where: str = "own", team: str | None = TEAM
    ) -> httpx.Client:
        sub, role, site, team_ = self.who(role, where, team)
        key = (service, sub, site)
        if key not in self.clients:
            settings = Settings(
                environment="test",
                jwt_dev_key_path=Path(self.stack.env["CASEWORK_JWT_DEV_KEY_PATH"]),
            )
            token = mint_dev_token(settings, sub, [role], [site], team=team_ or None)
            self.clients[key] = self.stack.client(service, token)
        return self.clients[key]

    def deputy(self) -> httpx.Client:
        """`supervisor-deputy`'s supervision client."""
        key = ("supervision", "supervisor-deputy", self.site)
        if key not in self.clients:
            settings = Settings(
                environment="test",
                jwt_dev_key_path=Path(self.stack.env["CASEWORK_JWT_DEV_KEY_PATH"]),
            )
            token = mint_dev_token(
                settings, "supervisor-deputy", ["supervisor"], [self.site], team=TEAM
            )
            self.clients[key] = self.stack.client("supervision", token)
        return self.clients[key]

    def case_with_plan(self, *, proposer: str = "caseworker") -> str:
        """A case assigned to `caseworker-own`, assessed, with plan version 1 proposed."""
        intake = self.client("intake", "intake_worker")
        referral = {
            "site": self.site,
            "client": {
                "given_name": "Robin",
                "family_name": f"Approve{uuid.uuid4().hex[:8]}",
                "date_of_birth": "1985-06-01",
            },
            "source": "self",
            "presenting_concerns": "Not sleeping.",
            "urgency": "soon",
        }
        # intake learns of a new site from the directory's events (422 until then)
        taken = eventually(
            lambda: intake.post("/referrals", json=referral), lambda r: r.status_code != 422
        )
        assert taken.status_code == 201, taken.text
        rid = taken.json()["referral_id"]
        screen = {"wish_to_be_dead": False, "suicidal_thoughts": False}
        assert intake.post(f"/referrals/{rid}/screening", json=screen).status_code == 200
        accepted = intake.post(f"/referrals/{rid}/accept")
        assert accepted.status_code == 200, accepted.text
        case_id: str = accepted.json()["case_id"]
        manager = self.client("cases", "site_manager")
        path = f"/cases/{case_id}"
        eventually(lambda: manager.get(path), lambda r: r.status_code == 200)
        assigned = assign_case(manager, case_id, "caseworker-own", TEAM)
        assert assigned.status_code == 200, assigned.text
        worker = self.client("cases", "caseworker")
        assert worker.post(f"{path}/assessment", json=ASSESSMENT).status_code == 200
        proposing = self.client("cases", proposer)
        proposed = proposing.post(f"{path}/plan", json=PLAN)
        assert proposed.status_code == 200, proposed.text
        return case_id


def register_site(stack: Stack) -> str:
    """A site with its team: `supervisor-own` supervises `caseworker-own`; `supervisor-deputy`
    supervises too (a delegate when asked)."""
    code = f"appr-{uuid.uuid4().hex[:6]}"
    with stack.client("supervision", stack.token("root", "regional_admin")) as admin:
        assert admin.post("/sites", json={"site": code, "name": "Approvals"}).status_code == 201
        for supervisor in ("supervisor-own", "supervisor-deputy"):
            register_staff(admin, supervisor, "supervisor", sites=[code], team=TEAM)
        register_staff(
            admin, "caseworker-own", "caseworker", sites=[code], team=TEAM,
            supervisor="supervisor-own",
        )  # fmt: skip
    return code


@pytest.fixture(scope="module")
def world(stack: Stack) -> Iterator[World]:
    world = World(stack, register_site(stack))
    try:
        yield world
    finally:
        for client in world.clients.values():
            client.close()


def opened_plan(world: World) -> tuple[str, str]:
    case_id = world.case_with_plan()
    approval_id = plan_approval(case_id, 1)
    sup = world.client("supervision", "supervisor")
    exists = eventually(
        lambda: sup.get(f"/approvals/{approval_id}"), lambda r: r.status_code == 200
    )
    assert exists.status_code == 200, exists.text
    return case_id, approval_id


def test_a_plan_approved_in_supervision_makes_the_case_active(world: World) -> None:
    case_id, approval_id = opened_plan(world)
    sue = world.client("supervision", "supervisor")
    queue = eventually(
        lambda: sue.get("/approvals"), lambda r: approval_id in [i["approval_id"] for i in r.json()]
    )
    items = queue.json()
    assert [i["requested_at"] for i in items] == sorted(i["requested_at"] for i in items)
    (item,) = [i for i in items if i["approval_id"] == approval_id]
    assert (item["kind"], item["case_id"], item["requested_by"]) == (
        "plan",
        case_id,
        "caseworker-own",
    )
    assert 0 <= item["waited_hours"] < 1
    assert item["overdue"] is False

    granted = approve(sue, approval_id, "Good plan")
    assert (granted["decided_by"], granted["comment"]) == ("supervisor-own", "Good plan")
    case = case_when(
        world.client("cases", "site_manager"), case_id, lambda c: c["phase"] == "active"
    )
    assert case["plan_status"] == "approved"
    assert case["active_plan"]["approved_by"] == "supervisor-own"

    # immutable once decided: 409, whatever the decision
    again = decide(sue, approval_id, "return", {"reason": "Changed my mind"})
    assert (again.status_code, again.json()["code"]) == (409, "ApprovalAlreadyDecided")
    gone = eventually(
        lambda: sue.get("/approvals"),
        lambda r: approval_id not in [i["approval_id"] for i in r.json()],
    )
    assert approval_id not in [i["approval_id"] for i in gone.json()]

    # the assessment waits too; signed off, the case timeline shows it
    signed = approve(sue, assessment_approval(case_id, case["assessment_id"]))
    assert signed["kind"] == "assessment"
    timeline = eventually(
        lambda: world.client("cases", "site_manager").get(f"/cases/{case_id}/timeline"),
        lambda r: "Assessment signed off by supervisor-own" in r.text,
    )
    assert "Assessment signed off by supervisor-own" in timeline.text


def test_a_plan_returned_with_its_reason(world: World) -> None:
    case_id, approval_id = opened_plan(world)
    sue = world.client("supervision", "supervisor")
    blank = sue.post(f"/approvals/{approval_id}/return", json={"reason": "  "})
    assert blank.status_code == 422, blank.text
    missing = sue.post(f"/approvals/{approval_id}/return", json={})
    assert missing.status_code == 422, missing.text
    returned = return_(sue, approval_id, "Add a review date")
    assert returned["reason"] == "Add a review date"
    case = case_when(
        world.client("cases", "site_manager"), case_id, lambda c: c["plan_status"] == "returned"
    )
    assert case["phase"] == "planning"
    # the caseworker who asked reads the decision
    read = world.client("supervision", "caseworker").get(f"/approvals/{approval_id}")
    assert (read.status_code, read.json()["status"]) == (200, "returned")


def test_four_eyes_and_who_decides(world: World) -> None:
    # a supervisor who proposed the plan does not approve it: 403, and nothing changes
    case_id = world.case_with_plan(proposer="supervisor")
    own = decide(world.client("supervision", "supervisor"), plan_approval(case_id, 1))
    assert (own.status_code, own.json()["code"]) == (403, "SelfApprovalNotAllowed")
    # a supervisor of the site, but of another team, is not an approver (sees it: same site)
    other_team = world.client("supervision", "supervisor", team="t-other-team")
    refused = decide(other_team, plan_approval(case_id, 1))
    assert (refused.status_code, refused.json()["code"]) == (403, "NotAnApprover")
    state = world.client("supervision", "regional_admin").get(
        f"/approvals/{plan_approval(case_id, 1)}"
    )
    assert state.json()["status"] == "requested"


def test_a_delegate_decides_for_the_supervisor(world: World) -> None:
    case_id, approval_id = opened_plan(world)
    # not the worker's supervisor, nor their delegate yet: refused
    early = decide(world.deputy(), approval_id)
    assert (early.status_code, early.json()["code"]) == (403, "NotAnApprover")
    now = datetime.now(UTC)
    with world.stack.client("supervision", world.stack.token("root", "regional_admin")) as admin:
        delegate(
            admin,
            "supervisor-own",
            "supervisor-deputy",
            now - timedelta(minutes=1),
            now + timedelta(hours=1),
        )
    # the cases of whom the supervisor supervises wait in the delegate's queue too
    queue = eventually(
        lambda: world.deputy().get("/approvals"),
        lambda r: approval_id in [i["approval_id"] for i in r.json()],
    )
    assert approval_id in [i["approval_id"] for i in queue.json()]
    granted = approve(world.deputy(), approval_id)
    assert (granted["decided_by"], granted["on_behalf_of"]) == (
        "supervisor-deputy",
        "supervisor-own",
    )
    case = case_when(
        world.client("cases", "site_manager"), case_id, lambda c: c["phase"] == "active"
    )
    assert case["active_plan"]["approved_by"] == "supervisor-deputy"


def test_reads_are_audited_with_the_case(world: World) -> None:
    case_id, approval_id = opened_plan(world)
    request_id = f"appr-{uuid.uuid4().hex}"
    read = world.client("supervision", "site_manager").get(
        f"/approvals/{approval_id}", headers={"X-Request-ID": request_id}
    )
    assert read.status_code == 200, read.text
    [record] = wait_for_records(world.stack, {"request_id": request_id})
    assert (record["sub"], record["outcome"], record["about"]["case_id"]) == (
        "site_manager-own",
        200,
        case_id,
    )
    assert record["about"].get("client_id")


# --- the authorisation matrix ------------------------------------------------------------

QUEUE = {"supervisor", "site_manager", "regional_admin"}
READ = {"caseworker", "supervisor", "site_manager", "regional_admin"}
DECIDE = {"supervisor"}


def expected(route: str, role: str, where: str) -> int:
    may = {"queue": QUEUE, "read": READ, "approve": DECIDE, "return": DECIDE}[route]
    if role not in may:
        return 403
    if route == "queue":
        return 200  # a queue is always the caller's own
    if where == "other" and role != "regional_admin":
        return 404
    return 200


MATRIX = [
    pytest.param(
        route,
        role,
        where,
        expected(route, role, where),
        id=f"{route} | {role} | {where} -> {expected(route, role, where)}",
    )
    for route in ("queue", "read", "approve", "return")
    for role in ROLES
    for where in WHERE
]


@dataclass
class Shared:
    approval_id: str = ""


SHARED = Shared()


@pytest.mark.parametrize(("route", "role", "where", "status"), MATRIX)
def test_who_may_call_which_route(
    world: World, route: str, role: str, where: str, status: int
) -> None:
    fresh = status == 200 and route in ("approve", "return")
    if fresh:
        _, approval_id = opened_plan(world)
    else:
        if not SHARED.approval_id:
            SHARED.approval_id = opened_plan(world)[1]
        approval_id = SHARED.approval_id
    caller = world.client("supervision", role, where)
    calls: dict[str, Any] = {
        "queue": lambda: caller.get("/approvals"),
        "read": lambda: caller.get(f"/approvals/{approval_id}"),
        "approve": lambda: caller.post(f"/approvals/{approval_id}/approve", json={}),
        "return": lambda: caller.post(f"/approvals/{approval_id}/return", json={"reason": "Why"}),
    }
    response: httpx.Response = calls[route]()
    assert response.status_code == status, response.text
    if status != 200:
        assert response.headers["content-type"] == "application/problem+json"
        return
    if route == "queue":
        shown = [i["approval_id"] for i in response.json()]
        # the shared approval waits for the team's supervisors and the site's managers
        if where == "own" or role == "regional_admin":
            assert (
                approval_id
                in eventually(
                    lambda: caller.get("/approvals"),
                    lambda r: approval_id in [i["approval_id"] for i in r.json()],
                ).text
            )
        else:
            assert approval_id not in shown
    elif route in ("approve", "return"):
        assert response.json()["status"] == ("granted" if route == "approve" else "returned")
