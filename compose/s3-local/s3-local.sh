#!/usr/bin/env bash
# s3-local.sh: run a real S3-compatible server (S3Proxy, Apache-2.0) on 127.0.0.1 WITHOUT
# Docker, backed by a local directory, for gpuledger's tests and local development.
# Needs java >= 17 and mvn (once, to fetch the jar from Maven Central).
#
#   s3-local.sh up          fetch the jar (once), start, wait until it answers HTTP
#   s3-local.sh down        SIGTERM, wait, SIGKILL after a timeout
#   s3-local.sh status      exit 0 if running+answering, 1 if up but not answering, 3 if not running
#   s3-local.sh logs [-f] [N]   tail the server log
#   s3-local.sh endpoint    print http://127.0.0.1:port
#   s3-local.sh env         print export lines for AWS_* (endpoint, keys, region, checksums)
#   s3-local.sh reset       down, then delete the stored objects
#
# Environment (see README.md): GPULEDGER_S3_PORT (19000), GPULEDGER_S3_DIR (<repo>/.s3-local),
# GPULEDGER_S3_JARS (<dir>/jars),
# GPULEDGER_S3_ACCESS_KEY (gpuledger-local), GPULEDGER_S3_SECRET_KEY (gpuledger-local-secret),
# GPULEDGER_S3PROXY_VERSION (2.6.0), GPULEDGER_S3_START_TIMEOUT (90 s),
# GPULEDGER_S3_STOP_TIMEOUT (15 s), GPULEDGER_S3_HEAP, GPULEDGER_S3_JAVA, GPULEDGER_S3_MVN_ARGS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }

VERSION="${GPULEDGER_S3PROXY_VERSION:-2.6.0}"
PORT="${GPULEDGER_S3_PORT:-19000}"
[[ "$PORT" =~ ^[0-9]+$ ]] || { echo "s3-local: GPULEDGER_S3_PORT must be a number" >&2; exit 2; }
BASE="$(abspath "${GPULEDGER_S3_DIR:-$REPO/.s3-local}")"
# Local test credentials only: the server is on loopback and its data is throwaway.
ACCESS_KEY="${GPULEDGER_S3_ACCESS_KEY:-gpuledger-local}"
SECRET_KEY="${GPULEDGER_S3_SECRET_KEY:-gpuledger-local-secret}"
START_TIMEOUT="${GPULEDGER_S3_START_TIMEOUT:-90}"
STOP_TIMEOUT="${GPULEDGER_S3_STOP_TIMEOUT:-15}"
HEAP="${GPULEDGER_S3_HEAP:--Xms64m -Xmx512m}"
JAVA="${GPULEDGER_S3_JAVA:-${JAVA_HOME:+$JAVA_HOME/bin/}java}"
MVN="${GPULEDGER_S3_MVN:-mvn}"
MVN_ARGS="${GPULEDGER_S3_MVN_ARGS:-}"

DATA="$BASE/data"
LOGS="$BASE/logs"
JARS="$(abspath "${GPULEDGER_S3_JARS:-$BASE/jars}")"
JAR="$JARS/s3proxy-$VERSION-jar-with-dependencies.jar"
PIDFILE="$BASE/s3proxy.pid"
CONF="$BASE/s3proxy.properties"
ENDPOINT="http://127.0.0.1:$PORT"

log() { echo "s3-local: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { echo "${EPOCHREALTIME:-$(date +%s)}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

tail_logs() {
  [[ -s "$LOGS/s3proxy.log" ]] || return 0
  echo "----- last 40 lines of $LOGS/s3proxy.log -----" >&2
  tail -n 40 "$LOGS/s3proxy.log" >&2
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# An HTTP answer of any status (an anonymous request gets 403) means the server is serving.
answers() {
  timeout 5 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/'"$PORT"' || exit 1
    printf "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3
    head -c 12 <&3 | grep -q "^HTTP/1\.[01] "
  ' 2>/dev/null
}

# Prints the server's pid if the pidfile names a live s3proxy java process.
running_pid() {
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 's3proxy' || return 1
  echo "$pid"
}

alive() {
  local st
  st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# One `up`/`down` at a time per data dir. fd 9 must not leak into the server.
lock() {
  mkdir -p "$BASE"
  exec 9>"$BASE/.lock"
  if command -v flock >/dev/null; then
    flock -w "$((START_TIMEOUT + 600))" 9 || die "could not lock $BASE/.lock"
  fi
}

check_java() {
  command -v "$JAVA" >/dev/null || die "java not found (need Java >= 17; set GPULEDGER_S3_JAVA or JAVA_HOME)"
  local v major
  v="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  major="${v%%.*}"
  [[ "$major" == 1 ]] && major="$(echo "$v" | cut -d. -f2)"
  [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] || die "S3Proxy $VERSION needs Java >= 17, $JAVA is '$v'"
}

fetch_jar() {
  [[ -s "$JAR" ]] && return 0
  command -v "$MVN" >/dev/null || die "mvn not found: it is needed once to fetch S3Proxy $VERSION into $JARS"
  local t0 tmp
  t0="$(now)"
  mkdir -p "$JARS"
  tmp="$(mktemp -d "$JARS/.fetch.XXXXXX")"
  log "fetching org.gaul:s3proxy:$VERSION (jar-with-dependencies) from Maven Central ..."
  # shellcheck disable=SC2086  # MVN_ARGS is a list of words
  if ! "$MVN" -B -q $MVN_ARGS dependency:copy \
      -Dartifact="org.gaul:s3proxy:$VERSION:jar:jar-with-dependencies" \
      -DoutputDirectory="$tmp" >"$tmp/mvn.log" 2>&1; then
    tail -n 40 "$tmp/mvn.log" >&2
    rm -rf "$tmp"
    die "mvn could not fetch the S3Proxy jar (see above)"
  fi
  [[ -s "$tmp/$(basename "$JAR")" ]] || { rm -rf "$tmp"; die "mvn did not produce $(basename "$JAR")"; }
  mv "$tmp/$(basename "$JAR")" "$JAR"
  rm -rf "$tmp"
  log "jar fetched in $(since "$t0") s"
}

render_config() {
  umask 077  # the file holds the (local) secret key
  cat >"$CONF.tmp" <<CONF
s3proxy.endpoint=$ENDPOINT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$ACCESS_KEY
s3proxy.credential=$SECRET_KEY
jclouds.provider=filesystem
jclouds.filesystem.basedir=$DATA
CONF
  mv "$CONF.tmp" "$CONF"
}

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

wait_ready() {
  local pid="$1" t0="$2" owned="$3" deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    alive "$pid" || { rm -f "$PIDFILE"; tail_logs; die "S3Proxy (pid $pid) exited during startup"; }
    if port_open "$PORT" && answers; then
      log "ready at $ENDPOINT (pid $pid) after $(since "$t0") s"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      tail_logs
      if [[ "$owned" == 1 ]]; then
        stop_pid "$pid"
        die "S3Proxy (pid $pid) not ready after ${START_TIMEOUT}s; stopped it"
      fi
      die "S3Proxy (pid $pid) not ready after ${START_TIMEOUT}s"
    fi
    sleep 0.3
  done
}

cmd_up() {
  lock
  local pid t0
  if pid="$(running_pid)"; then
    if answers; then
      log "already running at $ENDPOINT (pid $pid)"
      return 0
    fi
    log "pid $pid is starting; waiting"
    wait_ready "$pid" "$(now)" 0
    return 0
  fi
  rm -f "$PIDFILE"
  port_open "$PORT" && die "port $PORT is in use by another process (set GPULEDGER_S3_PORT)"
  check_java
  mkdir -p "$DATA" "$LOGS"
  fetch_jar
  render_config
  local heap
  read -r -a heap <<<"$HEAP"
  t0="$(now)"
  (
    for fd in /proc/self/fd/*; do
      fd="${fd##*/}"
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    cd "$BASE" && exec setsid "$JAVA" "${heap[@]}" -Djava.awt.headless=true \
      -jar "$JAR" --properties "$CONF" >>"$LOGS/s3proxy.log" 2>&1 </dev/null
  ) &
  pid=$!
  echo "$pid" >"$PIDFILE"
  log "started S3Proxy $VERSION (pid $pid), data $DATA, logs $LOGS"
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
  if answers; then
    echo "running: pid $pid, endpoint $ENDPOINT, data $DATA, logs $LOGS"
    return 0
  fi
  echo "starting: pid $pid, $ENDPOINT not answering yet, logs $LOGS"
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
  [[ -f "$LOGS/s3proxy.log" ]] || die "no log yet at $LOGS/s3proxy.log"
  tail -n "$n" "${follow[@]}" "$LOGS/s3proxy.log"
}

cmd_env() {
  cat <<ENV
export AWS_ENDPOINT_URL=$ENDPOINT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
# S3Proxy $VERSION rejects the AWS SDK's newer default checksums on multipart uploads
# (XAmzContentSHA256Mismatch); real S3 does not need these two.
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required
export AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
ENV
}

cmd_reset() {
  cmd_down
  rm -rf "$DATA"
  log "deleted $DATA"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  endpoint) echo "$ENDPOINT" ;;
  env) cmd_env ;;
  reset) cmd_reset ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
