#!/usr/bin/env bash
# One Apache Kafka broker (scripts/lib/broker.sh) for a program that manages its own, such as the
# Rust tests' OwnBroker (tests/common/mod.rs):
#
#   scripts/kafka/broker.sh install                 fetch Kafka into the cache (once)
#   scripts/kafka/broker.sh start DIR PORT [--owner PID] [--controller-port PORT]
#                                 [--add-scram SPEC...] [KEY=VALUE...]
#        start a single-node broker on 127.0.0.1:PORT with its data, log (broker.log) and pid
#        (broker.pid) in DIR; a DIR that has data is started again as it was (same controller
#        port). Returns once the broker answers a metadata request; the broker keeps running.
#        KEY=VALUE pairs are added to its server.properties. With --owner, the broker is
#        stopped when process PID exits (a test binary that dies without cleaning up). With
#        --controller-port, the controller listens there (KEY=VALUE pairs that redefine
#        `listeners` need it). --add-scram SPEC (kafka-storage's, such as
#        'SCRAM-SHA-512=[name=u,password=p]') creates a SCRAM user when DIR is new.
#   scripts/kafka/broker.sh stop DIR                SIGTERM, SIGKILL after 30 s
#   scripts/kafka/broker.sh kill DIR                SIGKILL, returns once the process is gone
#
# A cluster of N nodes (each a broker+controller, all in the controller quorum, one cluster id;
# new topics get N replicas, 2 of them in sync at least):
#
#   scripts/kafka/broker.sh cluster-start DIR N [--owner PID] [KEY=VALUE...]
#        nodes in DIR/node1..N on free ports; returns once all N are ready and prints the
#        bootstrap list (127.0.0.1:P1,127.0.0.1:P2,...) on stdout
#   scripts/kafka/broker.sh node-start DIR K [--owner PID]
#        start node K again (same ports and data), once it is stopped or killed; returns once
#        the cluster lists all N brokers again
#   scripts/kafka/broker.sh stop|kill DIR/nodeK     one node, as above
#   scripts/kafka/broker.sh cluster-stop DIR        SIGTERM to every node at once, SIGKILL
#                                                   after 30 s
set -euo pipefail
source "$(dirname "$0")/../lib/broker.sh"

usage() {
  sed -n '2,31p' "$0" >&2
  exit 2
}

# watch_owner OWNER BROKER_PID DIR: stops the broker when process OWNER exits. Polls once a
# second; SIGTERM first so the log says why the broker went away.
watch_owner() {
  local owner="$1" broker="$2" dir="$3"
  (
    while pid_alive "$owner" && pid_alive "$broker"; do sleep 1; done
    if pid_alive "$broker"; then
      echo "[owner $owner exited: stopping the broker]" >>"$dir/broker.log"
      kafka_stop_pid "$broker"
    fi
  ) </dev/null >/dev/null 2>&1 &
  disown
}

need_java() {
  local why
  why="$(kafka_java_problem)"
  [ -z "$why" ] || { echo "Apache Kafka needs Java 17 or newer (a JDK): $why" >&2; exit 1; }
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
    KWB_KAFKA_FORMAT_ARGS=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --owner) owner="${2:?--owner needs a pid}" ;;
        --controller-port) export KWB_KAFKA_CONTROLLER_PORT="${2:?--controller-port needs a port}" ;;
        --add-scram) KWB_KAFKA_FORMAT_ARGS+=(--add-scram "${2:?--add-scram needs a spec}") ;;
        *) break ;;
      esac
      shift 2
    done
    need_java
    ensure_kafka
    if pid="$(broker_pid "$dir")"; then
      echo "a broker (pid $pid) already runs in $dir" >&2
      exit 1
    fi
    kafka_start "$dir" "$port" "$@"
    [ -z "$owner" ] || watch_owner "$owner" "$BROKER_PID" "$dir"
    ;;
  cluster-start)
    [ $# -ge 2 ] || usage
    dir="$1" n="$2" owner=""
    shift 2
    if [ "${1:-}" = --owner ]; then
      owner="${2:?--owner needs a pid}"
      shift 2
    fi
    need_java
    ensure_kafka
    if [ -e "$dir/node1/node.args" ]; then
      echo "$dir holds a cluster already (start its nodes with node-start)" >&2
      exit 1
    fi
    kafka_cluster_start "$dir" "$n" "$@"
    if [ -n "$owner" ]; then
      for ((k = 1; k <= n; k++)); do
        watch_owner "$owner" "$(cat "$dir/node$k/broker.pid")" "$dir/node$k"
      done
    fi
    ;;
  node-start)
    [ $# -eq 2 ] || [ $# -eq 4 ] || usage
    dir="$1" k="$2" owner=""
    [ "${3:-}" != --owner ] || owner="$4"
    need_java
    if pid="$(broker_pid "$dir/node$k")"; then
      echo "node $k (pid $pid) already runs in $dir" >&2
      exit 1
    fi
    kafka_node_start "$dir" "$k"
    [ -z "$owner" ] || watch_owner "$owner" "$BROKER_PID" "$dir/node$k"
    ;;
  cluster-stop)
    [ $# -eq 1 ] || usage
    for node in "$1"/node*/; do
      if pid="$(broker_pid "$node")"; then
        kafka_stop_pid "$pid" &
      fi
    done
    wait
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
