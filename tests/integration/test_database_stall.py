"""A database that stops answering on an open connection (a hung server, a network black
hole) fails the operation after the client's socket timeout as a transient outage, instead of
holding the caller forever; the same client works again once the server answers.

Against the shared MongoDB-wire server through a proxy that holds every byte while stalled.
"""

from __future__ import annotations

import os
import time
import uuid
from urllib.parse import urlparse

import pytest
from pymongo import errors

from casework.projections import transient_kind
from casework.runtime import SERVER_SELECTION_TIMEOUT_MS, mongo_client, wait_until
from casework.settings import Settings

from support.tcp_proxy import TcpProxy

TIMEOUT_MS = 1500


def _port() -> int:
    return int(os.environ.get("CASEWORK_E2E_BASE_PORT", "18001")) + 40


async def test_a_stalled_database_fails_an_operation_after_the_socket_timeout(
    mongo_url: str,
) -> None:
    upstream = urlparse(mongo_url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 27017, _port())
    await proxy.start()
    database = f"stall{uuid.uuid4().hex[:10]}"
    settings = Settings.for_service(
        "cases",
        0,
        environment="test",
        mongo_url=f"mongodb://127.0.0.1:{proxy.port}",
        mongo_database=database,
        mongo_socket_timeout_ms=TIMEOUT_MS,
    )
    client = mongo_client(settings)
    collection = client[database]["probe"]
    try:
        await collection.insert_one({"_id": "before"})
        proxy.stall()
        started = time.perf_counter()
        with pytest.raises(errors.PyMongoError) as failure:
            await collection.find_one({"_id": "before"})
        waited = time.perf_counter() - started
        proxy.flow()

        async def answers_again() -> bool:
            try:
                return await collection.find_one({"_id": "before"}) is not None
            except errors.PyMongoError:
                return False

        await wait_until(answers_again, within=30, every=0.2)
    finally:
        proxy.flow()
        await client.drop_database(database)
        await client.close()
        await proxy.stop()

    assert transient_kind(failure.value) == "database"
    # A read is retried once by the driver (retryable reads): two socket timeouts, a server
    # selection between them, and a margin. Without the timeout it waits as long as the stall.
    bound = (2 * TIMEOUT_MS + SERVER_SELECTION_TIMEOUT_MS) / 1000 + 1.5
    assert TIMEOUT_MS / 1000 <= waited < bound
