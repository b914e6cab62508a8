"""The crisis stage histogram observes a crisis's own handler only, by stage name only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from casework_notifications.application.timing import CrisisTiming


def count(registry: CollectorRegistry, stage: str) -> float:
    value = registry.get_sample_value(
        "casework_notifications_crisis_stage_seconds_count", {"stage": stage}
    )
    return value or 0.0


def test_stages_are_observed_inside_a_crisis_only() -> None:
    registry = CollectorRegistry()
    timing = CrisisTiming(registry)
    with timing.stage("recipients"), timing.inline():
        pass  # another trigger's handler: nothing observed
    assert count(registry, "recipients") == 0
    assert count(registry, "inline_inbox") == 0

    declared = datetime.now(UTC) - timedelta(milliseconds=50)
    with timing.crisis(declared):
        with timing.stage("recipients"):
            pass
        with timing.inline():
            pass
    for stage in ("received", "recipients", "inline_inbox", "pushed", "handled"):
        assert count(registry, stage) == 1, stage
    received = registry.get_sample_value(
        "casework_notifications_crisis_stage_seconds_sum", {"stage": "received"}
    )
    assert received is not None
    assert received >= 0.05
    labels = {
        s.labels.get("stage")
        for m in registry.collect()
        for s in m.samples
        if s.name.startswith("casework_notifications_crisis_stage_seconds")
    }
    assert labels <= {"received", "recipients", "inline_inbox", "pushed", "handled"}
