"""The webhook retry schedule (`WEBHOOK_SCHEDULE`, `jittered`): about three days in all, each
wait jittered by ±20 % so endpoints failing together are not retried in step."""

from __future__ import annotations

import random
from datetime import timedelta

from casework_notifications.application.delivery import WEBHOOK_SCHEDULE, jittered


def test_the_schedule_spans_about_three_days_and_only_grows() -> None:
    total = sum(WEBHOOK_SCHEDULE, timedelta())
    assert timedelta(days=2.5) <= total <= timedelta(days=3.5)
    assert list(WEBHOOK_SCHEDULE) == sorted(WEBHOOK_SCHEDULE)
    # jittered at both extremes, the whole span stays about three days
    assert timedelta(days=2) <= total * 0.8
    assert total * 1.2 <= timedelta(days=4)


def test_each_wait_is_jittered_within_twenty_percent_and_spread() -> None:
    rng = random.Random(7)
    wait = timedelta(hours=10)
    waits = [jittered(wait, rng) for _ in range(2_000)]
    assert all(wait * 0.8 <= w <= wait * 1.2 for w in waits)
    # spread over the range, not clustered: each fifth of it gets a fair share
    fifths = [0] * 5
    for w in waits:
        fifths[min(4, int((w / wait - 0.8) / 0.08))] += 1
    assert all(300 <= n <= 500 for n in fifths), fifths
    # two endpoints failing at the same moment are retried at different moments
    assert jittered(wait, random.Random(1)) != jittered(wait, random.Random(2))
