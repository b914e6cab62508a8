"""The key store on the real MongoDB-wire server: creation races, destruction (idempotent,
through links), the erasure/creation interleaving, the cache TTL as an erasure's worst-case
delay, KEK rotation, and a lost or wrong KEK refusing to start."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from casework.clock import FixedClock
from casework.eventstore import Document
from casework.privacy import (
    KekError,
    KeyService,
    LocalKeyFileProvider,
    SubjectErased,
    create_key_file,
)
from casework.privacy.kek import new_kek_line
from casework.privacy.tokens import open_sealed, seal


def service(
    database: AsyncDatabase[Document], kek_file: Path, clock: FixedClock | None = None
) -> KeyService:
    return KeyService(database, LocalKeyFileProvider(kek_file), clock=clock, cache_ttl_s=5)


@pytest.fixture
def kek_file(tmp_path: Path) -> Path:
    path = tmp_path / "kek"
    assert create_key_file(path)
    return path


async def test_the_first_key_of_a_subject_is_created_once_whoever_races(
    database: AsyncDatabase[Document], kek_file: Path
) -> None:
    one, two = service(database, kek_file), service(database, kek_file)
    await one.verify()
    ids = await asyncio.gather(
        *(s.current_key("client:c1", "identity") for s in (one, two, one, two))
    )
    assert {key_id for key_id, _ in ids} == {"client:c1/identity/v1"}
    assert len({key for _, key in ids}) == 1
    assert await one.ensure("client:c1", "identity") == "client:c1/identity/v1"
    assert await database["data_keys"].count_documents({}) == 1
    stored = await database["data_keys"].find_one({})
    assert stored is not None
    assert ids[0][1] not in stored["wrapped"]  # only wrapped at rest


async def test_destroy_is_final_idempotent_and_follows_links(
    database: AsyncDatabase[Document], kek_file: Path
) -> None:
    keys = service(database, kek_file)
    await keys.verify()
    owner, person, carer, other = "client:c1", "person:p1", "person:p2", "client:c2"
    for subject in (owner, person, carer, other):
        await keys.ensure(subject, "identity")
    await keys.ensure(owner, "notes")
    await keys.link(person, owner=owner)
    await keys.link(carer, owner=person)  # a chain: erasing the owner reaches it too
    token = seal(
        "Alex",
        key_id="person:p1/identity/v1",
        key=(await keys.data_key("person:p1/identity/v1")) or b"",
    )

    destroyed = await keys.destroy(owner, reason="erasure request", erasure_id="e1")

    assert destroyed == sorted(
        [
            "client:c1/identity/v1",
            "client:c1/notes/v1",
            "person:p1/identity/v1",
            "person:p2/identity/v1",
        ]
    )
    assert await keys.destroy(owner, reason="retried", erasure_id="e1") == destroyed
    for subject in (owner, person, carer):
        assert await keys.is_destroyed(subject)
        with pytest.raises(SubjectErased):
            await keys.ensure(subject, "identity")
    assert not await keys.is_destroyed(other)
    assert await keys.data_key("client:c2/identity/v1") is not None
    # no key material left for the erased subjects, in this process or in the store
    assert await service(database, kek_file).data_key("person:p1/identity/v1") is None
    assert await database["data_keys"].count_documents({"wrapped": {"$exists": True}}) == 1
    assert token.startswith("enc:v1:person:p1/identity/v1:")


async def test_linking_to_an_erased_owner_erases_the_subject(
    database: AsyncDatabase[Document], kek_file: Path
) -> None:
    keys = service(database, kek_file)
    await keys.ensure("person:late", "identity")
    await keys.destroy("client:gone", reason="erasure", erasure_id="e2")
    await keys.link("person:late", owner="client:gone")
    assert await keys.is_destroyed("person:late")
    assert await keys.data_key("person:late/identity/v1") is None


async def test_a_key_created_while_its_subject_is_erased_is_destroyed_at_once(
    database: AsyncDatabase[Document], kek_file: Path
) -> None:
    """The crash window of key creation: `ensure` checked for a tombstone, then the erasure
    inserted its tombstone and listed the keys, then `ensure` inserted its key. The check
    after the insert must catch it."""
    keys = service(database, kek_file)
    real_insert = keys.data_keys.insert_one

    async def insert_then_erasure_lands(doc: Document, *args: Any, **kwargs: Any) -> Any:
        result = await real_insert(doc, *args, **kwargs)
        await keys.erased.insert_one({"_id": doc["subject"], "erasure_id": "e3"})
        return result

    keys.data_keys.insert_one = insert_then_erasure_lands  # type: ignore[method-assign,assignment]
    with pytest.raises(SubjectErased):
        await keys.ensure("client:racing", "identity")
    stored = await database["data_keys"].find_one({"_id": "client:racing/identity/v1"})
    assert stored is not None
    assert "wrapped" not in stored
    assert await keys.data_key("client:racing/identity/v1") is None


async def test_a_record_class_destroyed_alone_gets_a_new_version(
    database: AsyncDatabase[Document], kek_file: Path
) -> None:
    keys = service(database, kek_file)
    assert await keys.ensure("client:c3", "notes") == "client:c3/notes/v1"
    await keys.ensure("client:c3", "identity")
    assert await keys.destroy(
        "client:c3", record_class="notes", reason="retention", erasure_id="r1"
    ) == ["client:c3/notes/v1"]
    assert await keys.is_destroyed("client:c3", "notes")
    assert not await keys.is_destroyed("client:c3")
    assert await keys.data_key("client:c3/identity/v1") is not None
    assert await keys.ensure("client:c3", "notes") == "client:c3/notes/v2"


async def test_an_erasure_reaches_another_process_within_the_cache_ttl(
    database: AsyncDatabase[Document], kek_file: Path
) -> None:
    clock = FixedClock(datetime(2026, 12, 1, 12, tzinfo=UTC))
    eraser, reader = service(database, kek_file, clock), service(database, kek_file, clock)
    key_id = await eraser.ensure("client:c4", "identity")
    assert await reader.data_key(key_id) is not None  # cached by the reader now

    await eraser.destroy("client:c4", reason="erasure", erasure_id="e4")

    assert await eraser.data_key(key_id) is None  # the erasing process: at once
    clock.advance(timedelta(seconds=4.9))
    assert await reader.data_key(key_id) is not None  # the documented worst case: the TTL
    clock.advance(timedelta(seconds=0.2))
    assert await reader.data_key(key_id) is None
    clock.advance(timedelta(days=1))
    assert await reader.data_key(key_id) is None  # and never back


def add_new_kek(kek_file: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Put a new KEK first in the key file (the old one kept, as during a rotation); return
    files holding only the new and only the old KEK."""
    old_line = kek_file.read_text().strip()
    new_line = new_kek_line()
    kek_file.write_text(new_line + "\n" + old_line + "\n")
    (tmp_path / "only-new").write_text(new_line + "\n")
    (tmp_path / "old-only").write_text(old_line + "\n")
    return tmp_path / "only-new", tmp_path / "old-only"


async def test_kek_rotation_rewraps_every_key(
    database: AsyncDatabase[Document], kek_file: Path, tmp_path: Path
) -> None:
    keys = service(database, kek_file)
    await keys.verify()
    key_id, key = await keys.current_key("client:c5", "clinical")
    token = seal({"wish_to_be_dead": True}, key_id=key_id, key=key)
    await keys.blind_index_key()
    only_new, old_only = add_new_kek(kek_file, tmp_path)

    rotating = service(database, kek_file)
    assert await rotating.rotate_kek() == 3  # data key, blind-index key, canary
    assert await rotating.rotate_kek() == 0  # idempotent

    fresh = service(database, only_new)
    await fresh.verify()
    opened_key = await fresh.data_key(key_id)
    assert opened_key is not None
    assert open_sealed(key_id, token.rsplit(":", 1)[1], opened_key) == {"wish_to_be_dead": True}
    with pytest.raises(KekError, match="wrong key-encryption key"):
        await service(database, old_only).verify()


async def test_a_lost_or_wrong_kek_refuses_to_start(
    database: AsyncDatabase[Document], kek_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(KekError, match="does not exist"):
        await service(database, tmp_path / "missing").verify()
    await service(database, kek_file).verify()
    other = tmp_path / "other"
    create_key_file(other)
    with pytest.raises(KekError, match="wrong key-encryption key"):
        await service(database, other).verify()
    garbage = tmp_path / "garbage"
    await asyncio.to_thread(garbage.write_text, "not a key\n")
    with pytest.raises(KekError, match="not a base64 32-byte key"):
        await service(database, garbage).verify()


class HeldKeyReads:
    """`data_keys` whose reads are counted, and can be held after the server answered (the
    reader has the document; the test decides when it goes on)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = 0
        self.hold: asyncio.Event | None = None
        self.answered = asyncio.Event()

    async def find_one(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        doc = await self.inner.find_one(*args, **kwargs)
        self.answered.set()
        if self.hold is not None:
            await self.hold.wait()
        return doc

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_cached_key_is_not_read_again_until_a_destruction_and_erasure_keeps_its_ttl(
    database: AsyncDatabase[Document], kek_file: Path
) -> None:
    clock = FixedClock(datetime(2026, 12, 1, 12, tzinfo=UTC))
    eraser, reader = service(database, kek_file, clock), service(database, kek_file, clock)
    kept = await eraser.ensure("client:c10", "identity")
    erased = await eraser.ensure("client:c11", "identity")
    reads = HeldKeyReads(reader.data_keys)
    reader.data_keys = reads  # type: ignore[assignment]
    for _ in range(60):  # a minute of use: one read of each key, one of the mark per TTL
        assert await reader.data_key(kept) is not None
        assert await reader.data_key(erased) is not None
        clock.advance(timedelta(seconds=1))
    assert reads.reads == 2  # before: both keys again after every TTL (24 reads)

    await eraser.destroy("client:c11", reason="erasure", erasure_id="e11")
    destroyed_at = clock.now()
    clock.advance(timedelta(seconds=5.1))
    assert await reader.data_key(erased) is None  # within the TTL, as before
    assert await reader.data_key(kept) is not None  # read again: a destruction happened
    assert reads.reads == 4
    assert clock.now() - destroyed_at <= timedelta(seconds=5.1)
    clock.advance(timedelta(days=1))
    assert await reader.data_key(erased) is None


async def test_a_key_read_just_before_its_destruction_is_not_cached_past_the_ttl(
    database: AsyncDatabase[Document], kek_file: Path
) -> None:
    """The reader has the key's document (live) in hand when a retention destroys the key's
    class (no tombstone to see) and replaces the mark: had the reader taken the mark after the
    key, it would cache the key under the new mark and open destroyed values until the
    cache's end (10 min)."""
    clock = FixedClock(datetime(2026, 12, 1, 12, tzinfo=UTC))
    eraser, reader = service(database, kek_file, clock), service(database, kek_file, clock)
    key_id = await eraser.ensure("client:c12", "identity")
    reads = HeldKeyReads(reader.data_keys)
    reads.hold = asyncio.Event()
    reader.data_keys = reads  # type: ignore[assignment]
    reading = asyncio.create_task(reader.data_key(key_id))
    await reads.answered.wait()  # the reader holds the live document
    await eraser.destroy(
        "client:c12", record_class="identity", reason="retention", erasure_id="r12"
    )
    reads.hold.set()
    assert await reading is not None  # read before the destruction: open, as before
    clock.advance(timedelta(seconds=5.1))
    assert await reader.data_key(key_id) is None
