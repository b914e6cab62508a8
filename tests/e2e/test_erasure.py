"""Erasure over HTTP on the real stack (issue 8).

One client's story, from referral to erasure, on a stack of its own (its services are stopped
half-way for the rebuild): an open case refuses the erasure naming it; a safeguarding hold
refuses it naming the hold; once the case is closed and the hold released, the erasure is
carried out and its proof record says who asked, who decided, when and which keys. Then:

- the intake and cases answers show `[erased]` for that client, and another client is
  untouched;
- searching every collection of every service database (and the key store), every topic and
  dead-letter topic of the stack, and the services' logs for the client's name, birth date,
  phone, concerns and notes finds nothing readable;
- with the services stopped, every read model of every service is rebuilt from scratch; the
  services started again on the rebuilt read models still show `[erased]`, and the other
  client's data.

And the authorisation matrix of the new routes, every role, on the shared stack.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import random
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import bson
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import MongoClient

from casework.auth import mint_dev_token
from casework.eventstore import Document
from casework.projections import Projection
from casework.rebuild import rebuild_projection
from casework.runtime import ServiceRuntime
from casework.settings import Settings

from support.approvals import approve, case_when, closure_approval, plan_approval
from support.directory import assign_case, register_staff
from support.polling import eventually
from support.stack import Stack, running_stack

BASE = int(os.environ.get("CASEWORK_E2E_BASE_PORT", "18001"))
ERASED = "[erased]"
NO_RISK = {"wish_to_be_dead": False, "suicidal_thoughts": False}
TEAM = "t-erasure"
PLAN = {
    "goals": [{"goal_id": "sleep", "description": "Sleep", "target_date": "2027-06-30"}],
}


@dataclass
class Person:
    """A client's personal values, unique to this run, so a search finds only them."""

    given_name: str
    family_name: str
    date_of_birth: str
    phone: str
    concerns: str
    note: str
    narrative: str

    @classmethod
    def new(cls) -> Person:
        tag = uuid.uuid4().hex[:8]
        day = random.Random(tag).randint(1, 28)
        return cls(
            given_name=f"Ysolde{tag}",
            family_name=f"Tremayne{tag}",
            date_of_birth=f"1961-03-{day:02d}",
            phone=f"07700 9{random.Random(tag).randint(10000, 99999)}",
            concerns=f"Hears the neighbours plotting {tag}",
            note=f"Visited; the flat was cold {tag}",
            narrative=f"Lost her job in the spring {tag}",
        )

    def referral(self, site: str) -> dict[str, Any]:
        return {
            "site": site,
            "source": "gp",
            "urgency": "soon",
            "consent_to_share": True,
            "client": {
                "given_name": self.given_name,
                "family_name": self.family_name,
                "date_of_birth": self.date_of_birth,
                "phone": self.phone,
            },
            "presenting_concerns": self.concerns,
        }

    def needles(self) -> list[bytes]:
        """What must not be readable anywhere: each value as written and as normalised."""
        values = [
            self.given_name,
            self.given_name.lower(),
            self.family_name,
            self.family_name.lower(),
            self.date_of_birth,
            self.phone,
            self.phone.replace(" ", ""),
            self.concerns,
            self.note,
            self.narrative,
        ]
        return [v.encode() for v in values]


def token(
    stack: Stack, role: str, sites: tuple[str, ...] = (), sub: str = "", team: str | None = None
) -> str:
    """Signed in this process with the stack's dev key (the CLI takes a second a token;
    `stack.token` is what a user runs, tried by the README walk-through)."""
    settings = Settings(
        environment="test", jwt_dev_key_path=Path(stack.env["CASEWORK_JWT_DEV_KEY_PATH"])
    )
    return mint_dev_token(settings, sub or f"u-{role}", [role], sites, team=team)


@dataclass
class Story:
    referral_id: str
    case_id: str
    client_id: str


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def register_site(stack: Stack, site: str) -> None:
    admin = token(stack, "regional_admin", sub="root")
    with stack.client("supervision", admin) as supervision:
        created = supervision.post("/sites", json={"site": site, "name": site.title()})
        assert created.status_code in (201, 409), created.text
    with stack.client("intake", admin) as intake:
        known = eventually(
            lambda: intake.get("/intake-queue", params={"site": site}),
            lambda r: r.status_code == 200,
        )
        assert known.status_code == 200, known.text


def open_case(stack: Stack, site: str, person: Person) -> Story:
    worker = token(stack, "intake_worker", (site,), "ivy")
    manager = token(stack, "site_manager", (site,), "mia")
    with stack.client("intake", worker) as intake, stack.client("cases", manager) as cases:
        referral = ok(intake.post("/referrals", json=person.referral(site)), 201)
        rid = referral["referral_id"]
        ok(intake.post(f"/referrals/{rid}/screening", json=NO_RISK))
        accepted = ok(intake.post(f"/referrals/{rid}/accept"))
        case_id = accepted["case_id"]
        opened = eventually(lambda: cases.get(f"/cases/{case_id}"), lambda r: r.status_code == 200)
        assert opened.status_code == 200, opened.text
    return Story(rid, case_id, accepted["client_id"])


def work_on_the_case(stack: Stack, site: str, story: Story, person: Person) -> None:
    """Assigned, a note, an assessment, a plan approved: notes and clinical records exist."""
    path = f"/cases/{story.case_id}"
    manager = stack.client("cases", token(stack, "site_manager", (site,), "mia"))
    carl = stack.client("cases", token(stack, "caseworker", (site,), "carl", TEAM))
    sue = stack.client("supervision", token(stack, "supervisor", (site,), "sue", TEAM))
    with stack.client("supervision", token(stack, "regional_admin", sub="root")) as directory:
        register_staff(directory, "carl", "caseworker", sites=[site], team=TEAM)
    with manager, carl, sue:
        ok(assign_case(manager, story.case_id, "carl", TEAM))
        ok(carl.post(f"{path}/notes", json={"text": person.note}))
        assessment = {"needs": {"work": person.narrative}, "narrative": person.narrative}
        ok(carl.post(f"{path}/assessment", json=assessment))
        ok(carl.post(f"{path}/plan", json=PLAN))
        approve(sue, plan_approval(story.case_id, 1), "Fine")  # decided in supervision
        case_when(manager, story.case_id, lambda c: c["phase"] == "active")


def close_the_case(stack: Stack, site: str, story: Story) -> None:
    path = f"/cases/{story.case_id}"
    carl = stack.client("cases", token(stack, "caseworker", (site,), "carl", TEAM))
    sue = stack.client("supervision", token(stack, "supervisor", (site,), "sue", TEAM))
    with carl, sue:
        closure = {"outcome": "goals_met", "evaluation": "Sleeping again"}
        requested = ok(carl.post(f"{path}/closure", json=closure))
        approve(sue, closure_approval(story.case_id, requested["version"]))
        case_when(carl, story.case_id, lambda c: c["phase"] == "closed")


# --- what the answers show -----------------------------------------------------------------


def same_proof(read: dict[str, Any], answered: dict[str, Any]) -> bool:
    """The proof record as read equals the request's answer (times compared as instants)."""
    for field, value in answered.items():
        if field.endswith("_at") and value is not None:
            if datetime.fromisoformat(read[field]) != datetime.fromisoformat(value):
                return False
        elif read[field] != value:
            return False
    return read.keys() == answered.keys()


def intake_shows(stack: Stack, story: Story) -> dict[str, Any]:
    admin = token(stack, "regional_admin", sub="root")
    with stack.client("intake", admin) as intake:
        referral: dict[str, Any] = ok(intake.get(f"/referrals/{story.referral_id}"))
    return referral


def cases_show(stack: Stack, story: Story) -> tuple[dict[str, Any], dict[str, Any]]:
    admin = token(stack, "regional_admin", sub="root")
    with stack.client("cases", admin) as cases:
        case = ok(cases.get(f"/cases/{story.case_id}"))
        timeline = ok(cases.get(f"/cases/{story.case_id}/timeline"))
    return case, timeline


def erased_everywhere(stack: Stack, story: Story, person: Person) -> None:
    """The client's values read `[erased]` in intake's and cases' answers."""

    def unreadable(r: httpx.Response) -> bool:
        return r.status_code == 200 and not any(n.decode() in r.text for n in person.needles())

    def referral_erased(r: httpx.Response) -> bool:
        return unreadable(r) and r.json()["client"]["given_name"] == ERASED

    def case_erased(r: httpx.Response) -> bool:
        # the name as the case keeps it: given and family name, each erased
        return unreadable(r) and set(r.json()["client_name"].split(" ")) == {ERASED}

    admin = token(stack, "regional_admin", sub="root")
    with stack.client("intake", admin) as intake, stack.client("cases", admin) as cases:
        # other processes may hold a data key for the key cache's lifetime (5 s)
        eventually(lambda: intake.get(f"/referrals/{story.referral_id}"), referral_erased)
        eventually(lambda: cases.get(f"/cases/{story.case_id}"), case_erased)
        # each record class has its own key, cached on its own: wait for every value (a
        # CI run once saw the note erased while the assessment's narrative was still
        # opened by a clinical key cached just before the erasure)
        eventually(lambda: cases.get(f"/cases/{story.case_id}/timeline"), unreadable)
    referral = intake_shows(stack, story)
    assert referral["client"]["given_name"] == ERASED
    assert referral["client"]["family_name"] == ERASED
    assert referral["client"]["date_of_birth"] == ERASED
    assert referral["client"]["phone"] == ERASED
    assert referral["presenting_concerns"] == ERASED
    assert referral["status"] == "accepted"  # facts without personal data stay
    case, timeline = cases_show(stack, story)
    assert set(case["client_name"].split(" ")) == {ERASED}
    assert case["phase"] == "closed"
    text = str(timeline)
    for needle in person.needles():
        assert needle.decode() not in text
    assert ERASED in text


def untouched(stack: Stack, story: Story, person: Person) -> None:
    referral = intake_shows(stack, story)
    assert referral["client"]["given_name"] == person.given_name
    assert referral["presenting_concerns"] == person.concerns
    case, _ = cases_show(stack, story)
    assert person.given_name in case["client_name"]


# --- searching everything ------------------------------------------------------------------


def search_databases(mongo_url: str, names: list[str], needles: list[bytes]) -> list[str]:
    found = []
    client: MongoClient[Document] = MongoClient(mongo_url)
    with client:
        for name in names:
            database = client[name]
            for collection in database.list_collection_names():
                for doc in database[collection].find({}):
                    raw = bson.encode(doc)
                    found += [f"{name}.{collection}:{doc['_id']}" for n in needles if n in raw]
    return found


async def search_topics(
    bootstrap: str, namespace: str, needles: list[bytes]
) -> tuple[int, list[str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(namespace + ".")]
    finally:
        await admin.close()
    assert any(t.endswith(".dlq") for t in topics), topics
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found: list[str] = []
    read = 0
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1500)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    read += 1
                    raw = (record.value or b"") + b"".join(v for _, v in record.headers)
                    found += [f"{record.topic}@{record.offset}" for n in needles if n in raw]
    finally:
        await consumer.stop()
    return read, found


def search_logs(logs: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in logs.glob("*.log"):
        raw = path.read_bytes()
        found += [f"{path.name}: {n.decode()}" for n in needles if n in raw]
    return found


# --- rebuilding every read model -----------------------------------------------------------


async def rebuild_everything(stack: Stack, bootstrap: str, mongo_url: str) -> dict[str, int]:
    """Every projection of every service, rebuilt from its topics (the services stopped)."""
    rebuilt: dict[str, int] = {}
    for name, database in stack.databases.items():
        module = importlib.import_module(f"casework_{name}.bootstrap")
        settings = Settings.for_service(
            name,
            module.PORT,
            environment="test",
            kafka_bootstrap_servers=bootstrap,
            mongo_url=mongo_url,
            mongo_database=database,
            namespace=stack.namespace,
            **_keys_settings(stack),
        )
        built = module.build(settings)
        runtime: ServiceRuntime = built[0] if isinstance(built, tuple) else built
        try:
            for projection in [h for h in runtime.handlers if isinstance(h, Projection)]:
                report = await rebuild_projection(
                    projection, runtime.registry, settings, progress=lambda _: None
                )
                rebuilt[
                    f"{name}.{projection.name}"
                ] = await projection.read_model.collection.count_documents({})
                assert report.outcomes.get("dead_lettered", 0) == 0, (name, report)
        finally:
            await runtime.stop()
    return rebuilt


def _keys_settings(stack: Stack) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    if "CASEWORK_KEYS_MONGO_DB" in stack.env:
        keys["keys_mongo_db"] = stack.env["CASEWORK_KEYS_MONGO_DB"]
    if "CASEWORK_KEK_FILE" in stack.env:
        keys["kek_file"] = Path(stack.env["CASEWORK_KEK_FILE"])
    return keys


def stop_services(stack: Stack) -> None:
    for pid in stack.pids.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for pid in stack.pids.values():
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return waited == 0


@pytest.mark.timeout(300)
def test_an_erased_client_is_unreadable_everywhere_and_stays_so_after_a_rebuild(
    servers: tuple[str, str], tmp_path: Path
) -> None:
    bootstrap, mongo_url = servers
    site = f"er{uuid.uuid4().hex[:6]}"
    erased, other = Person.new(), Person.new()
    began = time.monotonic()
    took: dict[str, float] = {}

    def lap(name: str) -> None:
        took[name] = round(time.monotonic() - began - sum(took.values()), 1)

    databases: list[str] = []
    try:
        with running_stack(
            bootstrap, mongo_url, tmp_path, BASE + 50, prefix="erase", drop=False
        ) as stack:
            databases += [*stack.databases.values(), stack.env["CASEWORK_KEYS_MONGO_DB"]]
            lap("stack up")
            register_site(stack, site)
            story = open_case(stack, site, erased)
            kept = open_case(stack, site, other)
            work_on_the_case(stack, site, story, erased)
            done = refused_then_carried_out(stack, site, story)
            lap("story and erasure")
            erased_everywhere(stack, story, erased)
            untouched(stack, kept, other)
            lap("answers")

            # nothing readable anywhere: databases, topics and dead letters, logs
            needles = erased.needles()
            assert not search_databases(mongo_url, databases, needles)
            read, in_topics = asyncio.run(search_topics(bootstrap, stack.namespace, needles))
            assert read > 20
            assert not in_topics, in_topics
            assert not search_logs(stack.logs, needles)
            lap("search")

            # every read model of every service rebuilt from scratch, the services stopped
            stop_services(stack)
            rebuilt = asyncio.run(rebuild_everything(stack, bootstrap, mongo_url))
            assert rebuilt["cases.case_summaries"] >= 2
            assert rebuilt["intake.erasure_proofs"] == 3
            lap("rebuild")

        # intake and cases again, on the rebuilt read models
        with running_stack(
            bootstrap,
            mongo_url,
            tmp_path,
            BASE + 50,
            namespace=stack.namespace,
            services=("intake", "cases"),
        ) as again:
            erased_everywhere(again, story, erased)
            untouched(again, kept, other)
            with again.client("intake", token(again, "dpo", sub="dora")) as dpo:
                assert same_proof(ok(dpo.get(f"/erasures/{done['erasure_id']}")), done)
        lap("restarted")
    finally:
        client: MongoClient[Document] = MongoClient(mongo_url)
        with client:
            for name in databases:
                client.drop_database(name)
    print(f"\nerasure e2e: {read} records searched in the topics; seconds {took}")


def refused_then_carried_out(stack: Stack, site: str, story: Story) -> dict[str, Any]:
    """Refused while the case is open, then while a hold stands; carried out once the case
    is closed and the hold released. The carried-out erasure's proof record."""
    dpo = stack.client("intake", token(stack, "dpo", sub="dora"))
    manager = stack.client("intake", token(stack, "site_manager", (site,), "mia"))
    with dpo, manager:
        path = f"/clients/{story.client_id}"
        ask = {"reason": "data_subject_request", "requester": "data_subject"}

        # an open case refuses the erasure, naming the case
        refused = ok(dpo.post(f"{path}/erasure", json={**ask, "reference": "DPO-1"}), 201)
        assert (refused["outcome"], refused["status"]) == ("refused", "refused")
        assert refused["holds"] == [
            {"kind": "open_case", "id": story.case_id, "basis": None, "site": site}
        ]
        assert refused["key_ids"] == []

        # a safeguarding hold, placed by the site manager, refuses it too
        held = ok(manager.post(f"{path}/holds", json={"basis": "safeguarding_adult"}), 201)
        hold_id = held["holds"][0]["hold_id"]
        close_the_case(stack, site, story)
        closed = eventually(
            lambda: dpo.get(f"{path}/holds"), lambda r: r.json()["open_cases"] == []
        )
        assert ok(closed)["open_cases"] == []
        refused = ok(dpo.post(f"{path}/erasure", json=ask), 201)
        assert refused["holds"] == [
            {"kind": "legal_hold", "id": hold_id, "basis": "safeguarding_adult", "site": site}
        ]

        # released: the erasure is carried out
        ok(manager.post(f"{path}/holds/{hold_id}/release"))
        done: dict[str, Any] = ok(
            dpo.post(f"{path}/erasure", json={**ask, "reference": "DPO-2"}), 201
        )
        assert (done["outcome"], done["status"]) == ("carried_out", "completed")
        assert done["requested_by"] == done["decided_by"] == "dora"
        assert done["key_ids"], done
        assert all(k.startswith((f"client:{story.client_id}/", "person:")) for k in done["key_ids"])
        assert done["holds"] == []

        # the proof record, readable by the officer; the client cannot be erased twice
        proof = eventually(
            lambda: dpo.get(f"/erasures/{done['erasure_id']}"),
            lambda r: r.status_code == 200 and r.json()["status"] == "completed",
        )
        assert same_proof(ok(proof), done)
        listed = ok(dpo.get("/erasures", params={"client_id": story.client_id}))
        assert [p["outcome"] for p in listed] == ["carried_out", "refused", "refused"]
        again = dpo.post(f"{path}/erasure", json=ask)
        assert again.status_code == 409, again.text
    return done


# --- who may ---------------------------------------------------------------------------------

ROLES = (
    "dpo",
    "regional_admin",
    "site_manager",
    "supervisor",
    "caseworker",
    "crisis_worker",
    "intake_worker",
    "integration",
    "ops",
)
HOLD_KEEPERS = {"dpo", "regional_admin", "site_manager"}


def test_only_the_officer_erases_and_reads_proofs_and_holds_need_a_keeper(stack: Stack) -> None:
    site = f"ez{uuid.uuid4().hex[:6]}"
    register_site(stack, site)
    story = open_case(stack, site, Person.new())
    path = f"/clients/{story.client_id}"
    ask = {"reason": "data_subject_request", "requester": "data_subject"}
    first = None
    for role in ROLES:
        with stack.client("intake", token(stack, role, (site,))) as client:
            may_erase = role == "dpo"
            erasure = client.post(f"{path}/erasure", json=ask)
            assert erasure.status_code == (201 if may_erase else 403), (role, erasure.text)
            if may_erase:
                first = erasure.json()["erasure_id"]
                assert erasure.json()["outcome"] == "refused"  # the case is open
            listed = client.get("/erasures")
            assert listed.status_code == (200 if may_erase else 403), role
            keeper = role in HOLD_KEEPERS
            held = client.post(f"{path}/holds", json={"basis": "litigation"})
            assert held.status_code == (201 if keeper else 403), (role, held.text)
            shown = client.get(f"{path}/holds")
            assert shown.status_code == (200 if keeper else 403), role
            if keeper:
                hold = held.json()["holds"][-1]["hold_id"]
                released = client.post(f"{path}/holds/{hold}/release")
                assert released.status_code == 200, (role, released.text)
            else:
                assert client.post(f"{path}/holds/x/release").status_code == 403, role
    assert first is not None
    with stack.client("intake", token(stack, "dpo", ())) as dpo:
        proof = eventually(lambda: dpo.get(f"/erasures/{first}"), lambda r: r.status_code == 200)
        assert proof.json()["holds"][0]["kind"] == "open_case"
        assert dpo.get("/erasures/nope").status_code == 404
        # the officer sees proofs, not client data
        assert dpo.get(f"/referrals/{story.referral_id}").status_code == 403
        assert dpo.get("/intake-queue", params={"site": site}).status_code == 403
    with stack.client("cases", token(stack, "dpo", ())) as cases:
        assert cases.get(f"/cases/{story.case_id}").status_code == 403
    for role in ("regional_admin", "site_manager", "supervisor"):
        with stack.client("intake", token(stack, role, (site,))) as client:
            assert client.get(f"/erasures/{first}").status_code == 403, role
    # a site manager of another site does not reach the client (404: its existence is data)
    with stack.client("intake", token(stack, "site_manager", ("elsewhere",))) as client:
        assert client.get(f"{path}/holds").status_code == 404
        assert client.post(f"{path}/holds", json={"basis": "litigation"}).status_code == 404
