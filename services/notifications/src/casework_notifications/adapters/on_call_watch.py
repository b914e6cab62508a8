"""The open alerts a new on-call worker must hear of, by site (`on_call_watch`).

One document per episode (`_id` = `<alert_id>~<episode>`) whose policy names `on_call` or
`backup` at some level, kept by the application right after each command on the alert (as
its escalation deadline is): inserted while the episode is open and unacknowledged, deleted
once it is not. Written synchronously rather than projected from the alert's topic, so that a
shift heard a moment after the alert was saved still finds it (a projection would lag).

Only inserts with a unique `_id`, deletes and an equality query on `site` (DESIGN §7). A
document left behind (a process died between the alert's acknowledgement and the delete) is
harmless: the alert itself decides, and the next command on it deletes the document.
"""

from __future__ import annotations

import contextlib

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from casework.eventstore import Document


class OnCallWatch:
    def __init__(self, database: AsyncDatabase[Document], collection: str = "on_call_watch"):
        self.collection = database[collection]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("site")

    async def keep(self, alert_id: str, episode: int, site: str) -> None:
        """Watch the episode (idempotent: the same insert again is refused and ignored)."""
        doc = {"_id": f"{alert_id}~{episode}", "alert_id": alert_id, "site": site}
        with contextlib.suppress(DuplicateKeyError):
            await self.collection.insert_one(doc)

    async def forget(self, alert_id: str, episode: int) -> None:
        await self.collection.delete_one({"_id": f"{alert_id}~{episode}"})

    async def of_site(self, site: str) -> list[str]:
        """The watched alerts of a site (equality on the `site` index)."""
        cursor = self.collection.find({"site": site}, {"alert_id": 1})
        return list(dict.fromkeys([str(d["alert_id"]) async for d in cursor]))
