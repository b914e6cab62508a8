"""The `casework` command: developer and operator tasks.

Each subcommand is one `_add_<name>` function registering its parser and a handler; add a new
one to `_SUBCOMMANDS`. Handlers return the process exit status; results go to stdout and
messages to stderr, so that output can be captured (`TOKEN=$(casework token ...)`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def _service_runtime(service: str) -> Callable[[Settings], Any]:
    """How to build a service's runtime from settings, found by the service's name (the shared
    package never imports a service: `casework_<service>.bootstrap` is loaded by name)."""
    try:
        bootstrap = importlib.import_module(f"casework_{service}.bootstrap")
    except ModuleNotFoundError as exc:
        raise UsageError(f"no service {service!r}; the services are {', '.join(SERVICES)}") from exc

    def runtime_of(settings: Settings) -> Any:
        built = bootstrap.build(settings)
        return built[0] if isinstance(built, tuple) else built

    runtime_of.port = bootstrap.PORT  # type: ignore[attr-defined]
    return runtime_of


def _run_offline(
    service: str, command: str, name: str | None, streams: list[str] | None = None
) -> int:
    from casework.service import offline  # the service machinery: only when it is needed

    runtime_of = _service_runtime(service)
    try:
        settings = Settings.for_service(service, runtime_of.port)  # type: ignore[attr-defined]
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return asyncio.run(offline(runtime_of, settings, command, name, streams=streams))


_SERVICE_HELP = f"the service: {', '.join(SERVICES)}"
_SETTINGS_NOTE = (
    "Uses the service's settings from the environment (CASEWORK_MONGO_URL, "
    "CASEWORK_KAFKA_BOOTSTRAP_SERVERS, CASEWORK_NAMESPACE, ...). Stop the service first: "
    "the command refuses while its consumer group has live members."
)


def _add_projections(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "projections",
        help="list a service's read models and policies",
        description="List the read models and policies of a service, with the topics they read.",
    )
    parser.add_argument("service", help=_SERVICE_HELP)
    parser.set_defaults(handler=lambda a: _run_offline(a.service, "projections", None))


def _add_rebuild(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rebuild",
        help="rebuild a read model from the beginning of its topics",
        description="Fold every event of the read model's topics into a fresh collection, swap "
        "it in, and move the consumer group to where the rebuild stopped. " + _SETTINGS_NOTE,
    )
    parser.add_argument("service", help=_SERVICE_HELP)
    parser.add_argument("projection", help="the read model, as `casework projections` lists it")
    parser.set_defaults(handler=lambda a: _run_offline(a.service, "rebuild", a.projection))


def _add_dead_letters(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dead-letters",
        help="replay or discard dead letters, releasing the streams parked behind them",
        description="A poison event is dead-lettered and its stream parked: later events of "
        "that stream wait. `replay` applies the dead letter again (once the bug is fixed), "
        "`discard` drops it; either way the waiting events are then applied in order. "
        + _SETTINGS_NOTE,
    )
    actions = parser.add_subparsers(dest="action", required=True)
    for action, help in (
        ("replay", "apply the dead letters again, then release their streams"),
        ("discard", "drop the dead letters, then release their streams"),
    ):
        sub = actions.add_parser(action, help=help, description=help + ". " + _SETTINGS_NOTE)
        sub.add_argument("service", help=_SERVICE_HELP)
        sub.add_argument("projection", help="the read model or policy")
        which = sub.add_mutually_exclusive_group(required=action == "discard")
        which.add_argument(
            "--stream", action="append", dest="streams", metavar="STREAM", help="only this one"
        )
        which.add_argument("--all", action="store_true", help="every parked stream")
        sub.set_defaults(
            handler=lambda a: _run_offline(a.service, a.action, a.projection, a.streams)
        )


def _add_parked(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "parked",
        help="list the streams parked behind a dead letter",
        description="One line per parked stream: projection, stream, events held, since, the "
        "dead letter's source (topic:partition@offset) and its error (no client data).",
    )
    parser.add_argument("service", nargs="*", help=f"services (default: all): {_SERVICE_HELP}")
    parser.set_defaults(handler=_parked)


def _parked(args: argparse.Namespace) -> int:
    status = 0
    for service in args.service or SERVICES:
        status = max(status, _run_offline(service, "parked", None))
    return status


def _add_audit(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="ask the audit store who saw a client's data, or what a person looked at",
        description=(
            "Read the audit store (CASEWORK_MONGO_URL, CASEWORK_AUDIT_MONGO_DATABASE). "
            "`subject client:<id>`: who saw this data subject's data, when and why (records "
            "of the subjects linked to it in the key store, e.g. its referral's person, "
            "included). "
            "`agent <sub>`: what this person did and looked at. Times are ISO 8601 (UTC "
            "when no offset is given); records are listed oldest first."
        ),
    )
    questions = parser.add_subparsers(dest="question", required=True)
    for question, what, help in (
        ("subject", "SUBJECT", "who saw this data subject's data (e.g. client:<id>)"),
        ("agent", "SUB", "what this person (a token's sub) looked at"),
    ):
        sub = questions.add_parser(question, help=help, description=help)
        sub.add_argument("who", metavar=what)
        sub.add_argument("--since", type=_instant, help="from this time (inclusive)")
        sub.add_argument("--until", type=_instant, help="to this time (exclusive)")
        sub.add_argument("--json", action="store_true", help="one JSON document per line")
        sub.set_defaults(handler=_audit)


def _instant(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _audit(args: argparse.Namespace) -> int:
    from casework.auditstore import AuditStore
    from casework.privacy import KeyService, LocalKeyFileProvider
    from casework.runtime import mongo_client

    settings = Settings.for_developer_tool()

    async def ask() -> list[dict[str, Any]]:
        client = mongo_client(settings)
        try:
            store = AuditStore(client[settings.audit_mongo_database])
            if args.question == "subject":
                keys = KeyService(
                    client[settings.keys_mongo_db], LocalKeyFileProvider(settings.kek_file)
                )
                linked = await keys.linked_subjects(args.who)
                return await store.about_subject(args.who, args.since, args.until, linked=linked)
            return await store.by_agent(args.who, args.since, args.until)
        finally:
            await client.close()

    records = asyncio.run(ask())
    if args.json:
        for record in records:
            print(json.dumps(_audit_row(record), default=str))
        return 0
    rows = [_audit_row(record) for record in records]
    columns = (
        ["recorded", "who", "roles", "purpose", "action", "operation", "outcome", "service"]
        if args.question == "subject"
        else ["recorded", "purpose", "action", "operation", "outcome", "subjects", "service"]
    )
    table = [columns] + [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    print(f"{len(rows)} record(s)", file=sys.stderr)
    return 0


def _audit_row(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["_id"],
        "recorded": record["recorded_at"].isoformat(),
        "who": record.get("sub"),
        "roles": record.get("roles", []),
        "purpose": record.get("purpose"),
        "action": record.get("action"),
        "operation": record.get("operation"),
        "resource": record.get("resource"),
        "outcome": record.get("outcome"),
        "subjects": record.get("subjects", []),
        "service": record.get("service"),
    }


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def _add_keys(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    parser.set_defaults(handler=_keys)


def _keys(args: argparse.Namespace) -> int:
    # imported here: the key store's dependencies are not needed by the other commands
    from casework.privacy.cli import run_keys

    return run_keys(args)


_SUBCOMMANDS: Sequence[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = (
    _add_token,
    _add_keys,
    _add_contracts,
    _add_projections,
    _add_rebuild,
    _add_dead_letters,
    _add_parked,
    _add_audit,
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
