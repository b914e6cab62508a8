# shellcheck shell=bash
# A private PostgreSQL cluster for FerretDB's postgresql backend: data in $STATE/postgres,
# TCP on 127.0.0.1:$PG_PORT, its socket inside the state dir, a 'ferretdb' database, trust
# authentication (local only). PostgreSQL refuses to run as root, so as root every server-side
# command runs as the 'postgres' OS user (created if missing) and the directory is chowned to it.

# As root the cluster belongs to the 'postgres' OS user, which cannot enter a clone under
# a private home (/root is mode 700); such a clone keeps its cluster under /var/tmp instead,
# named after the state dir so that two clones never share one. CASEWORK_PG_DIR overrides.
pg_default_root() {
    local root="$STATE_DIR/postgres" dir="$STATE_DIR"
    if [[ "$(id -u)" == 0 ]]; then
        while [[ "$dir" != "/" && -n "$dir" ]]; do
            if [[ -d "$dir" ]] && ! [[ "$(stat -c %A "$dir")" =~ ^d.{8}[xt] ]]; then
                root="/var/tmp/casework-pg-$(printf '%s' "$STATE_DIR" | cksum | cut -d' ' -f1)"
                break
            fi
            dir="$(dirname "$dir")"
        done
    fi
    printf '%s' "$root"
}
PG_ROOT="${CASEWORK_PG_DIR:-$(pg_default_root)}"
PGDATA_DIR="$PG_ROOT/data"
PG_LOG="$LOG_DIR/postgres.log"
if [[ "$PG_ROOT" != "$STATE_DIR"/* ]]; then
    # the server writes its own log, so it must live where the postgres user can write;
    # $LOG_DIR/postgres.log links to it
    PG_LOG="$PG_ROOT/postgres.log"
fi
PG_DB=ferretdb
PG_SUPERUSER=postgres
PG_OS_USER="${CASEWORK_PG_OS_USER:-postgres}"
PG_MARKER="$PGDATA_DIR"

# Unix socket paths are limited to ~107 bytes; fall back to /tmp for very deep state dirs.
pg_socket_dir() {
    local dir="$PG_ROOT/sock"
    if ((${#dir} + 20 > 100)); then
        dir="/tmp/casework-pg-$(printf '%s' "$PG_ROOT" | cksum | cut -d' ' -f1)"
    fi
    echo "$dir"
}

pg_url() { echo "postgres://$PG_SUPERUSER@127.0.0.1:$PG_PORT/$PG_DB"; }

# Run a server-side command as the cluster owner (from / so an unreadable cwd does no harm).
pg_run() {
    if is_root; then
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u "$PG_OS_USER" -- "$@" 9>&-)
        else
            (cd / && su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")" 9>&-)
        fi
    else
        "$@" 9>&-
    fi
}

pg_ensure_os_user() {
    is_root || return 0
    id "$PG_OS_USER" >/dev/null 2>&1 && return 0
    warn "creating the system user '$PG_OS_USER' to own the PostgreSQL cluster (it refuses to run as root)"
    useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql \
        --shell /bin/sh "$PG_OS_USER" ||
        die "could not create the '$PG_OS_USER' user; create it, or run as a non-root user"
}

# Hand a path to the cluster owner (no-op when not root).
pg_own() {
    is_root || return 0
    chown -R "$PG_OS_USER:" "$@"
}

pg_pid_state() {
    local pid
    if [[ ! -f "$PGDATA_DIR/postmaster.pid" ]]; then
        echo stopped
        return 0
    fi
    pid="$(head -n1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)"
    if pid_matches "$pid" "$PG_MARKER"; then
        echo "running $pid"
    else
        echo "stale ${pid:-?}"
    fi
}

pg_bin_major() {
    local v
    v="$("$1/postgres" --version 2>/dev/null)" || return 1 # postgres (PostgreSQL) 15.14 (Debian ...)
    v="${v#*) }"
    echo "${v%%.*}"
}

# After a crash or kill -9, postmaster.pid and the socket lock name a dead pid. PostgreSQL
# clears them itself unless that pid still exists (e.g. as a not-yet-reaped zombie, or reused
# by another process), so remove them once we know the postmaster is gone.
pg_remove_stale_locks() {
    local sock
    sock="$(pg_socket_dir)"
    warn "postgres: removing stale postmaster.pid and socket lock (pid $1 is gone)"
    rm -f "$PGDATA_DIR/postmaster.pid" "$sock"/.s.PGSQL.*.lock "$sock"/.s.PGSQL.[0-9]*
}

# Before anything starts: binaries present (installed if possible), and, as root, the
# 'postgres' OS user exists and can reach the state dir.
postgres_preflight() {
    require_postgres
    is_root || return 0
    pg_ensure_os_user
    mkdir -p "$PG_ROOT"
    pg_own "$PG_ROOT"
    if ! pg_run test -w "$PG_ROOT"; then
        die "postgres: the '$PG_OS_USER' OS user cannot write $PG_ROOT, most likely because a" \
            "parent directory is not searchable by other users (e.g. /root is mode 700)." \
            "Use a state dir it can reach, e.g. CASEWORK_STATE=/var/tmp/casework-state, or" \
            "'chmod o+x' the parent directories."
    fi
}

postgres_install() {
    require_postgres
    ok "postgresql server binaries: $(find_pg_bindir)"
}

postgres_init_once() {
    local bin="$1" have_major bin_major
    if [[ -f "$PGDATA_DIR/PG_VERSION" ]]; then
        have_major="$(cat "$PGDATA_DIR/PG_VERSION")"
        bin_major="$(pg_bin_major "$bin")"
        [[ "$have_major" == "$bin_major" ]] ||
            die "postgres: the cluster in $PGDATA_DIR was made by PostgreSQL $have_major but the" \
                "binaries in $bin are $bin_major. Wipe local data with 'scripts/infra.sh reset'" \
                "or point CASEWORK_PG_BIN at PostgreSQL $have_major."
        return 0
    fi
    postgres_preflight
    mkdir -p "$PGDATA_DIR"
    chmod 700 "$PGDATA_DIR"
    pg_own "$PG_ROOT"
    info "postgres: initdb in $PGDATA_DIR (first start only)"
    : >>"$PG_LOG"
    pg_own "$PG_LOG"
    pg_run "$bin/initdb" -D "$PGDATA_DIR" -U "$PG_SUPERUSER" --auth=trust -E UTF8 --no-locale \
        >>"$PG_LOG" 2>&1 || {
        show_log_tail "$PG_LOG"
        die "postgres: initdb failed"
    }
    echo "include_if_exists = 'casework.conf'" >>"$PGDATA_DIR/postgresql.conf"
}

# Settings that may change between starts (port, socket dir) live in casework.conf.
postgres_write_conf() {
    local sock="$1"
    cat >"$PGDATA_DIR/casework.conf" <<EOF
# Written by scripts/lib/postgres.sh at every start; edit there.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
max_connections = 200
${CASEWORK_PG_EXTRA_CONF:-}
EOF
    pg_own "$PGDATA_DIR/casework.conf"
}

postgres_ensure_db() {
    local bin="$1" exists
    exists="$("$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres -tAqc \
        "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" 2>>"$PG_LOG")" || {
        show_log_tail "$PG_LOG"
        die "postgres: cannot query 127.0.0.1:$PG_PORT"
    }
    if [[ "$exists" != 1 ]]; then
        "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" "$PG_DB" >>"$PG_LOG" 2>&1 || {
            show_log_tail "$PG_LOG"
            die "postgres: createdb $PG_DB failed"
        }
        ok "postgres: created database '$PG_DB'"
    fi
}

postgres_up() {
    local bin state pid sock start
    state="$(pg_pid_state)"
    if [[ "$state" == running* ]]; then
        ok "postgres already running (pid ${state#* })"
        return 0
    fi
    if [[ "$state" == stale* ]]; then
        pg_remove_stale_locks "${state#* }"
    fi
    port_open "$PG_PORT" && die_port_in_use postgres "$PG_PORT" CASEWORK_PG_PORT
    require_postgres
    bin="$(find_pg_bindir)"
    mkdir -p "$LOG_DIR"
    if [[ "$PG_LOG" != "$LOG_DIR/postgres.log" ]]; then
        ln -sfn "$PG_LOG" "$LOG_DIR/postgres.log"
    fi
    postgres_init_once "$bin"
    sock="$(pg_socket_dir)"
    mkdir -p "$sock"
    pg_own "$sock"
    : >>"$PG_LOG"
    pg_own "$PG_LOG"
    postgres_write_conf "$sock"
    info "starting postgres $(pg_bin_major "$bin") on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
    start="$(now_ms)"
    pg_run "$bin/pg_ctl" -D "$PGDATA_DIR" -l "$PG_LOG" -w -t "$READY_TIMEOUT" start >/dev/null 2>&1 || {
        show_log_tail "$PG_LOG"
        die "postgres failed to start or was not ready within ${READY_TIMEOUT}s (log: $PG_LOG)"
    }
    postgres_ensure_db "$bin"
    pid="$(head -n1 "$PGDATA_DIR/postmaster.pid")"
    ok "postgres ready in $(elapsed_since "$start")s (pid $pid)"
}

postgres_down() {
    local state bin
    state="$(pg_pid_state)"
    case "$state" in
    running*)
        info "stopping postgres (pid ${state#* })"
        if bin="$(find_pg_bindir)" &&
            pg_run "$bin/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t "$STOP_TIMEOUT" stop >>"$PG_LOG" 2>&1; then
            ok "postgres stopped"
        else
            warn "pg_ctl stop failed; signalling the postmaster directly"
            stop_pid postgres "${state#* }"
        fi
        ;;
    stale*) pg_remove_stale_locks "${state#* }" ;;
    *) echo "    postgres: not running" ;;
    esac
}

postgres_status_line() {
    local state pid note=""
    state="$(pg_pid_state)"
    pid="${state#* }"
    local backend="$DB_BACKEND"
    [[ "$(pid_state ferretdb "$FERRETDB_MARKER")" == running* ]] && backend="$(ferretdb_recorded_backend)"
    [[ "$backend" == postgresql ]] || note=" (unused: backend=$backend)"
    case "$state" in
    running*) if port_open "$PG_PORT"; then state=running; else state=starting; fi ;;
    stale*) state="stale-pidfile" ;;
    *)
        pid="-"
        if port_open "$PG_PORT"; then state="port-busy(other)"; else state=stopped; fi
        ;;
    esac
    status_line postgres "$state" "$pid" "127.0.0.1:$PG_PORT db=$PG_DB$note" "$PG_LOG"
}

postgres_wipe() {
    rm -rf "$PG_ROOT" "$PG_LOG"
    local sock
    sock="$(pg_socket_dir)"
    [[ "$sock" == /tmp/casework-pg-* ]] && rm -rf "$sock"
    return 0
}
