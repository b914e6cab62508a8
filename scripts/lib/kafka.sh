# shellcheck shell=bash
# Apache Kafka 4.x, single node in KRaft combined mode, run straight from Maven Central jars.
# Sourced by scripts/infra.sh after common.sh and prereqs.sh.

KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_STATE="$STATE_DIR/kafka"
KAFKA_DATA="$KAFKA_STATE/data"
KAFKA_CONFIG="$KAFKA_STATE/server.properties"
KAFKA_LOG="$LOG_DIR/kafka.log"
# Marker looked for in /proc/<pid>/cmdline: the rendered config path is unique per state dir.
KAFKA_MARKER="kafka.Kafka $KAFKA_CONFIG"

kafka_installed() { [[ -f "$KAFKA_HOME/.complete" ]]; }

kafka_install() {
    if kafka_installed; then
        ok "kafka $KAFKA_VERSION already in cache ($KAFKA_LIBS)"
        return 0
    fi
    require_java
    require_maven
    local log="$LOG_DIR/install-kafka.log" tmp="$KAFKA_HOME/libs.partial"
    mkdir -p "$LOG_DIR" "$KAFKA_HOME"
    rm -rf "$tmp"
    info "Downloading Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
    echo "    (usually well under a minute; about 45 MB; log: $log)"
    run_with_progress "kafka $KAFKA_VERSION download" "$log" \
        mvn -q -B -f "$SCRIPTS_DIR/kafka/pom.xml" dependency:copy-dependencies \
        "-Dkafka.version=$KAFKA_VERSION" "-DoutputDirectory=$tmp"
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] ||
        die "kafka download finished but $tmp/kafka_2.13-$KAFKA_VERSION.jar is missing (log: $log)"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    printf '%s\n' "$KAFKA_VERSION" >"$KAFKA_HOME/.complete"
}

kafka_java() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        echo "$JAVA_HOME/bin/java"
    else
        command -v java
    fi
}

kafka_render_config() {
    mkdir -p "$KAFKA_DATA"
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@ADVERTISED_HOST@|$KAFKA_ADVERTISED_HOST|g" \
        -e "s|@DATA_DIR@|$KAFKA_DATA|g" \
        "$SCRIPTS_DIR/kafka/server.properties.tmpl" >"$KAFKA_CONFIG.tmp"
    mv "$KAFKA_CONFIG.tmp" "$KAFKA_CONFIG"
}

# Format the storage directory once; later starts reuse it (and keep topics and offsets).
kafka_format_once() {
    [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
    local java cluster_id
    java="$(kafka_java)"
    if [[ -s "$KAFKA_STATE/cluster-id" ]]; then
        cluster_id="$(cat "$KAFKA_STATE/cluster-id")"
    else
        cluster_id="$("$java" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOG" | tail -n1)"
        [[ -n "$cluster_id" ]] || {
            show_log_tail "$KAFKA_LOG"
            die "kafka: StorageTool random-uuid produced no id"
        }
        echo "$cluster_id" >"$KAFKA_STATE/cluster-id"
    fi
    info "kafka: formatting storage in $KAFKA_DATA (cluster id $cluster_id; first start only)"
    "$java" -Xmx256m -Dlog4j2.configurationFile="file:$SCRIPTS_DIR/kafka/log4j2.xml" \
        -Dkafka.logs.dir="$LOG_DIR" -cp "$KAFKA_LIBS/*" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_CONFIG" >>"$KAFKA_LOG" 2>&1 || {
        show_log_tail "$KAFKA_LOG"
        die "kafka: storage format failed"
    }
}

# kafka_start / kafka_wait are split so `up` can boot the JVM while the database starts.
KAFKA_PID=""
kafka_start() {
    if KAFKA_PID="$(running_pid kafka "$KAFKA_MARKER")"; then
        ok "kafka already running (pid $KAFKA_PID)"
        return 0
    fi
    port_open "$KAFKA_PORT" && die_port_in_use kafka "$KAFKA_PORT" CASEWORK_KAFKA_PORT
    port_open "$KAFKA_CONTROLLER_PORT" &&
        die_port_in_use "kafka controller" "$KAFKA_CONTROLLER_PORT" CASEWORK_KAFKA_CONTROLLER_PORT
    kafka_installed || kafka_install
    require_java
    mkdir -p "$LOG_DIR" "$KAFKA_STATE"
    kafka_render_config
    kafka_format_once
    info "starting kafka $KAFKA_VERSION on $KAFKA_ADVERTISED_HOST:$KAFKA_PORT (log: $KAFKA_LOG)"
    raise_open_files "$KAFKA_OPEN_FILES"
    start_detached kafka "$KAFKA_LOG" "$(kafka_java)" \
        "-Xms$KAFKA_HEAP" "-Xmx$KAFKA_HEAP" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=file:$SCRIPTS_DIR/kafka/log4j2.xml" \
        "-Dkafka.logs.dir=$LOG_DIR" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONFIG"
    KAFKA_PID="$(cat "$(pidfile_of kafka)")"
}

# Ready = the broker answers ApiVersions + Metadata and lists itself (scripts/probe.py). A
# broker loads every partition it holds before it serves, and each test run leaves topics of
# its own: after many runs that takes more than a minute, hence a longer bound than the rest.
KAFKA_READY_TIMEOUT="${CASEWORK_KAFKA_READY_TIMEOUT:-240}"
kafka_wait() {
    wait_ready kafka kafka "127.0.0.1:$KAFKA_PORT" "$KAFKA_PORT" "$KAFKA_PID" "$KAFKA_LOG" \
        "$KAFKA_READY_TIMEOUT" \
        "kafka loads every topic it holds at start ($(du -sh "$KAFKA_DATA" 2>/dev/null | cut -f1) here); test runs leave theirs: 'scripts/infra.sh reset' wipes the local data, CASEWORK_KAFKA_READY_TIMEOUT waits longer"
}

kafka_up() {
    kafka_start
    kafka_wait
}

kafka_down() { stop_component kafka "$KAFKA_MARKER"; }

kafka_status_line() {
    local state pid
    state="$(pid_state kafka "$KAFKA_MARKER")"
    pid="${state#* }"
    case "$state" in
    running*)
        if port_open "$KAFKA_PORT"; then state=running; else state=starting; fi
        ;;
    stale*) state="stale-pidfile" ;;
    *)
        pid="-"
        if port_open "$KAFKA_PORT"; then state="port-busy(other)"; else state=stopped; fi
        ;;
    esac
    status_line kafka "$state" "$pid" \
        "$KAFKA_ADVERTISED_HOST:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT, v$KAFKA_VERSION)" "$KAFKA_LOG"
}

kafka_wipe() { rm -rf "$KAFKA_STATE" "$KAFKA_LOG" "$LOG_DIR/install-kafka.log"; }
