"""Readiness probes for scripts/infra.sh, run in the workspace environment.

    uv run --no-sync python scripts/probe.py kafka 127.0.0.1:9092 [--pid N] [--timeout 60]
    uv run --no-sync python scripts/probe.py mongo mongodb://127.0.0.1:27017/ [--pid N]

kafka: the broker answers ApiVersions and Metadata and lists at least one broker (an open port
is not enough: the socket accepts before the broker has caught up with the controller).
mongo: the server answers `ping` and `listDatabases` (the latter touches the storage backend).

Exit codes: 0 ready, 1 timed out, 2 the watched process died, 3 client library missing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import sys
import time

READY, TIMEOUT, DIED, UNAVAILABLE = 0, 1, 2, 3


def process_alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def kafka_once(bootstrap: str) -> str | None:
    """Return None when ready, else a short reason."""
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await client.bootstrap()  # ApiVersions + Metadata
        brokers = client.cluster.brokers()
        if not brokers:
            return "metadata lists no broker yet"
        return None
    except Exception as exc:  # any failure just means "not yet"
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.close()


def mongo_once(url: str) -> str | None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=1500, connectTimeoutMS=1500, socketTimeoutMS=5000
    )
    try:
        client.admin.command("ping")
        client.list_database_names()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["kafka", "mongo"])
    parser.add_argument("target", help="host:port for kafka, a mongodb:// URL for mongo")
    parser.add_argument("--pid", type=int, default=None, help="give up early if it dies")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    logging.basicConfig(level=logging.CRITICAL)  # aiokafka logs every refused connection
    module = "aiokafka" if args.kind == "kafka" else "pymongo"
    if importlib.util.find_spec(module) is None:
        print(f"probe: {module} is not installed (run 'make bootstrap')", file=sys.stderr)
        return UNAVAILABLE

    deadline = time.monotonic() + args.timeout
    reason = "not tried"
    while time.monotonic() < deadline:
        if not process_alive(args.pid):
            print(f"probe: process {args.pid} exited", file=sys.stderr)
            return DIED
        if args.kind == "kafka":
            result = asyncio.run(kafka_once(args.target))
        else:
            result = mongo_once(args.target)
        if result is None:
            return READY
        reason = result
        time.sleep(0.25)
    print(f"probe: {args.kind} at {args.target} not ready: {reason}", file=sys.stderr)
    return TIMEOUT


if __name__ == "__main__":
    sys.exit(main())
