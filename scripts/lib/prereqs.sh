# shellcheck shell=bash
# Checks for the tools the infrastructure needs, installing from Debian packages where that is
# safe (root + apt-get), otherwise failing with a message that says exactly what is missing.

java_major() {
    local java="$1" line
    line="$("$java" -version 2>&1 | head -n1)" || return 1
    # openjdk version "17.0.15" 2025-04-15  |  java version "1.8.0_392"
    line="${line#*\"}"
    line="${line%%\"*}"
    if [[ "$line" == 1.* ]]; then
        line="${line#1.}"
    fi
    echo "${line%%[.+-]*}"
}

_java_ok() {
    local java major
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        java="$JAVA_HOME/bin/java"
    else
        java="$(command -v java 2>/dev/null)" || return 1
    fi
    major="$(java_major "$java")" || return 1
    [[ "$major" =~ ^[0-9]+$ ]] && ((major >= JAVA_MIN_MAJOR))
}

require_java() {
    _java_ok && return 0
    if can_apt_install; then
        warn "Java $JAVA_MIN_MAJOR+ not found; installing it with apt-get"
        apt_update_once
        local pkg
        pkg="$(apt_first_available openjdk-17-jre-headless openjdk-21-jre-headless default-jre-headless)" ||
            die "no OpenJDK package found by apt-cache; install Java $JAVA_MIN_MAJOR+ by hand"
        apt_install "$pkg"
        hash -r
        _java_ok && return 0
    fi
    die "Java $JAVA_MIN_MAJOR or newer is required for Kafka 4.x and was not found" \
        "(java on PATH: $(command -v java || echo none)). On Debian/Ubuntu:" \
        "sudo apt-get install openjdk-17-jre-headless  (or set JAVA_HOME to a JDK/JRE 17+)"
}

require_maven() {
    command -v mvn >/dev/null 2>&1 && return 0
    if can_apt_install; then
        warn "Maven (mvn) not found; installing the Debian package 'maven'"
        apt_install maven
        hash -r
        command -v mvn >/dev/null 2>&1 && return 0
    fi
    die "Maven (mvn) is required to fetch the Kafka jars from Maven Central and was not found." \
        "On Debian/Ubuntu: sudo apt-get install maven"
}

# go_version_ok HAVE MIN: "1.26.8" >= "1.24"?
version_ge() {
    local IFS=.
    local -a a b
    read -r -a a <<<"$1"
    read -r -a b <<<"$2"
    local i x y
    for ((i = 0; i < ${#b[@]}; i++)); do
        x="${a[i]:-0}"
        y="${b[i]:-0}"
        x="${x%%[!0-9]*}"
        y="${y%%[!0-9]*}"
        ((10#${x:-0} > 10#${y:-0})) && return 0
        ((10#${x:-0} < 10#${y:-0})) && return 1
    done
    return 0
}

require_go() {
    local have
    if ! command -v go >/dev/null 2>&1; then
        die "Go $FERRETDB_MIN_GO+ is required to build FerretDB $FERRETDB_VERSION and 'go' was not found." \
            "Debian's golang package is too old for FerretDB 1.24 (bookworm ships 1.19)." \
            "Install an official Go toolchain (go$FERRETDB_MIN_GO or newer) and put its bin/ on PATH," \
            "e.g. /usr/local/go/bin."
    fi
    have="$(go env GOVERSION 2>/dev/null)"
    have="${have#go}"
    version_ge "$have" "$FERRETDB_MIN_GO" ||
        die "Go $have is too old: FerretDB $FERRETDB_VERSION needs Go $FERRETDB_MIN_GO or newer" \
            "(Debian's golang package is too old; install an official Go toolchain and put it first on PATH)."
}

# --- PostgreSQL server binaries ---------------------------------------------------------------
# Prints the bin dir of the newest installed PostgreSQL server (Debian layout first).
find_pg_bindir() {
    if [[ -n "${CASEWORK_PG_BIN:-}" ]]; then
        [[ -x "$CASEWORK_PG_BIN/initdb" && -x "$CASEWORK_PG_BIN/pg_ctl" ]] || return 1
        echo "$CASEWORK_PG_BIN"
        return 0
    fi
    local d best="" bestv=0 v
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]] || continue
        v="$(basename "$(dirname "$d")")"
        v="${v%%.*}"
        if [[ "$v" =~ ^[0-9]+$ ]] && ((v > bestv)); then
            bestv="$v"
            best="$d"
        fi
    done
    if [[ -z "$best" ]] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        best="$(dirname "$(command -v initdb)")"
    fi
    [[ -n "$best" ]] || return 1
    echo "$best"
}

require_postgres() {
    find_pg_bindir >/dev/null && return 0
    if can_apt_install; then
        warn "PostgreSQL server binaries not found; installing the Debian package 'postgresql'"
        echo "    (Debian may also create and start its own 'main' cluster on port 5432;"
        echo "     the Casework cluster is separate, in $STATE_DIR/postgres on port $PG_PORT)"
        apt_install postgresql
        find_pg_bindir >/dev/null && return 0
    fi
    die "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found." \
        "On Debian/Ubuntu: sudo apt-get install postgresql  (or set CASEWORK_PG_BIN to their directory," \
        "or use the SQLite backend: CASEWORK_DB_BACKEND=sqlite)"
}
