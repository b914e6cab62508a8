"""The parts of `KeyService` that sealing and opening use, in memory, for unit tests."""

from __future__ import annotations

from casework.privacy.kek import KEY_BYTES


class FakeKeys:
    """Each subject's class key made on first use; `destroy` forgets a subject's keys as
    erasure does."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}

    async def current_key(self, subject: str, record_class: str) -> tuple[str, bytes]:
        key_id = f"{subject}/{record_class}/v1"
        key = self.keys.setdefault(key_id, bytes(range(KEY_BYTES)))
        assert key is not None
        return key_id, key

    async def data_keys_for(self, key_ids: list[str]) -> dict[str, bytes | None]:
        return {k: self.keys.get(k) for k in key_ids}

    def destroy(self, subject: str) -> None:
        for key_id in self.keys:
            if key_id.startswith(subject + "/"):
                self.keys[key_id] = None
