"""The case timeline: every event of a case, from its referral on, readable by a person.

One document per event, inserted once: a redelivery hits the unique `_id` and changes
nothing. Intake events before the acceptance carry no case id, so a case's timeline is the
entries of its case stream plus those of its referral's, merged and put in order when read;
which topic was read first therefore does not matter.

The `_id` is the event's place in its stream, `<stream id>:<version>` (as unique as the event
id, which is kept in `event_id`). A timeline is read by equality on the indexed `stream`
field, one query per stream of the case (its own and its referral's): FerretDB hands the
equality to PostgreSQL (on PostgreSQL; on SQLite it filters in Go), and with the GIN indexes
of `scripts/ferretdb-indexes.sh` PostgreSQL answers it from an index, so the cost is the
case's own entries, however many other cases' entries the collection holds. The case and
referral summaries say which streams feed a case.

The client registry's events (`ClientRegistered`) are not projected: they belong to the
client, who may have several cases over the years, not to one case.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from casework.contracts.cases import (
    AssessmentRecorded,
    AssessmentReturned,
    AssessmentSignedOff,
    BreakGlassUsed,
    CaseClosed,
    CaseNoteRecorded,
    CaseOpened,
    CasePlanApproved,
    CasePlanProposed,
    CasePlanReturned,
    CaseReopened,
    CaseTransferAccepted,
    CaseTransferRejected,
    CaseTransferRequested,
    CaseworkerAssigned,
    ClosureRequested,
    ClosureReturned,
    CrisisDeclared,
    CrisisResolved,
    GoalProgressRecorded,
    InpatientAdmissionRecorded,
    InpatientDischargeRecorded,
    RiskLevelChanged,
)
from casework.contracts.contacts import (
    ContactCancelled,
    ContactCorrected,
    ContactLogged,
    ContactMissed,
    ContactOverdue,
    ContactScheduled,
    LoneWorkerCheckedIn,
    LoneWorkerCheckedOut,
    LoneWorkerOverdue,
)
from casework.contracts.intake import (
    ClientMatchConfirmed,
    ClientMatchOverridden,
    ClientRegistered,
    DuplicateClientsFound,
    ReferralAccepted,
    ReferralDeclined,
    ReferralReceived,
    RiskScreened,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import Projection
from casework.runtime import events_topic

from casework_cases.adapters.read_models.documents import as_utc, escape_keys, unescape_keys

CONTACT_EVENTS_SHOWN = (
    ContactScheduled,
    ContactLogged,
    ContactMissed,
    ContactCancelled,
    ContactCorrected,
    LoneWorkerCheckedIn,
    LoneWorkerCheckedOut,
    LoneWorkerOverdue,
    ContactOverdue,
)
"""The contacts service's events a case timeline shows."""


def _words(value: str) -> str:
    return value.replace("_", " ")


def _sentence(class_name: str) -> str:
    """`CaseAlreadyClosed` -> "Case already closed"."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", class_name).capitalize()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _for(supervisor: str | None) -> str:
    return f" for {supervisor}" if supervisor else ""


def describe(event: DomainEvent) -> str:
    """One line saying what happened, without the sensitive free text (that is in `detail`)."""
    match event:
        case ReferralReceived():
            return (
                f"Referral received from {_words(event.source)} (urgency {event.urgency}) "
                f"by {event.received_by}"
            )
        case DuplicateClientsFound():
            n = len(event.candidate_client_ids)
            return f"{_plural(n, 'possible duplicate client')} found"
        case ClientMatchConfirmed():
            return f"Existing client {event.client_id} confirmed by {event.confirmed_by}"
        case ClientMatchOverridden():
            return f"Client match overridden by {event.overridden_by}: a new person"
        case RiskScreened():
            return f"Risk screened by {event.screened_by}: {event.risk_level} ({event.rule})"
        case ReferralAccepted():
            return f"Referral accepted by {event.accepted_by}"
        case ReferralDeclined():
            return f"Referral declined by {event.declined_by}"
        case CaseOpened():
            risk = f" (risk {event.risk_level})" if event.risk_level else ""
            return f"Case opened at {event.site}{risk}"
        case CaseworkerAssigned():
            team = f" (team {event.team})" if event.team else ""
            was = (
                f", replacing {event.previous_caseworker_id}"
                if event.previous_caseworker_id
                else ""
            )
            return f"Caseworker {event.caseworker_id} assigned{team} by {event.assigned_by}{was}"
        case CaseTransferRequested():
            return (
                f"Transfer from {event.from_site} to {event.to_site} requested "
                f"by {event.requested_by}"
            )
        case CaseTransferAccepted():
            return (
                f"Transfer from {event.from_site} to {event.to_site} accepted "
                f"by {event.accepted_by}"
            )
        case CaseTransferRejected():
            return f"Transfer to {event.to_site} rejected by {event.rejected_by}"
        case AssessmentRecorded():
            return f"Assessment recorded by {event.recorded_by}"
        case CasePlanProposed():
            return (
                f"Plan v{event.plan_version} proposed by {event.proposed_by}: "
                f"{_plural(len(event.goals), 'goal')}, "
                f"{_plural(len(event.interventions), 'intervention')}"
            )
        case AssessmentSignedOff():
            return f"Assessment signed off by {event.signed_off_by}{_for(event.on_behalf_of)}"
        case AssessmentReturned():
            return f"Assessment returned by {event.returned_by}{_for(event.on_behalf_of)}"
        case CasePlanApproved():
            return (
                f"Plan v{event.plan_version} approved by {event.approved_by}"
                f"{_for(event.on_behalf_of)}"
            )
        case CasePlanReturned():
            return (
                f"Plan v{event.plan_version} returned for revision by {event.returned_by}"
                f"{_for(event.on_behalf_of)}"
            )
        case GoalProgressRecorded():
            return (
                f"Goal {event.goal_id}: {_words(event.progress)}, recorded by {event.recorded_by}"
            )
        case RiskLevelChanged():
            was = f" from {event.previous_level}" if event.previous_level else ""
            return f"Risk level changed{was} to {event.risk_level} by {event.changed_by}"
        case CrisisDeclared():
            return f"Crisis declared by {event.declared_by}: risk {event.risk_level}"
        case CrisisResolved():
            return f"Crisis resolved by {event.resolved_by}"
        case CaseNoteRecorded():
            if event.addendum_to:
                return f"Addendum to note {event.addendum_to} recorded by {event.recorded_by}"
            return f"Case note recorded by {event.recorded_by}"
        case ClosureRequested():
            return f"Closure requested by {event.requested_by}: {_words(event.outcome)}"
        case ClosureReturned():
            return f"Closure returned by {event.returned_by}{_for(event.on_behalf_of)}"
        case CaseClosed():
            return (
                f"Case closed by {event.approved_by}{_for(event.on_behalf_of)}: "
                f"{_words(event.outcome)}"
            )
        case CaseReopened():
            return f"Case reopened by {event.reopened_by}"
        case BreakGlassUsed():
            return (
                f"Break-glass access by {event.used_by} (emergency, outside their reach): "
                "for review by the case's supervisor"
            )
        case ClientRegistered():
            return f"Client {event.client_id} registered"
        case InpatientAdmissionRecorded():
            return f"Inpatient admission recorded by {event.recorded_by}"
        case InpatientDischargeRecorded():
            return f"Discharge from inpatient care recorded by {event.recorded_by}"
        case ContactScheduled():
            return f"{_words(event.medium).capitalize()} scheduled for {event.assigned_to}"
        case ContactLogged():
            how = _words(event.medium)
            if event.outcome == "made":
                return f"Contact made ({how}), logged by {event.logged_by}"
            reason = f": {_words(event.attempt_reason)}" if event.attempt_reason else ""
            return f"Contact attempted ({how}){reason}, logged by {event.logged_by}"
        case ContactMissed():
            return f"Scheduled contact missed: {_words(event.reason)}"
        case ContactCancelled():
            return f"Scheduled contact cancelled by {event.cancelled_by}: {_words(event.reason)}"
        case ContactCorrected():
            return f"Contact record corrected ({_words(event.kind)}) by {event.corrected_by}"
        case LoneWorkerCheckedIn():
            return f"{event.worker_id} checked in at a home visit"
        case LoneWorkerCheckedOut():
            return f"{event.worker_id} checked out of a home visit"
        case LoneWorkerOverdue():
            return f"{event.worker_id} did not check out of a home visit in time"
        case ContactOverdue():
            return f"Contact overdue under rule {event.rule_id}"
    return _sentence(type(event).__name__)  # an event newer than this code


def actor(event: DomainEvent) -> str | None:
    """Who did it: the event's `…_by` field, if it has one."""
    for name in type(event).model_fields:
        if name.endswith("_by"):
            value = getattr(event, name)
            if isinstance(value, str):
                return value
    return None


def entry_id(stream: str, version: int) -> str:
    """The `_id` of the entry of the event at `version` of `stream`."""
    return f"{stream}:{version:010d}"


def entry(envelope: Envelope, event: DomainEvent) -> Document | None:
    """The timeline document of one event, or None for an event of no case or referral."""
    case_id = getattr(event, "case_id", None)
    referral_id = getattr(event, "referral_id", None)
    if case_id is None and referral_id is None:
        return None
    return {
        "_id": entry_id(envelope.subject, envelope.stream_version),
        "event_id": envelope.id,
        "case_id": case_id,
        "referral_id": referral_id,
        "stream": envelope.subject,
        "version": envelope.stream_version,
        "time": envelope.time,
        "type": envelope.type,
        "event": type(event).__name__,
        "source": envelope.source,
        "site": envelope.site or getattr(event, "site", None),
        "summary": describe(event),
        "actor": actor(event),
        # Everything the event says, sensitive text included: reading it is authorised and
        # audited at the HTTP edge.
        "detail": escape_keys(event.model_dump(mode="json")),
    }


def timeline_order(entry: Mapping[str, Any]) -> tuple[datetime, int, str, str]:
    """Entries by time, then stream version; stream and id only break exact ties, so that
    the order never depends on which topic was read first."""
    return (as_utc(entry["time"]), entry["version"], entry["stream"], entry["_id"])


def timeline_order_of_entry(entry: TimelineEntry) -> tuple[datetime, int, str, str]:
    """`timeline_order` of an entry already read."""
    return (entry.time, entry.version, entry.stream, entry.event_id)


class TimelineEntry(BaseModel):
    """One event on a case's timeline."""

    event_id: str
    time: datetime
    type: str = Field(description="The CloudEvents type, e.g. `casework.cases.CrisisDeclared.v1`")
    event: str = Field(description="The event's name, e.g. `CrisisDeclared`")
    stream: str = Field(description="The aggregate stream it belongs to (case or referral)")
    version: int = Field(description="Its version in that stream")
    summary: str = Field(description="What happened, in one line")
    actor: str | None = Field(default=None, description="Who did it (a staff id)")
    detail: dict[str, Any] = Field(description="The event's fields, sensitive text included")

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> TimelineEntry:
        return cls(
            event_id=doc["event_id"],
            time=as_utc(doc["time"]),
            type=doc["type"],
            event=doc["event"],
            stream=doc["stream"],
            version=doc["version"],
            summary=doc["summary"],
            actor=doc.get("actor"),
            detail=unescape_keys(doc.get("detail") or {}),
        )


class CaseTimeline(BaseModel):
    """A case's events from its referral on, oldest first."""

    case_id: str
    referral_id: str | None
    entries: list[TimelineEntry]


def merged(entries: Iterable[Mapping[str, Any]]) -> list[TimelineEntry]:
    """Entries without repeats (an entry can match both the case and the referral), in order."""
    unique = {e["_id"]: e for e in entries}
    return [TimelineEntry.from_document(e) for e in sorted(unique.values(), key=timeline_order)]


class Timeline(Projection):
    """`timeline`: one document per event of a case or a referral, from both topics."""

    name = "timeline"
    concurrent = True  # one insert per event, keyed by it: casework.projections
    topics = (events_topic("intake"), events_topic("cases"), events_topic("contacts"))

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if event.service == "contacts" and not isinstance(event, CONTACT_EVENTS_SHOWN):
            return False  # the policy's bookkeeping (opened, met, counted) stays off the page
        doc = entry(envelope, event)
        if doc is None:
            return False
        try:
            await self.read_model.collection.insert_one(doc)
        except DuplicateKeyError:
            return False  # this event is on the timeline already
        return True

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("stream", ASCENDING)])
        await self.read_model.collection.create_index([("case_id", ASCENDING)])

    async def of_case_contacts(self, case_id: str) -> list[TimelineEntry]:
        """The contacts service's entries of a case (its contact streams are not known to
        the case summary): one equality query on the indexed `case_id`."""
        cursor = self.read_model.collection.find(
            {"case_id": case_id, "source": "/casework/contacts"}
        )
        return merged([dict(d) async for d in cursor])

    async def of_streams(self, streams: Iterable[str]) -> list[TimelineEntry]:
        """Every entry of these streams, in order: one equality query per stream."""

        async def of(stream: str) -> list[Document]:
            cursor = self.read_model.collection.find({"stream": stream})
            return [dict(d) async for d in cursor]

        found = await asyncio.gather(*(of(s) for s in dict.fromkeys(streams)))
        return merged(d for docs in found for d in docs)
