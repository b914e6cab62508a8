"""Webhook endpoints registered over HTTP, on the real servers (the app's own routes, the
shared audit middleware, the deadline scheduler and a local receiver):

- registered → a declared crisis reaches the receiver signed with the secret the
  registration answered (and that secret is never shown again); an endpoint scoped to
  another site receives nothing;
- rotated → every delivery carries two signatures, the new secret's first, and the old and
  the new secret both verify;
- disabled → a crisis is delivered to nobody; enabled again → delivered again;
- who may do what (403 otherwise, 401 without a token), bad input refused field by field
  with nothing stored, and every request — refused ones too — audited."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from casework.auth import Principal, mint_dev_token
from casework.clock import FixedClock
from casework.directory import KnownSites
from casework.eventstore import ConcurrencyConflict
from casework.privacy.kek import KekError
from casework.runtime import wait_until

from .conftest import SITE, running
from casework_notifications.adapters.webhook_endpoints import COLLECTION
from casework_notifications.adapters.webhooks import verify
from casework_notifications.application.webhook_endpoints import new_secret
from casework_notifications.bootstrap import Wired, app_of
from casework_notifications.domain.webhook_endpoint import DisableEndpoint, RotateSecret
from casework_notifications.settings import NotificationsSettings
from support.alerts import caught_up, crisis_declared, site_registered
from support.notifications import FakeDirectory
from support.receivers import WebhookReceiver, port

DELIVER = "when_notification_sent_deliver"
ROLES = (
    "caseworker",
    "intake_worker",
    "crisis_worker",
    "supervisor",
    "site_manager",
    "integration",
    "ops",
    "regional_admin",
)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hooks = WebhookReceiver(port(221), secret="whsec_unknown-until-registered")
    await hooks.start()
    yield hooks
    await hooks.stop()


@pytest.fixture
async def hooked(
    kafka_bootstrap: str,
    mongo_url: str,
    directory: FakeDirectory,
    tmp_path: Path,
    publish: Callable[..., Any],
) -> AsyncIterator[Wired]:
    own = NotificationsSettings(
        deadline_tick_s=0.2, webhook_allow=["127.0.0.1/32"], public_url="https://casework.test"
    )

    def keep_audit_records(wired: Wired) -> None:
        wired.runtime.audit_relay = None  # the records stay in the outbox for the test to read

    async with running(
        kafka_bootstrap,
        mongo_url,
        own,
        FixedClock(datetime.now(UTC)),
        staff=directory,
        rota=directory,
        jwt_dev_key_path=tmp_path / "dev.pem",
        before_start=keep_audit_records,
    ) as wired:
        # the directory's sites, as supervision's events bring them (endpoints name one)
        sites = KnownSites(wired.runtime.database)
        for site in (SITE, "south"):
            await publish(wired, "supervision", site_registered(site, datetime.now(UTC)))
        for site in (SITE, "south"):
            await wait_until(lambda site=site: sites.exists(site), within=30, every=0.05)
        yield wired


Http = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def http(hooked: Wired) -> AsyncIterator[Http]:
    """A client of the service's app as `sub` with one role (`anonymous`: no token)."""
    app = app_of(hooked)
    clients: list[httpx.AsyncClient] = []

    def as_(role: str) -> httpx.AsyncClient:
        headers = {}
        if role != "anonymous":
            token = mint_dev_token(hooked.runtime.settings, f"a-{role}", [role], [SITE])
            headers["Authorization"] = f"Bearer {token}"
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://notifications", headers=headers
        )
        clients.append(client)
        return client

    yield as_
    for client in clients:
        await client.aclose()


def crisis_deliveries(receiver: WebhookReceiver, case_id: str) -> list[Any]:
    return [d for d in receiver.deliveries if case_id in d.body]


async def arrived(receiver: WebhookReceiver, case_id: str) -> bool:
    """The crisis reached both its first recipients' deliveries (worker and on-call)."""
    return len(crisis_deliveries(receiver, case_id)) == 2


async def test_a_registered_endpoint_gets_signed_crises_rotates_to_two_signatures_and_disables(
    hooked: Wired,
    http: Http,
    receiver: WebhookReceiver,
    publish: Callable[..., Any],
    kafka_bootstrap: str,
) -> None:
    admin, ops = http("regional_admin"), http("ops")
    clock = hooked.runtime.clock
    created = await admin.post(
        "/webhooks", json={"url": receiver.url, "site": SITE, "triggers": ["crisis"]}
    )
    assert created.status_code == 201, created.text
    endpoint_id, first = created.json()["endpoint"]["endpoint_id"], created.json()["secret"]
    assert first.startswith("whsec_")
    elsewhere = await admin.post("/webhooks", json={"url": receiver.url, "site": "south"})
    assert elsewhere.status_code == 201, elsewhere.text
    south_id = elsewhere.json()["endpoint"]["endpoint_id"]
    listed = await ops.get("/webhooks")
    assert listed.status_code == 200
    assert {e["endpoint_id"] for e in listed.json()} == {endpoint_id, south_id}
    assert "whsec_" not in listed.text  # answered once, at creation, never again
    assert "whsec_" not in (await admin.get(f"/webhooks/{endpoint_id}")).text

    # registered: a crisis reaches the receiver, signed with the answered secret
    receiver.secret = first
    signed_once = str(uuid.uuid4())
    await publish(hooked, "cases", crisis_declared(signed_once, clock.now(), SITE))
    await wait_until(lambda: arrived(receiver, signed_once), within=30, every=0.1)
    for delivery in crisis_deliveries(receiver, signed_once):
        assert delivery.verified
        assert len(delivery.headers["webhook-signature"].split(" ")) == 1

    # rotated: two signatures, the new first; the old and the new secret both verify
    rotated = await admin.post(f"/webhooks/{endpoint_id}/rotate-secret", json={"grace_hours": 24})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["secret"]
    assert second.startswith("whsec_")
    assert second != first
    assert rotated.json()["endpoint"]["rotating_until"] is not None
    signed_twice = str(uuid.uuid4())
    await publish(hooked, "cases", crisis_declared(signed_twice, clock.now(), SITE))
    await wait_until(lambda: arrived(receiver, signed_twice), within=30, every=0.1)
    for delivery in crisis_deliveries(receiver, signed_twice):
        signatures = delivery.headers["webhook-signature"].split(" ")
        assert len(signatures) == 2
        assert verify(first, delivery.headers, delivery.body)
        assert verify(second, delivery.headers, delivery.body)
        only_new = {**delivery.headers, "webhook-signature": signatures[0]}
        assert verify(second, only_new, delivery.body)  # the new secret's comes first

    # disabled: the next crisis is planned for nobody, and nothing reaches the receiver
    disabled = await admin.post(f"/webhooks/{endpoint_id}/disable", json={"reason": "moving"})
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled"] is True
    silent = str(uuid.uuid4())
    await publish(hooked, "cases", crisis_declared(silent, clock.now(), SITE))

    async def planned(case_id: str) -> bool:
        inbox = [e for e in await hooked.inbox.of("olga", 50) if e.get("case_id") == case_id]
        return bool(inbox) and await caught_up(hooked, kafka_bootstrap, DELIVER, "notifications")

    await wait_until(lambda: planned(silent), within=30, every=0.2)
    pending = hooked.runtime.deadlines.collection
    assert (
        await pending.find_one({"_id": {"$regex": f"^webhook:{endpoint_id}:crisis:{silent}"}})
        is None
    )

    # enabled again: delivered again (and by then anything scheduled for `silent` had fired)
    enabled = await admin.post(f"/webhooks/{endpoint_id}/enable")
    assert enabled.json() == {"was_disabled": True}
    again = str(uuid.uuid4())
    await publish(hooked, "cases", crisis_declared(again, clock.now(), SITE))
    await wait_until(lambda: arrived(receiver, again), within=30, every=0.1)
    assert crisis_deliveries(receiver, silent) == []
    attempts = hooked.deliveries.log.collection
    assert (
        await attempts.count_documents(
            {"target": endpoint_id, "notification_id": {"$regex": silent}}
        )
        == 0
    )
    # the endpoint scoped to another site was never given a north crisis
    assert await attempts.count_documents({"target": south_id}) == 0
    assert len(receiver.deliveries) == 6

    history = (await ops.get(f"/webhooks/{endpoint_id}")).json()["history"]
    assert [h["change"] for h in history] == ["registered", "secret_rotated", "disabled", "enabled"]
    assert {h["by"] for h in history} == {"a-regional_admin"}

    # the receiver's answers disable it too (410; `test_channels` drives that path): the
    # operator's view says so, and by whom it was not — and `/enable` lifts it
    assert (await ops.get(f"/webhooks/{endpoint_id}")).json()["disabled_by_answers"] is None
    assert await hooked.deliveries.log.disable(endpoint_id, "410 Gone", clock.now())
    seen = (await ops.get(f"/webhooks/{endpoint_id}")).json()
    assert (seen["disabled"], seen["disabled_by_answers"]["reason"]) == (False, "410 Gone")
    listed_now = {e["endpoint_id"]: e for e in (await ops.get("/webhooks")).json()}
    assert listed_now[endpoint_id]["disabled_by_answers"]["reason"] == "410 Gone"
    assert (await admin.post(f"/webhooks/{endpoint_id}/enable")).json() == {"was_disabled": True}
    assert (await ops.get(f"/webhooks/{endpoint_id}")).json()["disabled_by_answers"] is None


async def audited(wired: Wired) -> list[tuple[str, str, str]]:
    """(who, what, HTTP status) of every audit record in the outbox."""
    found = []
    async for doc in wired.runtime.audit.records.find({}):
        event = doc["event"]
        who = event["agent"][0]["who"]
        found.append(
            (
                str(who.get("identifier", {}).get("value", who.get("display"))),
                str(event["entity"][0]["description"]),
                str(event["outcome"]["detail"][0]["text"]),
            )
        )
    return found


async def test_only_regional_admins_change_endpoints_ops_read_them_bad_input_stores_nothing(
    hooked: Wired, http: Http, receiver: WebhookReceiver
) -> None:
    admin = http("regional_admin")
    created = await admin.post("/webhooks", json={"url": receiver.url})
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["endpoint"]["endpoint_id"]
    routes = {
        "register": ("POST", "/webhooks", {"url": receiver.url}),
        "list": ("GET", "/webhooks", None),
        "get": ("GET", f"/webhooks/{endpoint_id}", None),
        "rotate": ("POST", f"/webhooks/{endpoint_id}/rotate-secret", {}),
        "disable": ("POST", f"/webhooks/{endpoint_id}/disable", {"reason": "test"}),
        "enable": ("POST", f"/webhooks/{endpoint_id}/enable", None),
    }
    readers, admins = {"ops", "regional_admin"}, {"regional_admin"}
    matrix: dict[tuple[str, str], int] = {}
    for role in (*ROLES, "anonymous"):
        client = http(role)
        for name, (method, path, body) in routes.items():
            response = await client.request(method, path, json=body)
            matrix[(role, name)] = response.status_code
    for (role, name), status in matrix.items():
        allowed = admins if name in ("register", "rotate", "disable", "enable") else readers
        if role == "anonymous":
            assert status == 401, (role, name)
        elif role in allowed:
            assert status in (200, 201), (role, name, status)
        else:
            assert status == 403, (role, name, status)

    stored = await hooked.runtime.database[COLLECTION].count_documents({})
    refused = {
        "http://169.254.169.254/latest/meta-data": "body.url",  # cloud metadata
        "http://10.1.2.3/hooks": "body.url",
        "https://192.168.0.10/hooks": "body.url",
        "ftp://hooks.example.org/x": "body.url",
        "https://user:pw@hooks.example.org/x": "body.url",
    }
    for url, field in refused.items():
        answer = await admin.post("/webhooks", json={"url": url})
        assert answer.status_code == 422, (url, answer.text)
        assert [e["field"] for e in answer.json()["errors"]] == [field], url
    for body, field in (
        ({"url": receiver.url, "triggers": ["not_a_trigger"]}, "body.triggers.0"),
        ({"url": receiver.url, "site": "no spaces"}, "body.site"),
        ({"url": receiver.url, "site": "west"}, "body.site"),  # not in the directory
        ({"url": receiver.url, "secret": "whsec_mine"}, "body.secret"),
        ({}, "body.url"),
    ):
        answer = await admin.post("/webhooks", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert field in [e["field"] for e in answer.json()["errors"]], (body, answer.text)
    grace = await admin.post(f"/webhooks/{endpoint_id}/rotate-secret", json={"grace_hours": 100})
    assert grace.status_code == 422
    assert [e["field"] for e in grace.json()["errors"]] == ["body.grace_hours"]
    assert await hooked.runtime.database[COLLECTION].count_documents({}) == stored
    missing = await admin.post("/webhooks/ep_nobody/disable", json={"reason": "x"})
    assert missing.status_code == 404

    records = await audited(hooked)
    for role in ROLES:
        for name, (method, path, _) in routes.items():
            template = path.replace(endpoint_id, "{endpoint_id}")
            expected = str(matrix[(role, name)])
            assert any(
                who == f"a-{role}" and what == f"{method} {template}" and f"HTTP {expected}" == st
                for who, what, st in records
            ), (role, name)
    assert sum(1 for _, what, st in records if what == "POST /webhooks" and st == "HTTP 422") >= 10


async def test_two_replicas_changing_one_endpoint_at_once_lose_no_change(
    hooked: Wired, http: Http, receiver: WebhookReceiver
) -> None:
    created = await http("regional_admin").post("/webhooks", json={"url": receiver.url})
    endpoint_id = created.json()["endpoint"]["endpoint_id"]
    store = hooked.endpoints.store
    # two replicas load the same version and both decide: one insert wins, the other is told
    first, second = await store.find(endpoint_id), await store.find(endpoint_id)
    assert first is not None
    assert second is not None
    now = hooked.runtime.clock.now()
    first.handle(RotateSecret(endpoint_id, new_secret(), timedelta(hours=1), "rex", now))
    second.handle(DisableEndpoint(endpoint_id, "moving", "ops-1", now))
    await store.save(first)
    with pytest.raises(ConcurrencyConflict):
        await store.save(second)
    # through the application both land, in some order, each once (the loser decides again)
    principal = Principal(
        sub="rex", name="Rex", roles=frozenset({"regional_admin"}), sites=frozenset()
    )
    await asyncio.gather(
        *(hooked.endpoints.rotate(endpoint_id, timedelta(hours=1), principal) for _ in range(3)),
        hooked.endpoints.disable(endpoint_id, "moving", principal),
    )
    found = await store.find(endpoint_id)
    assert found is not None
    changes = [c.change for c in found.history]
    assert changes.count("secret_rotated") == 4
    assert changes.count("disabled") == 1
    versions = [d["version"] async for d in store.collection.find({"endpoint_id": endpoint_id})]
    assert sorted(versions) == list(range(1, 7))


async def test_secrets_are_sealed_at_rest_and_open_only_where_they_were_stored(
    hooked: Wired, http: Http, receiver: WebhookReceiver
) -> None:
    admin = http("regional_admin")
    created = await admin.post("/webhooks", json={"url": receiver.url})
    endpoint_id, first = created.json()["endpoint"]["endpoint_id"], created.json()["secret"]
    rotated = await admin.post(f"/webhooks/{endpoint_id}/rotate-secret", json={"grace_hours": 1})
    second = rotated.json()["secret"]
    store = hooked.endpoints.store
    stored = [d async for d in store.collection.find({"endpoint_id": endpoint_id})]
    assert len(stored) == 2
    assert all("secret" not in d["data"] and "secret_sealed" in d["data"] for d in stored)
    assert not [d for d in stored if first in str(d) or second in str(d) or "whsec_" in str(d)]
    # the service opens them: it signs with the secrets it answered
    found = await store.find(endpoint_id)
    assert found is not None
    assert found.secrets_at(hooked.runtime.clock.now()) == (second, first)

    # a sealed secret copied into another endpoint's document does not open there
    sealed = stored[0]["data"]["secret_sealed"]
    forged = {**stored[0], "_id": "forged:1", "endpoint_id": "forged"}
    forged["data"] = {**stored[0]["data"], "secret_sealed": sealed}
    await store.collection.insert_one(forged)
    with pytest.raises(KekError, match="does not open"):
        await store.find("forged")

    # one stored before secrets were sealed still reads, plain
    legacy = {**stored[0], "_id": "legacy:1", "endpoint_id": "legacy"}
    data = {k: v for k, v in stored[0]["data"].items() if k != "secret_sealed"}
    legacy["data"] = {**data, "secret": first}
    await store.collection.insert_one(legacy)
    old = await store.find("legacy")
    assert old is not None
    assert old.secrets_at(hooked.runtime.clock.now()) == (first,)
