"""Delivery of notifications on e-mail and webhooks, each attempt a durable deadline.

`when_notification_sent_deliver` (a policy on the service's own topic) schedules one
deadline per channel and target for each `NotificationSent`: `email:<notification>#0` and
`webhook:<endpoint>:<notification>#0`, due when it was sent. The deadline scheduler fires
them (`casework.deadlines`: at most once to completion, at least once while it can succeed).
The inbox is a projection of its own: it never waits for a channel. Webhook endpoints are
read when a notification is planned and again at each attempt (`EndpointSource`: the file's
and those registered over the API, each scoped to a site or the agency, and to triggers).

**Invariants.**
- *A failing channel never blocks the others*: each channel's attempt is its own deadline,
  and a handler catches its channel's failure, records it and schedules the next attempt
  (`#<n+1>`, backoff with jitter) — so an SMTP server that is down delays e-mail only.
- *Nobody gets the same message twice from a redelivered or replayed event*: scheduling
  what is already scheduled (same key, due time and payload) changes nothing, and a fired
  deadline does not fire again for the same due time.
- *An attempt that has an outcome is never sent again* (`Deliveries._concluded`): fired a
  second time (its process died before the scheduler stored it done; another replica took
  over the claim), it reads its record first and sends nothing; a failed one schedules its
  retry again as recorded (`retry_at`), which changes nothing if it was scheduled. The one
  window left is a replica that dies after the send and before the outcome record: the
  message is sent again, with the same `Message-ID` / `webhook-id`, which receivers
  de-duplicate by.
- *Every attempt's outcome is recorded exactly once* in `delivery_attempts` (insert only;
  `_id` = channel, target, notification or digest, attempt): `delivered`, `failed` (the next
  attempt is scheduled, `retry_at`), `gave_up`, `disabled` (410: the endpoint is disabled) or
  `skipped` (no address, endpoint disabled), with the error class and the HTTP status — never
  a message body. A hold in
  quiet hours is a record of its own beside the attempt's (`…:<attempt>:held`): the held
  attempt, once released, records its outcome under its own id. A digest is retried like an
  e-mail, as attempt `#<n+1>` of its own deadline (`digest:<kind>:<person>:<day>#<n+1>`), not
  by the scheduler firing the failed one again — so each try has its own record, and the next
  period's digest (which reschedules `digest:<kind>:<person>`) cannot supersede a retry.
  Hence health: `retries_pending` = failed attempts minus the outcomes of retries (attempt
  > 0; a hold is no outcome), which is 0 once every failure's next attempt has concluded.
- *Quiet hours are the recipient's*: checked when an e-mail attempt is due, in their own
  timezone, else their (first) site's as this service's copy of the directory has it
  (`KnownSites`), else the agency's default; a critical notice is never held. Digests fall due
  at the digest hour in the same timezone.
- Messages carry no client details: ids, the trigger, the urgency and a link; the reader
  opens the case through the audited API.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import smtplib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx
from prometheus_client import CollectorRegistry, Counter
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from casework.clock import Clock
from casework.contracts.notifications import Channel, NotificationSent, Trigger, Urgency
from casework.deadlines import Deadline, Deadlines
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import EventHandler
from casework.runtime import events_topic

from casework_notifications.adapters.email import SmtpMailer
from casework_notifications.adapters.read_models import Inbox
from casework_notifications.adapters.webhooks import Endpoint, TargetRefused, WebhookSender
from casework_notifications.application.ports import (
    AlertStatuses,
    CaseFacts,
    SiteZones,
    StaffDirectory,
    StaffMember,
)
from casework_notifications.domain.quiet_hours import QuietHours, local_zone, next_local
from casework_notifications.domain.routing import Routing

EMAIL = "deliver_email"
WEBHOOK = "deliver_webhook"
DIGEST = "deliver_digest"
DAY = timedelta(days=1)

EMAIL_BACKOFF_CAP = timedelta(minutes=10)
EMAIL_MAX_ATTEMPTS = 150  # about a day at the cap
WEBHOOK_SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
"""Waits after each failed attempt (about three days in all), each jittered by ±20 %."""

log = logging.getLogger(__name__)


def email_backoff(attempt: int) -> timedelta:
    factor: int = 2 ** min(attempt, 16)
    return min(EMAIL_BACKOFF_CAP, timedelta(seconds=5) * factor)


def jittered(wait: timedelta, rng: random.Random) -> timedelta:
    return wait * rng.uniform(0.8, 1.2)


HELD = "held"
ATTEMPT_OUTCOMES = ("delivered", "failed", "gave_up", "disabled", "skipped")
"""What an attempt ends with (one record each); `held` is a hold, recorded beside them."""


class DeliveryLog:
    """`delivery_attempts`: one document per attempt's outcome, and one per hold (insert
    only; the first record stored for an id is the one that stays)."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.collection = database["delivery_attempts"]
        self.disabled = database["webhook_endpoints_disabled"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("channel", 1), ("outcome", 1)])
        await self.collection.create_index("notification_id")

    async def record(
        self,
        channel: Channel,
        target: str,
        notification_id: str,
        attempt: int,
        outcome: str,
        at: datetime,
        *,
        error: str | None = None,
        status: int | None = None,
        replay: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Store an attempt's outcome, or a hold (`HELD`) beside it; a failure names when its
        retry is due (`retry_at`), so a rerun of the attempt schedules the same retry."""
        suffix = ":held" if outcome == HELD else ""  # the outcome comes later, on the attempt
        doc = {
            "_id": _record_id(channel, target, notification_id, attempt, replay) + suffix,
            "channel": channel.value,
            "target": target,
            "notification_id": notification_id,
            "attempt": attempt,
            "retry": attempt > 0,
            "outcome": outcome,
            "error": error,
            "status": status,
            "at": at,
        }
        if retry_at is not None:
            doc["retry_at"] = retry_at
        with contextlib.suppress(DuplicateKeyError):  # fired again after a takeover: once
            await self.collection.insert_one(doc)

    async def outcome(
        self,
        channel: Channel,
        target: str,
        notification_id: str,
        attempt: int,
        *,
        replay: str | None = None,
    ) -> Document | None:
        """The attempt's outcome record, if it has concluded (a hold is not an outcome)."""
        return await self.collection.find_one(
            {"_id": _record_id(channel, target, notification_id, attempt, replay)}
        )

    async def of(self, notification_id: str) -> list[Document]:
        cursor = self.collection.find({"notification_id": notification_id}).sort("at", 1)
        return [dict(d) async for d in cursor]

    async def disable(self, endpoint_id: str, reason: str, at: datetime) -> bool:
        try:
            await self.disabled.insert_one({"_id": endpoint_id, "reason": reason, "at": at})
            return True
        except DuplicateKeyError:
            return False

    async def enable(self, endpoint_id: str) -> bool:
        """An operator re-enables an endpoint (its receiver is fixed); False if it was not
        disabled."""
        done = await self.disabled.delete_one({"_id": endpoint_id})
        return done.deleted_count > 0

    async def is_disabled(self, endpoint_id: str) -> bool:
        return await self.disabled.find_one({"_id": endpoint_id}) is not None

    async def disabled_by_answers(self, endpoint_id: str) -> Document | None:
        """Why and when the receiver's answers disabled the endpoint (None: they did not)."""
        found = await self.disabled.find_one({"_id": endpoint_id}, {"_id": 0})
        return dict(found) if found else None

    async def health(self) -> dict[str, Any]:
        """Per channel: attempts by outcome (and holds), success rate, retries pending;
        disabled endpoints. A few equality counts (pushed down to the server).

        Every failed attempt schedules exactly one next attempt, whose outcome is recorded
        once: the retries still pending are the failures less the retries' outcomes (a hold
        concludes nothing, so a held retry is still pending)."""
        channels: dict[str, Any] = {}
        for channel in (Channel.EMAIL, Channel.WEBHOOK):
            counts = {
                outcome: await self.collection.count_documents(
                    {"channel": channel.value, "outcome": outcome}
                )
                for outcome in (*ATTEMPT_OUTCOMES, HELD)
            }
            retries = 0
            for outcome in ATTEMPT_OUTCOMES:
                retries += await self.collection.count_documents(
                    {"channel": channel.value, "outcome": outcome, "retry": True}
                )
            tried = counts["delivered"] + counts["failed"] + counts["gave_up"] + counts["disabled"]
            channels[channel.value] = {
                **counts,
                "success_rate": counts["delivered"] / tried if tried else None,
                "retries_pending": max(0, counts["failed"] - retries),
            }
        disabled = [dict(d) async for d in self.disabled.find({})]
        return {"channels": channels, "disabled_endpoints": disabled}


class EndpointSource(Protocol):
    """The webhook endpoints (`application.webhook_endpoints.WebhookEndpoints`)."""

    async def active(self) -> list[Endpoint]:
        """Where deliveries go now, each with the secrets that sign now."""
        ...

    async def get(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint if a delivery may go to it now (None: unknown, or disabled)."""
        ...

    async def known(self, endpoint_id: str) -> bool: ...


class Deliveries:
    def __init__(
        self,
        *,
        deadlines: Deadlines,
        staff: StaffDirectory,
        sites: SiteZones,
        log_: DeliveryLog,
        clock: Clock,
        public_url: str,
        mailer: SmtpMailer | None,
        webhooks: WebhookSender,
        endpoints: EndpointSource,
        routing: Routing,
        inbox: Inbox,
        cases: CaseFacts,
        alerts: AlertStatuses,
        quiet: QuietHours | None = None,
        default_timezone: str = "Europe/London",
        digest_hour: int = 8,
        rng: random.Random | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.deadlines = deadlines
        self.staff = staff
        self.sites = sites
        self.log = log_
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self.mailer = mailer
        self.webhooks = webhooks
        self.endpoints = endpoints
        self.routing = routing
        self.inbox = inbox
        self.cases = cases
        self.alerts = alerts
        self.quiet = quiet or QuietHours()
        self.default_timezone = default_timezone
        self.digest_hour = digest_hour
        self.rng = rng or random.Random()
        self.endpoints_disabled = Counter(
            "casework_notifications_webhook_endpoints_disabled_total",
            "Webhook endpoints disabled by their receivers' answers (an operator notice): "
            "nothing is sent to them until an operator enables them again.",
            ["reason"],
            registry=registry,
        )

    async def _concluded(
        self,
        channel: Channel,
        target: str,
        notification_id: str,
        attempt: int,
        retry: Callable[[datetime], Awaitable[None]],
        *,
        replay: str | None = None,
    ) -> bool:
        """Whether this attempt has concluded already: the deadline fired again because the
        process that ran it died before the scheduler stored it done.

        **Invariant: an attempt that has an outcome is never sent again.** Its rerun sends
        nothing; if it failed, its retry is scheduled again as its record says (the same key,
        due time and payload: nothing changes when it was scheduled, and a retry that has
        fired does not fire again). Before this, a process killed after a failed attempt's
        retry was scheduled sent twice once the server was back — the rerun and the retry
        (`test_kill_resume.py`: 62 e-mails for 60 notifications, twice in ten runs). The one
        window left: killed after a successful send, before its record — sent again under the
        same `Message-ID` / `webhook-id`."""
        done = await self.log.outcome(channel, target, notification_id, attempt, replay=replay)
        if done is None:
            return False
        if done["outcome"] == "failed" and done.get("retry_at") is not None:
            await retry(done["retry_at"])
        return True

    def _notice_disabled(self, endpoint_id: str, reason: str, what: str) -> None:
        """The operator notice of an endpoint the receiver's answers disabled: a warning in
        the log, a counter to alert on, and `disabled_by_answers` in `GET /webhooks`."""
        self.endpoints_disabled.labels(reason).inc()
        log.warning(
            "operator notice: webhook endpoint %s %s and is disabled until enabled again",
            endpoint_id,
            what,
        )

    # -- planning ---------------------------------------------------------------------------

    async def plan(self, event: NotificationSent) -> None:
        """Schedule the first attempt on each channel of the notification (idempotent)."""
        base = _payload(event)
        rule, _ = self.routing.rule(event.trigger, event.site)
        if Channel.EMAIL in event.channels and self.mailer is not None:
            if rule.digest:
                await self._plan_digests(event)
            else:
                key = f"email:{event.notification_id}#0"
                await self.deadlines.schedule(key, EMAIL, event.sent_at, {**base, "attempt": 0})
        if Channel.WEBHOOK in event.channels:
            for endpoint in await self.endpoints.active():
                if endpoint.triggers and event.trigger.value not in endpoint.triggers:
                    continue
                if endpoint.site is not None and endpoint.site != event.site:
                    continue
                key = f"webhook:{endpoint.endpoint_id}:{event.notification_id}#0"
                payload = {**base, "attempt": 0, "endpoint_id": endpoint.endpoint_id}
                await self.deadlines.schedule(key, WEBHOOK, event.sent_at, payload)

    async def replay(self, endpoint_id: str, notification_id: str) -> str | None:
        """Send a webhook delivery again (an operator asked): a new deadline, due now, with
        the first attempt's message; None when there was no such delivery."""
        if not await self.endpoints.known(endpoint_id):
            return None
        first = await self.deadlines.collection.find_one(
            {"_id": f"webhook:{endpoint_id}:{notification_id}#0"}
        )
        if first is None or not first.get("payload"):
            return None
        payload = dict(first["payload"])
        replay = self.clock.now().strftime("%Y%m%dT%H%M%S%f")
        key = f"webhook:{endpoint_id}:{notification_id}#replay-{replay}"
        await self.deadlines.schedule(
            key, WEBHOOK, self.clock.now(), {**payload, "attempt": 0, "replay": replay}
        )
        return key

    # -- e-mail -----------------------------------------------------------------------------

    async def on_email_due(self, deadline: Deadline) -> None:
        """Send one attempt of a notification's e-mail. In the recipient's quiet hours a
        notice that may wait (never a crisis: `QuietHours.release_at`) is held — recorded
        `held` and due again, as a deadline of its own, when they end; the released attempt
        is sent without asking again. A failed send is recorded and retried with backoff;
        each retry meets the quiet hours afresh."""
        p = dict(deadline.payload)
        nid, attempt, recipient = (
            str(p["notification_id"]),
            int(p["attempt"]),
            str(p["recipient_id"]),
        )
        now = self.clock.now()

        async def retry(due: datetime) -> None:
            # meets the quiet hours afresh: a hold released at 07:00 into an SMTP outage
            # must not send its retries into the next night
            next_try = {**p, "attempt": attempt + 1, "held": False}
            await self.deadlines.schedule(f"email:{nid}#{attempt + 1}", EMAIL, due, next_try)

        if await self._concluded(Channel.EMAIL, recipient, nid, attempt, retry):
            return
        member = await self.staff.get(recipient)
        address = member.email if member is not None else None
        if not address or self.mailer is None:
            await self.log.record(
                Channel.EMAIL, recipient, nid, attempt, "skipped", now, error="NoAddress"
            )
            return
        if not p.get("held"):
            tz = await self._zone_of(member)
            release = self.quiet.release_at(now, tz, Urgency(str(p["urgency"])))
            if release > now:  # the recipient's quiet hours: hold it until they end
                await self.log.record(Channel.EMAIL, recipient, nid, attempt, HELD, now)
                await self.deadlines.schedule(
                    f"email:{nid}#{attempt}-held", EMAIL, release, {**p, "held": True}
                )
                return
        subject, body = self._email(p)
        try:
            await self.mailer.send(address, subject, body, _message_id(f"email:{nid}"))
        except (OSError, smtplib.SMTPException) as exc:
            if attempt + 1 >= EMAIL_MAX_ATTEMPTS:
                await self.log.record(
                    Channel.EMAIL, recipient, nid, attempt, "gave_up", now, error=type(exc).__name__
                )
                log.warning("e-mail of %s abandoned after %d attempts", nid, attempt + 1)
                return
            due = now + jittered(email_backoff(attempt), self.rng)
            error = type(exc).__name__
            await self.log.record(
                Channel.EMAIL, recipient, nid, attempt, "failed", now, error=error, retry_at=due
            )
            await retry(due)
            return
        await self.log.record(Channel.EMAIL, recipient, nid, attempt, "delivered", now)

    def _email(self, p: dict[str, Any]) -> tuple[str, str]:
        trigger = str(p["trigger"]).replace("_", " ")
        urgency = str(p["urgency"]).upper()
        case = f" - case {p['case_id']}" if p.get("case_id") else ""
        subject = f"[Casework] {urgency}: {trigger}{case}"
        link = f"{self.public_url}/alerts/{p['alert_id']}"
        body = (
            f"{urgency}: {trigger} at site {p['site']}{case}.\n\n"
            f"Open it and acknowledge if you take responsibility:\n{link}\n\n"
            f"Notification {p['notification_id']}.\n"
        )
        return subject, body

    # -- digests ----------------------------------------------------------------------------

    async def _zone_of(self, member: StaffMember | None) -> ZoneInfo:
        """The person's timezone: their own, else their (first) site's, else the agency's."""
        if member is None:
            return local_zone(None, None, self.default_timezone)
        site = await self.sites.timezone(member.sites[0]) if member.sites else None
        return local_zone(member.timezone, site, self.default_timezone)

    async def _tz(self, staff_id: str) -> ZoneInfo:
        return await self._zone_of(await self.staff.get(staff_id))

    async def _plan_digests(self, event: NotificationSent) -> None:
        """The recipient's next daily digest, and their supervisors' next weekly one
        (scheduling what is scheduled changes nothing: one digest per person per period)."""
        recipient = event.recipient_id
        due = next_local(event.sent_at, await self._tz(recipient), self.digest_hour)
        await self.deadlines.schedule(
            f"digest:daily:{recipient}", DIGEST, due, {"recipient_id": recipient, "kind": "daily"}
        )
        for supervisor in await self.staff.supervisors_of(recipient, event.sent_at):
            tz = await self._tz(supervisor)
            due = next_local(event.sent_at, tz, self.digest_hour, weekday=0)
            await self.deadlines.schedule(
                f"digest:weekly:{supervisor}",
                DIGEST,
                due,
                {"recipient_id": supervisor, "kind": "weekly"},
            )

    async def digest_items(self, person: str, since: datetime, until: datetime) -> list[Document]:
        """The person's overdue notices sent in [since, until), on cases that are theirs now,
        or their supervisees' (a case reassigned since is the new worker's business), and not
        over since (a notice whose alert episode has closed — every overdue contact it counted
        made or no longer owed — is left out; an acknowledged one stays). A notice
        is a digest's when its rule at its site says so — the same rule `plan` read when it
        planned the digest instead of an e-mail, so a site that digests what the agency e-mails
        gets its notices in the digest, never in neither."""
        scope = {person, *await self.staff.supervisees_of(person, until)}
        entries = [
            entry
            for entry in await self.inbox.between(person, since, until)
            if self._digested(str(entry["trigger"]), str(entry["site"]))
        ]
        alerts = await self.alerts.get_many(list({str(e["alert_id"]) for e in entries}))
        items: list[Document] = []
        for entry in entries:
            alert = alerts.get(str(entry["alert_id"])) or {}
            if alert.get("episode") == entry.get("episode") and alert.get("status") == "closed":
                continue  # over since (the overdue contact made): nothing to chase
            case_id = entry.get("case_id")
            if case_id:
                facts = await self.cases.get(str(case_id)) or {}
                if facts.get("caseworker_id") not in (None, *scope):
                    continue
            items.append(entry)
        return items

    def _digested(self, trigger: str, site: str) -> bool:
        try:
            rule, _ = self.routing.rule(Trigger(trigger), site)
        except ValueError:  # a trigger this version does not know
            return False
        return rule.digest

    async def on_digest_due(self, deadline: Deadline) -> None:
        """Send one digest. A failed send is recorded and tried again as the next attempt,
        a deadline of its own (as an e-mail is), for the same period."""
        p = dict(deadline.payload)
        recipient, kind = str(p["recipient_id"]), str(p["kind"])
        attempt = int(p.get("attempt", 0))
        until = datetime.fromisoformat(str(p["until"])) if "until" in p else deadline.due_at
        digest_id = f"digest:{kind}:{recipient}:{until.strftime('%Y%m%d')}"

        async def retry(due: datetime) -> None:
            next_try = {**p, "attempt": attempt + 1, "until": until.isoformat()}
            await self.deadlines.schedule(f"{digest_id}#{attempt + 1}", DIGEST, due, next_try)

        if await self._concluded(Channel.EMAIL, recipient, digest_id, attempt, retry):
            return
        member = await self.staff.get(recipient)
        if self.mailer is None or member is None or not member.email:
            await self.log.record(
                Channel.EMAIL,
                recipient,
                digest_id,
                attempt,
                "skipped",
                self.clock.now(),
                error="NoAddress",
            )
            return
        if kind == "daily":
            sections = {recipient: await self.digest_items(recipient, until - DAY, until)}
        else:
            workers = await self.staff.supervisees_of(recipient, until)
            sections = {w: await self.digest_items(w, until - 7 * DAY, until) for w in workers}
        sections = {w: items for w, items in sections.items() if items}
        if not sections:
            await self.log.record(
                Channel.EMAIL,
                recipient,
                digest_id,
                attempt,
                "skipped",
                self.clock.now(),
                error="Empty",
            )
            return
        lines = [f"Overdue work, {kind} digest to {until.date().isoformat()}:", ""]
        for worker, items in sorted(sections.items()):
            if kind == "weekly":
                lines.append(f"{worker}:")
            for item in items:
                trigger = str(item["trigger"]).replace("_", " ")
                link = f"{self.public_url}/alerts/{item['alert_id']}"
                lines.append(f"- {trigger}, case {item.get('case_id')}: {link}")
            lines.append("")
        count = sum(len(v) for v in sections.values())
        subject = f"[Casework] {count} overdue notice(s): {kind} digest"
        now = self.clock.now()
        try:
            await self.mailer.send(member.email, subject, "\n".join(lines), _message_id(digest_id))
        except (OSError, smtplib.SMTPException) as exc:
            error = type(exc).__name__
            if attempt + 1 >= EMAIL_MAX_ATTEMPTS:
                await self.log.record(
                    Channel.EMAIL, recipient, digest_id, attempt, "gave_up", now, error=error
                )
                log.warning("digest %s abandoned after %d attempts", digest_id, attempt + 1)
                return
            due = now + jittered(email_backoff(attempt), self.rng)
            await self.log.record(
                Channel.EMAIL,
                recipient,
                digest_id,
                attempt,
                "failed",
                now,
                error=error,
                retry_at=due,
            )
            await retry(due)
            return
        await self.log.record(Channel.EMAIL, recipient, digest_id, attempt, "delivered", now)

    # -- webhooks ---------------------------------------------------------------------------

    async def on_webhook_due(self, deadline: Deadline) -> None:
        p = dict(deadline.payload)
        nid, attempt = str(p["notification_id"]), int(p["attempt"])
        endpoint_id = str(p["endpoint_id"])
        replay = p.get("replay")
        now = self.clock.now()
        endpoint = await self.endpoints.get(endpoint_id)

        async def record(outcome: str, **more: Any) -> None:
            await self.log.record(
                Channel.WEBHOOK, endpoint_id, nid, attempt, outcome, now, replay=replay, **more
            )

        async def retry(due: datetime) -> None:
            key = f"webhook:{endpoint_id}:{nid}#{attempt + 1}"
            await self.deadlines.schedule(key, WEBHOOK, due, {**p, "attempt": attempt + 1})

        concluded = self._concluded(
            Channel.WEBHOOK, endpoint_id, nid, attempt, retry, replay=replay
        )
        if await concluded:
            return

        if endpoint is None or await self.log.is_disabled(endpoint_id):
            known = endpoint is not None or await self.endpoints.known(endpoint_id)
            await record("skipped", error="EndpointDisabled" if known else "UnknownEndpoint")
            return
        msg_id = _message_id(f"webhook:{endpoint_id}:{nid}")
        body = {
            "type": f"notification.{p['trigger']}",
            "timestamp": str(p["sent_at"]),
            "data": {
                "notification_id": nid,
                "alert_id": p["alert_id"],
                "recipient_id": p["recipient_id"],
                "trigger": p["trigger"],
                "urgency": p["urgency"],
                "case_id": p.get("case_id"),
                "site": p["site"],
                "step": p["step"],
                "link": f"{self.public_url}/alerts/{p['alert_id']}",
            },
        }
        status: int | None = None
        error: str | None = None
        try:
            response = await self.webhooks.send(endpoint, msg_id, int(now.timestamp()), body)
            status = response.status
        except TargetRefused:
            await record("skipped", error="TargetRefused")
            return
        except (httpx.HTTPError, OSError) as exc:
            error = type(exc).__name__
        if status is not None and 200 <= status < 300:
            await record("delivered", status=status)
            return
        if status == 410:
            await record("disabled", status=status)
            if await self.log.disable(endpoint_id, "410 Gone", now):
                self._notice_disabled(endpoint_id, "410 Gone", "answered 410 Gone")
            return
        if replay or attempt >= len(WEBHOOK_SCHEDULE):
            await record("gave_up", status=status, error=error)
            if not replay and await self.log.disable(endpoint_id, "failing for days", now):
                self._notice_disabled(
                    endpoint_id, "failing for days", "failed every attempt for about three days"
                )
            return
        due = now + jittered(WEBHOOK_SCHEDULE[attempt], self.rng)
        await record("failed", status=status, error=error, retry_at=due)
        await retry(due)


def _payload(event: NotificationSent) -> dict[str, Any]:
    return {
        "notification_id": event.notification_id,
        "alert_id": event.alert_id,
        "recipient_id": event.recipient_id,
        "trigger": event.trigger.value,
        "urgency": event.urgency.value,
        "case_id": event.case_id,
        "site": event.site,
        "step": event.step,
        "sent_at": event.sent_at.isoformat(),
    }


def _record_id(
    channel: Channel, target: str, notification_id: str, attempt: int, replay: str | None
) -> str:
    """An attempt's outcome record: channel, target, notification or digest, attempt."""
    suffix = f"#{replay}" if replay else ""
    return f"{channel.value}:{target}:{notification_id}:{attempt}{suffix}"


def _message_id(seed: str) -> str:
    return "msg_" + hashlib.sha256(seed.encode()).hexdigest()[:32]


class WhenNotificationSentDeliver(EventHandler):
    """Plans each notification's e-mail and webhook deliveries (see the module doc)."""

    name = "when_notification_sent_deliver"
    topics = (events_topic("notifications"),)

    def __init__(self, deliveries: Deliveries) -> None:
        self._deliveries = deliveries

    async def ensure_indexes(self) -> None:
        await self._deliveries.log.ensure_indexes()

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, NotificationSent):
            return False
        await self._deliveries.plan(event)
        return True
