"""The `client_index` read model: the client registry as intake searches it for duplicates.

Fed by `ClientRegistered` from intake's own topic. It holds three kinds of document, all
found by exact `_id` (the only lookup that is fast on every MongoDB-wire server, DESIGN §7):

- `client:<client_id>` — what the registry knows of a client (names, birth date, phone, site).
- `name:<match key>#<n>` — the n-th client with this match key (`family|given|yyyy-mm-dd`,
  normalised: see `casework_intake.domain.client`).
- `phone:<normalised phone>#<n>` — the n-th client with this phone number.

Why numbered slots rather than one document listing every client with a key: two clients
with the same key are registered on different streams, hence different partitions, possibly
by different replicas at the same moment. A shared list would be read-modify-written by
both and lose one (DESIGN §5: one writer per document). Each slot is instead *inserted* once,
by one client's event, with the unique `_id` as the arbiter (the one concurrency primitive,
DESIGN §7): the loser of a race takes the next slot. Slots fill from 0 without gaps, so a
lookup reads `#0`, `#1`, ... until the first miss — one exact-`_id` read when nobody matches.

Keys are recomputed from the event's fields with the current normalisation (not taken from
the stored `match_key`), so that a rebuild after a change to the rules indexes clients the
way lookups now search for them.

Eventual consistency: a client enters the index a moment after the referral that registers
it is accepted (relay → Kafka → this projection). Two referrals for the same new person
accepted within that moment — about a second — do not see each other, and both register a
client. The intake worker's duplicate check is a safety net, not a uniqueness guarantee.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import count

from pymongo.errors import DuplicateKeyError

from casework.contracts.intake import ClientDetails, ClientRegistered
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic

from casework_intake.application.ports import RegisteredClient
from casework_intake.domain.client import match_key, normalise_phone

MAX_SLOTS = 10_000
"""More clients than this under one key means something is wrong with the data."""


def name_key(details: ClientDetails) -> str:
    return "name:" + match_key(details.given_name, details.family_name, details.date_of_birth)


def phone_key(phone: str | None) -> str | None:
    normalised = normalise_phone(phone)
    return None if normalised is None else f"phone:{normalised}"


def lookup_keys(details: ClientDetails) -> list[str]:
    """The index keys under which a person with these details is filed and searched for."""
    keys = [name_key(details)]
    if (by_phone := phone_key(details.phone)) is not None:
        keys.append(by_phone)
    return keys


def slot_id(key: str, slot: int) -> str:
    return f"{key}#{slot}"


class ClientIndex(Projection):
    """Registered clients by match key and by phone number (and their details by id)."""

    name = "client_index"
    topics = (events_topic("intake"),)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, ClientRegistered):
            return False
        details = ClientDetails(
            given_name=event.given_name,
            family_name=event.family_name,
            date_of_birth=event.date_of_birth,
            phone=event.phone,
        )

        def registered(doc: Document) -> Document:
            return {
                **doc,
                "client_id": event.client_id,
                "site": event.site,
                **details.model_dump(mode="json", exclude_none=True),
                "registered_at": event.registered_at,
            }

        # The details first: a client id found under a key always has them. Every step is
        # idempotent, so a redelivery completes whatever an interrupted delivery left undone.
        changed = await self.read_model.apply(f"client:{event.client_id}", envelope, registered)
        for key in lookup_keys(details):
            changed = await self._file(key, event.client_id, envelope) or changed
        return changed

    async def _file(self, key: str, client_id: str, envelope: Envelope) -> bool:
        """Put the client in the first free slot of `key`, unless it is there already."""
        collection = self.read_model.collection
        slot = 0
        while slot < MAX_SLOTS:
            doc_id = slot_id(key, slot)
            holder = await collection.find_one({"_id": doc_id}, {"client_id": 1})
            if holder is None:
                try:
                    await collection.insert_one(
                        {
                            "_id": doc_id,
                            "client_id": client_id,
                            APPLIED: {envelope.subject: envelope.stream_version},
                        }
                    )
                    return True
                except DuplicateKeyError:
                    continue  # taken a moment ago: look at the same slot again
            if holder["client_id"] == client_id:
                return False  # filed by an earlier delivery of this event
            slot += 1
        raise RuntimeError(f"more than {MAX_SLOTS} clients under one index key")

    async def filed_under(self, key: str) -> list[str]:
        """Ids of the clients filed under an index key, in the order they were filed."""
        collection = self.read_model.collection
        found: list[str] = []
        for slot in count():
            doc = await collection.find_one({"_id": slot_id(key, slot)}, {"client_id": 1})
            if doc is None:
                return found
            found.append(doc["client_id"])
        return found  # pragma: no cover - count() never ends

    async def candidates(self, client: ClientDetails) -> list[str]:
        """Registered clients who may be this person: same match key, or same phone."""
        found: dict[str, None] = {}
        for key in lookup_keys(client):
            found.update(dict.fromkeys(await self.filed_under(key)))
        return list(found)

    async def details(self, client_ids: Sequence[str]) -> dict[str, ClientDetails]:
        """What the index holds about these clients, by id (unknown ids are left out)."""
        return {
            client_id: known.details
            for client_id, known in (await self.registered(client_ids)).items()
        }

    async def registered(self, client_ids: Sequence[str]) -> dict[str, RegisteredClient]:
        """Their details and the site each is registered at (unknown ids are left out)."""
        known: dict[str, RegisteredClient] = {}
        for client_id in client_ids:
            doc = await self.read_model.get(f"client:{client_id}")
            if doc is not None:
                details = ClientDetails.model_validate(
                    {k: doc.get(k) for k in ClientDetails.model_fields if k in doc}
                )
                known[client_id] = RegisteredClient(details=details, site=doc.get("site"))
        return known
