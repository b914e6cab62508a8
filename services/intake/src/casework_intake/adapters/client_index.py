"""The `client_index` read model: the client registry as intake reads it.

Fed by `ClientRegistered` from intake's own topic, one document per client,
`client:<client_id>`, found by exact `_id` (fast on every MongoDB-wire server, DESIGN §7):
the client's details as the event carries them — sealed tokens (`casework.privacy`), opened
only in an authorised answer — and the site they are registered at.

Duplicates are not searched here: a search by name, birth date or phone needs those values,
and this projection has only tokens. They are found in intake's blind index (keyed hashes,
`casework.privacy.blind_index`), filed by the write side when the client is registered.

Eventual consistency: a client enters the index a moment after the referral that registers
it is accepted (relay → Kafka → this projection).
"""

from __future__ import annotations

from collections.abc import Sequence

from casework.contracts.intake import ClientDetails, ClientRegistered
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import Projection
from casework.runtime import events_topic

from casework_intake.application.ports import RegisteredClient

_DETAILS = ("given_name", "family_name", "date_of_birth", "phone")


class ClientIndex(Projection):
    """Registered clients' (sealed) details and site, by client id."""

    name = "client_index"
    topics = (events_topic("intake"),)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, ClientRegistered):
            return False
        data = envelope.data  # the stored form: tokens copied as they are, never opened

        def registered(doc: Document) -> Document:
            return {
                **doc,
                "client_id": event.client_id,
                "site": event.site,
                **{k: data[k] for k in _DETAILS if data.get(k) is not None},
                "registered_at": event.registered_at,
            }

        return await self.read_model.apply(f"client:{event.client_id}", envelope, registered)

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
