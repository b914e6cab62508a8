"""Quiet hours and digests on the real servers, with the service's clock set to a winter
Wednesday evening in London: a risk-raised e-mail at 22:00 is held until 07:00; overdue
contacts are not e-mailed one by one but in the worker's daily digest at 08:00 and their
supervisor's weekly digest on Monday at 08:00."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import pytest

from casework.clock import FixedClock
from casework.contracts.cases import CaseOpened, CaseworkerAssigned, RiskLevelChanged
from casework.contracts.common import RiskLevel
from casework.contracts.contacts import ContactObligationMet
from casework.deadlines import Deadline
from casework.directory import KnownSites
from casework.envelope import Envelope
from casework.runtime import wait_until

from .conftest import SITE, running
from casework_notifications.application.delivery import DIGEST, EMAIL
from casework_notifications.bootstrap import Wired
from casework_notifications.settings import NotificationsSettings
from support.alerts import case_envelope, contact_overdue, crisis_declared, site_registered
from support.envelopes import envelope_of
from support.notifications import crisis_directory
from support.receivers import SmtpSink, port

T0 = datetime(2026, 12, 2, 22, 0, tzinfo=UTC)  # a Wednesday; London is on UTC in winter
DIGEST_AT = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)  # Thursday's daily digest
NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # midday in London, 21:00 in Tokyo


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink(port(102))
    sink.start()
    yield sink
    sink.stop()


def mailing(smtp: SmtpSink, **more: Any) -> NotificationsSettings:
    """The service e-mailing through the test's SMTP server, London the agency's timezone."""
    return NotificationsSettings(
        deadline_tick_s=0.2,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_timeout_s=2,
        default_timezone="Europe/London",
        **more,
    )


@pytest.fixture
async def evening(kafka_bootstrap: str, mongo_url: str, smtp: SmtpSink) -> AsyncIterator[Wired]:
    own = mailing(smtp)
    directory = crisis_directory(SITE, T0)
    async with running(
        kafka_bootstrap, mongo_url, own, FixedClock(T0), staff=directory, rota=directory
    ) as wired:
        yield wired


def overdue(case_id: str, obligation: str, version: int) -> Envelope:
    event = contact_overdue(case_id, obligation, T0, SITE)
    return envelope_of(event, f"obligations-{case_id}", version, T0, site=SITE)


async def raise_risk(wired: Wired, publish: Callable[..., Any], at: datetime = T0) -> str:
    """A case of wendy's whose risk is raised to high at `at` (a `risk_raised` e-mail, high
    urgency, to wendy; her supervisors at the second level); the case id."""
    case_id = str(uuid.uuid4())
    for version, event in enumerate(
        [
            CaseOpened(
                case_id=case_id,
                client_id="c-1",
                referral_id="r-1",
                site=SITE,
                risk_level=RiskLevel.MEDIUM,
                opened_at=at,
            ),
            CaseworkerAssigned(
                case_id=case_id,
                caseworker_id="wendy",
                team="t",
                assigned_by="mia",
                assigned_at=at,
            ),
            RiskLevelChanged(
                case_id=case_id,
                site=SITE,
                previous_level=RiskLevel.MEDIUM,
                risk_level=RiskLevel.HIGH,
                reason="enc:v1:k:AAAA",
                changed_by="wendy",
                changed_at=at,
            ),
        ],
        start=1,
    ):
        await publish(wired, "cases", case_envelope(case_id, event, version, at, SITE))
    return case_id


def text_of(message: Message) -> str:
    raw = message.get_payload(decode=True)
    assert isinstance(raw, bytes)
    return raw.decode()


async def test_quiet_hours_hold_email_and_overdue_notices_come_in_digests(
    evening: Wired, smtp: SmtpSink, publish: Callable[..., Any]
) -> None:
    clock = evening.runtime.clock
    assert isinstance(clock, FixedClock)
    case_id = await raise_risk(evening, publish)
    await publish(evening, "contacts", overdue(case_id, "ob-1", 1))
    await publish(evening, "contacts", overdue(case_id, "ob-2", 2))

    log = evening.deliveries.log.collection

    async def held() -> bool:
        return await log.count_documents({"outcome": "held"}) == 1

    await wait_until(held, within=30, every=0.1)
    deadlines = evening.runtime.deadlines

    async def digests_planned() -> bool:
        keys = ("digest:daily:wendy", "digest:weekly:sam", "digest:weekly:dora")
        return all([await deadlines.get(k) is not None for k in keys])

    await wait_until(digests_planned, within=30, every=0.1)
    daily = await deadlines.get("digest:daily:wendy")
    weekly = await deadlines.get("digest:weekly:sam")
    assert daily is not None
    assert weekly is not None
    assert daily.due_at == datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert weekly.due_at == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # Monday
    assert smtp.messages == []  # quiet hours, and overdue notices wait for the digest

    clock.advance(timedelta(hours=9, seconds=5))  # 07:00:05

    async def risk_mailed() -> bool:
        # the worker's, held since 22:00; the supervisors' (the second level, due at 02:00,
        # reached when the service's clock next moved)
        return all(len(smtp.to(f"{who}@agency.test")) == 1 for who in ("wendy", "sam", "dora"))

    await wait_until(risk_mailed, within=30, every=0.1)
    assert "risk raised" in str(smtp.to("wendy@agency.test")[0]["Subject"])

    clock.advance(timedelta(hours=1))  # 08:00:05: the daily digest

    async def digest_mailed() -> bool:
        return len(smtp.to("wendy@agency.test")) == 2 and len(smtp.to("sam@agency.test")) == 2

    await wait_until(digest_mailed, within=30, every=0.1)
    digest = smtp.to("wendy@agency.test")[1]
    assert "daily digest" in str(digest["Subject"])
    body = text_of(digest)
    assert body.count("- contact overdue, case ") == 1  # one group, counted twice, listed once
    assert case_id in body

    clock.advance(timedelta(days=4))  # Monday 08:00:05: the supervisors' weekly digests

    def weekly(address: str) -> list[Message]:
        return [m for m in smtp.to(address) if "weekly digest" in str(m["Subject"])]

    async def weekly_mailed() -> bool:
        return bool(weekly("sam@agency.test")) and bool(weekly("dora@agency.test"))

    await wait_until(weekly_mailed, within=30, every=0.1)
    body = text_of(weekly("sam@agency.test")[0])
    assert "wendy:" in body
    assert case_id in body
    await evening.runtime.scheduler.fire_due()
    assert len(smtp.to("wendy@agency.test")) == 2  # the risk notice and one digest: no repeat
    # the supervisors' daily digest of Thursday: the overdue contact reached them at its
    # second level (4 hours on), about their supervisee's case
    daily_sam = [m for m in smtp.to("sam@agency.test") if "daily digest" in str(m["Subject"])]
    assert len(daily_sam) == 1
    assert len(weekly("sam@agency.test")) == 1


async def test_a_digest_leaves_out_overdue_notices_whose_contacts_were_made_since(
    evening: Wired, smtp: SmtpSink, publish: Callable[..., Any]
) -> None:
    """Two of wendy's cases overdue at 22:00; one's contact made at 23:00 closes its alert:
    the 08:00 digest lists the other case only (nothing to chase in the first)."""
    clock = evening.runtime.clock
    assert isinstance(clock, FixedClock)
    done, owed = str(uuid.uuid4()), str(uuid.uuid4())
    for case_id in (done, owed):
        await publish(evening, "contacts", overdue(case_id, f"ob-{case_id}", 1))
    deadlines = evening.runtime.deadlines
    await wait_until(lambda: deadlines.get("digest:daily:wendy"), within=30, every=0.1)
    made_at = T0 + timedelta(hours=1)
    made = ContactObligationMet(
        case_id=done,
        obligation_id=f"ob-{done}",
        rule_id="weekly",
        contact_id=str(uuid.uuid4()),
        met_at=made_at,
        due_at=T0 - timedelta(hours=1),
        on_time=False,
    )
    await publish(
        evening, "contacts", envelope_of(made, f"obligations-{done}", 2, made_at, site=SITE)
    )

    async def closed() -> bool:
        doc = await evening.board.read_model.get(f"contact_overdue:{done}")
        return doc is not None and doc.get("status") == "closed"

    await wait_until(closed, within=30, every=0.1)
    clock.advance(timedelta(hours=10, seconds=5))  # 08:00:05: the daily digest

    async def digest_mailed() -> bool:
        return any("daily digest" in str(m["Subject"]) for m in smtp.to("wendy@agency.test"))

    await wait_until(digest_mailed, within=30, every=0.1)
    [digest] = [m for m in smtp.to("wendy@agency.test") if "daily digest" in str(m["Subject"])]
    body = text_of(digest)
    assert owed in body
    assert done not in body
    assert "1 overdue notice(s)" in str(digest["Subject"])


async def test_a_released_emails_retry_in_the_next_night_is_held_again(
    evening: Wired, smtp: SmtpSink
) -> None:
    """Released at 07:00 into an SMTP outage, wendy's risk notice is retried; a retry that
    comes due at 23:00 is held until 07:00 again, not sent into her night."""
    clock = evening.runtime.clock
    assert isinstance(clock, FixedClock)
    nid = f"risk_raised:{uuid.uuid4()}:1:0:wendy"
    notice = {
        "notification_id": nid,
        "alert_id": nid.rsplit(":", 3)[0],
        "recipient_id": "wendy",
        "trigger": "risk_raised",
        "urgency": "high",
        "case_id": str(uuid.uuid4()),
        "site": SITE,
        "step": 0,
    }
    morning = T0 + timedelta(hours=9, seconds=5)  # 07:00:05, the hold released
    clock.advance(morning - clock.now())
    smtp.stop()
    deliveries = evening.deliveries
    released = Deadline(
        f"email:{nid}#0-held", EMAIL, morning, {**notice, "attempt": 0, "held": True}
    )
    await deliveries.on_email_due(released)
    retry = await evening.runtime.deadlines.get(f"email:{nid}#1")
    assert retry is not None
    assert await outcomes_of(evening, nid) == ["failed"]

    smtp.start()
    night = T0 + timedelta(days=1, hours=1)  # 23:00 the next evening
    clock.advance(night - clock.now())
    await deliveries.on_email_due(replace(retry, due_at=night))
    assert smtp.to("wendy@agency.test") == []
    assert await outcomes_of(evening, nid) == ["failed", "held"]
    hold = await evening.runtime.deadlines.get(f"email:{nid}#1-held")
    assert hold is not None
    assert hold.due_at == T0 + timedelta(days=1, hours=9)  # 07:00 the day after


async def outcomes_of(wired: Wired, notification_id: str) -> list[str]:
    return [str(a["outcome"]) for a in await wired.deliveries.log.of(notification_id)]


async def test_a_held_email_released_later_is_logged_held_then_delivered(
    evening: Wired, smtp: SmtpSink, publish: Callable[..., Any]
) -> None:
    """The hold and the later delivery of the same attempt are two records: the delivery
    counts in the channel's health."""
    clock = evening.runtime.clock
    assert isinstance(clock, FixedClock)
    await raise_risk(evening, publish)
    log = evening.deliveries.log

    async def held() -> list[Any]:
        return await log.collection.find({"outcome": "held", "target": "wendy"}).to_list(None)

    await wait_until(held, within=30, every=0.1)
    nid = str((await held())[0]["notification_id"])
    clock.advance(timedelta(hours=9, seconds=5))  # 07:00:05: released

    async def released() -> bool:
        return await outcomes_of(evening, nid) == ["held", "delivered"]

    async def mailed() -> bool:  # wendy's, and her supervisors'
        return all(len(smtp.to(f"{who}@agency.test")) == 1 for who in ("wendy", "sam", "dora"))

    async def all_logged() -> bool:  # each accepted message's record written after it
        return bool((await log.health())["channels"]["email"]["delivered"] >= 3)

    await wait_until(mailed, within=30, every=0.1)
    await wait_until(released, within=10, every=0.1)
    await wait_until(all_logged, within=10, every=0.1)
    await evening.runtime.scheduler.fire_due()
    health = (await log.health())["channels"]["email"]
    assert health["delivered"] == len(smtp.messages) == 3
    assert health["held"] == 1
    assert health["success_rate"] == 1.0
    assert health["retries_pending"] == 0


async def test_a_digest_that_fails_once_is_logged_failed_then_delivered(
    evening: Wired, smtp: SmtpSink, publish: Callable[..., Any]
) -> None:
    """A digest the SMTP server refuses is tried again as an attempt of its own: the log
    shows the failure and the delivery, and no retry is left pending."""
    clock = evening.runtime.clock
    assert isinstance(clock, FixedClock)
    case_id = await raise_risk(evening, publish)
    await publish(evening, "contacts", overdue(case_id, "ob-1", 1))
    deadlines = evening.runtime.deadlines
    await wait_until(lambda: deadlines.get("digest:daily:wendy"), within=30, every=0.1)
    clock.advance(timedelta(hours=9, seconds=5))  # 07:00:05: the risk notices

    async def risk_mailed() -> bool:
        return all(len(smtp.to(f"{who}@agency.test")) == 1 for who in ("wendy", "sam", "dora"))

    await wait_until(risk_mailed, within=30, every=0.1)
    smtp.stop()
    clock.advance(timedelta(hours=1))  # 08:00:05: the daily digest, SMTP down
    digest_id = "digest:daily:wendy:20261203"

    async def failed() -> bool:
        return await outcomes_of(evening, digest_id) == ["failed"]

    await wait_until(failed, within=30, every=0.1)
    assert (await evening.deliveries.log.health())["channels"]["email"]["retries_pending"] >= 1
    smtp.start()
    clock.advance(timedelta(minutes=1))  # past the first retry (5 s, +20 % jitter)

    async def delivered() -> bool:
        return await outcomes_of(evening, digest_id) == ["failed", "delivered"]

    async def digest_mailed() -> bool:
        return len(smtp.to("wendy@agency.test")) == 2

    await wait_until(digest_mailed, within=30, every=0.1)
    await wait_until(delivered, within=10, every=0.1)
    assert "daily digest" in str(smtp.to("wendy@agency.test")[1]["Subject"])

    async def nothing_pending() -> bool:
        health = await evening.deliveries.log.health()
        return bool(health["channels"]["email"]["retries_pending"] == 0)

    await wait_until(nothing_pending, within=10, every=0.1)
    await evening.runtime.scheduler.fire_due()
    assert len(smtp.to("wendy@agency.test")) == 2  # the digest once

    # the retry fired again (a replica taking over a dead one's claim): it has concluded, so
    # nothing is sent, and the attempt's record stays the one there is
    again = Deadline(
        f"{digest_id}#1",
        DIGEST,
        T0 + timedelta(hours=10),
        {"recipient_id": "wendy", "kind": "daily", "attempt": 1, "until": DIGEST_AT.isoformat()},
    )
    await evening.deliveries.on_digest_due(again)
    assert len(smtp.to("wendy@agency.test")) == 2
    assert await outcomes_of(evening, digest_id) == ["failed", "delivered"]
    health = (await evening.deliveries.log.health())["channels"]["email"]
    assert health["retries_pending"] == 0


@pytest.mark.parametrize(
    ("own", "site", "held"),
    [
        ("Asia/Tokyo", None, True),  # their own quiet hours (London's midday is not quiet)
        (None, "Asia/Tokyo", True),  # no timezone of their own: their site's
        ("Europe/London", "Asia/Tokyo", False),  # their own before their site's
    ],
)
async def test_quiet_hours_are_the_persons_own_else_their_sites_and_never_hold_a_crisis(
    kafka_bootstrap: str,
    mongo_url: str,
    smtp: SmtpSink,
    publish: Callable[..., Any],
    own: str | None,
    site: str | None,
    held: bool,
) -> None:
    """At midday in London (the agency's default), 21:00 in Tokyo: wendy's risk notice is
    held when her timezone, or failing one her site's, is Tokyo's; the crisis that reaches
    her and the on-call (both in the site's timezone) at the same moment is never held."""
    directory = crisis_directory(SITE, NOON)
    directory.add(replace(directory.staff["wendy"], timezone=own))
    settings = mailing(smtp)
    clock = FixedClock(NOON)
    async with running(
        kafka_bootstrap, mongo_url, settings, clock, staff=directory, rota=directory
    ) as wired:
        if site is not None:
            await publish(wired, "supervision", site_registered(SITE, NOON, timezone=site))

            async def site_known() -> bool:  # the copy keeps the site whole, at once
                return await KnownSites(wired.runtime.database).exists(SITE)

            await wait_until(site_known, within=30, every=0.1)
        await raise_risk(wired, publish, NOON)
        await publish(wired, "cases", crisis_declared(str(uuid.uuid4()), NOON, SITE))

        def mail(who: str, subject: str) -> list[Message]:
            return [m for m in smtp.to(f"{who}@agency.test") if subject in str(m["Subject"])]

        async def crisis_mailed() -> bool:
            return bool(mail("wendy", "CRITICAL")) and bool(mail("olga", "CRITICAL"))

        async def risk_mailed() -> bool:
            return bool(mail("wendy", "risk raised"))

        async def risk_held() -> bool:
            log = wired.deliveries.log.collection
            return await log.count_documents({"outcome": "held", "target": "wendy"}) == 1

        await wait_until(crisis_mailed, within=30, every=0.1)  # critical: never held
        if not held:
            await wait_until(risk_mailed, within=30, every=0.1)
            assert not await risk_held()
            return
        await wait_until(risk_held, within=30, every=0.1)
        assert not mail("wendy", "risk raised")
        clock.advance(timedelta(hours=10, seconds=5))  # 22:00:05 UTC, 07:00:05 in Tokyo
        await wait_until(risk_mailed, within=30, every=0.1)


async def test_a_site_that_digests_what_the_agency_emails_gets_it_in_the_digest(
    kafka_bootstrap: str,
    mongo_url: str,
    smtp: SmtpSink,
    publish: Callable[..., Any],
    tmp_path: Any,
) -> None:
    """The site's rule, not the agency's, decides both that a notice waits for the digest and
    that the digest lists it: a risk rise this site digests is in wendy's daily digest, not
    e-mailed alone and not lost between the two."""
    routing = tmp_path / "routing.json"
    routing.write_text(
        json.dumps(
            {
                "sites": {
                    SITE: {
                        "risk_raised": {
                            "urgency": "high",
                            "channels": ["inbox", "email"],
                            "policy": "worker_then_supervisor",
                            "digest": True,
                        }
                    }
                }
            }
        )
    )
    own = mailing(smtp, routing_file=routing)
    directory = crisis_directory(SITE, NOON)
    async with running(
        kafka_bootstrap, mongo_url, own, FixedClock(NOON), staff=directory, rota=directory
    ) as wired:
        clock = wired.runtime.clock
        assert isinstance(clock, FixedClock)
        case_id = await raise_risk(wired, publish, NOON)

        async def planned() -> bool:
            return await wired.runtime.deadlines.get("digest:daily:wendy") is not None

        await wait_until(planned, within=30, every=0.1)
        assert smtp.to("wendy@agency.test") == []  # waits for the digest
        clock.advance(timedelta(hours=20, seconds=5))  # Thursday 08:00:05

        async def digest_mailed() -> bool:
            return any("daily digest" in str(m["Subject"]) for m in smtp.to("wendy@agency.test"))

        await wait_until(digest_mailed, within=30, every=0.1)
        [digest] = smtp.to("wendy@agency.test")
        body = text_of(digest)
        assert "- risk raised, case " in body
        assert case_id in body
