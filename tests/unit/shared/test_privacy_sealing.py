"""Sealing and opening without servers: the token format, what is sealed (every personal field
of every contract, nested and listed ones too), copies kept as they are, a missing subject
refused, opening with a destroyed or unknown key giving `[erased]`, a relabelled token not
opening, and the HTTP edge opening an answer and reporting its subjects."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from casework.asyncapi import asyncapi_document
from casework.contracts import all_events
from casework.contracts.cases import CasePlanProposed, Goal, Intervention
from casework.contracts.common import ReferralSource, Urgency
from casework.contracts.intake import ClientDetails, ReferralReceived
from casework.http import check_json_body
from casework.privacy import REPLACEMENT, edge, is_sealed
from casework.privacy.edge import OpenTokensMiddleware
from casework.privacy.kek import KEY_BYTES
from casework.privacy.sealing import MissingSubject, Opener, Sealer
from casework.privacy.tokens import TOKEN, KeyId, seal

from support.fake_keys import FakeKeys

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def referral(**changes: Any) -> ReferralReceived:
    fields: dict[str, Any] = {
        "referral_id": "r1",
        "site": "north",
        "client": ClientDetails(
            given_name="Alex",
            family_name="Morgan",
            date_of_birth=date(1990, 4, 12),
            phone="07700 900123",
        ),
        "source": ReferralSource.GP,
        "presenting_concerns": "Low mood",
        "urgency": Urgency.SOON,
        "received_by": "ivy",
        "received_at": AT,
        "subject_id": "person:p1",
        **changes,
    }
    return ReferralReceived(**fields)


async def test_every_personal_value_is_sealed_with_its_subject_and_class() -> None:
    keys = FakeKeys()
    data = await Sealer(keys).seal(referral())  # type: ignore[arg-type]
    assert data["client"]["given_name"].startswith("enc:v1:person:p1/identity/v1:")
    assert data["client"]["date_of_birth"].startswith("enc:v1:person:p1/identity/v1:")
    assert data["presenting_concerns"].startswith("enc:v1:person:p1/clinical/v1:")
    assert data["client"]["email"] is None  # absence is not personal
    assert (data["site"], data["referral_id"], data["urgency"]) == ("north", "r1", "soon")
    text = json.dumps(data)
    for plaintext in ("Alex", "Morgan", "1990-04-12", "900123", "Low mood"):
        assert plaintext not in text
    # the stored form is a valid event again: aggregates and projections read it
    parsed = ReferralReceived.model_validate(data)
    opened, subjects = await Opener(keys).open(parsed.model_dump(mode="json"))  # type: ignore[arg-type]
    assert ReferralReceived.model_validate(opened) == referral()
    assert subjects == ["person:p1"]


async def test_list_items_are_sealed_each_under_the_events_client() -> None:
    keys = FakeKeys()
    event = CasePlanProposed(
        case_id="k1",
        plan_version=1,
        goals=(Goal(goal_id="g", description="Sleep", target_date=date(2030, 1, 1)),),
        interventions=(Intervention(intervention_id="i", description="Visit", responsible="c"),),
        proposed_by="carl",
        proposed_at=AT,
        client_id="c-7",
    )
    data = await Sealer(keys).seal(event)  # type: ignore[arg-type]
    assert data["goals"][0]["description"].startswith("enc:v1:client:c-7/clinical/v1:")
    assert data["interventions"][0]["description"].startswith("enc:v1:client:c-7/clinical/")
    assert data["goals"][0]["target_date"] == "2030-01-01"


async def test_a_copy_of_sealed_values_is_kept_as_it_is_and_plaintext_beside_it_is_not() -> None:
    keys = FakeKeys()
    first = await Sealer(keys).seal(referral())  # type: ignore[arg-type]
    copied = f"{first['client']['given_name']} {first['client']['family_name']}"
    assert is_sealed(copied)
    again = await Sealer(keys).seal(referral(referrer_name=copied))  # type: ignore[arg-type]
    assert again["referrer_name"] == copied
    mixed = f"Dr {first['client']['given_name']}"
    assert not is_sealed(mixed)
    resealed = await Sealer(keys).seal(referral(referrer_name=mixed))  # type: ignore[arg-type]
    assert TOKEN.fullmatch(resealed["referrer_name"])  # sealed again, as a whole
    opened = await Opener(keys).open_value(resealed["referrer_name"])  # type: ignore[arg-type]
    assert opened == "Dr Alex"


async def test_a_personal_value_without_its_subject_is_refused() -> None:
    with pytest.raises(MissingSubject, match="subject_id"):
        await Sealer(FakeKeys()).seal(referral(subject_id=None))  # type: ignore[arg-type]


def test_every_personal_field_of_every_contract_names_a_subject_field_of_its_event() -> None:
    marked = set()
    for event in all_events():
        for field in event.personal_fields():
            assert field.subject_field in event.model_fields, (event, field)
            assert field.record_class in ("identity", "clinical", "notes")
            marked.add(f"{event.__name__}.{field.dotted}")
    # the list: names, birth date, phone, email, address, referrer, concerns,
    # screening, assessment, notes, risk reasons, crisis text, closure evaluation, copies
    assert {
        "ReferralReceived.client.given_name",
        "ReferralReceived.client.family_name",
        "ReferralReceived.client.date_of_birth",
        "ReferralReceived.client.phone",
        "ReferralReceived.client.email",
        "ReferralReceived.client.address",
        "ReferralReceived.referrer_name",
        "ReferralReceived.presenting_concerns",
        "RiskScreened.answers",
        "ReferralAccepted.client_name",
        "ClientRegistered.given_name",
        "ClientRegistered.date_of_birth",
        "ClientRegistered.phone",
        "ClientRegistered.match_key",
        "CaseOpened.client_name",
        "AssessmentRecorded.needs",
        "AssessmentRecorded.narrative",
        "GoalProgressRecorded.note",
        "RiskLevelChanged.reason",
        "CrisisDeclared.summary",
        "CrisisResolved.resolution",
        "CaseNoteRecorded.text",
        "ClosureRequested.evaluation",
    } <= marked


async def test_a_destroyed_or_unknown_key_reads_erased_and_a_relabelled_token_does_not_open() -> (
    None
):
    keys = FakeKeys()
    sealer, opener = Sealer(keys), Opener(keys)
    data = await sealer.seal(referral())  # type: ignore[arg-type]
    other = await sealer.seal(referral(subject_id="person:p2"))  # type: ignore[arg-type]
    keys.keys["person:p1/identity/v1"] = None  # destroyed
    opened, subjects = await opener.open(  # type: ignore[arg-type]
        {"one": data["client"], "two": other["client"]["given_name"], "n": 3}
    )
    assert opened["one"]["given_name"] == REPLACEMENT
    assert opened["one"]["date_of_birth"] == REPLACEMENT
    assert opened["two"] == "Alex"
    assert opened["n"] == 3
    assert subjects == ["person:p2"]  # only what was shown
    # a token relabelled with another key id (even one whose key is the same) does not open
    token = other["client"]["given_name"]
    relabelled = token.replace("person:p2/identity/v1", "person:p2/clinical/v1")
    keys.keys["person:p2/clinical/v1"] = keys.keys["person:p2/identity/v1"]
    assert await opener.open_value(relabelled) == REPLACEMENT  # type: ignore[arg-type]
    assert await opener.open_value(token.replace("p2", "p9")) == REPLACEMENT  # type: ignore[arg-type]


def test_a_token_has_the_documented_form() -> None:
    token = seal({"a": [1, "b"]}, key_id="client:c-1/notes/v3", key=bytes(KEY_BYTES))
    match = re.fullmatch(r"enc:v1:(client:c-1/notes/v3):([A-Za-z0-9_-]+)", token)
    assert match is not None
    assert KeyId.parse(match.group(1)) == KeyId("client:c-1", "notes", 3)
    assert len(match.group(2)) >= 38  # nonce 12 + tag 16 bytes at least, base64url
    assert seal("x", key_id="client:c-1/notes/v3", key=bytes(KEY_BYTES)) != seal(
        "x", key_id="client:c-1/notes/v3", key=bytes(KEY_BYTES)
    )  # a fresh nonce per value


def test_the_edge_opens_an_authorised_answer_and_reports_its_subjects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = FakeKeys()
    token = seal("Alex Morgan", key_id="client:c-1/identity/v1", key=bytes(range(KEY_BYTES)))
    keys.keys["client:c-1/identity/v1"] = bytes(range(KEY_BYTES))
    reported: list[list[str]] = []
    monkeypatch.setattr(edge, "subjects_shown", lambda ids: reported.append(list(ids)))
    app = FastAPI()

    @app.get("/answer")
    async def answer() -> dict[str, Any]:
        return {"client_name": token, "line": f"Seen: {token}", "count": 2}

    @app.get("/refused", status_code=403)
    async def refused() -> dict[str, Any]:
        return {"client_name": token}

    app.add_middleware(OpenTokensMiddleware, opener=Opener(keys))  # type: ignore[arg-type]
    with TestClient(app) as client:
        body = client.get("/answer")
        assert body.json() == {
            "client_name": "Alex Morgan",
            "line": "Seen: Alex Morgan",
            "count": 2,
        }
        assert int(body.headers["content-length"]) == len(body.content)
        assert client.get("/refused").json() == {"client_name": token}  # not opened
    assert reported == [["client:c-1"]]


def test_a_request_body_carrying_a_token_is_refused_at_the_edge() -> None:
    problems = check_json_body(b'{"client": {"given_name": "enc:v1:client:c-1/identity/v1:x"}}')
    assert [(p.field, p.code) for p in problems] == [("body.client.given_name", "sealed_value")]
    assert check_json_body(b'{"text": "an ordinary note"}') == []


def test_the_asyncapi_document_says_which_fields_are_encrypted_and_for_whom() -> None:
    messages = asyncapi_document("cases")["components"]["messages"]
    note = messages["casework_cases_CaseNoteRecorded_v1"]
    assert note["x-encrypted-fields"] == [
        {"field": "text", "subject_field": "client_id", "record_class": "notes"}
    ]
    text = note["payload"]["properties"]["text"]
    assert text["x-casework-personal"] == {"subject": "client_id", "record_class": "notes"}
    referral = asyncapi_document("intake")["components"]["messages"][
        "casework_intake_ReferralReceived_v1"
    ]
    assert {
        "field": "client.date_of_birth",
        "subject_field": "subject_id",
        "record_class": "identity",
    } in referral["x-encrypted-fields"]
    assert "enc:v1:" in asyncapi_document()["info"]["description"]
