"""Intake over HTTP on the real stack: screening, duplicate clients, acceptance and decline,
the intake queue, authorisation, If-Match, bad input, and the OpenAPI a person would use."""

from __future__ import annotations

import random
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from casework.privacy import is_sealed

from support.polling import eventually
from support.stack import Stack

IMMINENT = {
    "wish_to_be_dead": True,
    "suicidal_thoughts": True,
    "thoughts_with_method": True,
    "suicidal_intent": True,
    "intent_with_plan": True,
}
NO_RISK = {"wish_to_be_dead": False, "suicidal_thoughts": False}
MEDIUM = {"wish_to_be_dead": True, "suicidal_thoughts": True}


def person(**changes: Any) -> dict[str, Any]:
    """Someone no other test refers: a unique family name and phone number."""
    return {
        "given_name": "Robin",
        "family_name": f"Hale{uuid.uuid4().hex[:8]}",
        "date_of_birth": "1985-06-01",
        "phone": f"07{random.randrange(10**9):09d}",
        **changes,
    }


def referral(site: str, client: dict[str, Any], urgency: str = "soon") -> dict[str, Any]:
    return {
        "site": site,
        "client": client,
        "source": "self",
        "presenting_concerns": "Not sleeping, hopeless.",
        "urgency": urgency,
        "consent_to_share": True,
    }


def register_site(stack: Stack, name: str) -> str:
    """A new site in the directory, once intake has heard of it."""
    code = f"{name}-{uuid.uuid4().hex[:6]}"
    admin = stack.token("root", "regional_admin")
    with stack.client("supervision", admin) as supervision:
        created = supervision.post("/sites", json={"site": code, "name": name.title()})
        assert created.status_code == 201, created.text
    with stack.client("intake", admin) as intake:
        known = eventually(
            lambda: intake.get("/intake-queue", params={"site": code}),
            lambda r: r.status_code == 200,
        )
        assert known.status_code == 200, known.text
    return code


@pytest.fixture(scope="module")
def site(stack: Stack) -> str:
    return register_site(stack, "east")


@pytest.fixture(scope="module")
def worker(stack: Stack, site: str) -> str:
    return stack.token("iris", "intake_worker", sites=(site,))


def stored_events(stack: Stack, stream_id: str | None = None) -> list[dict[str, Any]]:
    """The intake service's stored events (of one stream), oldest first."""
    query = {"stream_id": stream_id} if stream_id else {}
    with MongoClient[dict[str, Any]](stack.env["CASEWORK_MONGO_URL"]) as client:
        commits = client[stack.databases["intake"]]["events"].find(query).sort("recorded_at", 1)
        return [event for commit in commits for event in commit["events"]]


def event_count(stack: Stack) -> int:
    with MongoClient[dict[str, Any]](stack.env["CASEWORK_MONGO_URL"]) as client:
        events = client[stack.databases["intake"]]["events"]
        return sum(len(c["events"]) for c in events.find({}))


def take(intake: httpx.Client, site: str, client: dict[str, Any], urgency: str = "soon") -> Any:
    response = intake.post("/referrals", json=referral(site, client, urgency))
    assert response.status_code == 201, response.text
    return response.json()


def screen_and_accept(intake: httpx.Client, referral_id: str) -> Any:
    assert intake.post(f"/referrals/{referral_id}/screening", json=NO_RISK).status_code == 200
    accepted = intake.post(f"/referrals/{referral_id}/accept")
    assert accepted.status_code == 200, accepted.text
    return accepted.json()


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    if code is not None:
        assert body["code"] == code
    return body


# --- screening and acceptance ------------------------------------------------------------


def test_a_referral_is_screened_then_accepted_with_its_risk(
    stack: Stack, site: str, worker: str
) -> None:
    with stack.client("intake", worker) as intake:
        taken = take(intake, site, person(given_name="Zoë"), urgency="urgent")
        rid = taken["referral_id"]
        assert (taken["status"], taken["risk_level"], taken["duplicate_candidates"]) == (
            "waiting",
            None,
            [],
        )
        assert taken["client_match"]["state"] == "no_candidates"

        read = intake.get(f"/referrals/{rid}")
        assert read.status_code == 200
        assert read.headers["etag"] == '"1"'
        assert read.json()["version"] == 1

        before = event_count(stack)
        refused = assert_problem(
            intake.post(f"/referrals/{rid}/accept"), 409, "ReferralNotScreened"
        )
        assert "screen" in refused["detail"]
        assert event_count(stack) == before

        first = intake.post(f"/referrals/{rid}/screening", json=MEDIUM)
        assert first.status_code == 200, first.text
        assert first.json()["risk_level"] == "medium"
        assert first.json()["rule"] == "suicidal_thoughts"
        assert first.json()["version"] == 2
        assert first.headers["etag"] == '"2"'

        # the latest screen counts
        second = intake.post(
            f"/referrals/{rid}/screening", json=IMMINENT, headers={"If-Match": '"2"'}
        )
        assert second.status_code == 200, second.text
        assert (second.json()["risk_level"], second.json()["rule"], second.json()["version"]) == (
            "imminent",
            "suicidal_intent_with_plan",
            3,
        )

        accepted = intake.post(f"/referrals/{rid}/accept", headers={"If-Match": '"3"'})
        assert accepted.status_code == 200, accepted.text
        ids = accepted.json()
        assert ids["referral_id"] == rid
        assert (ids["risk_level"], ids["new_client"], ids["version"]) == ("imminent", True, 4)

        decided = intake.get(f"/referrals/{rid}").json()
        assert decided["status"] == "accepted"
        assert (decided["case_id"], decided["client_id"]) == (ids["case_id"], ids["client_id"])
        assert decided["screening"]["answers"]["intent_with_plan"] is True
        assert decided["decision"]["outcome"] == "accepted"

        before = event_count(stack)
        again = intake.post(f"/referrals/{rid}/screening", json=NO_RISK)
        assert_problem(again, 409, "ReferralAlreadyDecided")
        assert_problem(intake.post(f"/referrals/{rid}/accept"), 409, "ReferralAlreadyDecided")
        late = intake.post(f"/referrals/{rid}/decline", json={"reason": "changed my mind"})
        assert_problem(late, 409, "ReferralAlreadyDecided")
        assert event_count(stack) == before

    (event,) = [e for e in stored_events(stack, f"referral-{rid}") if "Accepted" in e["type"]]
    assert event["type"] == "casework.intake.ReferralAccepted.v1"
    assert event["data"]["risk_level"] == "imminent"
    assert event["data"]["urgency"] == "urgent"
    # stored sealed (casework.privacy): the name is in no stored byte, the answer opened it
    assert is_sealed(event["data"]["client_name"])
    assert "Zoë" not in str(event["data"])
    assert event["data"]["received_at"]
    assert event["data"]["new_client"] is True
    (registered,) = stored_events(stack, f"client-{ids['client_id']}")
    assert registered["type"] == "casework.intake.ClientRegistered.v1"
    assert registered["data"]["site"] == site


def test_a_stale_if_match_is_refused_with_412_and_nothing_is_stored(
    stack: Stack, site: str, worker: str
) -> None:
    with stack.client("intake", worker) as intake:
        rid = take(intake, site, person())["referral_id"]
        before = event_count(stack)
        stale = intake.post(
            f"/referrals/{rid}/screening", json=NO_RISK, headers={"If-Match": '"7"'}
        )
        body = assert_problem(stale, 412, "VersionMismatch")
        assert "version 1" in body["detail"]
        stale = intake.post(
            f"/referrals/{rid}/decline", json={"reason": "x"}, headers={"If-Match": '"0"'}
        )
        assert_problem(stale, 412)
        # not a version ETag: refused by the documented pattern, naming the header
        bad_etag = assert_problem(
            intake.post(f"/referrals/{rid}/accept", headers={"If-Match": "yesterday"}), 422
        )
        assert [e["field"] for e in bad_etag["errors"]] == ["header.if-match"]
        assert event_count(stack) == before
        current = intake.post(
            f"/referrals/{rid}/screening", json=NO_RISK, headers={"If-Match": '"1"'}
        )
        assert current.status_code == 200, current.text


# --- duplicate clients -------------------------------------------------------------------


def test_a_returning_client_is_found_and_must_be_confirmed_or_overridden(
    stack: Stack, site: str, worker: str
) -> None:
    known = person(given_name="Anne-Marie", family_name=f"O'Neill{uuid.uuid4().hex[:6]}")
    with stack.client("intake", worker) as intake:
        first = take(intake, site, known)
        client_id = screen_and_accept(intake, first["referral_id"])["client_id"]

        # the same person, written differently; the registry learns of her within moments
        same = {
            **known,
            "given_name": "ANNE MARIE",
            "family_name": known["family_name"].replace("'", "").upper(),
            "phone": None,
        }
        taken = eventually(
            lambda: intake.post("/referrals", json=referral(site, same)),
            lambda r: bool(r.json().get("duplicate_candidates")),
        )
        assert taken.status_code == 201, taken.text
        second = taken.json()
        rid = second["referral_id"]
        assert second["duplicate_candidates"] == [
            {
                "client_id": client_id,
                "given_name": "Anne-Marie",
                "family_name": known["family_name"],
                "date_of_birth": known["date_of_birth"],
                "matched_on": ["name_and_birth_date"],
                "site": site,
                "masked": False,
                "initials": None,
                "birth_year": None,
                "access": None,
            }
        ]
        assert second["client_match"]["state"] == "undecided"
        assert intake.post(f"/referrals/{rid}/screening", json=NO_RISK).status_code == 200

        before = event_count(stack)
        undecided = assert_problem(
            intake.post(f"/referrals/{rid}/accept"), 409, "ClientMatchUndecided"
        )
        assert "confirm" in undecided["detail"]
        assert "override" in undecided["detail"]

        stranger = intake.post(f"/referrals/{rid}/client-match", json={"client_id": "not-her"})
        body = assert_problem(stranger, 422, "UnknownCandidate")
        assert [e["field"] for e in body["errors"]] == ["body.client_id"]
        both = intake.post(
            f"/referrals/{rid}/client-match",
            json={"client_id": client_id, "new_client": True, "reason": "?"},
        )
        assert "body.new_client" in [e["field"] for e in assert_problem(both, 422)["errors"]]
        neither = intake.post(f"/referrals/{rid}/client-match", json={})
        assert "body.new_client" in [e["field"] for e in assert_problem(neither, 422)["errors"]]
        no_reason = intake.post(f"/referrals/{rid}/client-match", json={"new_client": True})
        assert "body.reason" in [e["field"] for e in assert_problem(no_reason, 422)["errors"]]
        assert event_count(stack) == before

        confirmed = intake.post(f"/referrals/{rid}/client-match", json={"client_id": client_id})
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["client_match"] == {
            "state": "confirmed",
            "client_id": client_id,
            "reason": None,
            "decided_by": "iris",
            "decided_at": confirmed.json()["client_match"]["decided_at"],
        }
        accepted = intake.post(f"/referrals/{rid}/accept")
        assert accepted.status_code == 200, accepted.text
        assert (accepted.json()["client_id"], accepted.json()["new_client"]) == (client_id, False)

        # someone else at the same phone number: a candidate, overridden as a new person
        flatmate = person(given_name="Kit", phone="+44 " + known["phone"][1:])
        third = eventually(
            lambda: intake.post("/referrals", json=referral(site, flatmate)),
            lambda r: bool(r.json().get("duplicate_candidates")),
        ).json()
        assert [(c["client_id"], c["matched_on"]) for c in third["duplicate_candidates"]] == [
            (client_id, ["phone"])
        ]
        overridden = intake.post(
            f"/referrals/{third['referral_id']}/client-match",
            json={"new_client": True, "reason": "Her flatmate, not her."},
        )
        assert overridden.status_code == 200, overridden.text
        assert overridden.json()["client_match"]["state"] == "overridden"
        assert overridden.json()["client_match"]["reason"] == "Her flatmate, not her."
        new = screen_and_accept(intake, third["referral_id"])
        assert new["new_client"] is True
        assert new["client_id"] != client_id

    # the returning client was registered once, by the first acceptance only
    assert len(stored_events(stack, f"client-{client_id}")) == 1


def test_confirming_without_candidates_is_refused(stack: Stack, site: str, worker: str) -> None:
    with stack.client("intake", worker) as intake:
        rid = take(intake, site, person())["referral_id"]
        response = intake.post(f"/referrals/{rid}/client-match", json={"client_id": "anyone"})
        assert_problem(response, 409, "NoClientMatchToDecide")


# --- declining ---------------------------------------------------------------------------


def test_a_declined_referral_records_reason_and_signposting(
    stack: Stack, site: str, worker: str
) -> None:
    with stack.client("intake", worker) as intake:
        rid = take(intake, site, person())["referral_id"]
        before = event_count(stack)
        for body, field in [
            ({}, "body.reason"),
            ({"reason": ""}, "body.reason"),
            ({"reason": "x", "signposted": "GP"}, "body.signposted"),
        ]:
            bad = intake.post(f"/referrals/{rid}/decline", json=body)
            assert field in [e["field"] for e in assert_problem(bad, 422)["errors"]]
        assert event_count(stack) == before

        declined = intake.post(
            f"/referrals/{rid}/decline",
            json={"reason": "Housing need only.", "signposted_to": "Housing Advice"},
        )
        assert declined.status_code == 200, declined.text
        body = declined.json()
        assert body["status"] == "declined"
        assert body["decision"]["reason"] == "Housing need only."
        assert body["decision"]["signposted_to"] == "Housing Advice"
        assert declined.headers["etag"] == f'"{body["version"]}"'


# --- the intake queue --------------------------------------------------------------------


def test_the_intake_queue_is_most_urgent_first_then_oldest(stack: Stack) -> None:
    queue_site = register_site(stack, "west")
    worker = stack.token("wes", "intake_worker", sites=(queue_site,))
    with stack.client("intake", worker) as intake:
        order = ["routine", "emergency", "urgent", "soon", "urgent"]
        taken = [take(intake, queue_site, person(given_name=u.title()), urgency=u) for u in order]
        routine, emergency, older_urgent, soon, newer_urgent = (t["referral_id"] for t in taken)
        expected = [emergency, older_urgent, newer_urgent, soon, routine]

        def queue() -> httpx.Response:
            return intake.get("/intake-queue", params={"site": queue_site})

        listed = eventually(queue, lambda r: [e["referral_id"] for e in r.json()] == expected)
        assert [e["referral_id"] for e in listed.json()] == expected
        front = listed.json()[0]
        assert front["urgency"] == "emergency"
        assert front["client_name"].startswith("Emergency Hale")
        assert front["source"] == "self"
        assert front["risk_level"] is None
        received = datetime.fromisoformat(taken[1]["received_at"])
        assert abs(datetime.fromisoformat(front["received_at"]) - received) < timedelta(seconds=1)
        assert 0 <= front["waiting_seconds"] < 300

        assert intake.post(f"/referrals/{soon}/screening", json=IMMINENT).status_code == 200
        screened = eventually(queue, lambda r: any(e["risk_level"] == "imminent" for e in r.json()))
        assert {e["referral_id"]: e["risk_level"] for e in screened.json()}[soon] == "imminent"

        screen_and_accept(intake, emergency)
        declined = intake.post(f"/referrals/{routine}/decline", json={"reason": "Duplicate."})
        assert declined.status_code == 200
        left = eventually(queue, lambda r: len(r.json()) == 3)
        assert [e["referral_id"] for e in left.json()] == [older_urgent, newer_urgent, soon]

        # computed when asked, not when projected
        waited = queue().json()[0]["waiting_seconds"]
        time.sleep(2.1)
        assert queue().json()[0]["waiting_seconds"] >= waited + 2

    manager = stack.token("mo", "site_manager", sites=(queue_site,))
    with stack.client("intake", manager) as intake:
        assert len(queue_of(intake, queue_site)) == 3
    with stack.client("intake", stack.token("root", "regional_admin")) as intake:
        assert len(queue_of(intake, queue_site)) == 3
        unknown = intake.get("/intake-queue", params={"site": "atlantis"})
        assert [e["field"] for e in assert_problem(unknown, 422, "UnknownSite")["errors"]] == [
            "query.site"
        ]
    elsewhere = stack.token("ed", "intake_worker", sites=("elsewhere",))
    with stack.client("intake", elsewhere) as intake:
        assert_problem(intake.get("/intake-queue", params={"site": queue_site}), 403)
    with stack.client("intake", stack.token("carl", "caseworker", sites=(queue_site,))) as cw:
        assert_problem(cw.get("/intake-queue", params={"site": queue_site}), 403)


def queue_of(intake: httpx.Client, site: str) -> list[Any]:
    response = intake.get("/intake-queue", params={"site": site})
    assert response.status_code == 200, response.text
    body: list[Any] = response.json()
    return body


# --- authorisation -----------------------------------------------------------------------


def test_only_intake_roles_at_the_referrals_site_reach_it(
    stack: Stack, site: str, worker: str
) -> None:
    with stack.client("intake", worker) as intake:
        rid = take(intake, site, person())["referral_id"]
    writes: list[tuple[str, dict[str, Any] | None]] = [
        (f"/referrals/{rid}/screening", NO_RISK),
        (f"/referrals/{rid}/client-match", {"new_client": True, "reason": "new"}),
        (f"/referrals/{rid}/accept", None),
        (f"/referrals/{rid}/decline", {"reason": "no"}),
    ]
    before = event_count(stack)
    for role in ("caseworker", "supervisor", "crisis_worker", "integration", "ops"):
        with stack.client("intake", stack.token(f"{role}-1", role, sites=(site,))) as other:
            assert_problem(other.get(f"/referrals/{rid}"), 403)
            for path, body in writes:
                assert_problem(other.post(path, json=body), 403)
            assert_problem(other.post("/referrals", json=referral(site, person())), 403)
    for role in ("intake_worker", "site_manager"):
        with stack.client("intake", stack.token(f"{role}-2", role, sites=("elsewhere",))) as far:
            # another site's referral does not exist, as far as they can tell
            assert_problem(far.get(f"/referrals/{rid}"), 404)
            for path, body in writes:
                assert_problem(far.post(path, json=body), 404)
    with stack.client("intake", worker) as intake:
        assert_problem(intake.get(f"/referrals/{uuid.uuid4()}"), 404)
    assert event_count(stack) == before

    with stack.client("intake", stack.token("sm", "site_manager", sites=(site,))) as manager:
        assert manager.get(f"/referrals/{rid}").status_code == 200
        assert manager.post(f"/referrals/{rid}/screening", json=NO_RISK).status_code == 200
    with stack.client("intake", stack.token("root", "regional_admin")) as admin:
        assert admin.get(f"/referrals/{rid}").status_code == 200
        assert admin.post(f"/referrals/{rid}/accept").status_code == 200


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**NO_RISK, "suicidal_intnet": True}, "body.suicidal_intnet"),
        ({**NO_RISK, "suicidal_behaviour": "yesterday"}, "body.suicidal_behaviour"),
        ({"wish_to_be_dead": False}, "body.suicidal_thoughts"),
        ({**NO_RISK, "harm_to_others": "maybe"}, "body.harm_to_others"),
    ],
    ids=["misspelt item", "unknown frequency", "missing item", "not a yes/no"],
)
def test_a_bad_screen_gets_a_field_level_422_and_stores_nothing(
    stack: Stack, site: str, worker: str, body: dict[str, Any], field: str
) -> None:
    with stack.client("intake", worker) as intake:
        rid = take(intake, site, person())["referral_id"]
        before = event_count(stack)
        response = intake.post(f"/referrals/{rid}/screening", json=body)
        problem = assert_problem(response, 422)
        assert field in [e["field"] for e in problem["errors"]]
        assert all(e["message"] for e in problem["errors"])
        assert event_count(stack) == before
        assert intake.get(f"/referrals/{rid}").json()["screening"] is None


# --- the API as documented ---------------------------------------------------------------


def test_every_intake_operation_is_documented_with_examples(stack: Stack) -> None:
    spec = httpx.get(f"{stack.urls['intake']}/openapi.json").json()
    operations = {
        (method.upper(), path): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if "operations" not in op.get("tags", [])
    }
    assert set(operations) >= {
        ("POST", "/referrals"),
        ("GET", "/referrals/{referral_id}"),
        ("POST", "/referrals/{referral_id}/screening"),
        ("POST", "/referrals/{referral_id}/client-match"),
        ("POST", "/referrals/{referral_id}/accept"),
        ("POST", "/referrals/{referral_id}/decline"),
        ("GET", "/intake-queue"),
    }
    for key, op in operations.items():
        assert op.get("summary"), key
        assert len(op.get("description", "")) > 40, key
        if "requestBody" in op:
            examples = op["requestBody"]["content"]["application/json"].get("examples", {})
            assert examples, key
            assert all(e.get("summary") and e.get("value") for e in examples.values()), key
        if key[0] == "POST" and "{referral_id}" in key[1]:
            assert {"404", "409", "412"} <= set(op["responses"]), key
            assert any(p["name"] == "if-match" for p in op["parameters"]), key
    screening_examples = operations[("POST", "/referrals/{referral_id}/screening")]["requestBody"]
    assert "imminent" in screening_examples["content"]["application/json"]["examples"]
    assert httpx.get(f"{stack.urls['intake']}/docs").status_code == 200
