"""What the platform costs while nothing happens: the five services started and left alone.

The fixed cost every command pays for on a shared machine: each service's relay, audit relay
and deadline scheduler poll the database, and its Kafka consumers poll the broker. Measured
over `--seconds` after a `--settle` period: the CPU of each service's process and of FerretDB,
its PostgreSQL (with its backends) and Kafka (when they listen on this machine), and every
database command the services send (their own `casework_db_commands_total`), per second, by
service and the most frequent.

Raw limit beside it, measured in the same run before the services start: the servers' own CPU
over the same length of time with no services connected (their floor).

Run `uv run python bench/idle.py --help`; it prints a table (progress on stderr) and, with
`--json FILE`, writes the figures too. It talks only to the servers named.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
from lifecycle import _counter_series, listening_pid

from casework.devstack import Stack, running_stack

from report import Row, progress, server_options, table, write_json


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pids: dict[str, int], families: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far (utime + stime) of each process in `pids`, and of each process in
    `families` with its live children (PostgreSQL: a backend per connection), and the wall
    clock."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            fields = _stat(pid)
            seconds[name] = (int(fields[11]) + int(fields[12])) / tick
    for name, parent in families.items():
        total = 0.0
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                fields = _stat(int(proc.name))
                if int(proc.name) == parent or int(fields[1]) == parent:
                    total += (int(fields[11]) + int(fields[12])) / tick
        seconds[name] = total
    seconds["wall"] = time.perf_counter()
    return seconds


def cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    wall = after["wall"] - before["wall"]
    return {k: (after[k] - before.get(k, 0.0)) / wall for k in after if k != "wall"}


async def db_commands(stack: Stack, token: str) -> dict[tuple[str, str, str], float]:
    """(service, collection, command) → commands so far, from each service's /metrics."""
    counts: dict[tuple[str, str, str], float] = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        for service, url in stack.urls.items():
            text = (await client.get(f"{url}/metrics")).text
            for (collection, command), n in _counter_series(
                text, "casework_db_commands_total"
            ).items():
                counts[(service, collection, command)] = n
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The platform's idle cost (see the module doc).")
    server_options(parser)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the measurement")
    parser.add_argument("--settle", type=float, default=10.0, help="wait after start, seconds")
    parser.add_argument("--base-port", type=int, default=18351, help="the stack's first port")
    parser.add_argument(
        "--pg-port",
        type=int,
        default=int(os.environ.get("CASEWORK_PG_PORT", "5433")),
        help="FerretDB's PostgreSQL, when it listens here: its CPU is counted with its backends",
    )
    parser.add_argument("--workdir", help="keep the services' logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    ports = {"ferretdb": urlparse(args.mongo_url).port, "kafka": args.kafka.split(":")[-1]}
    servers = {
        name: pid
        for name, port in ports.items()
        if port and (pid := listening_pid(int(port))) is not None
    }
    postgres = listening_pid(args.pg_port)
    families = {"postgres": postgres} if postgres is not None else {}

    progress(f"raw: the servers alone for {args.seconds:.0f} s")
    before = cpu_seconds(servers, families)
    time.sleep(args.seconds)
    raw = cores(before, cpu_seconds(servers, families))

    with (
        tempfile.TemporaryDirectory(prefix="casework-idle-") as temp,
        running_stack(
            args.kafka, args.mongo_url, Path(args.workdir or temp), args.base_port, prefix="idle"
        ) as stack,
    ):
        token = stack.token("ops", "ops")
        progress(f"stack ready; settling {args.settle:.0f} s, then {args.seconds:.0f} s idle")
        time.sleep(args.settle)
        pids = {**stack.pids, **servers}
        cpu_before = cpu_seconds(pids, families)
        db_before = asyncio.run(db_commands(stack, token))
        time.sleep(args.seconds)
        cpu_after = cpu_seconds(pids, families)
        db_after = asyncio.run(db_commands(stack, token))
    busy = cores(cpu_before, cpu_after)
    wall = cpu_after["wall"] - cpu_before["wall"]
    per_second = {k: (v - db_before.get(k, 0.0)) / wall for k, v in db_after.items()}

    by_service: dict[str, float] = {}
    for (service, _, _), n in per_second.items():
        by_service[service] = by_service.get(service, 0.0) + n
    rows = [
        Row(f"idle: {name} millicores", 0, wall, busy[name] * 1000, None, None)
        for name in sorted(busy)
    ]
    for name in ("ferretdb", "postgres", "kafka"):
        if name in busy and name in raw:
            rows[sorted(busy).index(name)].raw_rate = raw[name] * 1000
            rows[sorted(busy).index(name)].ratio = busy[name] / raw[name] if raw[name] else None
    services = sum(busy.get(s, 0.0) for s in stack.urls)
    rows.append(
        Row(
            "idle: database commands/s, all services",
            round(sum(per_second.values()) * wall),
            wall,
            sum(per_second.values()),
            None,
            None,
        )
    )
    rows += [
        Row(f"idle: database commands/s, {service}", round(n * wall), wall, n, None, None)
        for service, n in sorted(by_service.items(), key=lambda kv: -kv[1])
    ]
    top = sorted(per_second.items(), key=lambda kv: -kv[1])[:10]
    note = (
        f"Cores while idle: the five services {services:.3f}, FerretDB "
        f"{busy.get('ferretdb', 0.0):.3f} (alone before: {raw.get('ferretdb', 0.0):.3f}), "
        f"PostgreSQL {busy.get('postgres', 0.0):.3f} (alone before: "
        f"{raw.get('postgres', 0.0):.3f}), Kafka "
        f"{busy.get('kafka', 0.0):.3f} (alone before: {raw.get('kafka', 0.0):.3f}). "
        "Database commands/s, the most: "
        + ", ".join(f"{s} {c} {cmd} {n:.2f}" for (s, c, cmd), n in top)
        + "."
    )
    print(table(rows, f"The platform idle for {wall:.0f} s {args.label}".rstrip(), note))
    write_json(
        args,
        rows,
        raw_cores=raw,
        cores=busy,
        db_per_second={" ".join(k): n for k, n in per_second.items()},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
