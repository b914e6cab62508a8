"""The `casework` command: developer and operator tasks.

Each subcommand is one `_add_<name>` function registering its parser and a handler; add a new
one to `_SUBCOMMANDS`. Handlers return the process exit status; results go to stdout and
messages to stderr, so that output can be captured (`TOKEN=$(casework token ...)`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from casework.asyncapi import SERVICES, asyncapi_document, json_schemas
from casework.auth import DEFAULT_DEV_TOKEN_TTL_S, ROLES, mint_dev_token
from casework.settings import Settings

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """The command line asks for something that cannot be done; the message says why."""


def _add_token(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "token",
        help="print a dev token signed with the local dev key",
        description=(
            "Print a bearer token signed with the local dev key (created if missing at "
            "CASEWORK_JWT_DEV_KEY_PATH). Services started with the same settings accept it."
        ),
    )
    parser.add_argument("--sub", required=True, help="subject: the user's id")
    parser.add_argument(
        "--role",
        dest="roles",
        action="append",
        required=True,
        metavar="ROLE",
        help=f"a role to grant (repeatable): {', '.join(sorted(ROLES))}",
    )
    parser.add_argument(
        "--site",
        dest="sites",
        action="append",
        default=[],
        metavar="SITE",
        help="a site the user works at (repeatable; none for regional_admin, ops, integration)",
    )
    parser.add_argument("--name", help="display name (default: the subject)")
    parser.add_argument("--team", help="the user's team")
    parser.add_argument(
        "--ttl",
        type=int,
        default=DEFAULT_DEV_TOKEN_TTL_S,
        metavar="SECONDS",
        help=f"lifetime in seconds (default: {DEFAULT_DEV_TOKEN_TTL_S})",
    )
    parser.set_defaults(handler=_token)


def _token(args: argparse.Namespace) -> int:
    if args.ttl <= 0:
        raise UsageError("--ttl must be a positive number of seconds")
    try:
        settings = Settings.for_developer_tool()
        token = mint_dev_token(
            settings,
            sub=args.sub,
            roles=args.roles,
            sites=args.sites,
            name=args.name,
            team=args.team,
            ttl_s=args.ttl,
        )
    except ValueError as exc:  # unknown roles, invalid settings, production environment
        raise UsageError(str(exc)) from exc
    print(token)
    return 0


def _add_contracts(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "contracts",
        help="write the public event contract: JSON Schemas and AsyncAPI documents",
        description="Write one JSON Schema per event type and an AsyncAPI 3.0 document per "
        "service (and one for the whole platform) into a folder.",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/contracts"), help="folder")
    parser.set_defaults(handler=_contracts)


def _contracts(args: argparse.Namespace) -> int:
    out: Path = args.out
    (out / "schemas").mkdir(parents=True, exist_ok=True)
    for type_name, schema in json_schemas().items():
        (out / "schemas" / f"{type_name}.json").write_text(json.dumps(schema, indent=2) + "\n")
    for service in (*SERVICES, None):
        document = asyncapi_document(service)
        if document["channels"]:
            name = f"asyncapi.{service or 'platform'}.json"
            (out / name).write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"wrote {len(json_schemas())} schemas and the AsyncAPI documents to {out}", file=sys.stderr
    )
    return 0


_SUBCOMMANDS: Sequence[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = (
    _add_token,
    _add_contracts,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="casework", description="Casework platform tools.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add_subcommand in _SUBCOMMANDS:
        add_subcommand(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `casework` command; returns the exit status (also the console-script entry)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        print(f"casework {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
