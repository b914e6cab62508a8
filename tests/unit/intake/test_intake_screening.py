"""The screening rule, clause by clause (table-driven): each clause decides on its own, the
highest level wins when several hold, and the documented table matches the code."""

from __future__ import annotations

from typing import Any

import pytest

from casework.contracts.common import RiskLevel
from casework.contracts.intake import Frequency, ScreeningAnswers

from casework_intake.domain import screening
from casework_intake.domain.screening import CLAUSES, meaning_of, screen

LEVEL_ORDER = [RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.IMMINENT]


def answers(**given: Any) -> ScreeningAnswers:
    """Everything "no" except what is given."""
    return ScreeningAnswers(**{"wish_to_be_dead": False, "suicidal_thoughts": False, **given})


# One row per clause: the fewest answers that make exactly that clause decide.
EACH_CLAUSE: list[tuple[dict[str, Any], RiskLevel, str]] = [
    (
        {"suicidal_thoughts": True, "suicidal_intent": True, "intent_with_plan": True},
        RiskLevel.IMMINENT,
        "suicidal_intent_with_plan",
    ),
    ({"suicidal_behaviour": Frequency.NOW}, RiskLevel.IMMINENT, "recent_suicidal_behaviour"),
    (
        {"suicidal_behaviour": Frequency.PAST_WEEK},
        RiskLevel.IMMINENT,
        "recent_suicidal_behaviour",
    ),
    (
        {"harm_to_others": True, "harm_to_others_intent": True},
        RiskLevel.IMMINENT,
        "harm_to_others_intent",
    ),
    ({"suicidal_thoughts": True, "suicidal_intent": True}, RiskLevel.HIGH, "suicidal_intent"),
    (
        {"suicidal_behaviour": Frequency.PAST_MONTH},
        RiskLevel.HIGH,
        "suicidal_behaviour_past_month",
    ),
    (
        {"suicidal_thoughts": True, "thoughts_with_method": True},
        RiskLevel.HIGH,
        "suicidal_thoughts_with_method",
    ),
    (
        {"suicidal_thoughts": True, "substance_use": True, "substance_use_severe": True},
        RiskLevel.HIGH,
        "suicidal_thoughts_with_severe_substance_use",
    ),
    ({"harm_to_others": True}, RiskLevel.HIGH, "harm_to_others"),
    ({"children_at_home_at_risk": True}, RiskLevel.HIGH, "child_at_risk"),
    ({"vulnerable_adult_at_risk": True}, RiskLevel.HIGH, "vulnerable_adult_at_risk"),
    ({"wish_to_be_dead": True, "suicidal_thoughts": True}, RiskLevel.MEDIUM, "suicidal_thoughts"),
    ({"wish_to_be_dead": True}, RiskLevel.MEDIUM, "wish_to_be_dead"),
    (
        {"substance_use": True, "substance_use_severe": True},
        RiskLevel.MEDIUM,
        "severe_substance_use",
    ),
    ({}, RiskLevel.LOW, "no_risk_indicators"),
    ({"substance_use": True}, RiskLevel.LOW, "no_risk_indicators"),
]


@pytest.mark.parametrize(
    ("given", "level", "rule"),
    EACH_CLAUSE,
    ids=[f"{r}-{i}" for i, (_, _, r) in enumerate(EACH_CLAUSE)],
)
def test_each_clause_decides_its_level(given: dict[str, Any], level: RiskLevel, rule: str) -> None:
    result = screen(answers(**given))
    assert (result.risk_level, result.rule) == (level, rule)
    assert result.meaning == meaning_of(rule)
    assert result.meaning


# When several clauses hold, the highest level wins (and, within a level, the first clause).
PRECEDENCE: list[tuple[dict[str, Any], RiskLevel, str]] = [
    (
        {
            "wish_to_be_dead": True,
            "suicidal_thoughts": True,
            "thoughts_with_method": True,
            "suicidal_intent": True,
            "intent_with_plan": True,
            "suicidal_behaviour": Frequency.PAST_MONTH,
            "children_at_home_at_risk": True,
        },
        RiskLevel.IMMINENT,
        "suicidal_intent_with_plan",
    ),
    (
        {"wish_to_be_dead": True, "harm_to_others": True, "harm_to_others_intent": True},
        RiskLevel.IMMINENT,
        "harm_to_others_intent",
    ),
    (
        {"suicidal_thoughts": True, "substance_use_severe": True, "vulnerable_adult_at_risk": True},
        RiskLevel.HIGH,
        "suicidal_thoughts_with_severe_substance_use",
    ),
    (
        {"wish_to_be_dead": True, "children_at_home_at_risk": True},
        RiskLevel.HIGH,
        "child_at_risk",
    ),
    (
        {"wish_to_be_dead": True, "substance_use_severe": True},
        RiskLevel.MEDIUM,
        "wish_to_be_dead",
    ),
]


@pytest.mark.parametrize(("given", "level", "rule"), PRECEDENCE)
def test_the_highest_level_wins_when_several_clauses_hold(
    given: dict[str, Any], level: RiskLevel, rule: str
) -> None:
    result = screen(answers(**given))
    assert (result.risk_level, result.rule) == (level, rule)


# A follow-up item answered "yes" counts even when its lead item was answered "no".
INCONSISTENT: list[tuple[dict[str, Any], RiskLevel, str]] = [
    ({"intent_with_plan": True}, RiskLevel.IMMINENT, "suicidal_intent_with_plan"),
    ({"harm_to_others_intent": True}, RiskLevel.IMMINENT, "harm_to_others_intent"),
    ({"thoughts_with_method": True}, RiskLevel.HIGH, "suicidal_thoughts_with_method"),
    ({"suicidal_intent": True}, RiskLevel.HIGH, "suicidal_intent"),
    ({"substance_use_severe": True}, RiskLevel.MEDIUM, "severe_substance_use"),
]


@pytest.mark.parametrize(("given", "level", "rule"), INCONSISTENT)
def test_a_follow_up_answer_counts_without_its_lead_answer(
    given: dict[str, Any], level: RiskLevel, rule: str
) -> None:
    result = screen(answers(**given))
    assert (result.risk_level, result.rule) == (level, rule)


def test_every_clause_of_the_rule_is_tested_above() -> None:
    tested = {rule for _, _, rule in EACH_CLAUSE}
    assert tested == {c.rule for c in CLAUSES} | {"no_risk_indicators"}


def test_the_clauses_are_read_from_the_highest_level_down() -> None:
    ranks = [LEVEL_ORDER.index(c.level) for c in CLAUSES]
    assert ranks == sorted(ranks, reverse=True)


def test_the_documented_table_names_every_clause_with_its_level() -> None:
    doc = screening.__doc__ or ""
    rows = {
        cells[0]: cells[1]
        for line in doc.splitlines()
        if line.startswith("|")
        and len(cells := [c.strip() for c in line.strip("|").split("|")]) == 3
        and cells[0]
    }
    expected = {c.rule: c.level.value for c in CLAUSES} | {"no_risk_indicators": "low"}
    assert {k: v for k, v in rows.items() if k in expected} == expected
    assert "not a clinical tool" in doc
    assert "C-SSRS" in doc


def test_meaning_of_an_unknown_rule_is_none() -> None:
    assert meaning_of("a_clause_of_some_future_version") is None
