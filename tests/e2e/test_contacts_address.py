"""A home visit shows the client's address over HTTP, and the client's erasure blanks it
(issue 9; `casework_contacts.adapters.client_addresses`).

On the shared stack, a site of its own: a referral gives the client's address; once the
case is open, a home visit scheduled for it shows the address (opened by the HTTP edge) when
read and on the worker's agenda, a phone call does not; the contacts service keeps only the
sealed token (its database holds no readable address) and the read is audited with the
referral's person among the subjects shown. The case is closed and the data protection
officer erases the client over HTTP: the same visit then shows `[erased]` within the key
cache's TTL, and the token still sits in the contacts database, unreadable.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pymongo import MongoClient

from casework.privacy import REPLACEMENT

from support.approvals import approve, case_when, closure_approval, plan_approval
from support.audit import wait_for_records
from support.polling import eventually
from support.stack import Stack

NO_RISK = {"wish_to_be_dead": False, "suicidal_thoughts": False}
CLIENT = [{"kind": "client"}]
KEY_CACHE_TTL_S = 5.0


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def register_site(stack: Stack) -> str:
    code = f"addr-{uuid.uuid4().hex[:6]}"
    with stack.client("supervision", stack.token("root", "regional_admin")) as supervision:
        ok(supervision.post("/sites", json={"site": code, "name": "Addresses"}), 201)
    return code


def open_case(stack: Stack, site: str, address: str) -> tuple[str, str]:
    """Referral with an address → screening → acceptance; (case id, client id) once the
    cases service has the case."""
    referral = {
        "site": site,
        "client": {
            "given_name": "Nell",
            "family_name": f"Hearth{uuid.uuid4().hex[:6]}",
            "date_of_birth": "1979-11-05",
            "address": address,
        },
        "source": "gp",
        "presenting_concerns": "Low mood since the winter.",
        "urgency": "routine",
    }
    ivy = stack.token("ivy-addr", "intake_worker", sites=(site,))
    with stack.client("intake", ivy) as intake:
        taken = eventually(
            lambda: intake.post("/referrals", json=referral),
            lambda r: r.status_code != 422,  # intake learns of the new site within moments
        )
        rid = ok(taken, 201)["referral_id"]
        ok(intake.post(f"/referrals/{rid}/screening", json=NO_RISK))
        accepted = ok(intake.post(f"/referrals/{rid}/accept"))
    manager = stack.token("mia-addr", "site_manager", sites=(site,))
    with stack.client("cases", manager) as cases:
        opened = eventually(
            lambda: cases.get(f"/cases/{accepted['case_id']}"), lambda r: r.status_code == 200
        )
        assert opened.status_code == 200, opened.text
    return accepted["case_id"], accepted["client_id"]


def close_case(stack: Stack, site: str, case_id: str) -> None:
    """Assessed, a plan approved, closure requested and approved in supervision (two
    supervisors of the site: the case has no team, and four eyes need two people)."""
    path = f"/cases/{case_id}"
    sam = stack.client("cases", stack.token("sam-addr", "supervisor", sites=(site,)))
    sue = stack.client("supervision", stack.token("sue-addr", "supervisor", sites=(site,)))
    with sam, sue:
        ok(sam.post(f"{path}/assessment", json={"needs": {"mood": "Low"}, "narrative": "Low"}))
        plan = {"goals": [{"goal_id": "g1", "description": "Walk", "target_date": "2030-01-01"}]}
        ok(sam.post(f"{path}/plan", json=plan))
        approve(sue, plan_approval(case_id, 1), "Fine")
        case_when(sam, case_id, lambda c: c["phase"] == "active")
        closure = {"outcome": "goals_met", "evaluation": "Walking"}
        requested = ok(sam.post(f"{path}/closure", json=closure))
        approve(sue, closure_approval(case_id, requested["version"]))
        case_when(sam, case_id, lambda c: c["phase"] == "closed")


def erase(stack: Stack, client_id: str) -> dict[str, Any]:
    """The data protection officer erases the client once intake knows the case closed."""
    dpo = stack.client("intake", stack.token("dora-addr", "dpo"))
    with dpo:
        path = f"/clients/{client_id}"
        closed = eventually(lambda: dpo.get(f"{path}/holds"), lambda r: not r.json()["open_cases"])
        assert ok(closed)["open_cases"] == []
        ask = {"reason": "data_subject_request", "requester": "data_subject"}
        done: dict[str, Any] = ok(dpo.post(f"{path}/erasure", json=ask), 201)
    assert (done["outcome"], done["status"]) == ("carried_out", "completed"), done
    return done


def stored_addresses(stack: Stack, client_id: str) -> list[dict[str, Any]]:
    with MongoClient(stack.env["CASEWORK_MONGO_URL"]) as mongo:
        found = mongo[stack.databases["contacts"]]["client_addresses"].find(
            {"client_id": client_id}
        )
        return list(found)


def test_a_home_visit_shows_the_clients_address_until_the_client_is_erased(
    stack: Stack,
) -> None:
    site = register_site(stack)
    marker = f"Zq{uuid.uuid4().hex[:10]}"  # no id contains `Zq`
    address = f"14 Kiln Street {marker}"
    case_id, client_id = open_case(stack, site, address)
    sam = stack.client("contacts", stack.token("sam-addr", "supervisor", sites=(site,)))
    with sam:
        # the contacts service hears of the case through Kafka
        known = eventually(
            lambda: sam.get(f"/cases/{case_id}/contacts"), lambda r: r.status_code == 200
        )
        assert known.status_code == 200, known.text
        soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        planned = {"planned_for": soon, "participants": CLIENT, "expected_duration_minutes": 45}
        visit = ok(sam.post(f"/cases/{case_id}/contacts", json={**planned, "medium": "home_visit"}),
                   201)["contact_id"]  # fmt: skip
        call = ok(sam.post(f"/cases/{case_id}/contacts", json={**planned, "medium": "phone"}),
                  201)["contact_id"]  # fmt: skip

        # read, the visit shows the address (opened at the edge); the call shows none
        shown = eventually(
            lambda: sam.get(f"/contacts/{visit}"),
            lambda r: r.status_code == 200 and r.json().get("address") is not None,
        )
        assert ok(shown)["address"]["address"] == address
        assert ok(shown)["address"]["given_at"]
        assert ok(sam.get(f"/contacts/{call}"))["address"] is None

        # the worker's agenda shows it on the scheduled visit
        def listed(r: httpx.Response) -> dict[str, Any]:
            return {i["contact_id"]: i for i in r.json()["today"] + r.json()["upcoming"]}

        agenda = eventually(  # the contact history (its read model) lists them soon
            lambda: sam.get("/agenda/workers/sam-addr"), lambda r: {visit, call} <= set(listed(r))
        )
        items = listed(agenda)
        assert items[visit]["address"]["address"] == address
        assert items[call]["address"] is None

    # the contacts service keeps the token only, and the read was audited with the subjects
    # whose values it opened: the referral's person (the address's subject, linked to the client)
    stored = stored_addresses(stack, client_id)
    assert [d["case_id"] for d in stored] == [case_id]
    assert str(stored[0]["address"]).startswith("enc:v1:person:")
    assert marker not in json.dumps(stored, default=str)

    def opened_the_address(records: list[dict[str, Any]]) -> bool:
        return any(s.startswith("person:") for r in records for s in r["subjects"])

    query = {"resource": f"/contacts/{visit}", "about.client_id": client_id}
    deadline = time.monotonic() + 30
    while not opened_the_address(records := wait_for_records(stack, query)):
        assert time.monotonic() < deadline, records
        time.sleep(0.2)

    # the client erased over HTTP: the visit shows `[erased]` within the key cache's TTL
    close_case(stack, site, case_id)
    erase(stack, client_id)
    started = time.monotonic()
    manager = stack.client("contacts", stack.token("mia-addr", "site_manager", sites=(site,)))
    with manager:
        after = eventually(
            lambda: manager.get(f"/contacts/{visit}"), lambda r: marker not in r.text
        )
        assert time.monotonic() - started < KEY_CACHE_TTL_S + 3.0  # and a poll's slack
        assert ok(after)["address"]["address"] == REPLACEMENT
    assert str(stored_addresses(stack, client_id)[0]["address"]).startswith("enc:v1:person:")
