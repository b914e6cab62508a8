"""The copy's crises by stream version: whether a case was in crisis at any event of its
stream, the same answer however far the copy has read since (redelivery, replay)."""

from __future__ import annotations

from typing import Any

from casework_notifications.adapters.case_facts import in_crisis


def crises(*spans: tuple[int, int | None]) -> dict[str, Any]:
    return {
        "crises": [
            {"crisis_id": f"c{i}", "declared": d, "resolved": r} for i, (d, r) in enumerate(spans)
        ]
    }


def test_a_rise_after_the_crisis_in_its_commit_is_in_crisis_one_before_is_not() -> None:
    facts = crises((5, None))
    assert in_crisis(facts, 6)  # crisis first, then the rise it brings (cases today)
    assert not in_crisis(facts, 5)
    assert not in_crisis(facts, 4)  # the rise first (commits written before): not yet


def test_the_answer_for_an_event_does_not_change_once_the_crisis_is_resolved() -> None:
    facts = crises((5, 9), (12, None))
    assert in_crisis(facts, 6)
    assert in_crisis(facts, 8)
    assert not in_crisis(facts, 10)  # between crises
    assert in_crisis(facts, 13)
    assert not in_crisis({}, 6)  # a copy from before crises were kept: none
