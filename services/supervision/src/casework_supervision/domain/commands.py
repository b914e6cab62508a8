"""Commands the supervision service accepts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RegisterSite:
    site: str
    name: str
