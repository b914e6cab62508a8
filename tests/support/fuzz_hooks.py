"""Schemathesis hooks for fuzzing a running service with the tokens of several roles.

`CASEWORK_FUZZ_TOKENS` holds bearer tokens separated by commas; each generated request takes
the next one in turn, so every operation is tried as several roles (allowed and refused).
Loaded by `schemathesis run` through `SCHEMATHESIS_HOOKS=fuzz_hooks` (see
`tests/e2e/test_schemathesis.py`).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import schemathesis

_TOKENS = [t for t in os.environ.get("CASEWORK_FUZZ_TOKENS", "").split(",") if t]


@schemathesis.auth(refresh_interval=None)
class RotatingTokens:
    """Hands out the configured tokens in turn, one per request."""

    def __init__(self) -> None:
        self._next = itertools.cycle(_TOKENS or [""])

    def get(self, case: Any, ctx: Any) -> str:
        return next(self._next)

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
