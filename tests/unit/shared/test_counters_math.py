"""The arithmetic of partition counters: differences of contributions, folds, and durations
read back from histograms within the stated precision."""

from __future__ import annotations

import random

import pytest

from casework.counters import (
    bucket_hours,
    decode_counts,
    difference,
    duration_bucket,
    encode_counts,
    fold_counts,
    histogram_percentile,
)

from casework_cases.adapters.read_models.documents import quarter_key
from casework_cases.adapters.read_models.register import percentile


def test_a_move_between_buckets_takes_from_one_and_adds_to_the_other() -> None:
    before = {"north": {"phase|active": 1, "risk|high": 1}}
    after = {"north": {"phase|review": 1, "risk|high": 1}}
    assert difference(before, after) == {"north": {"phase|active": -1, "phase|review": 1}}


def test_a_move_between_sites_changes_both_and_nothing_else() -> None:
    before = {"north": {"phase|active": 1}, "north|2026-W09": {"to_assignment|180": 1}}
    after = {"south": {"phase|active": 1}, "north|2026-W09": {"to_assignment|180": 1}}
    assert difference(before, after) == {
        "north": {"phase|active": -1},
        "south": {"phase|active": 1},
    }
    assert difference(after, after) == {}


def test_the_fold_of_contributions_drops_zeros() -> None:
    folded = fold_counts(
        [{"north": {"a": 1, "b": 1}}, {"north": {"a": 1, "b": -1}}, {"south": {"a": 2}}]
    )
    assert folded == {"north": {"a": 2}, "south": {"a": 2}}


@pytest.mark.parametrize("hours", [0.02, 0.5, 1.0, 2.0, 26.0, 47.5, 340.8, 2000.0, 9000.0])
def test_a_bucket_reads_within_two_point_two_percent_of_its_values(hours: float) -> None:
    assert bucket_hours(duration_bucket(hours)) == pytest.approx(hours, rel=0.022)


def test_under_a_minute_reads_as_zero() -> None:
    assert duration_bucket(0.0) == 0
    assert duration_bucket(0.5 / 60) == 0
    assert bucket_hours(0) == 0.0


def test_percentiles_from_a_histogram_stay_within_the_precision_of_exact_ones() -> None:
    rng = random.Random(3)
    for _ in range(200):
        values = [rng.lognormvariate(3, 1.5) for _ in range(rng.randint(1, 60))]
        histogram: dict[int, int] = {}
        for v in values:
            histogram[duration_bucket(v)] = histogram.get(duration_bucket(v), 0) + 1
        for q in (0, 50, 90, 100):
            exact = percentile(values, q)
            assert histogram_percentile(histogram, q) == pytest.approx(exact, rel=0.022)


def test_a_histogram_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        histogram_percentile({}, 50)
    with pytest.raises(ValueError, match="outside"):
        histogram_percentile({3: 1}, 101)


def test_counts_travel_as_one_json_string() -> None:
    counts = {"to_acceptance|120": 3, "received": 2}
    encoded = encode_counts(counts)
    assert isinstance(encoded, str)
    assert decode_counts({"counts": encoded}) == counts
    assert decode_counts({}) == {}


@pytest.mark.parametrize(
    ("week", "key"),
    [
        ("2026-W01", "north|2026-Q1"),
        ("2026-W13", "north|2026-Q1"),
        ("2026-W14", "north|2026-Q2"),
        ("2026-W52", "north|2026-Q4"),
        ("2026-W53", "north|2026-Q4"),
    ],
)
def test_weekly_register_counters_are_kept_by_site_and_quarter(week: str, key: str) -> None:
    assert quarter_key("north", week) == key
