#!/usr/bin/env bash
# Local infrastructure of the Casework platform, without Docker:
#   Apache Kafka 4.x (KRaft, single node; jars from Maven Central, Java 17+)
#   FerretDB v1.24 (MongoDB wire protocol; built from the Go module proxy)
#   PostgreSQL (private cluster, only when FerretDB's backend is postgresql)
#
# Usage: scripts/infra.sh <command>
#   install          fetch Kafka jars, build FerretDB, install PostgreSQL if needed (idempotent)
#   up               install if needed, start what is not running, wait until ready, show status
#   down             stop everything (SIGTERM, then SIGKILL after a timeout; pg_ctl stop)
#   status           one line per component: state, pid, address, log file
#   reset            down + wipe local data (topics, databases); the download cache is kept
#   logs [component] [-f]
#                    without a component: list the logs and show their tails;
#                    with kafka|ferretdb|postgres: last 100 lines (-f: follow)
# Settings (ports, backend, paths) come from CASEWORK_* environment variables: docs/infra.md.
set -euo pipefail

# FerretDB storage backend: postgresql or sqlite. This is the one place the default lives.
DEFAULT_DB_BACKEND=postgresql
DB_BACKEND="${CASEWORK_DB_BACKEND:-$DEFAULT_DB_BACKEND}"

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$SCRIPTS_DIR/lib/common.sh"
# shellcheck source=scripts/lib/prereqs.sh
source "$SCRIPTS_DIR/lib/prereqs.sh"
# shellcheck source=scripts/lib/kafka.sh
source "$SCRIPTS_DIR/lib/kafka.sh"
# shellcheck source=scripts/lib/postgres.sh
source "$SCRIPTS_DIR/lib/postgres.sh"
# shellcheck source=scripts/lib/ferretdb.sh
source "$SCRIPTS_DIR/lib/ferretdb.sh"

case "$DB_BACKEND" in
postgresql | sqlite) ;;
*) die "CASEWORK_DB_BACKEND must be 'postgresql' or 'sqlite' (got '$DB_BACKEND')" ;;
esac

# The default backend needs PostgreSQL's server. Where it is missing and cannot be installed,
# fall back to SQLite rather than fail (an explicit CASEWORK_DB_BACKEND=postgresql still fails).
if [[ -z "${CASEWORK_DB_BACKEND:-}" && "$DB_BACKEND" == postgresql ]] &&
    [[ "${1:-}" == install || "${1:-}" == up ]] && ! (require_postgres); then
    warn "PostgreSQL is not available: falling back to FerretDB's SQLite backend, which is" \
        "much slower as data grows (docs/benchmarks.md). Install 'postgresql' to use the default."
    DB_BACKEND=sqlite
fi

COMPONENTS=(kafka ferretdb postgres)

STATUS_FORMAT='%-9s %-17s %-8s %-58s %s\n'
status_line() { # name state pid address log
    # shellcheck disable=SC2059 # the format is a constant
    printf "$STATUS_FORMAT" "$1" "$2" "$3" "$4" "$5"
}

cmd_install() {
    local start
    start="$(now_ms)"
    info "cache: $CACHE_DIR"
    kafka_install
    ferretdb_install
    if [[ "$DB_BACKEND" == postgresql ]]; then
        postgres_install
    fi
    ok "install complete in $(elapsed_since "$start")s"
}

# Fail before starting anything when a port we are about to bind is taken by someone else,
# or when the PostgreSQL backend cannot work.
preflight() {
    if [[ "$(pid_state kafka "$KAFKA_MARKER")" != running* ]]; then
        port_open "$KAFKA_PORT" && die_port_in_use kafka "$KAFKA_PORT" CASEWORK_KAFKA_PORT
        port_open "$KAFKA_CONTROLLER_PORT" &&
            die_port_in_use "kafka controller" "$KAFKA_CONTROLLER_PORT" CASEWORK_KAFKA_CONTROLLER_PORT
    fi
    if [[ "$(pid_state ferretdb "$FERRETDB_MARKER")" != running* ]]; then
        port_open "$MONGO_PORT" && die_port_in_use ferretdb "$MONGO_PORT" CASEWORK_MONGO_PORT
    fi
    if [[ "$DB_BACKEND" == postgresql && "$(pg_pid_state)" != running* ]]; then
        port_open "$PG_PORT" && die_port_in_use postgres "$PG_PORT" CASEWORK_PG_PORT
        postgres_preflight
    fi
    return 0
}

cmd_up() {
    local start
    start="$(now_ms)"
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    preflight
    kafka_installed || kafka_install
    ferretdb_installed || ferretdb_install
    # Boot the JVM first; bring up the database while Kafka starts; then wait for Kafka.
    kafka_start
    ferretdb_up
    kafka_wait
    ok "infrastructure up in $(elapsed_since "$start")s"
    echo
    cmd_status
    echo
    echo "Kafka bootstrap servers: $KAFKA_ADVERTISED_HOST:$KAFKA_PORT"
    echo "MongoDB URL:             $(mongo_url)"
}

cmd_down() {
    ferretdb_down
    kafka_down
    postgres_down
}

cmd_status() {
    status_line COMPONENT STATE PID ADDRESS LOG
    kafka_status_line
    ferretdb_status_line
    postgres_status_line
    echo "Logs: $LOG_DIR"
}

cmd_reset() {
    case "$STATE_DIR" in
    "" | / | "$HOME" | "$REPO_ROOT") die "refusing to wipe suspicious state dir '$STATE_DIR'" ;;
    esac
    cmd_down
    info "wiping local data under $STATE_DIR (the cache $CACHE_DIR is kept)"
    kafka_wipe
    ferretdb_wipe
    postgres_wipe
    rm -rf "$RUN_DIR" "$LOG_DIR/install-apt.log"
    rmdir "$LOG_DIR" 2>/dev/null || true
    ok "reset done; 'scripts/infra.sh up' starts from scratch"
}

log_file_of() {
    case "$1" in
    kafka) echo "$KAFKA_LOG" ;;
    ferretdb | mongo) echo "$FERRETDB_LOG" ;;
    postgres | postgresql | pg) echo "$PG_LOG" ;;
    *) die "unknown component '$1' (expected one of: ${COMPONENTS[*]})" ;;
    esac
}

cmd_logs() {
    local component="" follow=0 arg file
    for arg in "$@"; do
        case "$arg" in
        -f | --follow) follow=1 ;;
        *) component="$arg" ;;
        esac
    done
    echo "Logs: $LOG_DIR"
    if [[ -z "$component" ]]; then
        local name
        for name in "${COMPONENTS[@]}"; do
            file="$(log_file_of "$name")"
            if [[ -f "$file" ]]; then
                printf '\n%s== %s (%s, %s bytes) ==%s\n' "$C_BOLD" "$name" "$file" "$(wc -c <"$file")" "$C_OFF"
                tail -n 15 "$file"
            else
                printf '\n== %s: no log yet (%s) ==\n' "$name" "$file"
            fi
        done
        return 0
    fi
    file="$(log_file_of "$component")"
    [[ -f "$file" ]] || die "no log yet for $component ($file)"
    if [[ "$follow" -eq 1 ]]; then
        exec tail -n 100 -F "$file"
    fi
    tail -n 100 "$file"
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# Serialise commands that change state (two `up`s at once would race on ports and pid files).
take_lock() {
    mkdir -p "$STATE_DIR"
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$STATE_DIR/.infra.lock"
    if ! flock -n 9; then
        info "another scripts/infra.sh is running on $STATE_DIR; waiting for it (up to 300 s)"
        flock -w 300 9 || die "timed out waiting for the lock $STATE_DIR/.infra.lock"
    fi
}

main() {
    local cmd="${1:-help}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
    install | up | start | down | stop | reset) take_lock ;;
    esac
    case "$cmd" in
    install) cmd_install ;;
    up | start) cmd_up ;;
    down | stop) cmd_down ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    logs) cmd_logs "$@" ;;
    help | -h | --help) usage ;;
    *)
        usage >&2
        die "unknown command '$cmd'"
        ;;
    esac
}

main "$@"
