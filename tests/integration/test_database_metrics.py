"""Every database command a service sends is counted and timed by collection and command
(`casework_db_commands_total`, `casework_db_command_seconds_total`): what operators read to
see the database work behind a request, and what the lifecycle benchmark divides by commands.
"""

from __future__ import annotations

import uuid

from casework.metrics import Metrics
from casework.runtime import DatabaseCommandMeter, mongo_client
from casework.settings import Settings


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def test_each_command_is_counted_and_timed_by_collection(mongo_url: str) -> None:
    database = f"dbmeter{uuid.uuid4().hex[:10]}"
    settings = Settings.for_service(
        "cases", 0, environment="test", mongo_url=mongo_url, mongo_database=database
    )
    metrics = Metrics("cases")
    client = mongo_client(settings, metrics)
    try:
        probe = client[database]["probe"]
        for n in range(3):
            await probe.insert_one({"_id": n})
        assert await probe.find_one({"_id": 1}) == {"_id": 1}
        # A cursor of several batches: the getMore names its collection in another field.
        assert len([d async for d in probe.find({}, batch_size=1)]) == 3

        inserts = {"collection": "probe", "command": "insert"}
        assert _value(metrics, "casework_db_commands_total", **inserts) == 3
        assert (
            _value(metrics, "casework_db_commands_total", collection="probe", command="find") == 2
        )
        assert (
            _value(metrics, "casework_db_commands_total", collection="probe", command="getMore")
            >= 2
        )
        assert _value(metrics, "casework_db_command_seconds_total", **inserts) > 0
        # Nothing is left waiting for a reply.
        listener = client.options.event_listeners[0]
        assert isinstance(listener, DatabaseCommandMeter)
        assert listener.in_flight == 0
    finally:
        await client.drop_database(database)
        await client.close()


async def test_a_client_without_metrics_sends_through_no_meter(mongo_url: str) -> None:
    settings = Settings.for_service("cases", 0, environment="test", mongo_url=mongo_url)
    client = mongo_client(settings)
    try:
        assert list(client.options.event_listeners) == []
    finally:
        await client.close()
