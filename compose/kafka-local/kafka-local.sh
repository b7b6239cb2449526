#!/usr/bin/env bash
# kafka-local.sh: run a real single-node Apache Kafka 4.x broker (KRaft, combined
# broker+controller) on 127.0.0.1 WITHOUT Docker, from Maven Central jars, for
# gpuledger's tests and local development. Needs java >= 17 and mvn.
#
#   kafka-local.sh up          fetch jars (once), format storage (once), start, wait until ready
#   kafka-local.sh down        SIGTERM, wait, SIGKILL after a timeout
#   kafka-local.sh status      exit 0 if running+ready, 1 if up but not ready, 3 if not running
#   kafka-local.sh logs [-f] [N]   tail the broker log
#   kafka-local.sh bootstrap   print host:port
#   kafka-local.sh reset       down, then delete the data dir (next `up` formats anew)
#
# Environment (see README.md): GPULEDGER_KAFKA_PORT (19092), GPULEDGER_KAFKA_CONTROLLER_PORT
# (port+1), GPULEDGER_KAFKA_DIR (<repo>/.kafka-local), GPULEDGER_KAFKA_JARS
# (<repo>/.kafka-local/jars), GPULEDGER_KAFKA_VERSION (4.4.0), GPULEDGER_KAFKA_START_TIMEOUT
# (120 s), GPULEDGER_KAFKA_STOP_TIMEOUT (30 s), GPULEDGER_KAFKA_HEAP, GPULEDGER_KAFKA_JAVA,
# GPULEDGER_KAFKA_PYTHON (python3), GPULEDGER_KAFKA_MVN_ARGS (extra mvn args).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }

KAFKA_VERSION="${GPULEDGER_KAFKA_VERSION:-4.4.0}"
PORT="${GPULEDGER_KAFKA_PORT:-19092}"
[[ "$PORT" =~ ^[0-9]+$ ]] || { echo "kafka-local: GPULEDGER_KAFKA_PORT must be a number" >&2; exit 2; }
CONTROLLER_PORT="${GPULEDGER_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
BASE="$(abspath "${GPULEDGER_KAFKA_DIR:-$REPO/.kafka-local}")"
JARS_ROOT="$(abspath "${GPULEDGER_KAFKA_JARS:-$REPO/.kafka-local/jars}")"
START_TIMEOUT="${GPULEDGER_KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${GPULEDGER_KAFKA_STOP_TIMEOUT:-30}"
HEAP="${GPULEDGER_KAFKA_HEAP:--Xms256m -Xmx1g}"
JAVA="${GPULEDGER_KAFKA_JAVA:-${JAVA_HOME:+$JAVA_HOME/bin/}java}"
PYTHON="${GPULEDGER_KAFKA_PYTHON:-python3}"
MVN="${GPULEDGER_KAFKA_MVN:-mvn}"
MVN_ARGS="${GPULEDGER_KAFKA_MVN_ARGS:-}"

DATA="$BASE/data"
LOGS="$BASE/logs"
PIDFILE="$BASE/kafka.pid"
CONF="$BASE/server.properties"
BOOTSTRAP="127.0.0.1:$PORT"
# The jar cache is keyed by Kafka version and the pom's content: changing either refetches.
JARS="$JARS_ROOT/kafka-$KAFKA_VERSION-$(sha1sum "$HERE/pom.xml" | cut -c1-8)"

log() { echo "kafka-local: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { echo "${EPOCHREALTIME:-$(date +%s)}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

tail_logs() {
  local f
  for f in "$LOGS/server.log" "$LOGS/kafka.out"; do
    [[ -s "$f" ]] || continue
    echo "----- last 40 lines of $f -----" >&2
    tail -n 40 "$f" >&2
  done
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Prints the broker's pid if the pidfile names a live (non-zombie) kafka.Kafka process.
running_pid() {
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

# True while pid exists and is not a zombie (used before the pid has exec'd java).
alive() {
  local st
  st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# One `up`/`down` at a time per data dir. fd 9 must not leak into the broker.
lock() {
  mkdir -p "$BASE"
  exec 9>"$BASE/.lock"
  if command -v flock >/dev/null; then
    flock -w "$((START_TIMEOUT + 600))" 9 || die "could not lock $BASE/.lock"
  fi
}

check_java() {
  command -v "$JAVA" >/dev/null || die "java not found (need Java >= 17; set GPULEDGER_KAFKA_JAVA or JAVA_HOME)"
  local v major
  v="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  major="${v%%.*}"
  [[ "$major" == 1 ]] && major="$(echo "$v" | cut -d. -f2)"
  [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] || die "Kafka 4.x needs Java >= 17, $JAVA is '$v'"
}

fetch_jars() {
  [[ -f "$JARS/.complete" ]] && return 0
  command -v "$MVN" >/dev/null || die "mvn not found: it is needed once to fetch Kafka $KAFKA_VERSION jars into $JARS"
  local t0 tmp
  t0="$(now)"
  mkdir -p "$JARS_ROOT"
  tmp="$(mktemp -d "$JARS_ROOT/.fetch.XXXXXX")"
  cp "$HERE/pom.xml" "$tmp/pom.xml"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $JARS ..."
  # shellcheck disable=SC2086  # MVN_ARGS is a list of words
  if ! (cd "$tmp" && "$MVN" -B -q -f pom.xml -Dkafka.version="$KAFKA_VERSION" $MVN_ARGS \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/jars") \
        >"$tmp/mvn.log" 2>&1; then
    tail -n 40 "$tmp/mvn.log" >&2
    rm -rf "$tmp"
    die "mvn could not fetch the Kafka jars (see above)"
  fi
  # The slf4j binding in pom.xml must match the slf4j-api version Kafka brings.
  if compgen -G "$tmp/jars/slf4j-api-2.*.jar" >/dev/null; then
    compgen -G "$tmp/jars/log4j-slf4j2-impl-*.jar" >/dev/null ||
      { rm -rf "$tmp"; die "Kafka $KAFKA_VERSION uses slf4j 2.x: pom.xml needs log4j-slf4j2-impl"; }
  else
    compgen -G "$tmp/jars/log4j-slf4j-impl-*.jar" >/dev/null ||
      { rm -rf "$tmp"; die "pom.xml needs the log4j-slf4j-impl binding for slf4j 1.x"; }
  fi
  touch "$tmp/jars/.complete"
  rm -rf "$JARS"
  mv "$tmp/jars" "$JARS"
  rm -rf "$tmp"
  log "jars fetched in $(since "$t0") s ($(compgen -G "$JARS/*.jar" | wc -l) jars)"
}

render_config() {
  sed -e "s#@PORT@#$PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" -e "s#@DATA_DIR@#$DATA#g" \
    "$HERE/server.properties.template" >"$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
}

java_cmd() {
  "$JAVA" -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$LOGS" \
    -cp "$JARS/*" "$@"
}

format_storage() {
  [[ -f "$DATA/meta.properties" ]] && return 0
  local t0 cid
  t0="$(now)"
  if [[ -s "$BASE/cluster.id" ]]; then
    cid="$(cat "$BASE/cluster.id")"
  else
    cid="$(java_cmd kafka.tools.StorageTool random-uuid 2>>"$LOGS/format.log" | tail -n1)"
    [[ -n "$cid" ]] || { tail -n 20 "$LOGS/format.log" >&2; die "StorageTool random-uuid failed"; }
    echo "$cid" >"$BASE/cluster.id"
  fi
  # Static quorum (controller.quorum.voters), hence no --standalone.
  java_cmd kafka.tools.StorageTool format -t "$cid" -c "$CONF" >>"$LOGS/format.log" 2>&1 ||
    { tail -n 20 "$LOGS/format.log" >&2; die "formatting $DATA failed"; }
  log "storage formatted in $(since "$t0") s (cluster id $cid)"
}

PROBE=""
metadata_ok() {
  if [[ -z "$PROBE" ]]; then
    if "$PYTHON" -c 'import confluent_kafka' >/dev/null 2>&1; then PROBE=python; else PROBE=java; fi
  fi
  if [[ "$PROBE" == python ]]; then
    "$PYTHON" - "$BOOTSTRAP" >/dev/null 2>&1 <<'EOF'
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=5)
sys.exit(0 if 1 in md.brokers else 1)
EOF
  else
    "$JAVA" -cp "$JARS/*" "$HERE/ReadyCheck.java" "$BOOTSTRAP" 1 >/dev/null 2>&1
  fi
}

# SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL; removes the pidfile.
stop_pid() {
  local pid="$1" deadline=$((SECONDS + STOP_TIMEOUT))
  kill -TERM "$pid" 2>/dev/null || true
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    log "pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.2; done
  fi
  rm -f "$PIDFILE"
}

# wait_ready PID T0 OWNED: on timeout, a broker this call started (OWNED=1) is stopped.
wait_ready() {
  local pid="$1" t0="$2" owned="$3" deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    alive "$pid" || { rm -f "$PIDFILE"; tail_logs; die "broker (pid $pid) exited during startup"; }
    if port_open "$PORT" && metadata_ok; then
      log "ready at $BOOTSTRAP (pid $pid) after $(since "$t0") s [probe: $PROBE]"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      tail_logs
      if [[ "$owned" == 1 ]]; then
        stop_pid "$pid"
        die "broker (pid $pid) not ready after ${START_TIMEOUT}s; stopped it"
      fi
      die "broker (pid $pid) not ready after ${START_TIMEOUT}s"
    fi
    sleep 0.5
  done
}

cmd_up() {
  lock
  local pid t0
  if pid="$(running_pid)"; then
    if port_open "$PORT" && metadata_ok; then
      log "already running at $BOOTSTRAP (pid $pid)"
      return 0
    fi
    log "pid $pid is starting; waiting"
    wait_ready "$pid" "$(now)" 0
    return 0
  fi
  rm -f "$PIDFILE"
  port_open "$PORT" && die "port $PORT is in use by another process (set GPULEDGER_KAFKA_PORT)"
  port_open "$CONTROLLER_PORT" && die "controller port $CONTROLLER_PORT is in use (set GPULEDGER_KAFKA_CONTROLLER_PORT)"
  check_java
  mkdir -p "$DATA" "$LOGS"
  fetch_jars
  render_config
  format_storage
  local heap
  read -r -a heap <<<"$HEAP"
  t0="$(now)"
  # setsid: own session, so the broker outlives the calling shell and its signals.
  (
    # Close fds inherited from the caller (pipes etc.), so the broker holds none open.
    for fd in /proc/self/fd/*; do
      fd="${fd##*/}"
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    cd "$BASE" && exec setsid "$JAVA" "${heap[@]}" -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$LOGS" \
      -cp "$JARS/*" kafka.Kafka "$CONF" >>"$LOGS/kafka.out" 2>&1 </dev/null
  ) &
  pid=$!
  echo "$pid" >"$PIDFILE"
  log "started Kafka $KAFKA_VERSION (pid $pid), data $DATA, logs $LOGS"
  wait_ready "$pid" "$t0" 1
}

cmd_down() {
  lock
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    log "not running"
    return 0
  fi
  stop_pid "$pid"
  log "stopped (pid $pid)"
}

cmd_status() {
  local pid
  if ! pid="$(running_pid)"; then
    echo "not running (dir $BASE)"
    return 3
  fi
  if port_open "$PORT"; then
    echo "running: pid $pid, bootstrap $BOOTSTRAP, data $DATA, logs $LOGS"
    return 0
  fi
  echo "starting: pid $pid, port $PORT not open yet, logs $LOGS"
  return 1
}

cmd_logs() {
  local follow=() n=100
  for a in "$@"; do
    case "$a" in
      -f) follow=(-F) ;;
      *[!0-9]* | "") die "usage: logs [-f] [N]" ;;
      *) n="$a" ;;
    esac
  done
  [[ -f "$LOGS/server.log" ]] || die "no log yet at $LOGS/server.log"
  tail -n "$n" "${follow[@]}" "$LOGS/server.log"
}

cmd_reset() {
  cmd_down
  rm -rf "$DATA" "$BASE/cluster.id" "$CONF"
  log "deleted $DATA"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  bootstrap) echo "$BOOTSTRAP" ;;
  reset) cmd_reset ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
