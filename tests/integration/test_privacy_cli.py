"""`casework keys` on the real MongoDB-wire server: an integration opens only what an explicit,
recorded grant gives it; a revocation takes it back; the KEK is rotated with every data key
re-wrapped and readable with the new KEK alone."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient, MongoClient

from casework.cli import main
from casework.eventstore import Document
from casework.privacy import KeyService, LocalKeyFileProvider
from casework.privacy.sealing import GrantedOpener, Opener
from casework.privacy.tokens import seal


@pytest.fixture
def keys_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mongo_url: str
) -> Iterator[dict[str, str]]:
    env = {
        "CASEWORK_KEYS_MONGO_DB": f"test_keys_cli_{uuid.uuid4().hex[:8]}",
        "CASEWORK_KEK_FILE": str(tmp_path / "kek"),
        "CASEWORK_MONGO_URL": mongo_url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    with MongoClient(mongo_url) as client:
        client.drop_database(env["CASEWORK_KEYS_MONGO_DB"])


async def sealed_values(env: dict[str, str]) -> dict[str, str]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(env["CASEWORK_MONGO_URL"])
    try:
        keys = KeyService(
            client[env["CASEWORK_KEYS_MONGO_DB"]],
            LocalKeyFileProvider(Path(env["CASEWORK_KEK_FILE"])),
        )
        await keys.verify()
        values = {}
        for record_class, value in (("identity", "Alex Morgan"), ("clinical", "Hears voices")):
            key_id, key = await keys.current_key("client:c1", record_class)
            values[record_class] = seal(value, key_id=key_id, key=key)
        return values
    finally:
        await client.close()


async def read_as(env: dict[str, str], integration: str | None, value: str) -> str:
    client: AsyncMongoClient[Document] = AsyncMongoClient(env["CASEWORK_MONGO_URL"])
    try:
        keys = KeyService(
            client[env["CASEWORK_KEYS_MONGO_DB"]],
            LocalKeyFileProvider(Path(env["CASEWORK_KEK_FILE"])),
        )
        opener = Opener(keys) if integration is None else GrantedOpener(keys, integration)
        opened: str = await opener.open_value(value)
        return opened
    finally:
        await client.close()


def test_an_integration_opens_only_the_record_class_it_was_granted(
    keys_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "init-kek"]) == 0
    values = asyncio.run(sealed_values(keys_env))
    assert asyncio.run(read_as(keys_env, "billing", values["identity"])) == values["identity"]

    grant = ["--integration", "billing", "--record-class", "identity", "--by", "dpo-anna"]
    assert main(["keys", "grant", *grant, "--reason", "invoices need names"]) == 0
    assert asyncio.run(read_as(keys_env, "billing", values["identity"])) == "Alex Morgan"
    assert asyncio.run(read_as(keys_env, "billing", values["clinical"])) == values["clinical"]
    assert asyncio.run(read_as(keys_env, "other", values["identity"])) == values["identity"]

    assert main(["keys", "revoke", *grant]) == 0
    assert asyncio.run(read_as(keys_env, "billing", values["identity"])) == values["identity"]
    with MongoClient(keys_env["CASEWORK_MONGO_URL"]) as client:
        audit = list(client[keys_env["CASEWORK_KEYS_MONGO_DB"]]["key_audit"].find({}))
    assert [(a["action"], a["integration"], a["by"]) for a in audit] == [
        ("grant", "billing", "dpo-anna"),
        ("revoke", "billing", "dpo-anna"),
    ]
    assert audit[0]["reason"] == "invoices need names"


def test_rotating_the_kek_rewraps_every_key_and_can_retire_the_old_one(
    keys_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    main(["keys", "init-kek"])
    values = asyncio.run(sealed_values(keys_env))
    old = Path(keys_env["CASEWORK_KEK_FILE"]).read_text()
    capsys.readouterr()

    assert main(["keys", "rotate-kek", "--retire"]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["rewrapped"] == 3  # two data keys and the canary
    new = Path(keys_env["CASEWORK_KEK_FILE"]).read_text()
    assert len(new.splitlines()) == 1
    assert new != old
    assert asyncio.run(read_as(keys_env, None, values["clinical"])) == "Hears voices"
    assert main(["keys", "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["kek_id"], status["data_keys"]) == (report["kek_id"], 2)
