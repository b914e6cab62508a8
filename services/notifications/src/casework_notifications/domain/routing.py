"""Routing rules as data: which triggers notify whom, on which channels, with what urgency,
escalating along which policy — per agency, overridable per site.

A table (JSON, `CASEWORK_NOTIFICATIONS_ROUTING_FILE`) has `policies` by name, `rules` by
trigger, and `sites`: per site, rules that replace the agency's for that trigger. Checked
when loaded (the service refuses to start on a bad table): every rule names a known policy,
every level names known targets, levels after the first wait at least a minute.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from casework.contracts.notifications import (
    Channel,
    EscalationLevel,
    EscalationPolicy,
    Trigger,
    Urgency,
)

from casework_notifications.domain.errors import InvalidRouting

TARGETS = frozenset(
    {"assigned_worker", "on_call", "backup", "supervisor", "site_manager", "regional"}
)


class Rule(BaseModel):
    urgency: Urgency
    channels: tuple[Channel, ...]
    policy: str
    digest: bool = False
    """E-mail it in the daily (worker) and weekly (supervisor) digests, not one by one."""


class RoutingTable(BaseModel):
    policies: dict[str, EscalationPolicy]
    rules: dict[Trigger, Rule]
    sites: dict[str, dict[Trigger, Rule]] = {}


ALL = (Channel.INBOX, Channel.EMAIL, Channel.WEBHOOK)

DEFAULT_TABLE: dict[str, Any] = {
    "policies": {
        "crisis": {
            "name": "crisis",
            "levels": [
                {"targets": ["assigned_worker", "on_call"], "delay_minutes": 0},
                {"targets": ["backup", "supervisor"], "delay_minutes": 5},
                {"targets": ["site_manager"], "delay_minutes": 5},
                {"targets": ["regional"], "delay_minutes": 10},
            ],
            "repeat": 2,
            "repeat_after_minutes": 10,
        },
        "screened_imminent": {
            "name": "screened_imminent",
            "levels": [
                {"targets": ["on_call", "site_manager"], "delay_minutes": 0},
                {"targets": ["backup"], "delay_minutes": 5},
                {"targets": ["regional"], "delay_minutes": 10},
            ],
            "repeat": 2,
            "repeat_after_minutes": 10,
        },
        "lone_worker": {
            "name": "lone_worker",
            "levels": [
                {"targets": ["assigned_worker", "on_call", "supervisor"], "delay_minutes": 0},
                {"targets": ["backup", "site_manager"], "delay_minutes": 5},
            ],
            "repeat": 2,
            "repeat_after_minutes": 10,
        },
        "worker_then_supervisor": {
            "name": "worker_then_supervisor",
            "levels": [
                {"targets": ["assigned_worker"], "delay_minutes": 0},
                {"targets": ["supervisor"], "delay_minutes": 240},
            ],
        },
        "supervisor": {
            "name": "supervisor",
            "levels": [{"targets": ["supervisor"], "delay_minutes": 0}],
        },
        "worker_and_supervisor": {
            "name": "worker_and_supervisor",
            "levels": [{"targets": ["assigned_worker", "supervisor"], "delay_minutes": 0}],
        },
        "supervisor_and_site_manager": {
            "name": "supervisor_and_site_manager",
            "levels": [{"targets": ["supervisor", "site_manager"], "delay_minutes": 0}],
        },
        "site_manager": {
            "name": "site_manager",
            "levels": [{"targets": ["site_manager"], "delay_minutes": 0}],
        },
    },
    "rules": {
        "crisis": {"urgency": "critical", "channels": list(ALL), "policy": "crisis"},
        "screened_imminent": {
            "urgency": "critical",
            "channels": list(ALL),
            "policy": "screened_imminent",
        },
        "lone_worker_overdue": {
            "urgency": "critical",
            "channels": list(ALL),
            "policy": "lone_worker",
        },
        "risk_raised": {
            "urgency": "high",
            "channels": ["inbox", "email"],
            "policy": "worker_then_supervisor",
        },
        "contact_overdue": {
            "urgency": "normal",
            "channels": ["inbox", "email"],
            "policy": "worker_then_supervisor",
            "digest": True,
        },
        "follow_up_missed": {
            "urgency": "high",
            "channels": ["inbox", "email"],
            "policy": "worker_and_supervisor",
        },
        "case_review_overdue": {
            "urgency": "normal",
            "channels": ["inbox", "email"],
            "policy": "supervisor",
            "digest": True,
        },
        "action_item_overdue": {
            "urgency": "normal",
            "channels": ["inbox", "email"],
            "policy": "worker_and_supervisor",
            "digest": True,
        },
        "supervision_overdue": {
            "urgency": "normal",
            "channels": ["inbox", "email"],
            "policy": "worker_and_supervisor",
            "digest": True,
        },
        "approval_requested": {"urgency": "normal", "channels": ["inbox"], "policy": "supervisor"},
        "approval_overdue": {
            "urgency": "high",
            "channels": ["inbox", "email"],
            "policy": "supervisor_and_site_manager",
        },
        "transfer_waiting": {
            "urgency": "normal",
            "channels": ["inbox"],
            "policy": "site_manager",
        },
    },
}


class Routing:
    """The table, checked; `rule(trigger, site)` answers with the site's override first."""

    def __init__(self, table: RoutingTable) -> None:
        self.table = table
        for scope, rules in [("rules", table.rules), *table.sites.items()]:
            for trigger, rule in rules.items():
                if rule.policy not in table.policies:
                    raise InvalidRouting(f"{scope}.{trigger.value}: no policy {rule.policy!r}")
        for name, policy in table.policies.items():
            _check_policy(name, policy)
        missing = set(Trigger) - set(table.rules)
        if missing:
            raise InvalidRouting(f"rules: no rule for {sorted(t.value for t in missing)}")

    @classmethod
    def from_json(cls, data: Any) -> Routing:
        try:
            return cls(RoutingTable.model_validate(data))
        except ValidationError as exc:
            fields = "; ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
            raise InvalidRouting(f"routing table: {fields}") from None

    def rule(self, trigger: Trigger, site: str) -> tuple[Rule, EscalationPolicy]:
        rule = self.table.sites.get(site, {}).get(trigger) or self.table.rules[trigger]
        return rule, self.table.policies[rule.policy]


def _check_policy(name: str, policy: EscalationPolicy) -> None:
    if not policy.levels:
        raise InvalidRouting(f"policies.{name}: no levels")
    for i, level in enumerate(policy.levels):
        if not level.targets:
            raise InvalidRouting(f"policies.{name}.levels.{i}: no targets")
        for target in level.targets:
            if target not in TARGETS and not target.startswith("staff:"):
                raise InvalidRouting(f"policies.{name}.levels.{i}: unknown target {target!r}")
        if i == 0 and level.delay_minutes != 0:
            raise InvalidRouting(f"policies.{name}.levels.0: the first level is notified at once")
        if i > 0 and level.delay_minutes < 1:
            raise InvalidRouting(f"policies.{name}.levels.{i}: a delay is at least 1 minute")


def default_routing() -> Routing:
    return Routing.from_json(DEFAULT_TABLE)


def routing_over_defaults(data: Any) -> Routing:
    """An operator's table laid over the documented defaults: its policies and rules replace
    the defaults of the same name, and a trigger it does not mention keeps its default rule —
    so a file written before a trigger existed still starts the service after an upgrade."""
    if not isinstance(data, dict):
        raise InvalidRouting("routing table: not a JSON object")
    merged = dict(data)
    for part in ("policies", "rules"):
        given = data.get(part, {})
        if isinstance(given, dict):  # anything else is left for validation to name
            merged[part] = {**DEFAULT_TABLE[part], **given}
    return Routing.from_json(merged)


__all__ = [
    "EscalationLevel",
    "Routing",
    "RoutingTable",
    "Rule",
    "default_routing",
    "routing_over_defaults",
]
