"""Who may do what with contacts, over HTTP on the real stack: every role, every contacts
route, a principal at the case's own site (and team) or at another site — the same scopes as
the cases (issue 9).

- a role that may not issue the command is refused with 403, before anything is looked up;
- a role that may, but does not reach the case (another site), gets 404;
- a regional admin reaches every case; everyone else who may, and reaches it, succeeds.

Agendas have their own rule: a worker's own agenda, or anyone's for supervisors, site
managers and regional admins; a team's for its supervisor, the site's managers and regional
admins; a site's for its supervisors and managers (each item still within reach) and
regional admins. Each allowed write gets a contact in the state it needs; refused calls share one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from support.directory import assign_case, register_staff
from support.polling import eventually
from support.stack import Stack

TEAM = "t-cauthz"
OTHER = "elsewhere-contacts"
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
READERS = {"caseworker", "supervisor", "crisis_worker", "site_manager", "regional_admin"}
WORKERS = {"caseworker", "supervisor", "crisis_worker"}
CLIENT = [{"kind": "client"}]


def _soon() -> str:
    return (datetime.now(UTC) + timedelta(hours=2)).isoformat()


def _past() -> str:
    return (datetime.now(UTC) - timedelta(minutes=5)).isoformat()


def schedule_body(medium: str = "home_visit") -> dict[str, Any]:
    return {"medium": medium, "planned_for": _soon(), "participants": CLIENT}


def log_body() -> dict[str, Any]:
    return {"medium": "phone", "occurred_at": _past(), "participants": CLIENT, "outcome": "made"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """`{case}` or `{contact}` are filled in."""
    state: str | None
    """The state the contact must be in (None: a route on the case)."""
    may: frozenset[str]
    ok: int = 200

    @property
    def changes(self) -> bool:
        return self.method != "GET"


ROUTES = [
    Route("GET", "/cases/{case}/contacts", None, frozenset(READERS)),
    Route("GET", "/cases/{case}/contact-compliance", None, frozenset(READERS)),
    Route("POST", "/cases/{case}/contacts", None, frozenset(WORKERS), 201),
    Route("POST", "/cases/{case}/contacts/log", None, frozenset(WORKERS), 201),
    Route("GET", "/contacts/{contact}", "scheduled", frozenset(READERS)),
    Route("POST", "/contacts/{contact}/log", "scheduled", frozenset(WORKERS)),
    Route("POST", "/contacts/{contact}/missed", "scheduled", frozenset(WORKERS)),
    Route("POST", "/contacts/{contact}/cancel", "scheduled", frozenset(WORKERS)),
    Route("POST", "/contacts/{contact}/corrections", "logged", frozenset(WORKERS)),
    Route("POST", "/contacts/{contact}/check-in", "scheduled", frozenset(WORKERS)),
    Route("POST", "/contacts/{contact}/check-out", "checked in", frozenset(WORKERS)),
]
BODIES: dict[str, Any] = {
    "/cases/{case}/contacts": None,  # made fresh: schedule_body()
    "/cases/{case}/contacts/log": None,  # log_body()
    "/contacts/{contact}/log": None,  # log_body()
    "/contacts/{contact}/missed": {"reason": "no_show"},
    "/contacts/{contact}/cancel": {"reason": "client_request"},
    "/contacts/{contact}/corrections": {"kind": "addendum", "text": "Her sister was there."},
    "/contacts/{contact}/check-in": {"expected_duration_minutes": 30},
}


def body_for(path: str) -> Any:
    if path == "/cases/{case}/contacts":
        return schedule_body()
    if path.endswith("/log"):
        return log_body()
    return BODIES.get(path)


def expected(may: frozenset[str], role: str, where: str, ok: int) -> int:
    if role not in may:
        return 403
    if where == "other" and role != "regional_admin":
        return 404
    return ok


@dataclass
class World:
    stack: Stack
    home: str
    case_id: str = ""
    clients: dict[tuple[str, str], httpx.Client] = field(default_factory=dict)
    shared: dict[str, str] = field(default_factory=dict)

    def key(self, role: str, where: str) -> tuple[str, str, str, str]:
        if where == "other":
            return (f"{role}-cother", role, OTHER, "t-other")
        return (f"{role}-cown", role, self.home, TEAM)

    def token(self, role: str, where: str) -> str:
        sub, role_, site, team = self.key(role, where)
        return self.stack.token(sub, role_, sites=(site,), team=team)

    def client(self, role: str, where: str = "own", service: str = "contacts") -> httpx.Client:
        if (role, where + service) not in self.clients:
            self.clients[role, where + service] = self.stack.client(
                service, self.token(role, where)
            )
        return self.clients[role, where + service]

    def contact_in(self, state: str, fresh: bool) -> str:
        """A contact of the case in `state`: new when the call will change it."""
        if not fresh and state in self.shared:
            return self.shared[state]
        worker = self.client("caseworker")
        if state == "logged":
            made = worker.post(f"/cases/{self.case_id}/contacts/log", json=log_body())
            assert made.status_code == 201, made.text
            contact_id: str = made.json()["contact_id"]
        else:
            made = worker.post(f"/cases/{self.case_id}/contacts", json=schedule_body())
            assert made.status_code == 201, made.text
            contact_id = made.json()["contact_id"]
            if state == "checked in":
                checked = worker.post(
                    f"/contacts/{contact_id}/check-in", json={"expected_duration_minutes": 30}
                )
                assert checked.status_code == 200, checked.text
        if not fresh:
            self.shared[state] = contact_id
        return contact_id


def open_case(stack: Stack, home: str) -> str:
    intake_token = stack.token("ivy-cauthz", "intake_worker", sites=(home,))
    with stack.client("intake", intake_token) as intake:
        body = {
            "site": home,
            "client": {
                "given_name": "Robin",
                "family_name": f"Cauthz{uuid.uuid4().hex[:8]}",
                "date_of_birth": "1985-06-01",
            },
            "source": "self",
            "presenting_concerns": "Not sleeping.",
            "urgency": "soon",
        }
        taken = eventually(
            lambda: intake.post("/referrals", json=body), lambda r: r.status_code != 422
        )
        assert taken.status_code == 201, taken.text
        referral_id = taken.json()["referral_id"]
        screen = {"wish_to_be_dead": False, "suicidal_thoughts": False}
        screened = eventually(
            lambda: intake.post(f"/referrals/{referral_id}/screening", json=screen),
            lambda r: r.status_code != 404,
        )
        assert screened.status_code == 200, screened.text
        accepted = intake.post(f"/referrals/{referral_id}/accept")
        assert accepted.status_code == 200, accepted.text
        case_id: str = accepted.json()["case_id"]
    return case_id


@pytest.fixture(scope="module")
def world(stack: Stack) -> Iterator[World]:
    home = f"chome-{uuid.uuid4().hex[:6]}"
    admin = stack.token("root", "regional_admin")
    with stack.client("supervision", admin) as supervision:
        created = supervision.post("/sites", json={"site": home, "name": "Contacts home"})
        assert created.status_code == 201, created.text
        register_staff(supervision, "caseworker-cown", "caseworker", sites=[home], team=TEAM)
    world = World(stack, home)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda k: world.token(*k), [(r, w) for r in ROLES for w in WHERE]))
    world.case_id = open_case(stack, home)
    manager = world.client("site_manager", service="cases")
    opened = eventually(
        lambda: manager.get(f"/cases/{world.case_id}"), lambda r: r.status_code == 200
    )
    assert opened.status_code == 200, opened.text
    assigned = assign_case(manager, world.case_id, "caseworker-cown", TEAM)
    assert assigned.status_code == 200, assigned.text
    # the contacts service hears of the case and its assignment through Kafka
    worker = world.client("caseworker")
    heard = eventually(
        lambda: worker.get(f"/cases/{world.case_id}/contacts"), lambda r: r.status_code == 200
    )
    assert heard.status_code == 200, heard.text
    try:
        yield world
    finally:
        for client in world.clients.values():
            client.close()


MATRIX = [
    pytest.param(
        route,
        role,
        where,
        expected(route.may, role, where, route.ok),
        id=f"{route.method} {route.path} | {role} | {where} site"
        f" -> {expected(route.may, role, where, route.ok)}",
    )
    for route in ROUTES
    for role in ROLES
    for where in WHERE
]


@pytest.mark.parametrize(("route", "role", "where", "status"), MATRIX)
def test_who_may_call_which_contacts_route(
    world: World, route: Route, role: str, where: str, status: int
) -> None:
    path = route.path.replace("{case}", world.case_id)
    if route.state is not None:
        fresh = status in (200, 201) and route.changes
        path = path.replace("{contact}", world.contact_in(route.state, fresh))
    body = body_for(route.path) if route.method == "POST" else None
    response = world.client(role, where).request(route.method, path, json=body)
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.headers["content-type"] == "application/problem+json"


def worker_agenda_status(role: str, where: str) -> int:
    if role in {"supervisor", "site_manager", "regional_admin"}:
        return 200
    if role == "caseworker" and where == "own":
        return 200  # caseworker-cown reads their own
    return 403


def team_agenda_status(role: str, where: str) -> int:
    if role == "regional_admin":
        return 200
    if role in {"supervisor", "site_manager"} and where == "own":
        return 200
    return 403


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("role", ROLES)
def test_who_may_read_which_agenda(world: World, role: str, where: str) -> None:
    caller = world.client(role, where)
    worker = caller.get("/agenda/workers/caseworker-cown")
    assert worker.status_code == worker_agenda_status(role, where), worker.text
    team = caller.get(f"/agenda/sites/{world.home}/teams/{TEAM}")
    assert team.status_code == team_agenda_status(role, where), team.text
    site = caller.get(f"/agenda/sites/{world.home}")
    assert site.status_code == team_agenda_status(role, where), site.text
    for answer in (worker, team, site):
        if answer.status_code == 200:
            items = [*answer.json()["overdue"], *answer.json()["today"],
                     *answer.json()["upcoming"]]  # fmt: skip
            reaches = where == "own" or role == "regional_admin"
            # the case's obligations show only to those who reach the case
            assert (world.case_id in {i["case_id"] for i in items}) is reaches, answer.text
