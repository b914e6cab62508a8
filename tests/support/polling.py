"""Waiting for the platform to catch up, in the end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


def eventually(
    probe: Callable[[], httpx.Response],
    done: Callable[[httpx.Response], bool],
    within: float = 30.0,
) -> httpx.Response:
    """`probe()` until `done` says its answer is the awaited one, or `within` seconds pass;
    returns the last answer, for the test to assert on. Read models are eventually
    consistent: this is how a test waits for one to show what the test just did."""
    deadline = time.monotonic() + within
    while True:
        response = probe()
        if done(response) or time.monotonic() > deadline:
            return response
        time.sleep(0.1)
