"""Caseload weighting at assignment (issue 10): a case weighs points by its risk level, plus a
bonus while in crisis (`casework.directory.CaseloadPolicy`, the agency's policy as supervision
last published it); a worker's load is the sum over the open cases they hold. An assignment
that takes the worker into the red band needs a reason, recorded on `CaseworkerAssigned`
(`capacity_override_reason`); without one it is refused (`CapacityExceeded`, with the figures).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from casework.directory import CaseloadPolicy

from casework_cases.domain.errors import CapacityExceeded


@dataclass(frozen=True)
class HeldCase:
    """One open case a worker holds, as the caseload index knows it."""

    case_id: str
    risk_level: str | None
    in_crisis: bool


def weighted_load(policy: CaseloadPolicy, cases: Iterable[HeldCase]) -> int:
    return sum(policy.weight(c.risk_level, c.in_crisis) for c in cases)


def check_capacity(
    policy: CaseloadPolicy,
    case_id: str,
    caseworker_id: str,
    held: Iterable[HeldCase],
    case_weight: int,
    capacity_points: int | None,
    override_reason: str | None,
) -> None:
    """Refuse taking the worker into red without a reason (the case itself, if the index
    already lists it with them, counts once)."""
    load = weighted_load(policy, (c for c in held if c.case_id != case_id))
    capacity = policy.capacity_of(capacity_points)
    if policy.band(load + case_weight, capacity) == "red" and not override_reason:
        raise CapacityExceeded(
            case_id, caseworker_id, load, case_weight, capacity, policy.red_at_percent
        )
