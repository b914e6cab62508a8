"""Per stream, the last version whose deadline work a policy has done
(`approval_deadline_plans`, `session_deadline_plans`): one document per stream,
`{_id: <stream>, _applied: {<stream>: <version>}}`, the shape `ReadModel.apply` keeps.

Invariant: an event is acted on once per stream and version, in order: `seen` reads the
document once; the policy does its deadline work (idempotent: scheduling what is scheduled,
cancelling what is cancelled, changes nothing), then `done` writes the version from that same
read, without reading it again. A crash between the two repeats the deadline work on
redelivery, which changes nothing. Only the policy consuming the stream's partition writes
the document (one writer per document, DESIGN §5), so the read is current when it writes;
should a replica that took the partition over race it on a new document, the insert's
unique `_id` refuses one of them, and that one applies again through `ReadModel.apply`.
"""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from casework.envelope import Envelope
from casework.eventstore import Document
from casework.projections import APPLIED, ReadModel


class DeadlinePlans:
    def __init__(self, plans: ReadModel) -> None:
        self.read_model = plans

    async def seen(self, envelope: Envelope) -> tuple[bool, Document | None]:
        """(whether this event or a later one of its stream was done, the stored document)."""
        stored = await self.read_model.collection.find_one({"_id": envelope.subject})
        doc = dict(stored) if stored else None
        version = (doc or {}).get(APPLIED, {}).get(envelope.subject, 0)
        return version >= envelope.stream_version, doc

    async def done(self, envelope: Envelope, stored: Document | None) -> bool:
        """Record the event as done, over `stored` as `seen` returned it."""
        subject = envelope.subject
        applied = {**(stored or {}).get(APPLIED, {}), subject: envelope.stream_version}
        new: Document = {**(stored or {}), "_id": subject, APPLIED: applied}
        collection = self.read_model.collection
        if stored is None:
            try:
                await collection.insert_one(new)
                return True
            except DuplicateKeyError:  # another writer made it meanwhile: apply over theirs
                return await self.read_model.apply(subject, envelope, lambda doc: doc)
        await collection.replace_one({"_id": subject}, new)
        return True
