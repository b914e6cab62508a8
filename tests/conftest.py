"""Fixtures shared by every test layer.

Integration and end-to-end tests run against a real Kafka broker and a real MongoDB-wire
server. By default those are the local servers `make test` starts (Kafka on localhost:9092,
FerretDB on localhost:27017); `CASEWORK_KAFKA_BOOTSTRAP_SERVERS` and `CASEWORK_MONGO_URL`
point them elsewhere (a real MongoDB 7, say). With `CASEWORK_TEST_CONTAINERS=1` and a Docker
engine, testcontainers starts Kafka and MongoDB instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlparse

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.database import AsyncDatabase

from casework.eventstore import Document
from casework.privacy import create_key_file


def pytest_configure(config: pytest.Config) -> None:
    # Services default to production (which refuses the dev key): the tests ask for the test
    # environment explicitly, for settings built here and for the processes they start.
    os.environ["CASEWORK_ENVIRONMENT"] = "test"
    # Under pytest-xdist (`make test` runs two workers) every port a test opens derives from
    # CASEWORK_E2E_BASE_PORT: each worker gets a range of its own, 1,000 ports apart, set
    # here before any test module reads it.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):
        base = int(os.environ.get("CASEWORK_E2E_BASE_PORT", "18001"))
        os.environ["CASEWORK_E2E_BASE_PORT"] = str(base + 1000 * int(worker[2:]))
    # A key store and a KEK of the run's own (casework.privacy), unless the caller chose:
    # never the platform's `casework_keys` or the developer's KEK file.
    if "CASEWORK_KEK_FILE" not in os.environ:
        kek = Path(tempfile.mkdtemp(prefix="casework-kek-")) / "kek"
        create_key_file(kek)
        os.environ["CASEWORK_KEK_FILE"] = str(kek)
    os.environ.setdefault("CASEWORK_KEYS_MONGO_DB", f"test_keys_{uuid.uuid4().hex[:12]}")


_TOPICS_BEFORE = pytest.StashKey[set[str]]()

# End-to-end tests that bring servers or a stack of their own: under pytest-xdist they may run
# on either worker. Every other end-to-end test shares the session's stack (tests/e2e/conftest.py).
OWN_SERVERS = (
    "tests/e2e/test_outages.py",
    "tests/e2e/test_kill_mid_burst.py",
    "tests/e2e/test_erasure.py::test_an_erased_client_is_unreadable_everywhere_and_stays_so",
)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under pytest-xdist (`make test` runs two workers): the end-to-end tests on the shared
    stack are one unit of work, so one worker starts the stack once and runs them all, while
    every other test is a unit of its own for whichever worker is free. (xdist's own
    `--dist loadgroup` would do this with marks, but its groups are ignored under pytest 9.)"""
    from xdist.scheduler import LoadScopeScheduling

    class SharedStackScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith("tests/e2e/") and not nodeid.startswith(OWN_SERVERS):
                return "tests/e2e: the shared stack"
            return nodeid

    return SharedStackScheduling(config, log)


def _is_controller(config: pytest.Config) -> bool:
    """The one process of a run (without xdist) or xdist's controller, never a worker."""
    return not hasattr(config, "workerinput")


async def _topics(bootstrap: str, delete: Sequence[str] = ()) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        for at in range(0, len(delete), 500):
            await admin.delete_topics(list(delete[at : at + 500]), timeout_ms=30_000)
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _broker() -> str | None:
    if os.environ.get("CASEWORK_TEST_CONTAINERS") == "1":
        return None  # the container goes with its topics
    bootstrap = os.environ.get("CASEWORK_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    return bootstrap if _reachable(host, int(port)) else None


def _sessions_on(bootstrap: str) -> Path:
    """Where the test sessions using this broker note the topics it had when they began."""
    folder = (
        Path(tempfile.gettempdir())
        / "casework-test-sessions"
        / hashlib.sha256(bootstrap.encode()).hexdigest()[:12]
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pytest_sessionstart(session: pytest.Session) -> None:
    bootstrap = _broker()
    if _is_controller(session.config) and bootstrap:
        with contextlib.suppress(Exception):
            before = asyncio.run(_topics(bootstrap))
            session.config.stash[_TOPICS_BEFORE] = before
            note = _sessions_on(bootstrap) / f"{os.getpid()}.json"
            note.write_text(json.dumps({"pid": os.getpid(), "before": sorted(before)}))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Delete the topics the run's namespaces made. A broker keeps a few open files per
    partition, and the suite makes thousands: a few runs on one local broker used to reach
    its open-files limit, and it stopped ("Too many open files"). Only topics made during the
    run and carrying a namespace (`<namespace>.casework.…`), never a running platform's.

    **Never another session's topics.** Two sessions on one broker (a second checkout's run,
    a helper's) each saw the other's new topics as made "during the run": the first to
    finish deleted them under the other's running tests (seen as a replay test hanging on
    offsets it could not commit, and two replicas never ready). So each session notes the
    topics it began with (`_sessions_on`); one that finishes while another is still running
    deletes nothing, and the last to finish deletes what none of the finished ones began
    with."""
    before = session.config.stash.get(_TOPICS_BEFORE, None)
    bootstrap = _broker()
    if before is None or bootstrap is None or not _is_controller(session.config):
        return
    with contextlib.suppress(Exception):
        folder = _sessions_on(bootstrap)
        notes = {int(f.stem): f for f in folder.glob("*.json") if f.stem.isdigit()}
        if any(pid != os.getpid() and _alive(pid) for pid in notes):
            return  # the last of the sessions running at once cleans up for all
        for note in notes.values():
            with contextlib.suppress(OSError, ValueError):
                before = before & set(json.loads(note.read_text())["before"])
        made = sorted(
            t
            for t in asyncio.run(_topics(bootstrap)) - before
            if ".casework." in t and not t.startswith("casework.")
        )
        asyncio.run(_topics(bootstrap, made))
        for note in notes.values():
            note.unlink(missing_ok=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    name = os.environ.get("CASEWORK_KEYS_MONGO_DB", "")
    if not name.startswith("test_keys_"):
        return
    url = os.environ.get("CASEWORK_MONGO_URL", "mongodb://localhost:27017")
    with contextlib.suppress(Exception), MongoClient(url, serverSelectionTimeoutMS=2000) as c:
        c.drop_database(name)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    """(Kafka bootstrap servers, MongoDB URL) of the real servers the tests use."""
    if os.environ.get("CASEWORK_TEST_CONTAINERS") == "1":
        from testcontainers.kafka import KafkaContainer
        from testcontainers.mongodb import MongoDbContainer

        with KafkaContainer().with_kraft() as kafka, MongoDbContainer("mongo:7") as mongo:
            yield kafka.get_bootstrap_server(), mongo.get_connection_url()
        return
    bootstrap = os.environ.get("CASEWORK_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    mongo_url = os.environ.get("CASEWORK_MONGO_URL", "mongodb://localhost:27017")
    kafka_host, _, kafka_port = bootstrap.split(",")[0].rpartition(":")
    mongo = urlparse(mongo_url)
    missing = [
        name
        for name, host, port in (
            ("Kafka", kafka_host, int(kafka_port)),
            ("MongoDB-wire server", mongo.hostname or "localhost", mongo.port or 27017),
        )
        if not _reachable(host, port)
    ]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not reachable ({bootstrap}, {mongo_url}); "
            "start them with `make infra-up` or run the suite with `make test`",
            pytrace=False,
        )
    yield bootstrap, mongo_url


@pytest.fixture(scope="session")
def kafka_bootstrap(servers: tuple[str, str]) -> str:
    return servers[0]


@pytest.fixture(scope="session")
def mongo_url(servers: tuple[str, str]) -> str:
    return servers[1]


@pytest.fixture
async def database(mongo_url: str) -> AsyncIterator[AsyncDatabase[Document]]:
    """A fresh, uniquely named database, dropped afterwards."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture
def topic() -> str:
    """A topic name no other test uses."""
    return f"test.{uuid.uuid4().hex[:12]}.events"
