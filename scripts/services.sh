#!/usr/bin/env bash
# The five Casework services as local processes (the infrastructure is scripts/infra.sh).
#
# Usage: scripts/services.sh <command>
#   up       start the services that are not running, wait until each /readyz answers,
#            register the demo sites (development only), print the URLs
#   down     stop them (SIGTERM, then SIGKILL after a timeout)
#   status   one line per service
# Logs: $CASEWORK_STATE/logs/<service>.log (JSON lines). Settings: CASEWORK_* variables.
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$SCRIPTS_DIR/lib/common.sh"

SERVICES=(intake cases contacts supervision notifications)
declare -A PORTS=([intake]=8001 [cases]=8002 [contacts]=8003 [supervision]=8004 [notifications]=8005)
SERVICE_READY_TIMEOUT="${CASEWORK_SERVICE_READY_TIMEOUT:-90}"
# Demo sites registered on first start in development, so that a new user can take a
# referral straight away. CASEWORK_SEED_SITES="" registers none.
SEED_SITES="${CASEWORK_SEED_SITES-north:North Community Hub,south:South Community Hub}"
PYTHON="$REPO_ROOT/.venv/bin/python"

export CASEWORK_KAFKA_BOOTSTRAP_SERVERS="${CASEWORK_KAFKA_BOOTSTRAP_SERVERS:-localhost:$KAFKA_PORT}"
export CASEWORK_MONGO_URL="${CASEWORK_MONGO_URL:-mongodb://127.0.0.1:$MONGO_PORT}"
# Services default to production (a JWKS URL required, the dev key refused): the local
# platform asks for development explicitly.
export CASEWORK_ENVIRONMENT="${CASEWORK_ENVIRONMENT:-development}"

marker_of() { echo "casework_$1"; }
url_of() { echo "http://127.0.0.1:${PORTS[$1]}"; }

ready() { curl -fsS -o /dev/null --max-time 2 "$(url_of "$1")/readyz" 2>/dev/null; }

cmd_up() {
    [[ -x "$PYTHON" ]] || die "the Python workspace is not installed: run 'make bootstrap' first"
    # The dev KEK (casework.privacy): created on first start, kept afterwards (a new one could
    # not read what the old one wrapped). Production sets CASEWORK_KEK_FILE to its own.
    if [[ "$CASEWORK_ENVIRONMENT" == development ]]; then
        "$REPO_ROOT/.venv/bin/casework" keys init-kek >/dev/null || die "could not create the dev KEK file"
    fi
    local name pid started=()
    for name in "${SERVICES[@]}"; do
        if running_pid "$name" "$(marker_of "$name")" >/dev/null; then
            continue
        fi
        if port_open "${PORTS[$name]}"; then
            die_port_in_use "$name" "${PORTS[$name]}" "(the service's port; see README)"
        fi
        start_detached "$name" "$LOG_DIR/$name.log" \
            env CASEWORK_HTTP_PORT="${PORTS[$name]}" "$PYTHON" -m "casework_$name"
        started+=("$name")
    done
    [[ ${#started[@]} -eq 0 ]] || info "starting ${started[*]} (logs in $LOG_DIR)"
    local deadline=$((SECONDS + SERVICE_READY_TIMEOUT))
    for name in "${SERVICES[@]}"; do
        until ready "$name"; do
            pid="$(head -n1 "$(pidfile_of "$name")" 2>/dev/null || true)"
            if ! pid_alive "${pid:-0}"; then
                show_log_tail "$LOG_DIR/$name.log"
                die "$name exited during start; its log is above ($LOG_DIR/$name.log)"
            fi
            if ((SECONDS > deadline)); then
                show_log_tail "$LOG_DIR/$name.log"
                die "$name is not ready after ${SERVICE_READY_TIMEOUT}s (curl $(url_of "$name")/readyz)"
            fi
            sleep 0.5
        done
        ok "$name ready at $(url_of "$name")"
    done
    ferretdb_gin_indexes
    seed_sites
    print_urls
}

# FerretDB on PostgreSQL filters equality with `@>`, which its own btree indexes cannot serve:
# mirror them as GIN indexes once the services have created their collections
# (scripts/ferretdb-indexes.sh says why). Not needed on SQLite or MongoDB.
ferretdb_gin_indexes() {
    [[ "$(cat "$STATE_DIR/ferretdb/backend" 2>/dev/null)" == postgresql ]] || return 0
    local name dbs=()
    for name in "${SERVICES[@]}"; do dbs+=("casework_$name"); done
    if bash "$SCRIPTS_DIR/ferretdb-indexes.sh" "${dbs[@]}" >"$LOG_DIR/ferretdb-indexes.log" 2>&1; then
        ok "PostgreSQL indexes for FerretDB's equality filters ensured"
    else
        warn "could not add FerretDB's GIN indexes (see $LOG_DIR/ferretdb-indexes.log); queries will scan"
    fi
}

seed_sites() {
    [[ "$CASEWORK_ENVIRONMENT" == development && -n "$SEED_SITES" ]] || return 0
    local token entry code name status
    token="$("$REPO_ROOT/.venv/bin/casework" token --sub seed --role regional_admin)"
    IFS=',' read -ra entries <<<"$SEED_SITES"
    for entry in "${entries[@]}"; do
        code="${entry%%:*}"
        name="${entry#*:}"
        status="$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$(url_of supervision)/sites" \
            -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
            -d "{\"site\": \"$code\", \"name\": \"$name\"}")"
        case "$status" in
        201) ok "registered demo site '$code' ($name)" ;;
        409) ;; # registered on an earlier start
        *) warn "registering demo site '$code' answered HTTP $status" ;;
        esac
    done
}

print_urls() {
    local name
    printf '\n%sCasework is running.%s\n\n' "$C_BOLD" "$C_OFF"
    printf '  %-14s %-28s %-32s %s\n' service "API docs (OpenAPI)" "AsyncAPI (events)" metrics
    for name in "${SERVICES[@]}"; do
        printf '  %-14s %-28s %-32s %s\n' "$name" "$(url_of "$name")/docs" \
            "$(url_of "$name")/asyncapi" "$(url_of "$name")/metrics"
    done
    cat <<EOT

  Health: /healthz (alive) and /readyz (ok / degraded / down, with each part's state:
  database, broker, relay, every consumer) on every service.
  A token for the Swagger UI's "Authorize" button:
    make -s token ROLE=intake_worker SITE=north SUB=ivy
  (ROLE and SITE take comma-separated lists; TEAM=... for a team; see the README's walk-through)
  Logs: $LOG_DIR   Stop everything: make down
EOT
}

cmd_down() {
    local name
    for name in "${SERVICES[@]}"; do
        stop_component "$name" "$(marker_of "$name")"
    done
}

cmd_status() {
    local name state
    for name in "${SERVICES[@]}"; do
        state="$(pid_state "$name" "$(marker_of "$name")")"
        if [[ "$state" == running* ]] && ready "$name"; then
            state="${state/running/ready}"
        fi
        printf '%-14s %-16s %s\n' "$name" "$state" "$(url_of "$name")"
    done
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
