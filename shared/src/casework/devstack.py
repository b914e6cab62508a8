"""Start the five services as real processes against a real Kafka and MongoDB-wire server.

Development tooling, used by the end-to-end tests and by the benchmarks. Each run gets its
own namespace (topic prefix, consumer groups, databases) and its own ports, so it does not
disturb a platform started with `make up`, or another run, on the same machine. The services
are started by module name (`python -m casework_<service>`): the shared package never imports
a service.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pymongo import MongoClient

from casework.auth import mint_dev_token
from casework.eventstore import Document
from casework.privacy import create_key_file
from casework.settings import Settings

SERVICES = {"intake": 0, "cases": 1, "contacts": 2, "supervision": 3, "notifications": 4}
"""Service name → its port's offset from the stack's base port."""


@dataclass
class Stack:
    """A running stack: where each service answers, its process ids, and the settings it was
    started with."""

    namespace: str
    urls: dict[str, str]
    env: dict[str, str]
    logs: Path
    databases: dict[str, str] = field(default_factory=dict)
    audit_database: str = ""
    """The audit store's database (`casework.auditstore`, run as the process `audit`)."""
    pids: dict[str, int] = field(default_factory=dict)
    _tokens: dict[tuple[str, ...], str] = field(default_factory=dict)

    def token(
        self, sub: str, *roles: str, sites: tuple[str, ...] = (), team: str | None = None
    ) -> str:
        """A dev token signed with the stack's dev key, as `casework token` (the CLI the
        README's `make -s token` runs, and its walk-through tests paste) would mint it with
        the stack's settings. Minted in this process: the CLI costs a Python start, most of a
        second of CPU, and the end-to-end suite mints a token per identity it tries. Cached
        per identity."""
        key = (sub, *roles, "|", *sites, team or "")
        if key not in self._tokens:
            fields = {
                "environment": "CASEWORK_ENVIRONMENT",
                "jwt_dev_key_path": "CASEWORK_JWT_DEV_KEY_PATH",
                "jwt_issuer": "CASEWORK_JWT_ISSUER",
                "jwt_audience": "CASEWORK_JWT_AUDIENCE",
            }
            own = {name: self.env[var] for name, var in fields.items() if var in self.env}
            settings = Settings.for_developer_tool(**own)
            self._tokens[key] = mint_dev_token(settings, sub, roles, sites, team=team)
        return self._tokens[key]

    def client(self, service: str, token: str | None = None) -> httpx.Client:
        """An HTTP client for one service, sending `token` as its bearer token."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.urls[service], headers=headers, timeout=10)


@contextmanager
def running_stack(
    bootstrap: str,
    mongo_url: str,
    workdir: Path,
    base_port: int = 18001,
    *,
    prefix: str = "e2e",
    env: Mapping[str, str] | None = None,
    namespace: str | None = None,
    drop: bool = True,
    services: Iterable[str] | None = None,
) -> Iterator[Stack]:
    """The five services running as processes until the block ends; then they are stopped
    and their databases dropped.

    `bootstrap` and `mongo_url` name the servers; the services listen on `base_port` to
    `base_port + 4` (`SERVICES`); logs and the dev signing key go under `workdir`. The
    namespace is `prefix` and eight random hex digits, or `namespace` (a stack started again
    on the databases and topics of an earlier one); `env` adds or overrides settings. The
    stack has a key store of its own (`<namespace>_keys`) and a KEK file in `workdir` (kept
    when it exists). `drop=False` keeps the databases when the block ends; `services` starts
    only those. Waits until every service's `/readyz` answers (90 s at most).
    """
    namespace = namespace or f"{prefix}{uuid.uuid4().hex[:8]}"
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    create_key_file(workdir / "kek")
    settings = {
        **os.environ,
        "CASEWORK_NAMESPACE": namespace,
        "CASEWORK_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CASEWORK_MONGO_URL": mongo_url,
        "CASEWORK_ENVIRONMENT": "test",
        "CASEWORK_JWT_DEV_KEY_PATH": str(workdir / "dev-jwt-key.pem"),
        "CASEWORK_KEK_FILE": str(workdir / "kek"),
        "CASEWORK_KEYS_MONGO_DB": f"{namespace}_keys",
        "CASEWORK_RELAY_POLL_INTERVAL_S": "0.5",
        "CASEWORK_LOG_LEVEL": "INFO",
        "CASEWORK_AUDIT_MONGO_DATABASE": f"{namespace}_audit",
        **(env or {}),
    }
    urls: dict[str, str] = {}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    databases: dict[str, str] = {}
    audit_store: subprocess.Popen[bytes] | None = None
    try:
        # the first token creates the dev key before the services read it
        stack = Stack(namespace, urls, settings, logs, databases)
        stack.audit_database = settings["CASEWORK_AUDIT_MONGO_DATABASE"]
        pids = stack.pids
        stack.token("setup", "ops")
        with (logs / "audit.log").open("wb") as log:
            # the audit store's consumer: its own process, as in production
            audit_store = subprocess.Popen(
                [sys.executable, "-m", "casework.auditstore"],
                env=settings,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        pids["audit"] = audit_store.pid
        wanted = set(services) if services is not None else set(SERVICES)
        for name, offset in SERVICES.items():
            if name not in wanted:
                continue
            port = base_port + offset
            databases[name] = f"{namespace}_{name}"
            service_env = {
                **settings,
                "CASEWORK_HTTP_PORT": str(port),
                "CASEWORK_MONGO_DATABASE": databases[name],
            }
            with (logs / f"{name}.log").open("wb") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", f"casework_{name}"],
                    env=service_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            pids[name] = procs[name].pid
            urls[name] = f"http://127.0.0.1:{port}"
        _wait_ready(urls, procs, logs, within=90)
        yield stack
    finally:
        everything = [*procs.values(), *([audit_store] if audit_store else [])]
        for proc in everything:
            proc.terminate()
        for proc in everything:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if drop:
            _drop(
                mongo_url,
                [
                    *databases.values(),
                    settings["CASEWORK_AUDIT_MONGO_DATABASE"],
                    settings["CASEWORK_KEYS_MONGO_DB"],
                ],
            )


def _wait_ready(
    urls: dict[str, str], procs: dict[str, subprocess.Popen[bytes]], logs: Path, within: float
) -> None:
    deadline = time.monotonic() + within
    pending = dict(urls)
    while pending:
        for name, url in list(pending.items()):
            if procs[name].poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {procs[name].returncode}; see {logs / (name + '.log')}:\n"
                    + (logs / f"{name}.log").read_text()[-3000:]
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    del pending[name]
            except httpx.HTTPError:
                pass
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"not ready after {within:.0f}s: {', '.join(pending)} (logs in {logs})"
            )
        time.sleep(0.3)


def _drop(mongo_url: str, names: Iterable[str]) -> None:
    client: MongoClient[Document] = MongoClient(mongo_url)
    with client:
        for name in names:
            client.drop_database(name)
