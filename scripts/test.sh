#!/usr/bin/env bash
# `make test`: lint, then the whole suite (unit, integration, end-to-end) against a real
# Kafka broker and a real MongoDB-wire server. Starts the local infrastructure when it is
# not running and stops again what it started; a platform already running is reused (the
# end-to-end stack runs in a namespace of its own, on ports 18001-18005).
# Extra arguments go to pytest: scripts/test.sh -k screening
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$SCRIPTS_DIR/lib/common.sh"
cd "$REPO_ROOT"

external="${CASEWORK_TEST_EXTERNAL:-0}" # 1: use the servers named by CASEWORK_* as they are
started=0
if [[ "$external" != 1 ]]; then
    was_running="$(bash "$SCRIPTS_DIR/infra.sh" status | awk '$2 == "running"' | wc -l)"
    bash "$SCRIPTS_DIR/infra.sh" up
    [[ "$was_running" -gt 0 ]] || started=1
    export CASEWORK_KAFKA_BOOTSTRAP_SERVERS="localhost:$KAFKA_PORT"
    export CASEWORK_MONGO_URL="mongodb://127.0.0.1:$MONGO_PORT"
fi
finish() {
    if [[ "$started" == 1 ]]; then
        bash "$SCRIPTS_DIR/infra.sh" down >/dev/null || true
    fi
}
trap finish EXIT

info "lint: ruff and mypy --strict"
make --no-print-directory lint

# Two workers (pytest-xdist): most tests wait on the servers rather than compute, so two
# overlap well on two cores. Every test on the shared end-to-end stack runs on one worker,
# which starts the stack once, and each worker has ports of its own (tests/conftest.py).
# CASEWORK_TEST_WORKERS=0 runs in one process.
workers="${CASEWORK_TEST_WORKERS:-2}"
info "tests against Kafka $CASEWORK_KAFKA_BOOTSTRAP_SERVERS and $CASEWORK_MONGO_URL ($workers workers)"
uv run --no-sync pytest -n "$workers" "$@"
