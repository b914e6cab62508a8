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
