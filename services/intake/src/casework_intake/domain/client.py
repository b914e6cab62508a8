"""The client registry: one stream per person the agency has accepted (`client-<id>`), and the
rules that say when two records may be the same person.

Two records may be the same person when they share a **match key** (normalised family name,
given name and date of birth) or a **normalised phone number**. These are suggestions for the
intake worker, who confirms or overrides them; nothing is merged automatically.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from enum import StrEnum

from casework.aggregate import Aggregate
from casework.contracts.intake import ClientDetails, ClientRegistered
from casework.events import DomainEvent

from casework_intake.domain.commands import RegisterClient
from casework_intake.domain.errors import ClientAlreadyRegistered

# Letters that Unicode does not decompose into a base letter and an accent.
_UNDECOMPOSABLE = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "\u0131": "i"}
)
SEALED_PREFIX = "enc:v1:"
MIN_PHONE_DIGITS = 7
"""Shorter numbers (extensions, typos) are too weak to suggest a match."""


class MatchedOn(StrEnum):
    """Why a registered client is a duplicate candidate."""

    NAME_AND_BIRTH_DATE = "name_and_birth_date"
    PHONE = "phone"


def normalise_name(name: str) -> str:
    """A name as compared for duplicates: case-folded, accents stripped, and only letters and
    digits kept (so spaces, hyphens, apostrophes and dots do not count).

    `"  O'Brien-Núñez "` → `"obriennunez"`; `"Łukasz"` → `"lukasz"`; `"Strauß"` → `"strauss"`.
    """
    decomposed = unicodedata.normalize("NFKD", name.casefold().translate(_UNDECOMPOSABLE))
    return "".join(ch for ch in decomposed if ch.isalnum())


def match_key(given_name: str, family_name: str, date_of_birth: date) -> str:
    """`family|given|yyyy-mm-dd`, with both names normalised (`normalise_name`)."""
    return f"{normalise_name(family_name)}|{normalise_name(given_name)}|{date_of_birth.isoformat()}"


def normalise_phone(phone: str | None) -> str | None:
    """A phone number as compared for duplicates, or None when it is too short to compare.

    Only digits are kept. UK numbers are brought to their national form, so that
    `+44 7700 900123`, `0044 7700 900123`, `+44 (0)7700 900123` and `07700 900123` all become
    `07700900123`: a leading international prefix `00` is dropped, then a leading country
    code `44` (with the `(0)` trunk digit some people write after it) becomes `0`. Other
    countries' numbers keep their country code (`+33 1 23 45 67 89` → `33123456789`).
    """
    if phone is None:
        return None
    digits = "".join(ch for ch in phone if ch.isdigit())
    if digits.startswith("00"):
        digits = digits[2:]
    if digits.startswith("440"):
        digits = digits[2:]
    elif digits.startswith("44") and len(digits) > 10:
        digits = "0" + digits[2:]
    return digits if len(digits) >= MIN_PHONE_DIGITS else None


class DetailsSealed(ValueError):
    """Matching values are computed from a command's input, never from sealed details."""


def match_values(details: ClientDetails) -> dict[MatchedOn, str]:
    """The normalised values a person is matched on, by rule (no phone value when the number
    is too short to compare). Only from plaintext details — a command's input: the
    application turns them into blind-index terms and keeps nothing else."""
    born = details.date_of_birth
    texts = (details.given_name, details.family_name, details.phone or "")
    if not isinstance(born, date) or any(SEALED_PREFIX in text for text in texts):
        raise DetailsSealed("matching needs the details as entered, not sealed ones")
    values = {
        MatchedOn.NAME_AND_BIRTH_DATE: match_key(details.given_name, details.family_name, born)
    }
    if (phone := normalise_phone(details.phone)) is not None:
        values[MatchedOn.PHONE] = phone
    return values


def matched_on(referred: ClientDetails, candidate: ClientDetails) -> list[MatchedOn]:
    """Which of the matching rules connect a referred person and a registered client."""
    mine, theirs = match_values(referred), match_values(candidate)
    return [rule for rule, value in mine.items() if theirs.get(rule) == value]


class Client(Aggregate):
    """A person in the client registry."""

    stream_type = "client"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.details: ClientDetails | None = None
        self.registered_at: datetime | None = None

    def register(self, cmd: RegisterClient, at: datetime) -> None:
        if not self.is_new:
            raise ClientAlreadyRegistered(self.id)
        self._trigger(
            ClientRegistered(
                client_id=self.id,
                site=cmd.site,
                given_name=cmd.details.given_name,
                family_name=cmd.details.family_name,
                date_of_birth=cmd.details.date_of_birth,
                phone=cmd.details.phone,
                match_key=cmd.match_term,
                registered_at=at,
            )
        )

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case ClientRegistered():
                self.site = event.site
                self.details = ClientDetails(
                    given_name=event.given_name,
                    family_name=event.family_name,
                    date_of_birth=event.date_of_birth,
                    phone=event.phone,
                )
                self.registered_at = event.registered_at
