"""Consent and other booleans are `true`/`false`; dates are `YYYY-MM-DD` (issue 7)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from casework_cases.entrypoints.schemas import GoalIn
from casework_intake.entrypoints.schemas import ClientMatchIn, ReferralIn, ScreeningIn


def _referral(**changes: Any) -> dict[str, Any]:
    referral: dict[str, Any] = {
        "site": "north",
        "source": "gp",
        "urgency": "soon",
        "consent_to_share": True,
        "client": {"given_name": "Alex", "family_name": "Morgan", "date_of_birth": "1990-04-12"},
        "presenting_concerns": "Low mood.",
    }
    referral.update(changes)
    return referral


def _error_types(error: ValidationError) -> set[str]:
    return {e["type"] for e in error.errors()}


def test_a_referral_with_true_and_a_date_is_valid() -> None:
    assert ReferralIn.model_validate(_referral()).consent_to_share is True


@pytest.mark.parametrize("consent", [0, 1, "yes", "true", "1", None, 1.0])
def test_consent_is_only_true_or_false(consent: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        ReferralIn.model_validate(_referral(consent_to_share=consent))
    assert {e["loc"] for e in refused.value.errors()} == {("consent_to_share",)}


@pytest.mark.parametrize(
    "birth",
    [
        "1990-04-12T00:00:00",
        "1990-04-12T00:00:00Z",
        "1990-04-12 00:00",
        "12/04/1990",
        "19900412",
        639878400,
        "1990-02-30",
        "1990-4-12",
    ],
)
def test_a_birth_date_is_only_yyyy_mm_dd(birth: Any) -> None:
    client = {"given_name": "Alex", "family_name": "Morgan", "date_of_birth": birth}
    with pytest.raises(ValidationError) as refused:
        ReferralIn.model_validate(_referral(client=client))
    assert {e["loc"] for e in refused.value.errors()} == {("client", "date_of_birth")}


@pytest.mark.parametrize("answer", [0, 1, "no"])
def test_screening_answers_are_only_true_or_false(answer: Any) -> None:
    with pytest.raises(ValidationError):
        ScreeningIn.model_validate({"wish_to_be_dead": answer, "suicidal_thoughts": False})


def test_new_client_is_only_true_or_false() -> None:
    with pytest.raises(ValidationError):
        ClientMatchIn.model_validate({"new_client": 1, "reason": "different person"})


@pytest.mark.parametrize("target", ["2026-06-30T12:00:00", 1782777600, "30/06/2026"])
def test_a_goal_target_date_is_only_yyyy_mm_dd(target: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        GoalIn.model_validate({"description": "Sleep better", "target_date": target})
    assert _error_types(refused.value) <= {"date_format", "date_from_datetime_parsing"}


def test_a_goal_target_date_as_yyyy_mm_dd_is_valid() -> None:
    goal = GoalIn.model_validate({"description": "Sleep better", "target_date": "2026-06-30"})
    assert goal.target_date.isoformat() == "2026-06-30"
