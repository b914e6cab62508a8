"""The supervisor-to-worker ratio's band against the agency's target (issue 10: "against a
configured target, e.g. 1:5 to 1:10")."""

from __future__ import annotations

import pytest

from casework_supervision.adapters.board import ratio


@pytest.mark.parametrize(
    ("supervisors", "workers", "band", "per"),
    [
        (1, 5, "within", 5.0),  # the least the target allows
        (2, 20, "within", 10.0),  # the most
        (1, 11, "stretched", 11.0),
        (3, 4, "underused", 4 / 3),
        (0, 3, "unsupervised", None),
        (0, 0, "empty", None),
        (2, 0, "underused", 0.0),
    ],
)
def test_a_ratio_is_banded_against_the_target(
    supervisors: int, workers: int, band: str, per: float | None
) -> None:
    found = ratio(supervisors, workers, (5, 10))
    assert (found.band, found.workers_per_supervisor, found.target) == (band, per, (5, 10))


def test_the_target_is_the_agencys() -> None:
    assert ratio(1, 4, (3, 4)).band == "within"
    assert ratio(1, 4, (6, 8)).band == "underused"
