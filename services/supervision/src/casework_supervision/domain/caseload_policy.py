"""The agency's caseload weighting (stream `caseload_policy-agency`): points per risk level,
the crisis bonus, the default capacity and the bands. Each `CaseloadPolicySet` replaces the
whole policy; setting the same policy again records nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from casework.aggregate import Aggregate
from casework.contracts.supervision import CaseloadPolicySet
from casework.directory import DEFAULT_CASELOAD_POLICY, RISK_KEYS, CaseloadPolicy
from casework.events import DomainEvent

from casework_supervision.domain.errors import InvalidDirectoryEntry

AGENCY = "agency"


@dataclass(frozen=True)
class SetCaseloadPolicy:
    points_by_risk: dict[str, int]
    crisis_bonus: int
    default_capacity: int
    amber_at_percent: int
    red_at_percent: int
    set_by: str


class CaseloadPolicyRecord(Aggregate):
    stream_type = "caseload_policy"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.current: SetCaseloadPolicy | None = None

    def set(self, cmd: SetCaseloadPolicy, at: datetime) -> None:
        if sorted(cmd.points_by_risk) != sorted(RISK_KEYS):
            raise InvalidDirectoryEntry(
                f"points for each of {', '.join(RISK_KEYS)}", "body.points_by_risk"
            )
        if any(p < 1 for p in cmd.points_by_risk.values()):
            raise InvalidDirectoryEntry("a case weighs one point at least", "body.points_by_risk")
        if not 0 < cmd.amber_at_percent < cmd.red_at_percent:
            raise InvalidDirectoryEntry("red begins above amber", "body.red_at_percent")
        if self.current is not None and _same(self.current, cmd):
            return
        self._trigger(
            CaseloadPolicySet(
                points_by_risk=dict(cmd.points_by_risk),
                crisis_bonus=cmd.crisis_bonus,
                default_capacity=cmd.default_capacity,
                amber_at_percent=cmd.amber_at_percent,
                red_at_percent=cmd.red_at_percent,
                set_by=cmd.set_by,
                set_at=at,
            )
        )

    def policy(self) -> CaseloadPolicy:
        """The policy as a value (the defaults until one is set)."""
        if self.current is None:
            return DEFAULT_CASELOAD_POLICY
        return CaseloadPolicy(
            points_by_risk=tuple(sorted(self.current.points_by_risk.items())),
            crisis_bonus=self.current.crisis_bonus,
            default_capacity=self.current.default_capacity,
            amber_at_percent=self.current.amber_at_percent,
            red_at_percent=self.current.red_at_percent,
        )

    def _apply(self, event: DomainEvent) -> None:
        if isinstance(event, CaseloadPolicySet):
            self.current = SetCaseloadPolicy(
                dict(event.points_by_risk),
                event.crisis_bonus,
                event.default_capacity,
                event.amber_at_percent,
                event.red_at_percent,
                event.set_by,
            )


def _same(a: SetCaseloadPolicy, b: SetCaseloadPolicy) -> bool:
    """The same policy, whoever set it."""
    return replace(a, set_by="") == replace(b, set_by="")
