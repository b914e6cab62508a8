"""Database commands supervision's and notifications' consumers spend per case event.

A profile, not a throughput benchmark: counts do not depend on the machine's load, so they
compare across code versions on a shared machine. Builds both services in-process (their
real composition roots, on the real MongoDB-wire server; no Kafka: records are handed to the
handlers directly, in stream order) and runs `--cases` cases round the lifecycle the
lifecycle benchmark drives (open, assign, assessment, plan, plan approved, goal progress,
notes, closure requested, closed, reopened), the two approvals granted through
`Approvals.grant` as the supervisor's HTTP command would. Every case event goes to each
handler of either service that reads the cases topic; every commit the services store
goes on to the handlers of the topics it is published on, until nothing new is stored.
Commands are counted by the services' own `DatabaseCommandMeter` (`casework_db_commands_total`),
attributed to the handler (or the grant) running at the time. Idle polling (relays, audit
relays, deadline schedulers) does not run here: the figures are the event-driven work only.

    uv run --no-sync python bench/policy_reads.py --mongo-url mongodb://127.0.0.1:27017
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from casework.auth import Principal
from casework.contracts.cases import (
    AssessmentRecorded,
    CaseClosed,
    CaseEvent,
    CaseNoteRecorded,
    CaseOpened,
    CaseOutcome,
    CasePlanApproved,
    CasePlanProposed,
    CaseReopened,
    CaseworkerAssigned,
    ClosureRequested,
    Goal,
    GoalProgress,
    GoalProgressRecorded,
)
from casework.contracts.common import RiskLevel
from casework.envelope import Envelope
from casework.eventstore import CommitContext, Document
from casework.projections import EventHandler
from casework.runtime import ServiceRuntime, events_topic
from casework.settings import Settings

SITE = "north"
TEAM = "t1"
SUE = Principal(
    sub="sue", name="sue", roles=frozenset({"supervisor"}), sites=frozenset({SITE}), team=TEAM
)


def _settings(service: str, namespace: str, mongo: str) -> Settings:
    return Settings.for_service(
        service,
        0,
        namespace=namespace,
        mongo_url=mongo,
        mongo_database=f"{namespace}_{service}",
        environment="test",
    )


def _total(runtime: ServiceRuntime) -> Counter[str]:
    counts: Counter[str] = Counter()
    for metric in runtime.metrics.db_commands.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                counts[f"{sample.labels['collection']} {sample.labels['command']}"] += int(
                    sample.value
                )
    return counts


def lifecycle(case_id: str, t0: datetime) -> list[tuple[CaseEvent | str, str]]:
    """The lifecycle benchmark's round, as the cases service's events (and the two grants)."""
    at = t0
    goal = Goal(
        goal_id="g1", description="Keep the tenancy", target_date=(t0 + timedelta(90)).date()
    )
    return [
        (
            CaseOpened(
                case_id=case_id,
                client_id=f"client-{case_id}",
                referral_id=f"ref-{case_id}",
                site=SITE,
                risk_level=RiskLevel.MEDIUM,
                opened_at=at,
            ),
            "open",
        ),
        (
            CaseworkerAssigned(
                case_id=case_id, caseworker_id="carl", team=TEAM, assigned_by="mia", assigned_at=at
            ),
            "assign",
        ),
        (
            AssessmentRecorded(
                case_id=case_id,
                assessment_id="as1",
                needs={"housing": "rent arrears"},
                narrative="-",
                recorded_by="carl",
                recorded_at=at,
                client_id=f"client-{case_id}",
            ),
            "assessment",
        ),
        (
            CasePlanProposed(
                case_id=case_id,
                plan_version=1,
                goals=(goal,),
                interventions=(),
                proposed_by="carl",
                proposed_at=at,
                client_id=f"client-{case_id}",
            ),
            "propose plan",
        ),
        ("grant:plan:1", "approve plan (grant)"),
        (
            CasePlanApproved(case_id=case_id, plan_version=1, approved_by="sue", approved_at=at),
            "plan approved",
        ),
        *[
            (
                GoalProgressRecorded(
                    case_id=case_id,
                    goal_id="g1",
                    progress=GoalProgress.IN_PROGRESS,
                    recorded_by="carl",
                    recorded_at=at,
                    client_id=f"client-{case_id}",
                )
                if kind == "goal progress"
                else CaseNoteRecorded(
                    case_id=case_id,
                    note_id=f"n{i}",
                    text="-",
                    recorded_by="carl",
                    recorded_at=at,
                    client_id=f"client-{case_id}",
                ),
                kind,
            )
            for i, kind in enumerate(("goal progress", "note", "note", "goal progress", "note"))
        ],
        (
            ClosureRequested(
                case_id=case_id,
                outcome=CaseOutcome.GOALS_MET,
                evaluation="-",
                requested_by="carl",
                requested_at=at,
                client_id=f"client-{case_id}",
            ),
            "request closure",
        ),
        ("grant:closure", "approve closure (grant)"),
        (
            CaseClosed(
                case_id=case_id, outcome=CaseOutcome.GOALS_MET, approved_by="sue", closed_at=at
            ),
            "closed",
        ),
        (
            CaseReopened(case_id=case_id, reason="-", reopened_by="carl", reopened_at=at),
            "reopen",
        ),
    ]


class Profile:
    def __init__(self, services: dict[str, ServiceRuntime]) -> None:
        self.services = services
        self.by_handler: Counter[str] = Counter()
        self.by_step: Counter[str] = Counter()
        self.by_collection: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.published: dict[str, set[str]] = {s: set() for s in services}

    def handlers(self, topic: str) -> Iterable[tuple[str, EventHandler]]:
        for service, runtime in self.services.items():
            for handler in runtime.handlers:
                if events_topic(topic) in handler.topics:
                    yield service, handler

    async def counted(self, who: str, step: str, run: Any) -> Any:
        before = {s: _total(r) for s, r in self.services.items()}
        result = await run
        for service, runtime in self.services.items():
            delta = _total(runtime) - before[service]
            n = sum(delta.values())
            self.by_handler[f"{service} {who}"] += n
            self.by_step[step] += n
            for k, v in delta.items():
                self.by_collection[f"{service} {k}"] += v
        return result

    async def deliver(self, topic: str, envelope: Envelope, step: str) -> None:
        for service, handler in self.handlers(topic):
            event = self.services[service].registry.parse(envelope.type, dict(envelope.data))
            await self.counted(handler.name, step, handler.handle(envelope, event))

    async def drain(self, step: str) -> None:
        """Publish what the services stored since, as their relays would, until quiet."""
        while True:
            new = False
            for service, runtime in self.services.items():
                commits = runtime.store.commits
                async for commit in commits.find({}).sort("recorded_at", 1):
                    if commit["_id"] in self.published[service] or not commit.get("events"):
                        continue
                    self.published[service].add(commit["_id"])
                    new = True
                    for doc in commit["events"]:
                        envelope = Envelope.from_document(doc)
                        self.events[f"{service} {envelope.type.split('.')[2]}"] += 1
                        await self.deliver(service, envelope, step)
            if not new:
                return


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="policy-reads-"))
    from casework.privacy import create_key_file

    create_key_file(workdir / "kek")
    os.environ["CASEWORK_KEK_FILE"] = str(workdir / "kek")
    namespace = f"pr{uuid.uuid4().hex[:8]}"
    os.environ["CASEWORK_KEYS_MONGO_DB"] = f"{namespace}_keys"

    from casework_notifications.bootstrap import build as build_notifications
    from casework_supervision.bootstrap import build as build_supervision
    from casework_supervision.domain.approval_rules import closure_approval_id, plan_approval_id

    supervision = build_supervision(_settings("supervision", namespace, args.mongo_url))
    notifications = build_notifications(_settings("notifications", namespace, args.mongo_url))
    services = {"supervision": supervision.runtime, "notifications": notifications.runtime}
    profile = Profile(services)
    for runtime in services.values():
        for handler in runtime.handlers:
            await handler.ensure_indexes()
        await runtime.store.ensure_indexes()
    t0 = datetime.now(UTC)
    case_events = 0
    try:
        for n in range(args.cases):
            case_id = f"c{n}-{uuid.uuid4().hex[:6]}"
            version = 0  # of the case's stream
            for item, step in lifecycle(case_id, t0):
                if isinstance(item, str):  # a grant, as the supervisor's command
                    approval_id = (
                        plan_approval_id(case_id, 1)
                        if item == "grant:plan:1"
                        else closure_approval_id(case_id, version)  # the request's version
                    )
                    await profile.counted(
                        "grant (HTTP)",
                        step,
                        supervision.approvals.grant(approval_id, SUE, None, CommitContext()),
                    )
                else:
                    case_events += 1
                    version += 1
                    envelope = Envelope(
                        type=item.type_name(),
                        source="/casework/cases",
                        subject=f"case-{case_id}",
                        time=t0,
                        data=item.model_dump(mode="json"),
                        stream_version=version,
                        site=SITE,
                    )
                    await profile.deliver("cases", envelope, step)
                await profile.drain(step)
    finally:
        client: AsyncMongoClient[Document] = AsyncMongoClient(args.mongo_url)
        for name in await client.list_database_names():
            if name.startswith(namespace):
                await client.drop_database(name)
        await client.close()
    total = sum(profile.by_handler.values())
    per = case_events
    print(f"\n{args.label}: {args.cases} cases round the lifecycle, {per} case events")
    print(f"database commands per case event, both services: {total / per:.2f}")
    for service in services:
        n = sum(v for k, v in profile.by_handler.items() if k.startswith(service + " "))
        print(f"  {service}: {n / per:.2f}")
    print("\n| handler | commands per case event |\n|---|---:|")
    for k, v in sorted(profile.by_handler.items(), key=lambda kv: -kv[1]):
        if v:
            print(f"| {k} | {v / per:.2f} |")
    print("\n| step of the round | commands per case (both services) |\n|---|---:|")
    for k, v in profile.by_step.items():
        print(f"| {k} | {v / args.cases:.1f} |")
    print("\n| collection and command | per case event |\n|---|---:|")
    for k, v in sorted(profile.by_collection.items(), key=lambda kv: -kv[1])[:25]:
        if v:
            print(f"| {k} | {v / per:.2f} |")
    print("\nevents the services stored:", dict(profile.events))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mongo-url", default="mongodb://127.0.0.1:27017")
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--label", default="policy reads")
    asyncio.run(main(parser.parse_args()))
