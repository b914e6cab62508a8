"""Reading the audit store of a running stack (`casework.auditstore`), in the end-to-end
tests: records arrive there through the outbox, the audit topic and the store's consumer,
so a test waits for them."""

from __future__ import annotations

import time
from typing import Any

from pymongo import MongoClient

from casework.devstack import Stack


def stored_records(stack: Stack, query: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored audit records matching `query`, oldest first."""
    client: MongoClient[dict[str, Any]] = MongoClient(stack.env["CASEWORK_MONGO_URL"])
    with client:
        found = client[stack.audit_database]["records"].find(query)
        return list(found.sort([("recorded_at", 1), ("_id", 1)]))


def wait_for_records(
    stack: Stack, query: dict[str, Any], *, count: int = 1, within: float = 30.0
) -> list[dict[str, Any]]:
    """The stored records matching `query` once there are at least `count` of them (or
    whatever is there after `within` seconds, for the test to assert on)."""
    deadline = time.monotonic() + within
    while True:
        found = stored_records(stack, query)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def clients_shown(record: dict[str, Any]) -> list[str]:
    """The clients (`client:<id>`) whose data an audit record says was shown. Any other
    subject it names must be a person (`person:<uuid>`: the person a referral was taken about,
    linked to the client once accepted), whose sealed values the same answer opened."""
    subjects: list[str] = record["subjects"]
    others = [s for s in subjects if not s.startswith("client:")]
    assert all(s.startswith("person:") for s in others), subjects
    return [s for s in subjects if s.startswith("client:")]
