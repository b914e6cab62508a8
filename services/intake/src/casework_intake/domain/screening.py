"""The intake risk-screening rule: structured answers in, a risk level and its reason out.

The suicide items follow the style of the Columbia Suicide Severity Rating Scale (C-SSRS)
screener and its triage idea — passive ideation < active thoughts < thoughts with a method <
intent < intent with a plan, and recent behaviour counts most — with items on harm to others,
safeguarding and substance use added. **This is not the C-SSRS and not a clinical tool**: it
is an agency's documented triage rule that decides how fast a referral is handled. A
clinician's assessment of the case replaces it.

The rule is a table of clauses, read top to bottom; the **first clause that holds decides**
the level, and its id is recorded as the `rule` of the `RiskScreened` event. The table is
ordered from the highest level down, so the highest level any clause reaches always wins.

| rule (clause id)                            | level    | holds when                             |
|---------------------------------------------|----------|----------------------------------------|
| suicidal_intent_with_plan                   | imminent | intent to act on suicidal thoughts     |
|                                             |          | with a worked-out plan                 |
| recent_suicidal_behaviour                   | imminent | suicidal behaviour (an attempt,        |
|                                             |          | interrupted or aborted attempt,        |
|                                             |          | preparation) `now` or in the           |
|                                             |          | `past_week`                            |
| harm_to_others_intent                       | imminent | intent to harm another person          |
| suicidal_intent                             | high     | intent to act on suicidal thoughts,    |
|                                             |          | without a plan                         |
| suicidal_behaviour_past_month               | high     | suicidal behaviour in the `past_month` |
| suicidal_thoughts_with_method               | high     | suicidal thoughts with a method in     |
|                                             |          | mind                                   |
| suicidal_thoughts_with_severe_substance_use | high     | suicidal thoughts and severe substance |
|                                             |          | use together (disinhibition raises the |
|                                             |          | risk of acting)                        |
| harm_to_others                              | high     | thoughts of harming another person,    |
|                                             |          | without intent                         |
| child_at_risk                               | high     | a child at home is at risk             |
|                                             |          | (safeguarding)                         |
| vulnerable_adult_at_risk                    | high     | a vulnerable adult at home is at risk  |
|                                             |          | (safeguarding)                         |
| suicidal_thoughts                           | medium   | active suicidal thoughts, nothing more |
| wish_to_be_dead                             | medium   | a wish to be dead or not to wake up    |
|                                             |          | (passive ideation) only                |
| severe_substance_use                        | medium   | severe substance use (dependence,      |
|                                             |          | overdose risk)                         |
| no_risk_indicators                          | low      | none of the above; substance use that  |
|                                             |          | is not severe does not raise the level |

Answers need not be consistent: a "yes" to a follow-up item counts even when its lead item
was answered "no" (`intent_with_plan` without `suicidal_intent`, say). A screen errs towards
safety, so a worker's tick is never discarded because another was missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from casework.contracts.common import RiskLevel
from casework.contracts.intake import Frequency, ScreeningAnswers


@dataclass(frozen=True)
class Clause:
    """One row of the screening table."""

    rule: str
    level: RiskLevel
    holds: Callable[[ScreeningAnswers], bool]
    meaning: str


@dataclass(frozen=True)
class ScreeningResult:
    risk_level: RiskLevel
    rule: str
    """The id of the clause that decided the level."""
    meaning: str
    """The clause in words, for the person reading the result."""


CLAUSES: tuple[Clause, ...] = (
    Clause(
        "suicidal_intent_with_plan",
        RiskLevel.IMMINENT,
        lambda a: a.intent_with_plan,
        "intent to act on suicidal thoughts, with a plan",
    ),
    Clause(
        "recent_suicidal_behaviour",
        RiskLevel.IMMINENT,
        lambda a: a.suicidal_behaviour in (Frequency.NOW, Frequency.PAST_WEEK),
        "suicidal behaviour now or in the past week",
    ),
    Clause(
        "harm_to_others_intent",
        RiskLevel.IMMINENT,
        lambda a: a.harm_to_others_intent,
        "intent to harm another person",
    ),
    Clause(
        "suicidal_intent",
        RiskLevel.HIGH,
        lambda a: a.suicidal_intent,
        "intent to act on suicidal thoughts, without a plan",
    ),
    Clause(
        "suicidal_behaviour_past_month",
        RiskLevel.HIGH,
        lambda a: a.suicidal_behaviour is Frequency.PAST_MONTH,
        "suicidal behaviour in the past month",
    ),
    Clause(
        "suicidal_thoughts_with_method",
        RiskLevel.HIGH,
        lambda a: a.thoughts_with_method,
        "suicidal thoughts with a method in mind",
    ),
    Clause(
        "suicidal_thoughts_with_severe_substance_use",
        RiskLevel.HIGH,
        lambda a: a.suicidal_thoughts and a.substance_use_severe,
        "suicidal thoughts together with severe substance use",
    ),
    Clause(
        "harm_to_others",
        RiskLevel.HIGH,
        lambda a: a.harm_to_others,
        "thoughts of harming another person",
    ),
    Clause(
        "child_at_risk",
        RiskLevel.HIGH,
        lambda a: a.children_at_home_at_risk,
        "a child at home is at risk (safeguarding)",
    ),
    Clause(
        "vulnerable_adult_at_risk",
        RiskLevel.HIGH,
        lambda a: a.vulnerable_adult_at_risk,
        "a vulnerable adult at home is at risk (safeguarding)",
    ),
    Clause(
        "suicidal_thoughts",
        RiskLevel.MEDIUM,
        lambda a: a.suicidal_thoughts,
        "suicidal thoughts, without method, intent or behaviour",
    ),
    Clause(
        "wish_to_be_dead",
        RiskLevel.MEDIUM,
        lambda a: a.wish_to_be_dead,
        "a wish to be dead (passive ideation)",
    ),
    Clause(
        "severe_substance_use",
        RiskLevel.MEDIUM,
        lambda a: a.substance_use_severe,
        "severe substance use",
    ),
)
"""The table of the module docstring, in the order it is read."""

NO_RISK_INDICATORS = Clause(
    "no_risk_indicators", RiskLevel.LOW, lambda a: True, "none of the risk indicators screened"
)


def screen(answers: ScreeningAnswers) -> ScreeningResult:
    """The risk level the answers indicate, and the clause that decided it (see the table)."""
    clause = next((c for c in CLAUSES if c.holds(answers)), NO_RISK_INDICATORS)
    return ScreeningResult(clause.level, clause.rule, clause.meaning)


def meaning_of(rule: str) -> str | None:
    """The words of a clause, by its id (None for a clause this version does not have)."""
    return next((c.meaning for c in (*CLAUSES, NO_RISK_INDICATORS) if c.rule == rule), None)
