"""What the benchmarks share: a measured row, percentiles, the ratio to a raw limit."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Row:
    stage: str
    n: int
    seconds: float
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    raw_rate: float | None = None
    ratio: float | None = None


def percentile_ms(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measured(stage: str, n: int, seconds: float, latencies: Sequence[float]) -> Row:
    return Row(
        stage,
        n,
        seconds,
        n / seconds if seconds > 0 else 0.0,
        percentile_ms(latencies, 0.5),
        percentile_ms(latencies, 0.99),
    )


def against(row: Row, raw: Row) -> Row:
    row.raw_rate = raw.rate
    row.ratio = row.rate / raw.rate if raw.rate else None
    return row


def progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)
