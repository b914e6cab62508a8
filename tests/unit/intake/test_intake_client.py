"""The client registry: matching rules (names, birth dates, phones) and the Client aggregate."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from casework.contracts.intake import ClientDetails, ClientRegistered

from casework_intake.domain.client import (
    Client,
    MatchedOn,
    match_key,
    matched_on,
    normalise_name,
    normalise_phone,
)
from casework_intake.domain.commands import RegisterClient
from casework_intake.domain.errors import ClientAlreadyRegistered

AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
BORN = date(1990, 4, 12)


@pytest.mark.parametrize(
    ("name", "normalised"),
    [
        ("Morgan", "morgan"),
        ("  MORGAN ", "morgan"),
        ("O'Brien", "obrien"),
        ("O\u2019Brien", "obrien"),
        ("Smith-Jones", "smithjones"),
        ("Smith Jones", "smithjones"),
        ("Núñez", "nunez"),
        ("Zoë", "zoe"),
        ("Łukasz", "lukasz"),
        ("Søren", "soren"),
        ("Strauß", "strauss"),
        ("St. John", "stjohn"),
        ("Дмитрий", "дмитрии"),  # not Latin: kept, case-folded, accents stripped
    ],
)
def test_names_are_compared_without_case_accents_spaces_or_punctuation(
    name: str, normalised: str
) -> None:
    assert normalise_name(name) == normalised


def test_the_match_key_is_family_given_and_iso_birth_date() -> None:
    assert match_key("Anne-Marie", "O'Neill", BORN) == "oneill|annemarie|1990-04-12"
    assert match_key("anne marie", "ONEILL", BORN) == match_key("Anne-Marie", "O'Neill", BORN)
    assert match_key("Anne", "Oneill", BORN) != match_key("Anne", "Oneill", date(1990, 4, 13))


@pytest.mark.parametrize(
    ("phone", "normalised"),
    [
        ("07700 900123", "07700900123"),
        ("+44 7700 900123", "07700900123"),
        ("0044 7700 900123", "07700900123"),
        ("+44 (0)7700 900123", "07700900123"),
        ("(01632) 960-001", "01632960001"),
        ("+33 1 23 45 67 89", "33123456789"),
        ("12345", None),  # too short to compare
        (None, None),
    ],
)
def test_phone_numbers_are_compared_as_national_digits(
    phone: str | None, normalised: str | None
) -> None:
    assert normalise_phone(phone) == normalised


def details(**kw: object) -> ClientDetails:
    fields: dict[str, object] = {
        "given_name": "Alex",
        "family_name": "Morgan",
        "date_of_birth": BORN,
        "phone": "+44 7700 900123",
    }
    return ClientDetails.model_validate(fields | kw)


@pytest.mark.parametrize(
    ("candidate", "reasons"),
    [
        (details(), [MatchedOn.NAME_AND_BIRTH_DATE, MatchedOn.PHONE]),
        (details(given_name="ALEX ", phone=None), [MatchedOn.NAME_AND_BIRTH_DATE]),
        (details(given_name="Sam", phone="07700900123"), [MatchedOn.PHONE]),
        (details(date_of_birth=date(1991, 4, 12), phone="07700900999"), []),
    ],
    ids=["both", "name and birth date", "phone", "neither"],
)
def test_matched_on_says_which_rules_connect_two_people(
    candidate: ClientDetails, reasons: list[MatchedOn]
) -> None:
    assert matched_on(details(), candidate) == reasons


def test_a_referral_without_a_phone_never_matches_on_phone() -> None:
    assert matched_on(details(phone=None), details(given_name="Sam", phone=None)) == []


def test_registering_a_client_records_its_blind_index_term_as_match_key() -> None:
    client = Client("c-1")
    client.register(
        RegisterClient(client_id="c-1", site="north", details=details(), match_term="name:h"),
        AT,
    )
    assert client.pending_events == [
        ClientRegistered(
            client_id="c-1",
            site="north",
            given_name="Alex",
            family_name="Morgan",
            date_of_birth=BORN,
            phone="+44 7700 900123",
            match_key="name:h",
            registered_at=AT,
        )
    ]
    assert client.details == details()
    assert client.site == "north"


def test_a_client_is_registered_only_once() -> None:
    given = Client.rehydrate(
        "c-1",
        [
            ClientRegistered(
                client_id="c-1",
                site="north",
                given_name="Alex",
                family_name="Morgan",
                date_of_birth=BORN,
                match_key="morgan|alex|1990-04-12",
                registered_at=AT,
            )
        ],
    )
    with pytest.raises(ClientAlreadyRegistered):
        given.register(
            RegisterClient(client_id="c-1", site="north", details=details(), match_term="t"), AT
        )
    assert given.pending_events == []
    assert given.version == 1
