#!/usr/bin/env bash
# `make bench`: the event pipeline benchmark, then the case lifecycle through the APIs, on the
# local servers (started if needed, and stopped again if this script started them).
# BENCH_ARGS passes options to bench/pipeline.py (e.g. BENCH_ARGS="--events 20000"),
# LIFECYCLE_ARGS to bench/lifecycle.py (e.g. LIFECYCLE_ARGS="--rates 10 30 --seconds 30"),
# REBUILD_ARGS to bench/rebuild.py (e.g. REBUILD_ARGS="--events 20000"),
# QUERIES_ARGS to bench/queries.py (e.g. QUERIES_ARGS="--cases 20000"),
# DEADLINES_ARGS to bench/deadlines.py, ENCRYPTION_ARGS to bench/encryption.py, IDLE_ARGS to bench/idle.py,
# CONTACTS_ARGS to bench/contacts.py, NOTIFICATIONS_ARGS to bench/notifications.py.
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$SCRIPTS_DIR/lib/common.sh"
cd "$REPO_ROOT"

was_running="$(bash "$SCRIPTS_DIR/infra.sh" status | awk '$2 == "running"' | wc -l)"
bash "$SCRIPTS_DIR/infra.sh" up >/dev/null
[[ "$was_running" -gt 0 ]] || trap 'bash "$SCRIPTS_DIR/infra.sh" down >/dev/null' EXIT
backend="$(bash "$SCRIPTS_DIR/infra.sh" status | awk '$1 == "ferretdb" {print}' | grep -o 'backend [a-z]*' || true)"
servers=(--kafka "localhost:$KAFKA_PORT" --mongo-url "mongodb://127.0.0.1:$MONGO_PORT")

info "event pipeline benchmark (FerretDB ${backend:-?}); progress on stderr"
# shellcheck disable=SC2086 # BENCH_ARGS is a list of options
uv run --no-sync python bench/pipeline.py "${servers[@]}" \
    --label "(FerretDB ${backend:-?})" ${BENCH_ARGS:-}

echo
info "case lifecycle through the APIs: the five services on ports 18301-18305 (FerretDB ${backend:-?}); progress on stderr"
# shellcheck disable=SC2086 # LIFECYCLE_ARGS is a list of options
uv run --no-sync python bench/lifecycle.py "${servers[@]}" \
    --label "(FerretDB ${backend:-?})" ${LIFECYCLE_ARGS:-}

echo
info "projection rebuild of ~100k events vs raw insert_many of its documents (FerretDB ${backend:-?}); progress on stderr"
# shellcheck disable=SC2086 # REBUILD_ARGS is a list of options
uv run --no-sync python bench/rebuild.py "${servers[@]}" --label "(FerretDB ${backend:-?})" ${REBUILD_ARGS:-}

echo
info "read-model queries at 200k open cases through the APIs: ports 18401-18405 (FerretDB ${backend:-?}); seeding takes a few minutes; progress on stderr"
# shellcheck disable=SC2086 # QUERIES_ARGS is a list of options
uv run --no-sync python bench/queries.py "${servers[@]}" --label "(FerretDB ${backend:-?})" ${QUERIES_ARGS:-}

echo
info "deadline scheduler, 100k pending (FerretDB ${backend:-?}); progress on stderr"
# shellcheck disable=SC2086 # DEADLINES_ARGS is a list of options
uv run --no-sync python bench/deadlines.py "${servers[@]}" --label "(FerretDB ${backend:-?})" ${DEADLINES_ARGS:-}

echo
info "encryption per data subject: append and projection with and without it (FerretDB ${backend:-?}); progress on stderr"
# shellcheck disable=SC2086 # ENCRYPTION_ARGS is a list of options
uv run --no-sync python bench/encryption.py "${servers[@]}" --label "(FerretDB ${backend:-?})" ${ENCRYPTION_ARGS:-}

echo
info "the platform idle: CPU and database commands/s of the five services left alone, beside the servers alone: ports 18351-18355 (FerretDB ${backend:-?}); progress on stderr"
# shellcheck disable=SC2086 # IDLE_ARGS is a list of options
uv run --no-sync python bench/idle.py "${servers[@]}" --pg-port "$PG_PORT" --label "(FerretDB ${backend:-?})" ${IDLE_ARGS:-}
info "contacts: logging at a steady rate, overdue firing with 100k pending (FerretDB ${backend:-?}); progress on stderr"
# shellcheck disable=SC2086 # CONTACTS_ARGS is a list of options
uv run --no-sync python bench/contacts.py "${servers[@]}" --label "(FerretDB ${backend:-?})" ${CONTACTS_ARGS:-}

echo
info "notifications: crisis declared over HTTP → live stream, inbox, e-mail; escalation lateness; beside a raw produce → consume round trip: ports 18501-18505 (FerretDB ${backend:-?}); progress on stderr"
# shellcheck disable=SC2086 # NOTIFICATIONS_ARGS is a list of options
uv run --no-sync python bench/notifications.py "${servers[@]}" --label "(FerretDB ${backend:-?})" ${NOTIFICATIONS_ARGS:-}
