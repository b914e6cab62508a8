"""The scaffolding of the authorisation matrix tests (every role, every route, and a principal
at the case's own site or at another): the roles, the expected status in the issue's words,
one principal and HTTP client per role and place (tokens minted up front), the parametrised
matrix, and a case opened through intake. The tables of who may call what stay in each test
module: they are what the test asserts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest

from support.polling import eventually
from support.stack import Stack

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
"""`own`: at the case's site (and team); `other`: at a site none of the cases is at."""
READERS = frozenset({"caseworker", "supervisor", "crisis_worker", "site_manager", "regional_admin"})
"""Who reads a case (and its contacts) within reach."""
NO_RISK = {"wish_to_be_dead": False, "suicidal_thoughts": False}

T = TypeVar("T")


def expected(may: Iterable[str], role: str, where: str, ok: int = 200) -> int:
    """A role that may not issue the command: 403, before anything is looked up; one that
    may but does not reach the case (another site): 404; a regional admin reaches every
    case; everyone else who may, and reaches it: `ok`."""
    if role not in set(may):
        return 403
    if where == "other" and role != "regional_admin":
        return 404
    return ok


def matrix(
    routes: Iterable[T],
    may: Callable[[T], Iterable[str]],
    label: Callable[[T], str],
    ok: Callable[[T], int] = lambda _: 200,
) -> list[Any]:
    """`pytest.param(route, role, where, status)` for every route, role and place, each
    named `<label> | <role> | <where> site -> <status>`."""
    params = []
    for route in routes:
        for role in ROLES:
            for where in WHERE:
                status = expected(may(route), role, where, ok(route))
                name = f"{label(route)} | {role} | {where} site -> {status}"
                params.append(pytest.param(route, role, where, status, id=name))
    return params


@dataclass(frozen=True)
class Who:
    """A principal: its `sub`, role, site and team."""

    sub: str
    role: str
    site: str
    team: str | None


@dataclass
class Callers:
    """One principal per (role, where) — `<role>-<tag>own` at `home` in `team`, or
    `<role>-<tag>other` at `other_site` — with their tokens and HTTP clients, kept for the
    module (`close` them at the end)."""

    stack: Stack
    home: str
    team: str
    tag: str = ""
    other_site: str = "elsewhere"
    other_team: str = "t-other"
    tokens: dict[Who, str] = field(default_factory=dict)
    clients: dict[tuple[Who, str], httpx.Client] = field(default_factory=dict)

    def who(self, role: str, where: str = "own") -> Who:
        if where == "other":
            return Who(f"{role}-{self.tag}other", role, self.other_site, self.other_team)
        return Who(f"{role}-{self.tag}own", role, self.home, self.team)

    def everyone(self) -> list[Who]:
        return [self.who(role, where) for role in ROLES for where in WHERE]

    def token(self, who: Who) -> str:
        if who not in self.tokens:
            self.tokens[who] = self.stack.token(who.sub, who.role, sites=(who.site,), team=who.team)
        return self.tokens[who]

    def mint(self, extra: Iterable[Who] = ()) -> None:
        """Minting a token runs the CLI (most of a second): all of them at once, up front."""
        wanted = [w for w in [*self.everyone(), *extra] if w not in self.tokens]
        with ThreadPoolExecutor(max_workers=4) as pool:
            minted = list(pool.map(self.token, wanted))
        self.tokens.update(zip(wanted, minted, strict=True))

    def client(self, who: Who, service: str) -> httpx.Client:
        if (who, service) not in self.clients:
            self.clients[who, service] = self.stack.client(service, self.token(who))
        return self.clients[who, service]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def register_site(stack: Stack, name: str) -> str:
    """A new site (`<name>-<random>`), registered by a regional admin."""
    code = f"{name}-{uuid.uuid4().hex[:6]}"
    with stack.client("supervision", stack.token("root", "regional_admin")) as supervision:
        created = supervision.post("/sites", json={"site": code, "name": name.title()})
        assert created.status_code == 201, created.text
    return code


def referral(site: str, family: str) -> dict[str, Any]:
    return {
        "site": site,
        "client": {
            "given_name": "Robin",
            "family_name": f"{family}{uuid.uuid4().hex[:8]}",
            "date_of_birth": "1985-06-01",
        },
        "source": "self",
        "presenting_concerns": "Not sleeping, hopeless.",
        "urgency": "soon",
    }


def accepted_case(intake: httpx.Client, site: str, family: str) -> str:
    """Referral (once intake knows the site) → screening (no risk) → acceptance: the case
    id (the cases service opens it a moment later)."""
    taken = eventually(
        lambda: intake.post("/referrals", json=referral(site, family)),
        lambda r: r.status_code != 422,
    )
    assert taken.status_code == 201, taken.text
    referral_id = taken.json()["referral_id"]
    screened = eventually(
        lambda: intake.post(f"/referrals/{referral_id}/screening", json=NO_RISK),
        lambda r: r.status_code != 404,
    )
    assert screened.status_code == 200, screened.text
    accepted = intake.post(f"/referrals/{referral_id}/accept")
    assert accepted.status_code == 200, accepted.text
    case_id: str = accepted.json()["case_id"]
    return case_id
