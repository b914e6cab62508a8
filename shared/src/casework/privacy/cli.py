"""`casework keys ...`: the key store's operator commands.

- `init-kek` — create the KEK file (`CASEWORK_KEK_FILE`) if missing (development: `make up`
  runs it; production keeps its KEK in a KMS or secret store).
- `status` — the current KEK id and counts of live and destroyed keys, erased subjects,
  links, and the grants (no subjects, no key material).
- `grant` / `revoke` — give an integration (or take back) the keys of one record class; each
  is recorded in the key store's audit (`key_audit`) with who and why.
- `rotate-kek` — put a new KEK first in the key file (the old one kept), re-wrap every data
  key with it (resumable), and with `--retire` drop the old KEK from the file afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from casework.privacy.kek import LocalKeyFileProvider, create_key_file, new_kek_line
from casework.privacy.keys import KeyService
from casework.settings import Settings


def add_keys(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `casework keys` and its actions."""
    parser = subparsers.add_parser(
        "keys",
        help="the key store: KEK file, status, integrations' grants, KEK rotation",
        description="Operate the platform's key store (CASEWORK_KEYS_MONGO_DB, "
        "CASEWORK_KEK_FILE, CASEWORK_MONGO_URL from the environment).",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("init-kek", help="create the KEK file if it is missing")
    actions.add_parser("status", help="KEK id and counts (JSON)")
    for name, help in (
        ("grant", "give an integration a record class's keys"),
        ("revoke", "take an integration's grant back"),
    ):
        sub = actions.add_parser(name, help=help)
        sub.add_argument("--integration", required=True, help="the integration's name")
        sub.add_argument("--record-class", required=True, help="identity, clinical or notes")
        sub.add_argument("--by", required=True, help="who decides (recorded)")
        if name == "grant":
            sub.add_argument("--reason", required=True, help="why (recorded)")
    rotate = actions.add_parser("rotate-kek", help="new KEK, every data key re-wrapped")
    rotate.add_argument(
        "--retire", action="store_true", help="drop the old KEK from the file when done"
    )
    parser.set_defaults(handler=run_keys)


def run_keys(args: argparse.Namespace) -> int:
    """Handle `casework keys <action>`."""
    settings = Settings.for_developer_tool()
    if args.action == "init-kek":
        created = create_key_file(settings.kek_file)
        print(f"{'created' if created else 'kept'} {settings.kek_file}")
        return 0
    if args.action == "rotate-kek":
        _put_new_kek_first(settings.kek_file)
    return asyncio.run(_with_keys(settings, lambda keys: _act(keys, args, settings)))


async def _with_keys(settings: Settings, action: Callable[[KeyService], Awaitable[int]]) -> int:
    from casework.runtime import mongo_client

    client = mongo_client(settings)
    try:
        keys = KeyService(client[settings.keys_mongo_db], LocalKeyFileProvider(settings.kek_file))
        return await action(keys)
    finally:
        await client.close()


async def _act(keys: KeyService, args: argparse.Namespace, settings: Settings) -> int:
    result: Any
    if args.action == "status":
        result = await keys.status()
    elif args.action == "grant":
        await keys.grant(
            args.integration,
            record_class=args.record_class,
            granted_by=args.by,
            reason=args.reason,
        )
        result = {"granted": args.integration, "record_class": args.record_class}
    elif args.action == "revoke":
        found = await keys.revoke(
            args.integration, record_class=args.record_class, revoked_by=args.by
        )
        result = {"revoked": found}
    else:  # rotate-kek
        rewrapped = await keys.rotate_kek()
        if args.retire:
            _keep_only_current(settings.kek_file)
        result = {"kek_id": keys.kek.current_id(), "rewrapped": rewrapped}
    print(json.dumps(result, default=str, indent=2))
    return 0


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    temporary.replace(path)  # atomic: a reader sees the old file or the new one


def _put_new_kek_first(path: Path) -> None:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    _write_private(path, "\n".join([new_kek_line(), *lines]) + "\n")


def _keep_only_current(path: Path) -> None:
    first = next(line for line in path.read_text().splitlines() if line.strip())
    _write_private(path, first + "\n")
