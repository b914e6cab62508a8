"""The erasure process and retention on the real broker and MongoDB-wire server, with the real
key service and blind index.

- An erasure interrupted between any two of its steps (the process dying: a `BaseException`
  out of the request, the service never started again in that process) is finished by the
  next intake service to start, from the stored decision alone; each step is recorded once,
  with the key ids the key service destroyed; delivering every event of the erasure again
  changes nothing.
- Retention on a fake clock: a case closing schedules a deadline per record class, reopening
  cancels them, closing again schedules them anew; eight years on, the `notes` and `clinical`
  keys of the client are destroyed — not `identity` — with a proof record naming the rule.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from casework.auth import Principal
from casework.clock import Clock, FixedClock
from casework.contracts.cases import CaseClosed, CaseOpened, CaseOutcome, CaseReopened
from casework.contracts.common import ReferralSource, Urgency
from casework.contracts.intake import (
    ClientDetails,
    ErasureReason,
    Requester,
    ScreeningAnswers,
)
from casework.eventstore import AggregateNotFound, CommitContext
from casework.privacy import create_key_file
from casework.runtime import ServiceRuntime, topic_prefix, wait_until
from casework.settings import Settings

from casework_intake import bootstrap
from casework_intake.application.data_protection import RetentionSchedule
from casework_intake.application.policies import WhenErasureDecidedCarryOut
from casework_intake.domain.commands import (
    AcceptReferral,
    ReceiveReferral,
    RequestErasure,
    ScreenRisk,
)
from casework_intake.domain.erasure import Erasure
from support.kafka import publish as publish_to

SITE = "north"
WORKER = Principal("ivy", "Ivy", frozenset({"intake_worker"}), frozenset({SITE}), None)
NO_RISK = ScreeningAnswers(wish_to_be_dead=False, suicidal_thoughts=False)


class Crash(BaseException):
    """The process dies here (not an `Exception`: nothing in the request catches it)."""


@dataclass
class Service:
    settings: Settings
    runtime: ServiceRuntime
    apps: bootstrap.Applications


@pytest.fixture
def namespace() -> str:
    return f"era{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kek_file(tmp_path: Path) -> Path:
    path = tmp_path / "kek"
    create_key_file(path)
    return path


def settings_for(namespace: str, kafka: str, mongo: str, kek_file: Path) -> Settings:
    return Settings.for_service(
        "intake",
        bootstrap.PORT,
        environment="test",
        kafka_bootstrap_servers=kafka,
        mongo_url=mongo,
        mongo_database=f"test_{namespace}_intake",
        keys_mongo_db=f"test_{namespace}_keys",
        kek_file=kek_file,
        namespace=namespace,
        relay_poll_interval_s=0.2,
    )


@asynccontextmanager
async def intake(
    settings: Settings, clock: Clock | None = None, *, start: bool = True
) -> AsyncIterator[Service]:
    """The intake service in this process; `start=False`: its parts without consumers,
    relay or scheduler (a process that dies before any of them did anything)."""
    runtime, apps = bootstrap.build(settings, clock)
    try:
        if start:
            await runtime.start()
        else:
            await runtime.keys.verify()
            await runtime.store.ensure_indexes()
        await runtime.database["known_sites"].replace_one({"_id": SITE}, {}, upsert=True)
        yield Service(settings, runtime, apps)
    finally:
        await runtime.stop()


async def drop(settings: Settings) -> None:
    runtime, _ = bootstrap.build(settings)
    await runtime.client.drop_database(settings.database_name)
    await runtime.client.drop_database(settings.keys_mongo_db)
    await runtime.client.close()


async def accepted_client(service: Service, family_name: str) -> tuple[str, str]:
    """A referral taken, screened and accepted: (client id, case id)."""
    intake, ctx = service.apps.intake, CommitContext()
    referral = await intake.receive_referral(
        ReceiveReferral(
            referral_id=str(uuid.uuid4()),
            site=SITE,
            client=ClientDetails(
                given_name="Robin",
                family_name=family_name,
                date_of_birth=datetime(1984, 7, 3).date(),
                phone="07700 900456",
            ),
            source=ReferralSource.GP,
            presenting_concerns="Not sleeping since the accident.",
            urgency=Urgency.SOON,
            received_by="ivy",
        ),
        WORKER,
        ctx,
    )
    await intake.screen_risk(ScreenRisk(referral.id, NO_RISK, "ivy"), WORKER, ctx)
    case_id = str(uuid.uuid4())
    accepted = await intake.accept_referral(
        AcceptReferral(referral.id, "ivy", case_id, new_client_id=str(uuid.uuid4())),
        WORKER,
        ctx,
    )
    assert accepted.accepted is not None
    return accepted.accepted.client_id, case_id


def erasure_of(client_id: str) -> RequestErasure:
    return RequestErasure(
        client_id=client_id,
        erasure_id=str(uuid.uuid4()),
        reason=ErasureReason.DATA_SUBJECT_REQUEST,
        requester=Requester.DATA_SUBJECT,
        requested_by="dora",
        reference="DPO-7",
    )


class CrashingAt:
    """Wraps the key service and the blind index; dies at one point of the erasure."""

    def __init__(self, keys: Any, index: Any, at: str) -> None:
        self._keys, self._index, self._at = keys, index, at

    async def destroy(self, subject: str, **kwargs: Any) -> list[str]:
        if self._at == "before_destroy":
            raise Crash
        destroyed: list[str] = await self._keys.destroy(subject, **kwargs)
        if self._at == "after_destroy":
            raise Crash
        return destroyed

    async def forget(self, subject: str) -> int:
        if self._at == "before_forget":
            raise Crash
        deleted: int = await self._index.forget(subject)
        if self._at == "after_forget":
            raise Crash
        return deleted


@pytest.mark.parametrize(
    "crash_at", ["before_destroy", "after_destroy", "before_forget", "after_forget"]
)
async def test_an_erasure_cut_short_between_two_steps_is_finished_by_the_next_service(
    crash_at: str, namespace: str, kafka_bootstrap: str, mongo_url: str, kek_file: Path
) -> None:
    settings = settings_for(namespace, kafka_bootstrap, mongo_url, kek_file)
    try:
        # the first process: takes the client, decides the erasure, dies in the middle
        async with intake(settings, start=False) as first:
            client_id, _ = await accepted_client(first, "Ashdown")
            for record_class in ("identity", "clinical", "notes"):  # as if notes were written
                await first.runtime.keys.ensure(f"client:{client_id}", record_class)
            subjects = await first.runtime.keys.linked_subjects(f"client:{client_id}")
            filed = {"subject": {"$in": subjects}}
            assert await first.runtime.database["blind_index"].count_documents(filed) > 0
            protection = first.apps.data_protection
            crashing = CrashingAt(protection.keys, protection.blind_index, crash_at)
            protection.keys = crashing
            protection.blind_index = crashing
            cmd = erasure_of(client_id)
            with pytest.raises(Crash):
                await protection.request_erasure(cmd, CommitContext())
            left = await protection.erasures.get(client_id)
            assert left.erasures[cmd.erasure_id].carried_out
            assert left.unfinished() == [cmd.erasure_id]
            keys_before = await first.runtime.keys.data_keys.count_documents(
                {"subject": f"client:{client_id}"}
            )
            assert keys_before >= 3
        # the next one to start finishes it from the stored decision
        async with intake(settings) as second:
            protection = second.apps.data_protection

            async def complete() -> bool:
                erasure = await protection.erasures.get(client_id)
                return erasure.erasures[cmd.erasure_id].status == "completed"

            await wait_until(complete, within=60)
            history = await second.runtime.store.load(Erasure.stream_id_for(client_id))
            types = [e.type.split(".")[2] for e in history]
            assert types.count("SubjectKeyDestroyed") == 1, types
            assert types.count("ErasureCompleted") == 1, types
            keys = second.runtime.keys
            assert await keys.is_destroyed(f"client:{client_id}")
            destroyed = sorted(
                [
                    d["_id"]
                    async for d in keys.data_keys.find({"subject": f"client:{client_id}"})
                    if "wrapped" not in d
                ]
            )
            erasure = await protection.erasures.get(client_id)
            record = erasure.erasures[cmd.erasure_id]
            assert record.destroyed is not None
            # the client's keys, and those of the person minted at referral, linked to it
            assert set(record.destroyed.key_ids) >= set(destroyed)
            assert any(k.startswith("person:") for k in record.destroyed.key_ids)
            assert len(destroyed) == keys_before
            assert await second.runtime.database["blind_index"].count_documents(filed) == 0
            assert record.completed is not None
            # the entries were deleted by the first process if it died after `forget`
            assert (record.completed.index_entries_deleted > 0) is (crash_at != "after_forget")

            # the proof record, from the topic
            async def proven() -> bool:
                proof = await protection.proofs.proof(cmd.erasure_id)
                return proof is not None and proof.status == "completed"

            await wait_until(proven, within=30)
            proof = await protection.proofs.proof(cmd.erasure_id)
            assert proof is not None
            assert proof.key_ids == list(record.destroyed.key_ids)
            assert (proof.requested_by, proof.decided_by, proof.reference) == ("dora",) * 2 + (
                "DPO-7",
            )

            # every event of the erasure delivered again changes nothing
            policy = next(
                h for h in second.runtime.handlers if isinstance(h, WhenErasureDecidedCarryOut)
            )
            version = erasure.version
            for envelope in history:
                event = second.runtime.registry.parse(envelope.type, envelope.data)
                assert not await policy.handle(envelope, event)
            again = await protection.erasures.get(client_id)
            assert again.version == version
    finally:
        await drop(settings)


async def publish(settings: Settings, kafka: str, *events: tuple[Any, str, int]) -> None:
    """Cases events onto the (namespaced) cases topic, as the cases service's relay would."""
    await publish_to(kafka, topic_prefix(settings) + "casework.cases.events", *events)


async def until(check: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    await wait_until(check, within=within)


async def test_retention_destroys_notes_and_clinical_keys_eight_years_after_the_last_closure(
    namespace: str, kafka_bootstrap: str, mongo_url: str, kek_file: Path
) -> None:
    settings = settings_for(namespace, kafka_bootstrap, mongo_url, kek_file)
    start = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(start)
    try:
        async with intake(settings, clock) as service:
            client_id, case_id = await accepted_client(service, "Pellow")
            subject = f"client:{client_id}"
            keys = service.runtime.keys
            for record_class in ("identity", "clinical", "notes"):
                await keys.ensure(subject, record_class)
            deadlines = service.runtime.deadlines
            notes_key = RetentionSchedule.key(case_id, "notes")
            stream = f"case-{case_id}"
            opened = CaseOpened(
                case_id=case_id,
                client_id=client_id,
                referral_id="r",
                site=SITE,
                opened_at=start,
            )
            closed = CaseClosed(
                case_id=case_id, outcome=CaseOutcome.GOALS_MET, approved_by="sue", closed_at=start
            )
            await publish(settings, kafka_bootstrap, (opened, stream, 1), (closed, stream, 2))

            async def scheduled() -> bool:
                return await deadlines.get(notes_key) is not None

            await until(scheduled)
            first_due = await deadlines.get(notes_key)
            assert first_due is not None
            assert first_due.due_at == start.replace(year=start.year + 8)
            assert await deadlines.get(RetentionSchedule.key(case_id, "identity")) is None

            # reopened a year later: nothing is due any more; closed again: eight years from then
            clock.advance(timedelta(days=365))
            reopened = CaseReopened(
                case_id=case_id, reason="relapse", reopened_by="sue", reopened_at=clock.now()
            )
            await publish(settings, kafka_bootstrap, (reopened, stream, 3))

            async def cancelled() -> bool:
                return await deadlines.get(notes_key) is None

            await until(cancelled)
            closed_again = closed.model_copy(update={"closed_at": clock.now()})
            await publish(settings, kafka_bootstrap, (closed_again, stream, 4))
            await until(scheduled)
            second_due = await deadlines.get(notes_key)
            assert second_due is not None
            assert second_due.due_at > first_due.due_at

            # the first due time passes: nothing (it was cancelled); the second: destroyed
            clock.advance(first_due.due_at - clock.now() + timedelta(minutes=5))
            await service.runtime.scheduler.fire_due()
            assert not await keys.is_destroyed(subject, "notes")
            clock.advance(second_due.due_at - clock.now() + timedelta(minutes=5))
            await service.runtime.scheduler.fire_due()

            # Both deadlines, and the policy carrying out each decided erasure, write one
            # erasure stream at once. A firing that loses every race fails its deadline, which
            # fires again after its backoff (advanced here) and finds the record finished (by
            # the policy, or now). CI runs saw both: a record still `carrying_out` after the
            # first firing, and both completed while one deadline still awaited its retry.
            async def settled() -> bool:
                try:
                    erasure = await service.apps.data_protection.erasures.get(client_id)
                except AggregateNotFound:  # the first firing lost its races before any record
                    return False
                statuses = {r.status for r in erasure.erasures.values()}
                return statuses == {"completed"} and await deadlines.get(notes_key) is None

            for _ in range(20):
                if await settled():
                    break
                clock.advance(timedelta(hours=1))
                await service.runtime.scheduler.fire_due()
            # (a CI run caught the keys still there right after the first firing: that firing
            # had lost its races and waited for its retry)
            assert await keys.is_destroyed(subject, "notes")
            assert await keys.is_destroyed(subject, "clinical")
            assert not await keys.is_destroyed(subject, "identity")
            assert not await keys.is_destroyed(subject)
            erasure = await service.apps.data_protection.erasures.get(client_id)
            records = list(erasure.erasures.values())
            assert sorted(r.requested.record_class or "" for r in records) == ["clinical", "notes"]
            assert {r.status for r in records} == {"completed"}
            assert {r.requested.rule for r in records} == {"clinical:8y", "notes:8y"}
            notes = next(r for r in records if r.requested.record_class == "notes")
            assert notes.destroyed is not None
            assert notes.destroyed.key_ids == (f"{subject}/notes/v1",)

            # the deadline firing again (a replica dying before its done record) is the same
            # erasure: nothing new
            assert await deadlines.get(notes_key) is None  # fired, and done
            await service.apps.retention.fire(second_due)
            erasure = await service.apps.data_protection.erasures.get(client_id)
            assert len(erasure.erasures) == 2
            proofs = service.apps.data_protection.proofs

            async def both_proven() -> bool:
                found = await proofs.proofs(client_id, 10, None)
                return {p.status for p in found} == {"completed"} and len(found) == 2

            await until(both_proven)
    finally:
        await drop(settings)
