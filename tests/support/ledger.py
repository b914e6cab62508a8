"""A tiny aggregate, contract and projection for testing the platform core on its own."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from casework.aggregate import Aggregate
from casework.envelope import Envelope
from casework.events import DomainEvent, EventRegistry
from casework.eventstore import Document
from casework.projections import Projection


class LedgerEvent(DomainEvent):
    service = "test"


class LedgerOpened(LedgerEvent):
    ledger_id: str
    owner: str


class AmountCredited(LedgerEvent):
    ledger_id: str
    amount: int


class Poison(LedgerEvent):
    """An event the projection below cannot handle."""

    ledger_id: str


REGISTRY = EventRegistry([LedgerOpened, AmountCredited, Poison])


class LedgerClosedForCredit(Exception):
    pass


class Ledger(Aggregate):
    stream_type = "ledger"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner = ""
        self.balance = 0

    def open(self, owner: str) -> None:
        self._trigger(LedgerOpened(ledger_id=self.id, owner=owner))

    def credit(self, amount: int) -> None:
        if self.is_new:
            raise LedgerClosedForCredit(self.id)
        self._trigger(AmountCredited(ledger_id=self.id, amount=amount))

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case LedgerOpened(owner=owner):
                self.owner = owner
            case AmountCredited(amount=amount):
                self.balance += amount


class Balances(Projection):
    """Balance per ledger; `Poison` makes it fail every time."""

    name = "balances"
    topics: tuple[str, ...] = ()

    def __init__(self, database: AsyncDatabase[Document], collection: str | None = None) -> None:
        super().__init__(database, collection)
        self.calls = 0

    @classmethod
    def reading(
        cls, topic: str, database: AsyncDatabase[Document], collection: str | None = None
    ) -> Balances:
        """The projection fed by one (test-unique) topic."""
        bound = type(cls.__name__, (cls,), {"topics": (topic,)})
        return bound(database, collection)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        self.calls += 1
        match event:
            case LedgerOpened(ledger_id=lid, owner=owner):

                def opened(doc: Document) -> Document:
                    return {**doc, "owner": owner, "balance": 0, "events": 1}

                return await self.read_model.apply(lid, envelope, opened)
            case AmountCredited(ledger_id=lid, amount=amount):

                def credited(doc: Document) -> Document:
                    return {
                        **doc,
                        "balance": doc.get("balance", 0) + amount,
                        "events": doc.get("events", 0) + 1,
                    }

                return await self.read_model.apply(lid, envelope, credited)
            case Poison():
                raise RuntimeError("cannot project a poison event")
        return False
