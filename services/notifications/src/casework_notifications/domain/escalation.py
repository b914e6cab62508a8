"""When each step of an escalation policy is due.

Steps are numbered through the repeats: step `r * L + i` is level `i` in repetition `r`
(`L` levels). Step 0 comes at the opening; each later level `delay_minutes` after the step
before it; the first level of a repetition `repeat_after_minutes` after the last level. The
due times count from the opening, so a late firing does not push the later steps back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from casework.contracts.notifications import EscalationPolicy


def step_count(policy: EscalationPolicy) -> int:
    """How many steps the policy has in all (levels * (1 + repeat))."""
    return len(policy.levels) * (1 + policy.repeat)


def level_of(policy: EscalationPolicy, step: int) -> tuple[int, int]:
    """(level, repetition) of a step."""
    return step % len(policy.levels), step // len(policy.levels)


def offset(policy: EscalationPolicy, step: int) -> timedelta:
    """How long after the opening step `step` is due."""
    minutes = 0
    for s in range(1, step + 1):
        level, _ = level_of(policy, s)
        minutes += policy.levels[level].delay_minutes if level > 0 else policy.repeat_after_minutes
    return timedelta(minutes=minutes)


def due_at(policy: EscalationPolicy, opened_at: datetime, step: int) -> datetime:
    return opened_at + offset(policy, step)


def notification_id(alert_id: str, episode: int, step: int, recipient: str) -> str:
    """One notification per recipient per step of an episode: the id says which."""
    return f"{alert_id}~{episode}~{step}~{recipient}"


def alert_of(notification: str) -> str:
    """The alert a notification id belongs to."""
    return notification.split("~", 1)[0]
