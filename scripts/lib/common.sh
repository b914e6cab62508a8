# shellcheck shell=bash
# shellcheck disable=SC2034 # settings used by the other sourced files
# Shared settings and helpers for scripts/infra.sh. Sourced, never executed.
#
# Every setting can be overridden from the environment; docs/infra.md lists them.

# --- pinned versions --------------------------------------------------------------------
KAFKA_VERSION="${CASEWORK_KAFKA_VERSION:-4.4.0}"
FERRETDB_VERSION="${CASEWORK_FERRETDB_VERSION:-v1.24.2}"
FERRETDB_MIN_GO="1.24" # FerretDB v1.24.x go.mod says `go 1.24`
JAVA_MIN_MAJOR=17

# --- locations ----------------------------------------------------------------------------
SCRIPTS_DIR="${SCRIPTS_DIR:?SCRIPTS_DIR must be set by the caller}"
REPO_ROOT="$(cd "$SCRIPTS_DIR/.." && pwd)"
CACHE_DIR="${CASEWORK_CACHE:-$HOME/.cache/casework}"
STATE_DIR="${CASEWORK_STATE:-$REPO_ROOT/.local}"
LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"

# --- network ------------------------------------------------------------------------------
BIND_HOST=127.0.0.1
KAFKA_PORT="${CASEWORK_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${CASEWORK_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_ADVERTISED_HOST="${CASEWORK_KAFKA_ADVERTISED_HOST:-localhost}"
MONGO_PORT="${CASEWORK_MONGO_PORT:-27017}"
PG_PORT="${CASEWORK_PG_PORT:-5433}"

# --- behaviour ----------------------------------------------------------------------------
READY_TIMEOUT="${CASEWORK_READY_TIMEOUT:-60}" # seconds to wait for a component to be ready
STOP_TIMEOUT="${CASEWORK_STOP_TIMEOUT:-20}"   # seconds between SIGTERM and SIGKILL
# 1 GiB: a broker that has served a few full test runs holds metadata for thousands of
# partitions (every test namespaces its topics); at 512 MiB a shared one ran out of heap.
KAFKA_HEAP="${CASEWORK_KAFKA_HEAP:-1g}"
# Kafka holds a file per partition segment and per connection: a broker that has served many
# test runs (tens of thousands of partitions) hit a 20,000 soft limit and died with "Too many
# open files". Raised for the broker only, up to what the system allows.
KAFKA_OPEN_FILES="${CASEWORK_KAFKA_OPEN_FILES:-262144}"
LOG_TAIL_LINES=30

# --- output -------------------------------------------------------------------------------
if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    C_BOLD=$'\e[1m' C_RED=$'\e[31m' C_GREEN=$'\e[32m' C_YELLOW=$'\e[33m' C_DIM=$'\e[2m' C_OFF=$'\e[0m'
else
    C_BOLD='' C_RED='' C_GREEN='' C_YELLOW='' C_DIM='' C_OFF=''
fi

info() { printf '%s==>%s %s\n' "$C_BOLD" "$C_OFF" "$*"; }
ok() { printf '%s ok%s %s\n' "$C_GREEN" "$C_OFF" "$*"; }
warn() { printf '%swarn%s %s\n' "$C_YELLOW" "$C_OFF" "$*" >&2; }
die() {
    printf '%serror%s %s\n' "$C_RED" "$C_OFF" "$*" >&2
    exit 1
}

# Print the last lines of a log file to stderr (used whenever something fails).
show_log_tail() {
    local file="$1" n="${2:-$LOG_TAIL_LINES}"
    if [[ -s "$file" ]]; then
        printf '%s--- last %s lines of %s ---%s\n' "$C_DIM" "$n" "$file" "$C_OFF" >&2
        tail -n "$n" "$file" >&2
        printf '%s--- end of %s ---%s\n' "$C_DIM" "$file" "$C_OFF" >&2
    else
        printf '(log %s is empty or missing)\n' "$file" >&2
    fi
}

now_ms() { date +%s%3N; }
# Seconds elapsed since a now_ms timestamp, one decimal.
elapsed_since() {
    local start="$1" end
    end="$(now_ms)"
    printf '%d.%d' $(((end - start) / 1000)) $((((end - start) % 1000) / 100))
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# --- apt (only used when running as root on a Debian-like machine) -----------------------
_APT_UPDATED=0
can_apt_install() { is_root && command -v apt-get >/dev/null 2>&1; }
apt_update_once() {
    local log="$LOG_DIR/install-apt.log"
    [[ "$_APT_UPDATED" -eq 1 ]] && return 0
    mkdir -p "$LOG_DIR"
    info "apt-get update (log: $log)"
    apt-get update >>"$log" 2>&1 || {
        show_log_tail "$log"
        die "apt-get update failed"
    }
    _APT_UPDATED=1
}
apt_install() {
    local log="$LOG_DIR/install-apt.log"
    apt_update_once
    info "apt-get install -y $* (log: $log)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$log" 2>&1 || {
        show_log_tail "$log"
        die "apt-get install $* failed"
    }
}
# First package among the arguments that apt knows about (needs a prior apt-get update).
apt_first_available() {
    local p
    for p in "$@"; do
        if apt-cache show "$p" >/dev/null 2>&1; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# --- long-running steps with a heartbeat -------------------------------------------------
# run_with_progress LABEL LOGFILE CMD...: runs CMD with output appended to LOGFILE, prints a
# line every 15 s so a slow first download does not look like a hang.
run_with_progress() {
    local label="$1" log="$2"
    shift 2
    local start pid rc=0 ticks=0
    start="$(now_ms)"
    "$@" >>"$log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        ticks=$((ticks + 1))
        if ((ticks % 15 == 0)); then
            printf '    ... %s still running (%ss)\n' "$label" "$ticks"
        fi
    done
    wait "$pid" || rc=$?
    if [[ "$rc" -ne 0 ]]; then
        show_log_tail "$log"
        die "$label failed (exit $rc); full log: $log"
    fi
    ok "$label done in $(elapsed_since "$start")s"
}

# --- processes and ports -------------------------------------------------------------------
pidfile_of() { echo "$RUN_DIR/$1.pid"; }

# pid_alive PID: exists and is not a zombie waiting to be reaped.
pid_alive() {
    local pid="$1" stat
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/stat" ]]; then
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
        stat="${stat##*) }"
        [[ "${stat:0:1}" != Z ]] || return 1
    fi
    return 0
}

# pid_matches PID MARKER: the process exists and its command line contains MARKER
# (guards against a stale pid file whose pid has been reused by something else).
pid_matches() {
    local pid="$1" marker="$2" cmdline
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 0 # no procfs: trust kill -0
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"$marker"* ]]
}

# pid_state NAME MARKER: prints "running PID", "stale PID" (pid file left behind by a process
# that is gone) or "stopped". No side effects.
pid_state() {
    local name="$1" marker="$2" file pid
    file="$(pidfile_of "$name")"
    if [[ ! -f "$file" ]]; then
        echo "stopped"
        return 0
    fi
    pid="$(head -n1 "$file" 2>/dev/null || true)"
    if pid_matches "$pid" "$marker"; then
        echo "running $pid"
    else
        echo "stale ${pid:-?}"
    fi
}

# running_pid NAME MARKER: prints the pid and returns 0 when NAME's pid file points at a live
# process that matches MARKER. A stale pid file is removed (with a note).
running_pid() {
    local name="$1" marker="$2" state pid
    state="$(pid_state "$name" "$marker")"
    pid="${state#* }"
    case "$state" in
    running*)
        echo "$pid"
        return 0
        ;;
    stale*)
        warn "$name: removing stale pid file $(pidfile_of "$name") (pid $pid is gone or is not $name)"
        rm -f "$(pidfile_of "$name")"
        ;;
    esac
    return 1
}

port_open() {
    local port="$1" host="${2:-$BIND_HOST}"
    timeout 1 bash -c ": </dev/tcp/$host/$port" 2>/dev/null
}

# Who listens on a port (best effort, for error messages).
port_owner() {
    local port="$1"
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "sport = :$port" 2>/dev/null | sed 's/^/    /'
    fi
}

die_port_in_use() {
    local name="$1" port="$2" env="$3"
    printf '%serror%s %s: port %s on %s is already in use by another process:\n' \
        "$C_RED" "$C_OFF" "$name" "$port" "$BIND_HOST" >&2
    port_owner "$port" >&2
    printf '      stop that process, or pick another port with %s=<port>\n' "$env" >&2
    exit 1
}

# stop_pid NAME PID: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL.
stop_pid() {
    local name="$1" pid="$2" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    warn "$name (pid $pid) did not stop within ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    warn "$name (pid $pid) is still alive after SIGKILL"
}

# stop_component NAME MARKER
stop_component() {
    local name="$1" marker="$2" pid
    if pid="$(running_pid "$name" "$marker")"; then
        info "stopping $name (pid $pid)"
        stop_pid "$name" "$pid"
        rm -f "$(pidfile_of "$name")"
        ok "$name stopped"
    else
        rm -f "$(pidfile_of "$name")"
        echo "    $name: not running"
    fi
}

# start_detached NAME LOGFILE CMD...: starts CMD in its own session (so ^C in the calling
# terminal or make does not kill it), output appended to LOGFILE, pid written to the pid file.
# raise_open_files N: raise this shell's (and so its children's) open-files limit towards N;
# the hard limit only where the user may (root), else up to the hard limit, with a warning.
raise_open_files() {
    local want="$1" hard
    hard="$(ulimit -Hn)"
    if [[ "$hard" != unlimited && "$want" -gt "$hard" ]] && ! ulimit -Hn "$want" 2>/dev/null; then
        warn "open-files limit stays at $hard (wanted $want: raise the hard limit for many partitions)"
        want="$hard"
    fi
    ulimit -Sn "$want" 2>/dev/null || warn "could not raise the open-files limit to $want"
}

start_detached() {
    local name="$1" log="$2"
    shift 2
    mkdir -p "$RUN_DIR" "$(dirname "$log")"
    printf '\n===== %s starting %s at %s =====\n' "$name" "$*" "$(date -Is)" >>"$log"
    # 9>&-: do not hand the lock fd of scripts/infra.sh to a long-lived daemon.
    setsid "$@" >>"$log" 2>&1 </dev/null 9>&- &
    echo "$!" >"$(pidfile_of "$name")"
}

# --- readiness probe ------------------------------------------------------------------------
# probe KIND TARGET PID TIMEOUT: runs scripts/probe.py in the workspace environment.
# Returns 0 ready, 1 timeout, 2 process died, 3 probe unavailable (workspace not synced).
probe() {
    local kind="$1" target="$2" pid="$3" timeout="$4"
    local -a py
    if [[ -x "$REPO_ROOT/.venv/bin/python" || -n "${UV_PROJECT_ENVIRONMENT:-}" ]] &&
        command -v uv >/dev/null 2>&1; then
        py=(env UV_PYTHON_DOWNLOADS=never uv run --quiet --no-sync --project "$REPO_ROOT" python)
    elif [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
        py=("$REPO_ROOT/.venv/bin/python")
    else
        return 3
    fi
    local rc=0
    "${py[@]}" "$SCRIPTS_DIR/probe.py" "$kind" "$target" --pid "$pid" --timeout "$timeout" || rc=$?
    return "$rc"
}

# wait_ready NAME KIND TARGET PORT PID LOGFILE [TIMEOUT [HINT]]: bounded wait (TIMEOUT seconds,
# default READY_TIMEOUT); on failure show the log and HINT, stop the half-started process and
# exit non-zero.
wait_ready() {
    local name="$1" kind="$2" target="$3" port="$4" pid="$5" log="$6"
    local timeout="${7:-$READY_TIMEOUT}" hint="${8:-}"
    local start rc=0 i
    start="$(now_ms)"
    probe "$kind" "$target" "$pid" "$timeout" || rc=$?
    if [[ "$rc" -eq 3 ]]; then
        warn "$name: readiness probe unavailable (workspace not synced: run 'make bootstrap');" \
            "falling back to a plain port check"
        rc=1
        for ((i = 0; i < timeout * 2; i++)); do
            if ! pid_alive "$pid"; then
                rc=2
                break
            fi
            if port_open "$port"; then
                rc=0
                break
            fi
            sleep 0.5
        done
    fi
    case "$rc" in
    0) ok "$name ready in $(elapsed_since "$start")s" ;;
    2)
        show_log_tail "$log"
        rm -f "$(pidfile_of "$name")"
        die "$name exited during startup (log: $log)"
        ;;
    *)
        show_log_tail "$log"
        stop_pid "$name" "$pid"
        rm -f "$(pidfile_of "$name")"
        [[ -z "$hint" ]] || warn "$hint"
        die "$name was not ready within ${timeout}s (stopped it; log: $log)"
        ;;
    esac
}
