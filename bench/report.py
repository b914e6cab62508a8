"""What the benchmarks share: a measured row, percentiles, the ratio to a raw limit."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


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


def server_options(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    """The options every benchmark takes: the servers it talks to, a label for the setup,
    and where to write its figures as JSON."""
    parser.add_argument(
        "--kafka", default=os.environ.get("CASEWORK_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    )
    parser.add_argument(
        "--mongo-url", default=os.environ.get("CASEWORK_MONGO_URL", "mongodb://127.0.0.1:27017")
    )
    parser.add_argument("--label", default="", help="names the setup (e.g. the backend)")
    if json_output:
        parser.add_argument("--json", help="also write the figures to this file")


def write_json(args: argparse.Namespace, rows: Sequence[Row], **extra: Any) -> None:
    """With `--json FILE`: the options and the rows (and `extra`) as JSON."""
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": [asdict(r) for r in rows], **extra}, f, indent=2)


def table(rows: Sequence[Row], header: str, note: str = "") -> str:
    """A markdown table of rows, each beside its raw limit and the ratio to it."""

    def cell(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    lines = [
        header,
        "",
        "| stage                                          |      n |   ops/s | p50 ms | p99 ms "
        "| raw ops/s | ratio |",
        "|------------------------------------------------|-------:|--------:|-------:|-------:"
        "|----------:|------:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.stage:<46} | {r.n:>6} | {r.rate:>7.0f} | {cell(r.p50_ms, '6.1f'):>6} | "
            f"{cell(r.p99_ms, '6.1f'):>6} | {cell(r.raw_rate, '9.0f'):>9} | "
            f"{cell(r.ratio, '5.2f'):>5} |"
        )
    if note:
        lines += ["", note]
    return "\n".join(lines)


def _p50_p99_table(
    rows: Sequence[tuple[str, int, float | None, float | None]], header: str, note: str
) -> str:
    """A markdown table of (stage, n, p50 ms, p99 ms) rows."""

    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:7.1f}"

    width = max([46, *(len(name) for name, *_ in rows)])
    lines = [
        header,
        "",
        f"| {'stage':<{width}} |      n |  p50 ms |  p99 ms |",
        f"|{'-' * (width + 2)}|-------:|--------:|--------:|",
    ]
    for name, n, p50, p99 in rows:
        lines.append(f"| {name:<{width}} | {n:>6} | {cell(p50)} | {cell(p99)} |")
    if note:
        lines += ["", note]
    return "\n".join(lines)


def stages_table(stages: Sequence[tuple[str, Sequence[float]]], header: str, note: str = "") -> str:
    """A markdown table of where the time goes: per stage, n, p50 and p99 (latencies in s)."""
    rows = [
        (name, len(values), percentile_ms(values, 0.5), percentile_ms(values, 0.99))
        for name, values in stages
    ]
    return _p50_p99_table(rows, header, note)


def histogram_buckets(text: str, name: str, label: str) -> dict[str, list[tuple[float, float]]]:
    """From a Prometheus text exposition: each `label` value's cumulative buckets of the
    histogram `name`, as (upper bound, count), by bound."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket" and label in sample.labels:
                bound = float(sample.labels["le"])
                found.setdefault(sample.labels[label], []).append((bound, sample.value))
    return {k: sorted(v) for k, v in found.items()}


def histogram_delta(
    before: dict[str, list[tuple[float, float]]], after: dict[str, list[tuple[float, float]]]
) -> dict[str, list[tuple[float, float]]]:
    """What was observed between two scrapes, per label value."""
    delta: dict[str, list[tuple[float, float]]] = {}
    for key, buckets in after.items():
        earlier = dict(before.get(key, []))
        delta[key] = [(bound, count - earlier.get(bound, 0.0)) for bound, count in buckets]
    return delta


def bucket_percentile_ms(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The q-quantile of cumulative buckets, interpolated linearly inside its bucket (as
    Prometheus' `histogram_quantile`); None when nothing was observed."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound * 1000
            span = count - lower_count
            share = (rank - lower_count) / span if span else 1.0
            return (lower_bound + (bound - lower_bound) * share) * 1000
        lower_bound, lower_count = bound, count
    return lower_bound * 1000


def histogram_table(
    delta: dict[str, list[tuple[float, float]]], order: Sequence[str], header: str, note: str = ""
) -> str:
    """A markdown table of histogram stages (from `histogram_delta`): n, p50, p99."""
    rows = []
    for name in order:
        buckets = delta.get(name, [])
        n = int(buckets[-1][1]) if buckets else 0
        rows.append(
            (name, n, bucket_percentile_ms(buckets, 0.5), bucket_percentile_ms(buckets, 0.99))
        )
    return _p50_p99_table(rows, header, note)
