"""A supervision session held with its agenda, over HTTP on the real stack (issue 10,
"Supervision itself"), and who may do what with it.

The directory (supervision's own routes) says Sue supervises Carl. A referral becomes a
high-risk case at the site, assigned to Carl, with a crisis declared: the cases service's
events reach supervision's local projection. Sue schedules a session with Carl and prepares
it: the agenda names the crisis with its reason and a snapshot of the figures. She records
a review of the case, an action item and a note on Carl's wellbeing, and holds the session;
Carl acknowledges it. The session reads back with its agenda, review and action item; the
practice note is readable by Carl and Sue only — not by another supervisor, the site
manager or a regional admin; Sue's board lists Carl with his case, the crisis, the open
action item and the session just held; a concern Sue escalates shows on the site manager's
view. Then the authorisation matrix of every sessions route.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from support.directory import register_staff
from support.polling import eventually
from support.stack import Stack

SITE = "sess-north"
OTHER_SITE = "sess-south"
TEAM = "t-sess"
HIGH = {"wish_to_be_dead": True, "suicidal_thoughts": True, "suicidal_intent": True}


@dataclass
class Setting:
    stack: Stack
    case_id: str
    client_id: str

    def as_(self, sub: str, *roles: str, sites: tuple[str, ...] = (SITE,)) -> httpx.Client:
        return self.stack.client("supervision", self.stack.token(sub, *roles, sites=sites))


def _open_case(stack: Stack) -> tuple[str, str]:
    intake_token = stack.token("ivy-sess", "intake_worker", sites=(SITE,))
    body = {
        "site": SITE,
        "client": {
            "given_name": "Robin",
            "family_name": f"Session{uuid.uuid4().hex[:8]}",
            "date_of_birth": "1979-05-06",
        },
        "source": "gp",
        "presenting_concerns": "Low mood, stopped eating.",
        "urgency": "urgent",
    }
    with stack.client("intake", intake_token) as intake:
        taken = eventually(
            lambda: intake.post("/referrals", json=body), lambda r: r.status_code != 422
        )
        assert taken.status_code == 201, taken.text
        referral_id = taken.json()["referral_id"]
        screened = eventually(
            lambda: intake.post(f"/referrals/{referral_id}/screening", json=HIGH),
            lambda r: r.status_code != 404,
        )
        assert screened.status_code == 200, screened.text
        accepted = intake.post(f"/referrals/{referral_id}/accept")
        assert accepted.status_code == 200, accepted.text
        case_id = accepted.json()["case_id"]
    manager = stack.token("mo-sess", "site_manager", sites=(SITE,))
    with stack.client("cases", manager) as cases:
        case = eventually(lambda: cases.get(f"/cases/{case_id}"), lambda r: r.status_code == 200)
        assert case.status_code == 200, case.text
        assigned = cases.post(
            f"/cases/{case_id}/assignment", json={"caseworker_id": "carl-s", "team": TEAM}
        )
        assert assigned.status_code == 200, assigned.text
    carl = stack.token("carl-s", "caseworker", sites=(SITE,), team=TEAM)
    with stack.client("cases", carl) as cases:
        crisis = cases.post(f"/cases/{case_id}/crisis", json={"summary": "Took an overdose."})
        assert crisis.status_code in (200, 201), crisis.text
    return case_id, str(case.json()["client_id"])


@pytest.fixture(scope="module")
def setting(stack: Stack) -> Setting:
    admin = stack.token("root", "regional_admin")
    with stack.client("supervision", admin) as supervision:
        register_staff(supervision, "sue-s", "supervisor", sites=(SITE,), team=TEAM)
        register_staff(supervision, "dee-s", "supervisor", sites=(SITE,), team=TEAM)
        register_staff(
            supervision, "carl-s", "caseworker", sites=(SITE,), team=TEAM, supervisor="sue-s"
        )
        register_staff(
            supervision, "cleo-s", "caseworker", sites=(SITE,), team=TEAM, supervisor="dee-s"
        )
        register_staff(supervision, "mo-sess", "site_manager", sites=(SITE,))
        register_staff(supervision, "sid-s", "supervisor", sites=(OTHER_SITE,))
    case_id, client_id = _open_case(stack)
    return Setting(stack, case_id, client_id)


@pytest.mark.timeout(240)  # the first test of a run also waits for the stack to start
def test_a_session_is_held_with_its_agenda(setting: Setting) -> None:
    sue = setting.as_("sue-s", "supervisor")
    carl = setting.as_("carl-s", "caseworker")
    planned = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    # the directory may take a moment to reach supervision's own copy
    scheduled = eventually(
        lambda: sue.post(
            "/sessions", json={"worker_id": "carl-s", "kind": "remote", "planned_for": planned}
        ),
        lambda r: r.status_code == 201,
    )
    assert scheduled.status_code == 201, scheduled.text
    session_id = scheduled.json()["session_id"]
    assert scheduled.json()["status"] == "scheduled"

    def crisis_on_agenda(r: httpx.Response) -> bool:
        kinds = {(i["kind"], i["case_id"]) for i in r.json().get("agenda", [])}
        return ("crisis", setting.case_id) in kinds

    prepared = eventually(
        lambda: sue.post(f"/sessions/{session_id}/prepare"), crisis_on_agenda, within=60
    )
    assert prepared.status_code == 200, prepared.text
    item = next(i for i in prepared.json()["agenda"] if i["kind"] == "crisis")
    assert item["reason"].startswith("crisis open for")
    assert item["snapshot"]["risk_level"] in ("high", "imminent")
    assert item["snapshot"]["crisis_open_since"]

    reviewed = sue.post(
        f"/sessions/{session_id}/reviews",
        json={
            "case_id": setting.case_id,
            "findings": "Safety plan renewed with her sister.",
            "decision": "Daily phone contact until the crisis is resolved.",
            "reasons": "Overdose last night.",
        },
    )
    assert reviewed.status_code == 201, reviewed.text
    due = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    action = sue.post(
        f"/sessions/{session_id}/action-items",
        json={"due_at": due, "description": "Book the GP review", "case_id": setting.case_id},
    )
    assert action.status_code == 201, action.text
    assert action.json()["owner_id"] == "carl-s"
    note = sue.post(
        f"/sessions/{session_id}/practice-notes",
        json={"topic": "wellbeing", "text": "Carl is tired after two crisis weeks."},
    )
    assert note.status_code == 201, note.text
    held = sue.post(f"/sessions/{session_id}/hold")
    assert held.status_code == 200, held.text
    assert held.json()["status"] == "held"
    assert sue.post(f"/sessions/{session_id}/acknowledge").status_code == 409  # not the worker
    acknowledged = carl.post(f"/sessions/{session_id}/acknowledge")
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["status"] == "acknowledged"

    # the record reads back on its own: agenda, review (opened for the reader), action item
    record = eventually(
        lambda: carl.get(f"/sessions/{session_id}"), lambda r: len(r.json()["action_items"]) == 1
    )
    body = record.json()
    assert next(i["kind"] for i in body["agenda"]) == "crisis"
    [review] = body["reviews"]
    assert review["findings"] == "Safety plan renewed with her sister."
    assert review["client_id"] == setting.client_id
    assert body["action_items"][0]["description"] == "Book the GP review"
    assert "practice" not in record.text
    assert "tired" not in record.text

    # practice notes: Carl and Sue only
    for client in (carl, sue):
        notes = client.get(f"/sessions/{session_id}/practice-notes")
        assert notes.status_code == 200, notes.text
        assert notes.json()[0]["text"] == "Carl is tired after two crisis weeks."
    for outsider in (
        setting.as_("dee-s", "supervisor"),
        setting.as_("mo-sess", "site_manager"),
        setting.as_("root", "regional_admin", sites=()),
    ):
        refused = outsider.get(f"/sessions/{session_id}/practice-notes")
        assert refused.status_code == 404, refused.text
        assert "tired" not in refused.text

    # the board: Carl with his case, the crisis, the open action item, the session held
    board = eventually(
        lambda: sue.get("/board"),
        lambda r: any(
            w["worker_id"] == "carl-s" and w["last_supervision_at"] for w in r.json()["workers"]
        ),
    )
    assert board.status_code == 200, board.text
    [line] = [w for w in board.json()["workers"] if w["worker_id"] == "carl-s"]
    assert line["case_ids"] == [setting.case_id]
    assert line["crises"] == 1
    assert line["action_items_open"] == 1
    assert line["supervision_due_at"] is not None
    assert board.json()["totals"]["crises"] >= 1

    # a concern escalated shows on the site manager's view
    concern = sue.post(
        "/concerns",
        json={"site": SITE, "worker_id": "carl-s", "summary": "Carl carries two crises alone."},
    )
    assert concern.status_code == 201, concern.text
    manager = setting.as_("mo-sess", "site_manager")
    view = eventually(
        lambda: manager.get(f"/sites/{SITE}/supervision"),
        lambda r: any(
            c["concern_id"] == concern.json()["concern_id"] for c in r.json()["escalations_open"]
        ),
    )
    assert view.status_code == 200, view.text
    assert view.json()["escalations_open"][0]["summary"] == "Carl carries two crises alone."
    coverage = view.json()["cases_reviewed_within_cadence"]
    assert sum(c["total"] for c in coverage.values()) >= 1
    resolved = manager.post(
        f"/concerns/{concern.json()['concern_id']}/resolve", json={"resolution": "Cover found."}
    )
    assert resolved.status_code == 200, resolved.text


# -- the authorisation matrix ------------------------------------------------------------------

# (sub, roles, sites): who asks
WHO: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "worker": ("cleo-s", ("caseworker",), (SITE,)),
    "supervisor": ("dee-s", ("supervisor",), (SITE,)),
    "other_supervisor": ("sid-s", ("supervisor",), (OTHER_SITE,)),
    "colleague": ("carl-s", ("caseworker",), (SITE,)),
    "site_manager": ("mo-sess", ("site_manager",), (SITE,)),
    "other_site_manager": ("mo-south", ("site_manager",), (OTHER_SITE,)),
    "regional_admin": ("root", ("regional_admin",), ()),
    "intake_worker": ("ivy-sess", ("intake_worker",), (SITE,)),
    "ops": ("op", ("ops",), ()),
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """`{session}`, `{item}`, `{concern}` are filled in."""
    ok: frozenset[str]
    """Who succeeds (2xx); everyone else is refused (403 for a role that may not, 404 for
    a record out of reach, 409 for a rule: never 2xx)."""
    body: dict[str, Any] | None = None
    fresh: bool = False
    """Each caller that may succeed gets fresh records (the command changes them)."""


READS = frozenset({"worker", "supervisor", "site_manager", "regional_admin"})
RUNS = frozenset({"supervisor"})
MANAGES = frozenset({"site_manager", "regional_admin"})


def _later() -> str:
    return (datetime.now(UTC) + timedelta(days=2)).isoformat()


ROUTES = [
    Route("GET", "/sessions/{session}", READS),
    Route("GET", "/sessions?worker_id=cleo-s", READS),
    Route("GET", "/sessions/{session}/practice-notes", frozenset({"worker", "supervisor"})),
    Route("GET", "/workers/cleo-s/action-items", READS),
    Route("GET", "/board", frozenset({"supervisor", "other_supervisor"})),
    Route("GET", f"/sites/{SITE}/supervision", MANAGES),
    Route("GET", f"/concerns?site={SITE}", MANAGES),
    Route("POST", "/sessions", RUNS, {"worker_id": "cleo-s", "planned_for": "LATER"}),
    Route("POST", "/sessions/{session}/prepare", RUNS),
    Route(
        "POST",
        "/sessions/{session}/practice-notes",
        RUNS,
        {"topic": "learning", "text": "Reading on motivational interviewing."},
    ),
    Route(
        "POST",
        "/sessions/{session}/action-items",
        RUNS,
        {"due_at": "LATER", "description": "Shadow a home visit"},
    ),
    Route("POST", "/sessions/{session}/reschedule", RUNS, {"planned_for": "LATER"}, fresh=True),
    Route("POST", "/sessions/{session}/hold", RUNS, fresh=True),
    Route("POST", "/sessions/{session}/cancel", RUNS, {"reason": "Ill."}, fresh=True),
    Route("POST", "/sessions/{held}/acknowledge", frozenset({"worker"}), fresh=True),
    Route("POST", "/action-items/{item}/done", frozenset({"worker", "supervisor"}), fresh=True),
    Route(
        "POST",
        "/concerns",
        RUNS,
        {"site": SITE, "worker_id": "cleo-s", "summary": "Late records."},
    ),
    Route(
        "POST",
        "/concerns/{concern}/resolve",
        MANAGES,
        {"resolution": "Talked it through."},
        fresh=True,
    ),
]


@dataclass
class Records:
    session: str = ""
    held: str = ""
    item: str = ""
    concern: str = ""


def _fresh(setting: Setting, path: str) -> Records:
    """Records for one call that changes them: only those its path names."""
    dee = setting.as_("dee-s", "supervisor")
    records = Records()

    def prepared() -> str:
        made = eventually(
            lambda: dee.post("/sessions", json={"worker_id": "cleo-s", "planned_for": _later()}),
            lambda r: r.status_code == 201,
        )
        assert made.status_code == 201, made.text
        session_id = str(made.json()["session_id"])
        assert dee.post(f"/sessions/{session_id}/prepare").status_code == 200
        return session_id

    if "{session}" in path or "{item}" in path:
        records.session = prepared()
    if "{held}" in path:
        records.held = prepared()
        assert dee.post(f"/sessions/{records.held}/hold").status_code == 200
    if "{item}" in path:
        item = dee.post(
            f"/sessions/{records.session}/action-items",
            json={"due_at": _later(), "description": "Read the policy"},
        )
        assert item.status_code == 201, item.text
        records.item = item.json()["action_item_id"]
    if "{concern}" in path:
        concern = dee.post(
            "/concerns", json={"site": SITE, "worker_id": "cleo-s", "summary": "Records late."}
        )
        assert concern.status_code == 201, concern.text
        records.concern = concern.json()["concern_id"]
    return records


@pytest.mark.timeout(300)
def test_every_sessions_route_is_authorised(setting: Setting) -> None:
    dee = setting.as_("dee-s", "supervisor")
    shared = _fresh(setting, "{session}{held}{item}{concern}")
    note = dee.post(
        f"/sessions/{shared.session}/practice-notes",
        json={"topic": "practice", "text": "Good notes."},
    )
    assert note.status_code == 201, note.text
    eventually(lambda: dee.get("/workers/cleo-s/action-items"), lambda r: len(r.json()) >= 1)
    for sub, roles, sites in WHO.values():
        setting.stack.token(sub, *roles, sites=sites)  # minted once, before the threads

    def call(route: Route, name: str) -> str | None:
        sub, roles, sites = WHO[name]
        allowed = name in route.ok
        records = _fresh(setting, route.path) if route.fresh and allowed else shared
        path = route.path.format(**vars(records))
        body = {k: (_later() if v == "LATER" else v) for k, v in (route.body or {}).items()}
        with setting.as_(sub, *roles, sites=sites) as client:
            answer = client.request(route.method, path, json=body or None)
        what = f"{name} {route.method} {route.path}"
        if allowed and not answer.is_success:
            return f"{what}: {answer.status_code} {answer.text}"
        if not allowed and answer.is_success:
            return f"{what}: allowed ({answer.status_code})"
        if not allowed and answer.status_code not in (403, 404, 409):
            return f"{what}: {answer.status_code}"
        if "Good notes" in answer.text and name not in ("worker", "supervisor"):
            return f"{what}: shows the practice note"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda rn: call(*rn), [(r, n) for r in ROUTES for n in WHO]))
    failures = [r for r in results if r is not None]
    assert not failures, "\n".join(failures)
