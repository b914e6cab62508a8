"""`BufferedCollection`, the in-memory fold of a rebuild, over an in-memory stand-in for the
server's collection (the equality with live projections is tested on the real servers in
tests/integration/test_rebuild_equals_live.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from bson.codec_options import CodecOptions
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from casework.eventstore import Document
from casework.rebuild import BufferedCollection


class ServerSide:
    """What the server would hold, and every call that reached it."""

    name = "things__rebuild"
    codec_options: CodecOptions[Document] = CodecOptions(tz_aware=True)

    def __init__(self) -> None:
        self.docs: dict[Any, Document] = {}
        self.calls: list[tuple[str, int]] = []

    async def insert_many(self, docs: list[Document], ordered: bool = True) -> None:
        self.calls.append(("insert_many", len(docs)))
        for d in docs:
            assert d["_id"] not in self.docs
            self.docs[d["_id"]] = dict(d)

    async def replace_one(self, filter: dict[str, Any], doc: Document) -> None:
        self.calls.append(("replace_one", 1))
        self.docs[filter["_id"]] = dict(doc)

    async def delete_one(self, filter: dict[str, Any]) -> None:
        self.calls.append(("delete_one", 1))
        self.docs.pop(filter["_id"], None)

    async def find_one(self, filter: dict[str, Any], projection: Any = None) -> Document | None:
        self.calls.append(("find_one", 1))
        return self.docs.get(filter.get("_id"))


def buffered(server: ServerSide, max_buffered: int = 1000) -> BufferedCollection:
    return BufferedCollection(cast("AsyncCollection[Document]", server), max_buffered)


async def test_each_document_is_written_once_in_bulk_after_any_number_of_changes() -> None:
    server = ServerSide()
    c = buffered(server)
    for n in range(10):
        await c.replace_one({"_id": "a"}, {"n": n}, upsert=True)
    await c.insert_one({"_id": "b", "n": 1})
    await c.insert_one({"_id": "gone"})
    await c.delete_one({"_id": "gone"})
    assert await c.find_one({"_id": "a"}, {"n": 1}) == {"_id": "a", "n": 9}
    assert await c.find_one({"_id": "gone"}) is None
    assert server.calls == []  # nothing reached the server while folding
    await c.flush()
    assert server.calls == [("insert_many", 2)]
    assert server.docs == {"a": {"_id": "a", "n": 9}, "b": {"_id": "b", "n": 1}}


async def test_insert_of_an_existing_id_fails_as_on_the_server() -> None:
    c = buffered(ServerSide())
    await c.insert_one({"_id": "x"})
    with pytest.raises(DuplicateKeyError):
        await c.insert_one({"_id": "x"})


async def test_beyond_max_buffered_it_flushes_and_later_changes_replace() -> None:
    server = ServerSide()
    c = buffered(server, max_buffered=2)
    await c.insert_one({"_id": "a", "n": 1})
    await c.insert_one({"_id": "b", "n": 1})  # the buffer is full: flushed
    assert server.calls == [("insert_many", 2)]
    assert await c.find_one({"_id": "a"}) == {"_id": "a", "n": 1}  # read back from the server
    with pytest.raises(DuplicateKeyError):
        await c.insert_one({"_id": "b"})
    await c.replace_one({"_id": "a"}, {"n": 2}, upsert=True)
    await c.delete_one({"_id": "b"})  # full again: a replaced, b deleted
    assert server.docs == {"a": {"_id": "a", "n": 2}}
    assert await c.find_one({"_id": "b"}) is None


async def test_writes_that_would_bypass_the_buffer_are_refused() -> None:
    c = buffered(ServerSide())
    assert c.name == "things__rebuild"
    with pytest.raises(AttributeError, match="update_one is not supported"):
        c.update_one  # noqa: B018
    await c.insert_one({"_id": "a"})
    with pytest.raises(RuntimeError, match="flush"):
        c.find({"site": "north"})


async def test_a_handler_reads_back_what_the_server_would_return() -> None:
    # The server keeps datetimes to the millisecond and arrays as lists: a handler that
    # derives a field from what it reads back must see that, or rebuilt != live.
    things = buffered(ServerSide())
    at = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=UTC)
    await things.insert_one({"_id": "a", "at": at, "pair": (1, 2)})
    back = await things.find_one({"_id": "a"})
    assert back == {"_id": "a", "at": at.replace(microsecond=123000), "pair": [1, 2]}
