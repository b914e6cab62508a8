"""A starting service waits out a broker or database that is slow or briefly away, and only
that (`casework.runtime._while_transient`)."""

from __future__ import annotations

import pytest
from aiokafka.errors import RequestTimedOutError

from casework.runtime import _while_transient


async def test_a_timeout_is_retried_until_the_step_succeeds() -> None:
    calls = 0

    async def create_topics() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RequestTimedOutError()
        return "created"

    assert await _while_transient(create_topics, "creating topics", within=30) == "created"
    assert calls == 2


async def test_anything_else_is_raised_at_once() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await _while_transient(broken, "creating topics", within=30)
    assert calls == 1


async def test_an_outage_longer_than_the_patience_is_raised() -> None:
    async def away() -> None:
        raise RequestTimedOutError()

    with pytest.raises(RequestTimedOutError):
        await _while_transient(away, "creating topics", within=0.1)
