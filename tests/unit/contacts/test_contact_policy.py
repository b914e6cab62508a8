"""The contact policy's rule table: each risk, phase and medium class; site overrides; a
table that is not one is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from casework.contracts.contacts import MediumClass

from casework_contacts.domain.policy import DEFAULT_POLICY, OPEN_PHASES, ContactPolicy

F2F, LIVE, WRITTEN = MediumClass.FACE_TO_FACE, MediumClass.LIVE_REMOTE, MediumClass.WRITTEN
POLICY = ContactPolicy.from_json(DEFAULT_POLICY)
AGENCY = POLICY.for_site("north")


def rules(risk: str | None, phase: str = "active") -> dict[str, tuple[timedelta, int, set[str]]]:
    return {
        r.rule_id: (r.window, r.contacts, {m.value for m in r.media_classes})
        for r in AGENCY.standing(risk, phase)
    }


ALL = {"face_to_face", "live_remote", "written"}


@pytest.mark.parametrize("phase", OPEN_PHASES)
def test_the_documented_defaults_hold_in_every_open_phase(phase: str) -> None:
    assert rules("imminent", phase) == {"imminent-daily": (timedelta(days=1), 1, ALL)}
    assert rules("high", phase) == {
        "high-every-3-days": (timedelta(days=3), 1, ALL),
        "high-weekly-face-to-face": (timedelta(days=7), 1, {"face_to_face"}),
    }
    assert rules("medium", phase) == {"medium-weekly": (timedelta(days=7), 1, ALL)}
    assert rules("low", phase) == {"low-every-14-days": (timedelta(days=14), 1, ALL)}
    assert rules(None, phase) == {"medium-weekly": (timedelta(days=7), 1, ALL)}


@pytest.mark.parametrize("risk", ["imminent", "high", "medium", "low", None])
def test_a_closed_case_has_no_standing_rules(risk: str | None) -> None:
    assert AGENCY.standing(risk, "closed") == []


@pytest.mark.parametrize(
    ("risk", "medium_class", "counts"),
    [
        ("imminent", F2F, True),
        ("imminent", LIVE, True),
        ("imminent", WRITTEN, False),
        ("high", F2F, True),
        ("high", LIVE, True),
        ("high", WRITTEN, False),  # a text is not a made contact at high risk
        ("medium", WRITTEN, False),
        ("low", WRITTEN, True),
        (None, WRITTEN, False),
    ],
)
def test_which_media_count_as_made_at_each_risk(
    risk: str | None, medium_class: MediumClass, counts: bool
) -> None:
    assert AGENCY.counts_as_made(medium_class, risk, tuple(MediumClass)) is counts


def test_a_face_to_face_rule_takes_only_face_to_face_contacts() -> None:
    assert AGENCY.counts_as_made(F2F, "high", (F2F,))
    assert not AGENCY.counts_as_made(LIVE, "high", (F2F,))


@pytest.mark.parametrize(
    ("trigger", "risk", "rule_id", "within"),
    [
        ("case_opened", "imminent", "first-contact-24h", timedelta(hours=24)),
        ("case_opened", "high", "first-contact-24h", timedelta(hours=24)),
        ("case_opened", "medium", "first-contact-72h", timedelta(hours=72)),
        ("case_opened", "low", "first-contact-72h", timedelta(hours=72)),
        ("case_opened", None, "first-contact-72h", timedelta(hours=72)),
        ("crisis_resolved", "high", "crisis-follow-up-72h", timedelta(hours=72)),
        ("inpatient_discharge", "low", "discharge-follow-up-72h", timedelta(hours=72)),
    ],
)
def test_event_triggered_clocks(
    trigger: str, risk: str | None, rule_id: str, within: timedelta
) -> None:
    clock = AGENCY.clock(trigger, risk)
    assert clock is not None
    assert (clock.rule_id, clock.within) == (rule_id, within)


def with_site(override: dict[str, Any]) -> ContactPolicy:
    return ContactPolicy.from_json({**DEFAULT_POLICY, "sites": {"south": override}})


def test_a_site_override_replaces_adds_and_disables_rules_and_names_its_version() -> None:
    policy = with_site(
        {
            "version": "south-3",
            "rules": [
                {"rule_id": "low-every-14-days", "risks": ["low"], "window": "P28D",
                 "phases": ["review"]},
                {"rule_id": "medium-weekly", "risks": ["medium"], "window": "P7D",
                 "disabled": True},
                {"rule_id": "medium-twice-weekly", "risks": ["medium"], "window": "P7D",
                 "contacts": 2},
            ],
            "made_media": {"high": ["face_to_face"]},
        }
    )  # fmt: skip
    south, north = policy.for_site("south"), policy.for_site("north")
    assert south.version == "agency-default-2026-12+south:south-3"
    assert north.version == "agency-default-2026-12"
    assert [r.rule_id for r in south.standing("low", "active")] == []
    assert [(r.rule_id, r.window) for r in south.standing("low", "review")] == [
        ("low-every-14-days", timedelta(days=28))
    ]
    assert [(r.rule_id, r.contacts) for r in south.standing("medium", "active")] == [
        ("medium-twice-weekly", 2)
    ]
    assert not south.counts_as_made(LIVE, "high", tuple(MediumClass))
    assert north.counts_as_made(LIVE, "high", tuple(MediumClass))


@pytest.mark.parametrize(
    "broken",
    [
        {**DEFAULT_POLICY, "made_media": {"high": ["face_to_face"]}},  # risks without media
        {**DEFAULT_POLICY, "rules": [*DEFAULT_POLICY["rules"], DEFAULT_POLICY["rules"][0]]},
        {**DEFAULT_POLICY, "rules": [{"rule_id": "x", "risks": ["high"], "window": "often"}]},
        {**DEFAULT_POLICY, "surprise": 1},
    ],
)
def test_a_table_that_is_not_one_is_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ContactPolicy.from_json(broken)
