"""A contact policy for tests: the documented defaults, and a site whose clocks run in
seconds (a site override, as an agency would write one), so that end-to-end and integration
tests see obligations fall due while they watch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from casework_contacts.domain.policy import DEFAULT_POLICY

FAST_SITE = "fast"
FIRST_CONTACT_S = 6
"""How long after a high-risk case opens at the fast site its first contact is overdue."""


def fast_policy(first_contact_s: int = FIRST_CONTACT_S, window: str = "PT1H") -> dict[str, Any]:
    """The defaults, with the fast site's clocks in seconds and its standing rules' windows
    `window` (long by default, so that only the clocks fall due during a test)."""
    seconds = f"PT{first_contact_s}S"
    return {
        **DEFAULT_POLICY,
        "sites": {
            FAST_SITE: {
                "version": "fast-1",
                "rules": [{**rule, "window": window} for rule in DEFAULT_POLICY["rules"]],
                "clocks": [{**clock, "within": seconds} for clock in DEFAULT_POLICY["clocks"]],
            }
        },
    }


def write_fast_policy(directory: Path, **options: Any) -> Path:
    """The fast policy as a file for `CASEWORK_CONTACTS_POLICY_FILE`."""
    path = directory / "contact-policy.json"
    path.write_text(json.dumps(fast_policy(**options)))
    return path
