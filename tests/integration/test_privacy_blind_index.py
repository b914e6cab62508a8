"""The blind index on the real MongoDB-wire server: duplicate matching by keyed hashes (the
normalisation rules of intake apply), concurrent filings all kept, nothing plaintext stored,
and an erasure forgets every term of the subject and of the subjects linked to it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase

from casework.contracts.intake import ClientDetails
from casework.eventstore import Document
from casework.privacy import KeyService, LocalKeyFileProvider, create_key_file
from casework.privacy.blind_index import BlindIndex

from casework_intake.domain.client import match_values


def person(given: str, family: str = "Morgan", phone: str | None = None) -> ClientDetails:
    return ClientDetails(
        given_name=given, family_name=family, date_of_birth=date(1990, 4, 12), phone=phone
    )


async def index_of(database: AsyncDatabase[Document], tmp_path: Path) -> BlindIndex:
    create_key_file(tmp_path / "kek")
    keys = KeyService(database, LocalKeyFileProvider(tmp_path / "kek"))
    index = BlindIndex(database["blind_index"], keys)
    await index.ensure_indexes()
    return index


async def terms_of(index: BlindIndex, details: ClientDetails) -> list[str]:
    return [await index.term(rule.value, value) for rule, value in match_values(details).items()]


async def test_candidates_are_found_by_name_and_birth_date_or_phone_without_plaintext(
    database: AsyncDatabase[Document], tmp_path: Path
) -> None:
    index = await index_of(database, tmp_path)
    registered = {
        "alex": person("Alex", "Morgan", "+44 7700 900123"),
        "alex_again": person("ALEX ", "morgan", "07700 900999"),  # same name and birth date
        "flatmate": person("Jo", "Smith", "07700900123"),  # same phone
        "stranger": person("Alexa", "Morgan", "07700 900555"),
    }
    for name, details in registered.items():
        await index.file(await terms_of(index, details), owner=name, subject=f"client:{name}")

    referred = await terms_of(index, person("Alex", "Morgan", "0044 (0)7700 900123"))
    found = {owner for term in referred for owner in await index.lookup(term)}
    assert found == {"alex", "alex_again", "flatmate"}
    assert await index.lookup((await terms_of(index, person("Nobody", "Known")))[0]) == []
    stored = str([d async for d in database["blind_index"].find({})])
    for plaintext in ("morgan", "Morgan", "alex|", "7700900123", "1990-04-12"):
        assert plaintext not in stored


async def test_clients_filed_under_one_term_at_the_same_moment_are_all_kept(
    database: AsyncDatabase[Document], tmp_path: Path
) -> None:
    """Two replicas filing different clients under one term, each twice: the unique `_id`
    per (term, owner) keeps everyone once."""
    first = await index_of(database, tmp_path)
    second = BlindIndex(database["blind_index"], first.keys)
    term = await first.term("name_and_birth_date", "lee|sam|2000-01-01")
    twins = [str(uuid.uuid4()) for _ in range(12)]
    await asyncio.gather(
        *(
            (first, second)[i % 2].file([term], owner=owner, subject=f"client:{owner}")
            for i, owner in enumerate(twins + twins)
        )
    )
    assert sorted(await first.lookup(term)) == sorted(twins)


async def test_forgetting_a_subject_removes_its_terms_and_its_linked_subjects_terms(
    database: AsyncDatabase[Document], tmp_path: Path
) -> None:
    index = await index_of(database, tmp_path)
    gone, kept = person("Alex"), person("Sam", "Lee")
    gone_terms, kept_terms = await terms_of(index, gone), await terms_of(index, kept)
    await index.stage("referral:r1", gone_terms, subject="person:p1")
    await index.file(gone_terms, owner="c1", subject="client:c1")
    await index.file(kept_terms, owner="c2", subject="client:c2")
    await index.keys.link("person:p1", owner="client:c1")

    assert await index.forget("client:c1") == 1 + len(gone_terms)

    assert await index.staged("referral:r1") == []
    for term in gone_terms:
        assert await index.lookup(term) == []
    assert await index.lookup(kept_terms[0]) == ["c2"]
