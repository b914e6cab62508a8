# shellcheck shell=bash
# FerretDB v1.x (MongoDB wire protocol) on PostgreSQL or SQLite, built from the Go module proxy.

FERRETDB_MODULE=github.com/FerretDB/FerretDB
FERRETDB_BIN="$CACHE_DIR/bin/ferretdb-$FERRETDB_VERSION"
FERRETDB_STATE="$STATE_DIR/ferretdb"       # FerretDB's --state-dir (state.json) + our backend note
FERRETDB_SQLITE_DIR="$STATE_DIR/ferretdb-sqlite" # databases of the sqlite backend
FERRETDB_LOG="$LOG_DIR/ferretdb.log"
FERRETDB_MARKER="--state-dir=$FERRETDB_STATE"

ferretdb_installed() { [[ -x "$FERRETDB_BIN" ]]; }

# Why not just `GOBIN=... go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`?
# That binary panics at startup ("Invalid build/version/version.txt file content"): the module
# zip does not contain the generated build/version/version.txt, which FerretDB requires when the
# main module is FerretDB itself. So: fetch the module, copy its source, write version.txt,
# `go build` from the copy.
ferretdb_install() {
    if ferretdb_installed; then
        ok "ferretdb $FERRETDB_VERSION already in cache ($FERRETDB_BIN)"
        return 0
    fi
    require_go
    local log="$LOG_DIR/install-ferretdb.log" work="$CACHE_DIR/build" src mod_json
    mkdir -p "$LOG_DIR" "$CACHE_DIR/bin" "$work"
    info "Building FerretDB $FERRETDB_VERSION with $(go env GOVERSION) into $FERRETDB_BIN"
    echo "    (first time this takes a minute or two: module download + compile; log: $log)"
    (
        cd "$work" || exit 1
        export GOTOOLCHAIN=local GO111MODULE=on CGO_ENABLED=0
        run_with_progress "ferretdb source download" "$log" \
            go mod download "$FERRETDB_MODULE@$FERRETDB_VERSION"
        mod_json="$(go mod download -json "$FERRETDB_MODULE@$FERRETDB_VERSION")"
        src="$(printf '%s\n' "$mod_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
        [[ -d "$src" ]] || die "could not locate the FerretDB module source (go mod download said: $mod_json)"
        rm -rf "$work/ferretdb-$FERRETDB_VERSION"
        cp -R "$src" "$work/ferretdb-$FERRETDB_VERSION"
        chmod -R u+w "$work/ferretdb-$FERRETDB_VERSION"
        printf '%s\n' "$FERRETDB_VERSION" >"$work/ferretdb-$FERRETDB_VERSION/build/version/version.txt"
        cd "$work/ferretdb-$FERRETDB_VERSION" || exit 1
        run_with_progress "ferretdb build (dependencies + compile)" "$log" \
            go build -buildvcs=false -o "$FERRETDB_BIN.partial" ./cmd/ferretdb
    )
    local reported
    reported="$("$FERRETDB_BIN.partial" --version 2>>"$log" || true)"
    [[ "$reported" == *"version: $FERRETDB_VERSION"* ]] || {
        show_log_tail "$log"
        die "the freshly built FerretDB does not report version $FERRETDB_VERSION (log: $log)"
    }
    mv "$FERRETDB_BIN.partial" "$FERRETDB_BIN"
    rm -rf "$work/ferretdb-$FERRETDB_VERSION"
    rmdir "$work" 2>/dev/null || true
    ok "ferretdb $FERRETDB_VERSION installed: $FERRETDB_BIN"
}

ferretdb_backend_args() {
    case "$DB_BACKEND" in
    postgresql) printf '%s\n' --handler=postgresql "--postgresql-url=$(pg_url)" ;;
    sqlite) printf '%s\n' --handler=sqlite "--sqlite-url=file:$FERRETDB_SQLITE_DIR/" ;;
    esac
}

ferretdb_recorded_backend() { cat "$FERRETDB_STATE/backend" 2>/dev/null || echo "?"; }

# Start FerretDB (and PostgreSQL first when that is the backend); prints nothing on stdout
# that callers parse. Waits for a MongoDB `ping` to answer.
ferretdb_up() {
    local pid running_backend
    if pid="$(running_pid ferretdb "$FERRETDB_MARKER")"; then
        running_backend="$(ferretdb_recorded_backend)"
        if [[ "$running_backend" == "$DB_BACKEND" ]]; then
            [[ "$DB_BACKEND" == postgresql ]] && postgres_up
            ok "ferretdb already running (pid $pid, backend $DB_BACKEND)"
            wait_ready ferretdb mongo "$(mongo_url)" "$MONGO_PORT" "$pid" "$FERRETDB_LOG"
            return 0
        fi
        info "ferretdb runs on backend '$running_backend' but '$DB_BACKEND' was asked for: restarting it"
        stop_component ferretdb "$FERRETDB_MARKER"
    fi
    port_open "$MONGO_PORT" && die_port_in_use ferretdb "$MONGO_PORT" CASEWORK_MONGO_PORT
    ferretdb_installed || ferretdb_install
    case "$DB_BACKEND" in
    postgresql) postgres_up ;;
    sqlite) mkdir -p "$FERRETDB_SQLITE_DIR" ;;
    esac
    mkdir -p "$FERRETDB_STATE" "$LOG_DIR"
    local -a args
    mapfile -t args < <(ferretdb_backend_args)
    info "starting ferretdb $FERRETDB_VERSION on 127.0.0.1:$MONGO_PORT, backend $DB_BACKEND (log: $FERRETDB_LOG)"
    start_detached ferretdb "$FERRETDB_LOG" "$FERRETDB_BIN" "${args[@]}" \
        "--listen-addr=127.0.0.1:$MONGO_PORT" "$FERRETDB_MARKER" \
        --telemetry=disable --debug-addr=- "--log-level=${CASEWORK_FERRETDB_LOG_LEVEL:-info}"
    printf '%s\n' "$DB_BACKEND" >"$FERRETDB_STATE/backend"
    pid="$(cat "$(pidfile_of ferretdb)")"
    wait_ready ferretdb mongo "$(mongo_url)" "$MONGO_PORT" "$pid" "$FERRETDB_LOG"
}

mongo_url() { echo "mongodb://127.0.0.1:$MONGO_PORT/"; }

ferretdb_down() { stop_component ferretdb "$FERRETDB_MARKER"; }

ferretdb_status_line() {
    local state pid
    state="$(pid_state ferretdb "$FERRETDB_MARKER")"
    pid="${state#* }"
    case "$state" in
    running*)
        if port_open "$MONGO_PORT"; then state=running; else state=starting; fi
        ;;
    stale*) state="stale-pidfile" ;;
    *)
        pid="-"
        if port_open "$MONGO_PORT"; then state="port-busy(other)"; else state=stopped; fi
        ;;
    esac
    local backend="$DB_BACKEND"
    [[ "$state" == running || "$state" == starting ]] && backend="$(ferretdb_recorded_backend)"
    status_line ferretdb "$state" "$pid" "$(mongo_url) (backend $backend, $FERRETDB_VERSION)" "$FERRETDB_LOG"
}

ferretdb_wipe() { rm -rf "$FERRETDB_STATE" "$FERRETDB_SQLITE_DIR" "$FERRETDB_LOG" "$LOG_DIR/install-ferretdb.log"; }
