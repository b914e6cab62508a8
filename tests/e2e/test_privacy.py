"""Personal data encrypted per data subject, on the running stack (issue 8, "Encryption per
data subject"):

- every contract with personal fields is driven over HTTP (intake: referral, screening,
  acceptance, registration; cases: opening, assessment, plan, goal progress, risk change,
  crisis declared and resolved, note, break-glass, closure request; contacts: a home visit
  scheduled, logged and corrected; supervision: a case review, a practice note, an action
  item, a cancelled session, a concern escalated and resolved, an assessment returned with a
  reason, a plan approved with a comment) with values carrying one marker;
  then no byte of the event stores, the read models, any topic or dead-letter topic of the
  stack, or any service log holds the marker, a birth date or a screening item — while the
  authorised answers show them all;
- the client's keys destroyed (what the erasure workflow does): the answers show `[erased]`
  within the key cache TTL, every read model rebuilt from the topics still works, nothing
  dead-letters, and it shows `[erased]` too; another client is untouched;
- a service started with another KEK, or without its KEK file, refuses to start and says why.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import MongoClient

from casework.contracts import all_events
from casework.eventstore import Document
from casework.privacy import REPLACEMENT, KeyService, LocalKeyFileProvider, create_key_file
from casework.privacy.sealing import Opener
from casework.projections import Projection
from casework.rebuild import rebuild_projection
from casework.runtime import ServiceRuntime
from casework.settings import Settings

from support.approvals import (
    approve,
    assessment_approval,
    case_when,
    closure_approval,
    plan_approval,
    return_,
)
from support.audit import wait_for_records
from support.directory import assign_case, register_staff
from support.polling import eventually
from support.privacy_supervision import supervise
from support.stack import Stack

TEAM = "t-privacy"
IMMINENT = {
    "wish_to_be_dead": True,
    "suicidal_thoughts": True,
    "thoughts_with_method": True,
    "suicidal_intent": True,
    "intent_with_plan": True,
}
BORN = "1933-07-19"
"""No other test refers anyone born on this day."""


class Person:
    """A client whose every personal value carries one marker no id can contain (`Zq` is not
    hexadecimal), so that one search finds any of them."""

    def __init__(self) -> None:
        self.marker = f"Zq{uuid.uuid4().hex[:10]}"
        self.phone_digits = f"7700{uuid.uuid4().int % 10**6:06d}"

    def text(self, what: str) -> str:
        return f"{what} {self.marker}"

    def referral(self, site: str) -> dict[str, Any]:
        return {
            "site": site,
            "client": {
                "given_name": f"Ines{self.marker}",
                "family_name": f"Quill{self.marker}",
                "date_of_birth": BORN,
                "phone": f"+44 {self.phone_digits}",
                "email": f"{self.marker.lower()}@example.org",
                "address": self.text("12 Lantern Row"),
            },
            "source": "family",
            "referrer_name": self.text("Her brother"),
            "presenting_concerns": self.text("Hears the radiators talking"),
            "urgency": "urgent",
            "consent_to_share": True,
        }


def register_site(stack: Stack) -> str:
    code = f"priv-{uuid.uuid4().hex[:6]}"
    with stack.client("supervision", stack.token("root", "regional_admin")) as supervision:
        created = supervision.post("/sites", json={"site": code, "name": "Privacy"})
        assert created.status_code == 201, created.text
    return code


def ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def drive(stack: Stack, site: str, who: Person, *, whole: bool = True) -> dict[str, str]:
    """Every contract with personal fields, once, over HTTP (`whole`: else only as far as
    the case opened in crisis); the ids it made."""
    ivy = stack.token("ivy", "intake_worker", sites=(site,))
    with stack.client("intake", ivy) as intake:
        taken = eventually(
            lambda: intake.post("/referrals", json=who.referral(site)),
            lambda r: r.status_code != 422,  # intake learns of the new site within moments
        )
        rid = ok(taken)["referral_id"]
        ok(intake.post(f"/referrals/{rid}/screening", json=IMMINENT))
        accepted = ok(intake.post(f"/referrals/{rid}/accept"))
        ids = {"referral_id": rid, "case_id": accepted["case_id"]}
        ids["client_id"] = accepted["client_id"]
        if not whole:
            # referred again: matched to the client, overridden as someone else after all,
            # and declined, each saying why (a person of their own: never erased with her)
            again = eventually(
                lambda: intake.post("/referrals", json=who.referral(site)),
                lambda r: bool(r.json().get("duplicate_candidates")),
            )
            ids["second_referral_id"] = again_id = ok(again)["referral_id"]
            overriding = {"new_client": True, "reason": who.text("Her twin, not her")}
            ok(intake.post(f"/referrals/{again_id}/client-match", json=overriding))
            declining = {"reason": who.text("Already seen by the GP")}
            ok(intake.post(f"/referrals/{again_id}/decline", json=declining))
            return ids
    path = f"/cases/{ids['case_id']}"
    manager = stack.client("cases", stack.token("sam", "site_manager", sites=(site,)))
    carl = stack.client("cases", stack.token("carl", "caseworker", sites=(site,), team=TEAM))
    sue = stack.client("cases", stack.token("sue", "supervisor", sites=(site,), team=TEAM))
    cleo = stack.client("cases", stack.token("cleo", "crisis_worker", sites=(site,)))
    sue_s = stack.client("supervision", stack.token("sue", "supervisor", sites=(site,), team=TEAM))
    with manager, carl, sue, cleo, sue_s:
        eventually(lambda: manager.get(path), lambda r: r.status_code == 200)
        with stack.client("supervision", stack.token("root", "regional_admin")) as directory:
            register_staff(directory, "carl", "caseworker", sites=[site], team=TEAM)
        why = who.text("Knows her sister")
        ok(assign_case(manager, ids["case_id"], "carl", TEAM, reason=why))
        ok(cleo.post(f"{path}/crisis/resolve", json={"resolution": who.text("Sister stays")}))
        # a transfer asked for and declined by the other site, each saying why
        elsewhere = register_site(stack)
        moving = {"to_site": elsewhere, "reason": who.text("Moving to her sister's")}
        ok(eventually(lambda: manager.post(f"{path}/transfer", json=moving), _not_unknown_site))
        sid = stack.token("sid", "site_manager", sites=(elsewhere,))
        with stack.client("cases", sid) as other_site:
            declined = {"reason": who.text("Not moving after all")}
            ok(other_site.post(f"{path}/transfer/reject", json=declined))
        case_when(manager, ids["case_id"], lambda c: c.get("transfer_requested_to") is None)
        assessment = {
            "needs": {"housing": who.text("Arrears")},
            "risk_factors": [who.text("Lives alone")],
            "protective_factors": [who.text("Her cat")],
            "narrative": who.text("Feels watched"),
        }
        assessed = ok(carl.post(f"{path}/assessment", json=assessment))
        # the supervisor's words on a decision are the client's: a return's reason, a comment
        ids["assessment_approval"] = assessment_approval(ids["case_id"], assessed["assessment_id"])
        return_(sue_s, ids["assessment_approval"], who.text("Ask about the neighbours"))
        plan = {
            "goals": [
                {"goal_id": "g1", "description": who.text("Sleep"), "target_date": "2030-01-01"}
            ],
            "interventions": [
                {"description": who.text("Visits"), "responsible": "carl", "goal_ids": ["g1"]}
            ],
        }
        ok(carl.post(f"{path}/plan", json=plan))
        return_(sue_s, plan_approval(ids["case_id"], 1), who.text("Name the sister"))
        case_when(manager, ids["case_id"], lambda c: c["plan_status"] == "returned")
        ok(carl.post(f"{path}/plan", json=plan))
        ids["plan_approval"] = plan_approval(ids["case_id"], 2)
        approve(sue_s, ids["plan_approval"], who.text("Good plan"))  # decided in supervision
        case_when(manager, ids["case_id"], lambda c: c["phase"] == "active")
        progress = {"progress": "in_progress", "note": who.text("Slept better")}
        ok(carl.post(f"{path}/goals/g1/progress", json=progress))
        ok(carl.post(f"{path}/risk", json={"risk_level": "high", "reason": who.text("Worse")}))
        ok(cleo.post(f"{path}/crisis", json={"summary": who.text("On the roof")}))
        ok(cleo.post(f"{path}/crisis/resolve", json={"resolution": who.text("Came down")}))
        ok(carl.post(f"{path}/notes", json={"text": who.text("Talked about her cat")}))
        ids["contact_id"] = visit(stack, site, ids["case_id"], who)
        supervised = supervise(stack, site, ids["case_id"], "carl", TEAM, who.text)
        ids.update({f"supervision_{k}": v for k, v in supervised.items()})
        # a crisis worker of another site breaks the glass, saying why
        with stack.client(
            "cases", stack.token("cris", "crisis_worker", sites=("elsewhere",))
        ) as cris:
            glass = {"X-Break-Glass": who.text("Crisis line call")}
            ok(cris.get(path, headers=glass))
        closure = {"outcome": "goals_met", "evaluation": who.text("Much calmer")}
        # a closure returned, then signed off with a comment; the case reopened, assessed
        # again and signed off with a comment, planned, and its closure requested once more
        requested = ok(carl.post(f"{path}/closure", json=closure))
        not_yet = who.text("Not while the rent is owed")
        return_(sue_s, closure_approval(ids["case_id"], requested["version"]), not_yet)
        case_when(manager, ids["case_id"], lambda c: c["phase"] == "active")
        requested = ok(carl.post(f"{path}/closure", json=closure))
        approve(sue_s, closure_approval(ids["case_id"], requested["version"]), who.text("Well"))
        case_when(manager, ids["case_id"], lambda c: c["phase"] == "closed")
        ok(manager.post(f"{path}/reopen", json={"reason": who.text("Sister moved out")}))
        again = ok(carl.post(f"{path}/assessment", json=assessment))
        thorough = who.text("Thorough")
        approve(sue_s, assessment_approval(ids["case_id"], again["assessment_id"]), thorough)
        ok(carl.post(f"{path}/plan", json=plan))
        approve(sue_s, plan_approval(ids["case_id"], 3))
        case_when(manager, ids["case_id"], lambda c: c["phase"] == "active")
        requested = ok(carl.post(f"{path}/closure", json=closure))
        ids["closure_approval"] = closure_approval(ids["case_id"], requested["version"])
    return ids


def _not_unknown_site(answer: httpx.Response) -> bool:
    """The cases service hears of a new site through Kafka: until then it refuses it."""
    return "UnknownSite" not in answer.text


def visit(stack: Stack, site: str, case_id: str, who: Person) -> str:
    """A home visit to the client: scheduled with its purpose, logged with notes and the
    client's wellbeing, then given an addendum; its contact id."""
    carl = stack.client("contacts", stack.token("carl", "caseworker", sites=(site,), team=TEAM))
    client = [{"kind": "client"}]
    with carl:
        # the contacts service hears of the case and its assignment through Kafka
        eventually(lambda: carl.get(f"/cases/{case_id}/contacts"), lambda r: r.status_code == 200)
        soon = datetime.now(UTC) + timedelta(minutes=10)
        planned = {"medium": "home_visit", "planned_for": soon.isoformat(), "participants": client}
        planned["purpose"] = who.text("Bring the forms")
        contact_id = ok(carl.post(f"/cases/{case_id}/contacts", json=planned))["contact_id"]
        logged = {
            "medium": "home_visit",
            "occurred_at": datetime.now(UTC).isoformat(),
            "duration_minutes": 40,
            "participants": client,
            "outcome": "made",
            "notes": who.text("Read the landlord's letter"),
            "wellbeing": who.text("Tearful but engaged"),
        }
        ok(carl.post(f"/contacts/{contact_id}/log", json=logged))
        addendum = {"kind": "addendum", "text": who.text("She asked about the cat")}
        ok(carl.post(f"/contacts/{contact_id}/corrections", json=addendum))
    return contact_id


def answers(stack: Stack, site: str, ids: dict[str, str]) -> str:
    """The authorised answers about one client, as the readers get them (one text)."""
    manager = stack.client("cases", stack.token("sam", "site_manager", sites=(site,)))
    ivy = stack.client("intake", stack.token("ivy", "intake_worker", sites=(site,)))
    contacts = stack.client("contacts", stack.token("sam", "site_manager", sites=(site,)))
    with manager, ivy, contacts:
        texts = [
            ivy.get(f"/referrals/{ids['referral_id']}").text,
            manager.get(f"/cases/{ids['case_id']}").text,
            manager.get(f"/cases/{ids['case_id']}/timeline").text,
        ]
        if "contact_id" in ids:
            texts.append(contacts.get(f"/contacts/{ids['contact_id']}").text)
            texts.append(contacts.get(f"/cases/{ids['case_id']}/contacts").text)
    return "\n".join(texts)


def stored_documents(stack: Stack) -> Iterator[tuple[str, str]]:
    """(where, JSON) of every document in every database of the stack."""
    with MongoClient(stack.env["CASEWORK_MONGO_URL"]) as client:
        for name in client.list_database_names():
            if not name.startswith(stack.namespace):
                continue
            for collection in client[name].list_collection_names():
                for doc in client[name][collection].find({}):
                    yield f"{name}.{collection}", json.dumps(doc, default=str, ensure_ascii=False)


async def topic_records(stack: Stack) -> dict[str, list[bytes]]:
    """Every record (key, value and headers, as bytes) of every topic of the stack."""
    bootstrap = stack.env["CASEWORK_KAFKA_BOOTSTRAP_SERVERS"]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(stack.namespace + ".")]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found: dict[str, list[bytes]] = {t: [] for t in topics}
    try:
        partitions = []
        while not partitions:  # assigned once the metadata of every topic is in
            partitions = list(consumer.assignment())
            await asyncio.sleep(0.1)
        end = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    parts = [record.key or b"", record.value or b""]
                    parts += [value for _, value in record.headers]
                    found[tp.topic].append(b"\x00".join(parts))
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return found


def logs(stack: Stack) -> str:
    return "\n".join(p.read_text(errors="replace") for p in stack.logs.glob("*.log"))


def assert_nowhere(stack: Stack, needles: list[str]) -> dict[str, list[bytes]]:
    """No stored document, topic record or log line holds any needle; returns the topics."""
    for where, doc in stored_documents(stack):
        for needle in needles:
            assert needle not in doc, f"{needle!r} stored in plaintext in {where}"
    records = asyncio.run(topic_records(stack))
    assert any(r for t, r in records.items() if t.endswith(".events")), "no topic was read"
    for topic, values in records.items():
        for value in values:
            for needle in needles:
                assert needle.encode() not in value, f"{needle!r} in plaintext on {topic}"
    text = logs(stack)
    for needle in needles:
        assert needle not in text, f"{needle!r} in a service log"
    return records


def key_service(stack: Stack, client: Any) -> KeyService:
    return KeyService(
        client[stack.env["CASEWORK_KEYS_MONGO_DB"]],
        LocalKeyFileProvider(Path(stack.env["CASEWORK_KEK_FILE"])),
    )


async def destroy(stack: Stack, client_id: str) -> list[str]:
    from pymongo import AsyncMongoClient

    mongo: AsyncMongoClient[Document] = AsyncMongoClient(stack.env["CASEWORK_MONGO_URL"])
    try:
        keys = key_service(stack, mongo)
        return await keys.destroy(
            f"client:{client_id}", reason="test erasure", erasure_id=str(uuid.uuid4())
        )
    finally:
        await mongo.close()


async def rebuild_everything(stack: Stack, work: str) -> dict[str, list[Document]]:
    """Every read model of intake, cases and contacts rebuilt from the stack's topics into scratch
    databases (the live services keep running: a group of its own), each document opened
    as the HTTP edge opens answers; refuses if anything dead-lettered."""
    from casework_cases.bootstrap import build as build_cases
    from casework_contacts.bootstrap import build as build_contacts
    from casework_intake.bootstrap import build as build_intake

    builders = {"intake": build_intake, "cases": build_cases, "contacts": build_contacts}
    rebuilt: dict[str, list[Document]] = {}
    for service, build in builders.items():
        settings = Settings.for_service(
            service,
            0,
            namespace=stack.namespace,
            mongo_database=f"{stack.namespace}_{work}_{service}",
            kafka_bootstrap_servers=stack.env["CASEWORK_KAFKA_BOOTSTRAP_SERVERS"],
            mongo_url=stack.env["CASEWORK_MONGO_URL"],
            keys_mongo_db=stack.env["CASEWORK_KEYS_MONGO_DB"],
            kek_file=Path(stack.env["CASEWORK_KEK_FILE"]),
        )
        runtime: ServiceRuntime = build(settings)[0]
        try:
            opener = Opener(runtime.keys)
            for handler in runtime.handlers:
                if not isinstance(handler, Projection):
                    continue
                report = await rebuild_projection(
                    handler,
                    runtime.registry,
                    settings.model_copy(update={"service": f"{service}-{work}"}),
                    progress=lambda line: None,
                )
                assert set(report.outcomes) <= {"applied", "unchanged", "skipped"}, report
                docs = await handler.read_model.collection.find({}).to_list(None)
                rebuilt[f"{service}.{handler.name}"] = (await opener.open(docs))[0]
        finally:
            await runtime.client.drop_database(settings.database_name)
            await runtime.stop()
    return rebuilt


@pytest.fixture(scope="module")
def site(stack: Stack) -> str:
    return register_site(stack)


@pytest.mark.timeout(300)  # about 40 s on a loaded 2-core machine; the default is 120 s
def test_no_personal_value_is_stored_or_published_in_plaintext_and_erasure_reaches_everything(
    stack: Stack, site: str
) -> None:
    erased, kept = Person(), Person()
    erased_ids, kept_ids = drive(stack, site, erased), drive(stack, site, kept, whole=False)

    # the authorised answers show every value ...
    def shows_all(text: str) -> bool:
        return all(w in text for w in ("Much calmer", "Came down", "asked about the cat"))

    shown = eventually(lambda: answers(stack, site, erased_ids), shows_all)
    # (the address shows on the referral and on the home visit)
    for value in ("Ines", "Quill", BORN, "Hears the radiators", "Feels watched", "Slept better",
                  "Worse", "On the roof", "Talked about her cat", "Much calmer", "Bring the forms",
                  "Read the landlord's letter", "Tearful but engaged",
                  "12 Lantern Row"):  # fmt: skip
        assert value in shown, value
    assert '"intent_with_plan":true' in shown.replace(" ", "")
    eventually(lambda: answers(stack, site, kept_ids), lambda text: kept.marker in text)
    # each answer's audit record names the data subjects it showed (in the audit store)
    subject = f"client:{erased_ids['client_id']}"
    case = f"/cases/{erased_ids['case_id']}"
    for resource in (case, f"{case}/timeline", f"{case}/contacts"):
        assert wait_for_records(stack, {"resource": resource, "subjects": subject}), resource

    # every contract with personal fields was stored for this client (none escapes the scan)
    streams = [f"referral-{erased_ids['referral_id']}", f"client-{erased_ids['client_id']}"]
    streams += [f"case-{erased_ids['case_id']}", f"contact-{erased_ids['contact_id']}"]
    streams += [
        f"{'session' if k in ('session', 'cancelled') else k}-{erased_ids[f'supervision_{k}']}"
        for k in ("session", "cancelled", "action", "concern")
    ]
    streams += [f"approval-{erased_ids[k]}" for k in ("assessment_approval", "plan_approval")]
    streams += [f"referral-{kept_ids['second_referral_id']}"]  # declined, match overridden
    with MongoClient(stack.env["CASEWORK_MONGO_URL"]) as mongo:
        stored_types = {
            event["type"]
            for service in ("intake", "cases", "contacts", "supervision")
            for commit in mongo[stack.databases[service]]["events"].find(
                {"stream_id": {"$in": streams}}
            )
            for event in commit.get("events", ())
        }
    assert {e.type_name() for e in all_events() if e.personal_fields()} <= stored_types

    # ... and nothing else holds them: event stores, read models, topics, dead letters, logs
    needles = [erased.marker, kept.marker, erased.marker.lower(), erased.phone_digits, BORN]
    needles.append("intent_with_plan")  # a screening item's name: answers are sealed whole
    records = assert_nowhere(stack, needles)
    letters = [v for t, vs in records.items() if t.endswith(".dlq") for v in vs]
    assert not [v for v in letters if erased_ids["case_id"].encode() in v]

    # the erasure's core: the client's keys destroyed, the referral's person's with them
    destroyed = asyncio.run(destroy(stack, erased_ids["client_id"]))
    assert f"client:{erased_ids['client_id']}/identity/v1" in destroyed
    assert f"client:{erased_ids['client_id']}/clinical/v1" in destroyed
    assert f"client:{erased_ids['client_id']}/notes/v1" in destroyed
    assert any(k.startswith("person:") and k.endswith("/identity/v1") for k in destroyed)
    started = time.monotonic()
    after = eventually(lambda: answers(stack, site, erased_ids), lambda t: erased.marker not in t)
    assert time.monotonic() - started < 5.0 + 3.0  # the key cache TTL, and a poll's slack
    assert REPLACEMENT in after
    assert BORN not in after
    assert '"client_name":"[erased][erased]"' in after.replace(" ", "")  # given and family
    assert '"phase":"review"' in after.replace(" ", "")  # facts without personal data stay
    untouched = answers(stack, site, kept_ids)
    assert kept.marker in untouched
    assert REPLACEMENT not in untouched

    # nothing new is kept about an erased person (410, nothing stored); facts still are, and
    # the projections apply them without a key, nothing dead-lettered
    path = f"/cases/{erased_ids['case_id']}"
    carl = stack.client("cases", stack.token("carl", "caseworker", sites=(site,), team=TEAM))
    sue = stack.client("supervision", stack.token("sue", "supervisor", sites=(site,), team=TEAM))
    with carl, sue:
        late = carl.post(f"{path}/notes", json={"text": "after the erasure"})
        assert late.status_code == 410, late.text
        assert late.json()["code"] == "SubjectErased"
        approve(sue, erased_ids["closure_approval"])
    closed = eventually(lambda: answers(stack, site, erased_ids), lambda t: '"phase":"closed"' in t)
    assert "after the erasure" not in closed
    letters = [
        v for t, vs in asyncio.run(topic_records(stack)).items() if t.endswith(".dlq") for v in vs
    ]
    assert not [v for v in letters if erased_ids["case_id"].encode() in v]
    # every read model rebuilt from the beginning still works, and shows [erased]
    rebuilt = asyncio.run(rebuild_everything(stack, f"rb{uuid.uuid4().hex[:4]}"))
    everything = json.dumps(rebuilt, default=str, ensure_ascii=False)
    assert erased.marker not in everything
    assert kept.marker in everything
    timeline = [d for d in rebuilt["cases.timeline"] if erased_ids["case_id"] in str(d)]
    assert timeline
    assert REPLACEMENT in json.dumps(timeline, default=str)


@pytest.mark.parametrize("kek", ["another", "missing"])
def test_a_service_with_a_lost_or_wrong_kek_refuses_to_start(
    stack: Stack, tmp_path: Path, kek: str
) -> None:
    kek_file = tmp_path / "kek"
    if kek == "another":
        create_key_file(kek_file)
    port = int(os.environ.get("CASEWORK_E2E_BASE_PORT", "18001")) + 9
    env = {
        **stack.env,
        "CASEWORK_KEK_FILE": str(kek_file),
        "CASEWORK_HTTP_PORT": str(port),
        "CASEWORK_MONGO_DATABASE": f"{stack.namespace}_kek_{kek}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "casework_intake"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    expected = "wrong key-encryption key" if kek == "another" else "does not exist"
    assert expected in output
    assert "KekError" in output
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
