#!/usr/bin/env bash
# One Apache Kafka broker (scripts/lib/broker.sh) for a program that manages its own, such as the
# Rust tests' OwnBroker (tests/common/mod.rs):
#
#   scripts/kafka/broker.sh install                 fetch Kafka into the cache (once)
#   scripts/kafka/broker.sh start DIR PORT [--owner PID] [KEY=VALUE...]
#        start a single-node broker on 127.0.0.1:PORT with its data, log (broker.log) and pid
#        (broker.pid) in DIR; a DIR that has data is started again as it was (same controller
#        port). Returns once the broker answers a metadata request; the broker keeps running.
#        KEY=VALUE pairs are added to its server.properties. With --owner, the broker is
#        stopped when process PID exits (a test binary that dies without cleaning up).
#   scripts/kafka/broker.sh stop DIR                SIGTERM, SIGKILL after 30 s
#   scripts/kafka/broker.sh kill DIR                SIGKILL, returns once the process is gone
set -euo pipefail
source "$(dirname "$0")/../lib/broker.sh"

usage() {
  sed -n '2,13p' "$0" >&2
  exit 2
}

# broker_pid DIR: the pid in DIR/broker.pid when that process still runs and is the broker of
# DIR (not another process that was given the same pid since).
broker_pid() {
  local dir pid
  dir="$(cd "$1" 2>/dev/null && pwd)" || return 1
  pid="$(cat "$dir/broker.pid" 2>/dev/null)" || return 1
  pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$dir/server.properties" && echo "$pid"
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
  install)
    why="$(kafka_java_problem)"
    [ -z "$why" ] || { echo "Apache Kafka needs Java 17 or newer (a JDK): $why" >&2; exit 1; }
    ensure_kafka
    ;;
  start)
    [ $# -ge 2 ] || usage
    dir="$1" port="$2" owner=""
    shift 2
    if [ "${1:-}" = --owner ]; then
      owner="${2:?--owner needs a pid}"
      shift 2
    fi
    why="$(kafka_java_problem)"
    [ -z "$why" ] || { echo "Apache Kafka needs Java 17 or newer (a JDK): $why" >&2; exit 1; }
    ensure_kafka
    if pid="$(broker_pid "$dir")"; then
      echo "a broker (pid $pid) already runs in $dir" >&2
      exit 1
    fi
    kafka_start "$dir" "$port" "$@"
    if [ -n "$owner" ]; then
      # Polls once a second; SIGTERM first so the log says why the broker went away.
      (
        while pid_alive "$owner" && pid_alive "$BROKER_PID"; do sleep 1; done
        if pid_alive "$BROKER_PID"; then
          echo "[owner $owner exited: stopping the broker]" >>"$dir/broker.log"
          kafka_stop_pid "$BROKER_PID"
        fi
      ) </dev/null >/dev/null 2>&1 &
      disown
    fi
    ;;
  stop)
    [ $# -eq 1 ] || usage
    if pid="$(broker_pid "$1")"; then
      kafka_stop_pid "$pid"
    fi
    ;;
  kill)
    [ $# -eq 1 ] || usage
    if pid="$(broker_pid "$1")"; then
      kill -KILL "$pid" 2>/dev/null || true
      while pid_alive "$pid"; do sleep 0.02; done
    fi
    ;;
  *) usage ;;
esac
