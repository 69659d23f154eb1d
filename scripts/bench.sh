#!/usr/bin/env bash
# Benchmark: kafka-ws-bridge next to Centrifugo (v6, tuned as its documentation advises, fed by its
# own Kafka consumer) and the raw writer (the physical floor: the same frames to the same sockets,
# no Kafka, no logic); same broker, same records, same sessions, same pinning, several interleaved
# rounds. docs/performance.md ("Method", "The peers") says what every step does and why.
#
#   scripts/bench.sh                 # the full run, release builds (the estimate is printed first)
#   scripts/bench.sh --smoke         # one round (or KWB_BENCH_ROUNDS), tiny sizes, 1-2 s steps,
#                                    # debug builds; fails only when something breaks or a file
#                                    # lacks a field (scripts/test.sh runs it)
#   scripts/bench.sh --only bridge,centrifugo,raw   # a subset of the parts below
#   KAFKA_BOOTSTRAP=host:9092 scripts/bench.sh      # against an existing cluster
#
# Parts (--only takes any of them; the default is all):
#   bridge centrifugo raw        the rounds: fan-out capacity, the latency curve at 10/30/50/70 % of
#                                that round's own capacity, keyed capacity; KWB_BENCH_ROUNDS rounds
#                                (default 3), the order rotating every round
#   bridge-2core centrifugo-2core  the same on cores 0-1 (generator and broker unpinned), one round
#   centrifugo-gogc              Centrifugo with GOGC=200, one round
#   profiles                     perf (the bridge) and pprof (Centrifugo) at 50 % of the bridge's capacity
#   inbound                      scenario e (the bridge's publish path, next to a plain producer)
#   idle                         RSS per idle session, the bridge and tuned Centrifugo (last but multi)
#   multi compression registry   several instances; permessage-deflate; Schema Registry formats
#
# Settings (environment): KWB_BENCH_ROUNDS (3), KWB_BENCH_MAX_LOAD (1.0: the 1-minute load above
# which the run refuses to start), KWB_BENCH_WARM (5 s), KWB_BENCH_MEASURE (20 s: every capacity
# step and curve point), KWB_BENCH_MAX_STEPS (8), KWB_LOAD (another kwb-load binary).
#
# Results: target/bench/<UTC stamp>-<mode>/ (layout in docs/performance.md, "Method"); a full run
# copies it (files over 1 MB left out) to bench/results/<UTC stamp>/ and writes
# bench/results/latest.md from it with `kwb-load report`.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
source scripts/lib/broker.sh

mode=full
all_parts=(bridge centrifugo raw bridge-2core centrifugo-2core centrifugo-gogc profiles inbound idle multi compression registry)
parts=("${all_parts[@]}")
only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke)
      mode=smoke
      # The variants run the same code with other pinning and environment: not in the smoke
      # run unless named (--smoke --only ...).
      [ "$only" = 1 ] || parts=(bridge centrifugo raw profiles inbound idle multi compression registry)
      ;;
    --only) shift; only=1; IFS=, read -r -a parts <<<"${1:?--only needs a comma-separated list of parts (see --help)}" ;;
    -h | --help) sed -n "2,$(($(grep -n "^set -euo" "$0" | cut -d: -f1) - 1))p" "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for p in "${parts[@]}"; do
  case " ${all_parts[*]} " in
    *" $p "*) ;;
    *)
      case "$p" in
        node | python) echo "$p: the baselines are no longer part of this run (bench/baselines/smoke.sh runs them)" >&2 ;;
        *) echo "unknown part: $p (one of: ${all_parts[*]})" >&2 ;;
      esac
      exit 2
      ;;
  esac
done
has() { local p; for p in "${parts[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

started=$SECONDS
say() { echo "==> $*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }
above() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }

# ---- the load line -------------------------------------------------------------------------------
# On a shared machine other work takes the cores the peers are pinned to, and every timing then
# measures that work. The full run refuses to start above the line (the smoke run only says so).
MAX_LOAD="${KWB_BENCH_MAX_LOAD:-1.0}"
loadavg_start="$(cut -d' ' -f1-3 /proc/loadavg)"
if above "$(load1)" "$MAX_LOAD"; then
  if [ "$mode" = full ]; then
    echo "refusing to start: the 1-minute load average is $(load1) (/proc/loadavg: $loadavg_start), above the line of $MAX_LOAD." >&2
    echo "Other work is running on this machine; its CPU time would be counted against the peers. Wait until" >&2
    echo "it is quiet, or set KWB_BENCH_MAX_LOAD to measure anyway (the load of every step is kept in the results)." >&2
    exit 3
  fi
  say "load average $loadavg_start is above $MAX_LOAD (smoke run: measuring anyway; the figures mean nothing)"
fi

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
results="$repo/target/bench/$stamp-$mode"
work="$(mktemp -d -t kwb-bench-XXXXXX)"
mkdir -p "$results"
external_kafka="${KAFKA_BOOTSTRAP:-}"
peer_pid=""
multi_pids=()
failed=0

cleanup() {
  stop_peer
  stop_multi
  repin_broker 1
  stop_broker
  if [ "$failed" -eq 0 ]; then rm -rf "$work"; else echo "work files kept in $work" >&2; fi
}
trap cleanup EXIT
trap 'failed=1; exit 130' INT TERM

# ---- sizes ---------------------------------------------------------------------------------------

if [ "$mode" = smoke ]; then
  ROUNDS="${KWB_BENCH_ROUNDS:-1}"
  WARM=1 MEASURE=2 MAX_STEPS=3 PRECISION=0.5
  FAN_SESSIONS=50 KEY_SESSIONS=50
  FLOOR_RATE=20 FLOOR_WARM=1 FLOOR_MEASURE=3
  IN_CLIENTS=10 IN_WINDOW=4 IN_WARM=1 IN_MEASURE=3
  IDLE_SIZES="200" IDLE_HOLD=2 IDLE_SETTLE=1
  PROFILE_SECS=2
  MULTI_INSTANCES=2 MULTI_SESSIONS=100 MULTI_HOLD=10 MULTI_RECORDS=3
  DEFLATE_SESSIONS=20 DEFLATE_RECORDS=200 DEFLATE_RATE=200 DEFLATE_IDLE=100
  # First brackets (records/s): low, high. Tiny on purpose.
  declare -A seed=([fanout_bridge]="10 40" [fanout_centrifugo]="10 40" [fanout_raw]="10 40"
    [keyed_bridge]="50 200" [keyed_centrifugo]="50 200" [keyed_raw]="50 200")
else
  ROUNDS="${KWB_BENCH_ROUNDS:-3}"
  WARM="${KWB_BENCH_WARM:-5}" MEASURE="${KWB_BENCH_MEASURE:-20}" MAX_STEPS="${KWB_BENCH_MAX_STEPS:-8}" PRECISION=0.1
  FAN_SESSIONS=1000 KEY_SESSIONS=10000
  FLOOR_RATE=100 FLOOR_WARM=5 FLOOR_MEASURE=20
  IN_CLIENTS=100 IN_WINDOW=16 IN_WARM=3 IN_MEASURE=15
  IDLE_SIZES="10000 ${IDLE_SESSIONS:-19000}" IDLE_HOLD=20 IDLE_SETTLE=5
  PROFILE_SECS=15
  # Several instances: 3 × 17,000 = 51,000 idle sessions (20,000 open files per process here).
  MULTI_INSTANCES="${MULTI_INSTANCES:-3}" MULTI_SESSIONS="${MULTI_SESSIONS:-17000}" MULTI_HOLD=60 MULTI_RECORDS=10
  DEFLATE_SESSIONS=100 DEFLATE_RECORDS=4000 DEFLATE_RATE=400 DEFLATE_IDLE=1000
  # Round 1's brackets (records/s) start at about half of each peer's last known capacity
  # (docs/performance.md; the keyed raw floor's is a guess) so the doubling passes once or twice
  # before it fails; the high end is only a ceiling. Later rounds start from 0.7× the peer's
  # capacity in the round before. A peer faster than its seed costs one step more per doubling.
  declare -A seed=([fanout_bridge]="200 20000" [fanout_centrifugo]="32 20000" [fanout_raw]="1200 40000"
    [keyed_bridge]="16000 640000" [keyed_centrifugo]="4800 640000" [keyed_raw]="40000 640000")
fi
FRACTIONS=0.1,0.3,0.5,0.7
PARTITIONS="${BENCH_PARTITIONS:-1}"
# The keyed scenario's topic: 8 partitions (the issue's keyed target), records spread by key.
KEY_PARTITIONS="${BENCH_KEY_PARTITIONS:-8}"
FETCH_WAIT_MS=10
RECORD_BYTES=140
ONE_ROUND_PEERS=(bridge-2core centrifugo-2core centrifugo-gogc)
[ "$ROUNDS" -ge 1 ] 2>/dev/null || { echo "KWB_BENCH_ROUNDS must be a positive number" >&2; exit 2; }

# ---- the estimate --------------------------------------------------------------------------------
# Seconds per capacity search: up to MAX_STEPS steps, in practice 6 in round 1 (the seed and one
# doubling that pass, one that fails, three bisections down to 10 %) and 5 later (0.7× and 1.4×
# the last capacity, three bisections), each warm-up + window + ~2 s of setting up; a curve is
# 4 points; a keyed search adds ~20 s of connecting 10,000 sessions; each peer start ~5 s.
step=$((WARM + MEASURE + 2))
cap_s=$((6 * step + 5)) keyed_s=$((6 * step + 25)) curve_s=$((4 * step + 5))
estimate=0
for p in bridge centrifugo raw; do
  has "$p" && estimate=$((estimate + ROUNDS * (cap_s + curve_s + keyed_s) - (ROUNDS - 1) * 2 * step))
done
# The raw writer at the bridge's own rate and batching, and the bridge and the raw writer keyed
# at 50 % of the bridge's keyed capacity (CPU per delivery against the floor).
if has bridge && has raw; then estimate=$((estimate + ROUNDS * (3 * step + 50))); fi
for p in bridge-2core centrifugo-2core; do has "$p" && estimate=$((estimate + cap_s + keyed_s)); done
has centrifugo-gogc && estimate=$((estimate + cap_s + curve_s))
has profiles && estimate=$((estimate + 2 * (PROFILE_SECS + WARM + 20)))
has inbound && estimate=$((estimate + 2 * (IN_WARM + IN_MEASURE) + 10))
has idle && estimate=$((estimate + 4 * (IDLE_HOLD + IDLE_SETTLE + 40) + 65))
has multi && estimate=$((estimate + MULTI_HOLD + 90))
has compression && estimate=$((estimate + 150))
has registry && estimate=$((estimate + 60))
estimate=$((estimate + FLOOR_WARM + FLOOR_MEASURE + 30))
say "benchmark ($mode): ${parts[*]}; $ROUNDS round(s); steps ${WARM} s warm-up + ${MEASURE} s window"
say "estimate: about $(((estimate + 59) / 60)) minutes once built (full run, every part, the defaults: about 100 minutes on 2 cores)"

# ---- pinning -------------------------------------------------------------------------------------

ncpu="$(nproc)"
if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null; then
  pinning="one-core peers on core 0, the broker and the load generator on core 1; 2-core peers on cores 0-1 with the broker and the generator unpinned"
  can_pin=1
else
  pinning="none (fewer than 2 cores or no taskset)"
  can_pin=0
fi
# pin_peer PEER / pin_load PEER: the taskset prefix for the peer process and for kwb-load.
pin_peer() {
  [ "$can_pin" = 1 ] || return 0
  case "$1" in *-2core) echo "taskset -c 0-1" ;; *) echo "taskset -c 0" ;; esac
}
pin_load() {
  [ "$can_pin" = 1 ] || return 0
  case "$1" in *-2core) ;; *) echo "taskset -c 1" ;; esac
}
repin_broker() { # repin_broker 1 | 0-1
  if [ "$can_pin" = 1 ] && [ -z "$external_kafka" ] && [ -n "${BROKER_PID:-}" ] && pid_alive "$BROKER_PID"; then
    taskset -apc "$1" "$BROKER_PID" >/dev/null 2>&1 || true
  fi
}

# ---- dependencies and builds ---------------------------------------------------------------------

missing=()
for tool in jq curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  say "installing ${missing[*]} with apt-get"
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
    { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
fi
# Centrifugo: a pinned release built once with `go install` into the cache (a few minutes on
# two cores the first time, then reused).
CENTRIFUGO_VERSION="${CENTRIFUGO_VERSION:-v6.9.1}"
centrifugo_bin="$KWB_CACHE/centrifugo-$CENTRIFUGO_VERSION/centrifugo"
ensure_centrifugo() {
  [ -x "$centrifugo_bin" ] && return 0
  command -v go >/dev/null || { echo "go is not installed: Centrifugo cannot be built" >&2; return 1; }
  say "go install github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION (once, into $(dirname "$centrifugo_bin"))"
  mkdir -p "$(dirname "$centrifugo_bin")"
  GOBIN="$(dirname "$centrifugo_bin")" go install "github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION" >&2
}
uses_centrifugo=0
for p in centrifugo centrifugo-2core centrifugo-gogc idle profiles; do has "$p" && uses_centrifugo=1; done
[ "$uses_centrifugo" = 0 ] || ensure_centrifugo
[ -n "$external_kafka" ] || ensure_broker

if [ "$mode" = smoke ]; then
  say "cargo build -p kafka-ws-bridge -p kwb-load (debug)"
  cargo build --quiet -p kafka-ws-bridge -p kwb-load
  bin="${CARGO_TARGET_DIR:-$repo/target}/debug"
else
  say "cargo build --release -p kafka-ws-bridge -p kwb-load"
  cargo build --quiet --release -p kafka-ws-bridge -p kwb-load
  bin="${CARGO_TARGET_DIR:-$repo/target}/release"
fi
load="${KWB_LOAD:-$bin/kwb-load}"

# The build and the installs load the machine themselves: wait (up to 3 minutes) for the
# 1-minute average to come back under the line before the first measurement.
if [ "$mode" = full ]; then
  deadline=$((SECONDS + ${KWB_BENCH_SETTLE:-180}))
  while above "$(load1)" "$MAX_LOAD" && [ "$SECONDS" -lt "$deadline" ]; do sleep 5; done
  if above "$(load1)" "$MAX_LOAD"; then
    echo "refusing to measure: the 1-minute load average is still $(load1) ($(cut -d' ' -f1-3 /proc/loadavg)) after the build, above $MAX_LOAD; something else is running" >&2
    exit 3
  fi
fi
loadavg_before="$(cut -d' ' -f1-3 /proc/loadavg)"

# The fd limit: one session is one socket in the peer and one in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 1048576 2>/dev/null || true
nofile="$(ulimit -n)"
if [ "$mode" = full ]; then
  sizes=""
  for n in $IDLE_SIZES; do
    if [ "$n" -gt $((nofile - 1000)) ]; then
      say "open-file limit is $nofile (hard limit): $n idle sessions capped at $((nofile - 1000))"
      n=$((nofile - 1000))
    fi
    sizes="$sizes $n"
  done
  IDLE_SIZES="${sizes# }"
fi

# ---- source addresses, TIME_WAIT -----------------------------------------------------------------
# Each measurement's sessions connect from addresses of their own: 127.B.0.2-127.B.0.17, B = 10,
# 11, ... in the order measurements start. A closed session leaves its port in TIME_WAIT for
# 60 s on the generator's side; with one source address, the 10,000 + 19,000 idle sessions used
# up the ephemeral ports of 127.0.0.1 and every later measurement failed to connect
# (EADDRNOTAVAIL). With its own addresses no measurement can run out of the ports another left.
addr_block=9
next_block() {
  addr_block=$((addr_block + 1))
  [ "$addr_block" -le 254 ] || addr_block=10
  bind_from="127.$addr_block.0.2"
  bind_count=16
}
time_wait() { ss -Htan state time-wait 2>/dev/null | wc -l; }
# wait_time_wait MAX SECONDS: waits until fewer than MAX sockets are in TIME_WAIT (Linux keeps
# them 60 s), at most SECONDS.
wait_time_wait() {
  local deadline=$((SECONDS + $2)) n
  n="$(time_wait)"
  [ "$n" -lt "$1" ] && return 0
  say "$n sockets in TIME_WAIT: waiting up to $2 s for fewer than $1"
  while [ "$(time_wait)" -ge "$1" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 2; done
  say "$(time_wait) sockets in TIME_WAIT"
}
# note_start PEER WHAT ROUND: one line of measurements.jsonl per measurement (load, TIME_WAIT,
# the source addresses); note_end adds how long it took and how it ended.
note_t0=0
note_start() {
  note_t0=$SECONDS
  note_json="$(jq -cn --arg peer "$1" --arg what "$2" --arg round "$3" --arg at "$(date -u +%FT%TZ)" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson tw "$(time_wait)" \
    --arg bind "${bind_from:-}" --argjson count "${bind_count:-0}" \
    '{peer: $peer, what: $what, round: ($round | tonumber? // null), started: $at, loadavg: $load,
      time_wait_before: $tw, bind_from: $bind, bind_count: $count}')"
}
note_end() {
  jq -c --argjson secs $((SECONDS - note_t0)) --argjson status "$1" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '. + {secs: $secs, status: $status, loadavg_after: $load}' <<<"$note_json" >>"$results/measurements.jsonl"
}

# ---- broker and topics ---------------------------------------------------------------------------

broker_pid_arg=()
fresh_broker() { # a new empty Tansu; the running Kafka broker; the external cluster
  if [ -n "$external_kafka" ]; then
    export KAFKA_BOOTSTRAP="$external_kafka"
    return 0
  fi
  if [ "$KWB_BROKER" = kafka ] && [ -n "${BROKER_PID:-}" ] && pid_alive "$BROKER_PID"; then
    return 0 # fresh topics are enough on Kafka
  fi
  stop_broker
  BROKER_PID=""
  broker_pid_arg=()
  rm -rf "$work/broker"
  start_broker "$work/broker" "$(free_port)"
  repin_broker 1
  broker_pid_arg=(--broker-pid "$BROKER_PID")
}

suffix="$(date +%s)-$RANDOM"
topics() { # topics NAME: fresh topic names for one measurement, created
  t_fan="bench-fan-$1-$suffix"
  t_keyed="bench-keyed-$1-$suffix"
  t_cmd="bench-cmd-$1-$suffix"
  "$load" create-topics --bootstrap "$KAFKA_BOOTSTRAP" --partitions "$PARTITIONS" \
    "$t_fan" "$t_cmd" >/dev/null
  "$load" create-topics --bootstrap "$KAFKA_BOOTSTRAP" --partitions "$KEY_PARTITIONS" "$t_keyed" >/dev/null
}

# ---- peers ---------------------------------------------------------------------------------------

stop_peer() {
  if [ -n "$peer_pid" ] && kill -0 "$peer_pid" 2>/dev/null; then
    kill -TERM "$peer_pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$peer_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$peer_pid" 2>/dev/null || true
    wait "$peer_pid" 2>/dev/null || true
  fi
  peer_pid=""
}

# await_peer SECONDS MESSAGE LOG COMMAND...: runs COMMAND every 0.1 s until it succeeds; fails
# with MESSAGE and the tail of LOG when the peer exits or SECONDS pass.
await_peer() {
  local deadline=$((SECONDS + $1)) message="$2" log="$3"
  shift 3
  until "$@" 2>/dev/null; do
    if ! kill -0 "$peer_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "$message; log $log:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    sleep 0.1
  done
}

# The tuned Centrifugo configuration (docs/performance.md, "The peers", gives each setting's
# source). DEBUG=true adds the pprof endpoints on the internal port (the profile run only).
centrifugo_config() { # centrifugo_config PORT INTERNAL_PORT TOPIC GROUP DEBUG
  cat <<EOF
{
  "log": {"level": "error"},
  "http_server": {"address": "127.0.0.1", "port": $1, "internal_address": "127.0.0.1", "internal_port": "$2"},
  "health": {"enabled": true},
  "debug": {"enabled": $5},
  "websocket": {"use_write_buffer_pool": true, "read_buffer_size": 512, "write_buffer_size": 4096},
  "client": {"allowed_origins": ["*"], "allow_anonymous_connect_without_token": true},
  "channel": {"without_namespace": {"allow_subscribe_for_client": true, "allow_subscribe_for_anonymous": true}},
  "consumers": [{
    "name": "bench", "enabled": true, "type": "kafka",
    "kafka": {
      "brokers": ["$KAFKA_BOOTSTRAP"], "topics": ["$3"], "consumer_group": "$4",
      "fetch_max_wait": "${FETCH_WAIT_MS}ms",
      "publication_data_mode": {"enabled": true, "channels_header": "centrifugo-channels"}
    }
  }]
}
EOF
}

# The raw writer's batching for the fan-out: the bridge's own frames per write(2), as it measured
# them (kafka_ws_bridge_socket_writes_total next to messages delivered), so the floor writes what
# the bridge writes. frames_per_write FILE JQ: that number from FILE, at least 1, or 1.
frames_per_write() {
  local f
  f="$(jq -r "$2 // empty" "$1" 2>/dev/null | head -n 1)"
  [ -n "$f" ] || { echo 1; return; }
  awk -v f="$f" 'BEGIN { r = int(f + 0.5); print (r < 1 ? 1 : r) }'
}
raw_fpw=1
raw_fpw_from="none: the bridge has not run (1 frame per write)"

# start_peer PEER SCENARIO TAG [DEBUG]: starts PEER for SCENARIO (fanout | keyed) with its config
# and log in $results/PEER/TAG.*; sets peer_pid, url, metrics_url, internal_port.
start_peer() {
  local peer="$1" scenario="$2" tag="$3" debug="${4:-false}" dir="$results/$1"
  local out="$work/$1-$3.out" err="$dir/$3.log" group="bench-$1-$3-$suffix" pin
  pin="$(pin_peer "$peer")"
  metrics_url=""
  case "$peer" in
    bridge | bridge-2core)
      local port mport chan
      port="$(free_port)"
      mport="$(free_port)"
      if [ "$scenario" = keyed ]; then
        chan="  - {name: keyed, topic: $t_keyed, key: {from: record_key}, deliver: by_key, subscribe: {allow: anonymous, keys: any}}"
      else
        chan="  - {name: fanout, topic: $t_fan, deliver: broadcast, subscribe: {allow: anonymous}}"
      fi
      cat >"$dir/$tag.yaml" <<EOF
# kafka-ws-bridge configuration for one benchmark measurement (scripts/bench.sh).
instance_id: $peer-$tag-$suffix
kafka:
  bootstrap_servers: $KAFKA_BOOTSTRAP
  group_id_prefix: bench-$peer
  auto_offset_reset: latest
  # The same fetch wait for every consumer.
  consumer_properties: {fetch.wait.max.ms: $FETCH_WAIT_MS}
server:
  listen: 127.0.0.1:$port
  ws_path: /ws
  max_connections: 1000000
  # Scenario e publishes as fast as acks come: no rate limit.
  publish_rate: {per_second: 0}
  max_inflight_publishes: 256
metrics:
  listen: 127.0.0.1:$mport
auth: {mode: none}
channels:
$chan
inbound:
  - {channel: commands, topic: $t_cmd, key: none, allow: anonymous}
EOF
      # shellcheck disable=SC2086 # $pin is a command prefix of several words, or nothing
      $pin "$bin/kafka-ws-bridge" --log-level warn run --config "$dir/$tag.yaml" >"$out" 2>"$err" &
      peer_pid=$!
      url="ws://127.0.0.1:$port/ws"
      metrics_url="http://127.0.0.1:$mport/metrics"
      await_peer 60 "kafka-ws-bridge did not become ready" "$err" \
        curl -sf "http://127.0.0.1:$mport/readyz" -o /dev/null || return 1
      ;;
    centrifugo | centrifugo-2core | centrifugo-gogc)
      # Centrifugo's own Kafka consumer in "publication data mode": the record value is the
      # publication, the channels come from the record's `centrifugo-channels` header (which
      # kwb-load puts on every record, for every peer).
      local port topic="$t_fan" procs=1 env_vars
      port="$(free_port)"
      internal_port="$(free_port)"
      [ "$scenario" = keyed ] && topic="$t_keyed"
      [ "$peer" = centrifugo-2core ] && procs=2
      env_vars=("GOMAXPROCS=$procs")
      [ "$peer" = centrifugo-gogc ] && env_vars+=("GOGC=200")
      centrifugo_config "$port" "$internal_port" "$topic" "$group" "$debug" >"$dir/$tag.config.json"
      printf '%s\n' "${env_vars[@]}" >"$dir/$tag.env"
      # shellcheck disable=SC2086
      env "${env_vars[@]}" $pin "$centrifugo_bin" --config "$dir/$tag.config.json" >"$out" 2>"$err" &
      peer_pid=$!
      url="ws://127.0.0.1:$port/connection/websocket"
      await_peer 60 "centrifugo did not become healthy" "$err" \
        curl -sf "http://127.0.0.1:$internal_port/health" -o /dev/null || return 1
      ;;
    raw)
      local args=(--listen 127.0.0.1:0 --size "$RECORD_BYTES")
      if [ "$scenario" = keyed ]; then
        args+=(--channel keyed --keyed)
      else
        args+=(--channel fanout --frames-per-write "$raw_fpw")
      fi
      echo "raw-writer ${args[*]}" >"$dir/$tag.args"
      # shellcheck disable=SC2086
      $pin "$load" raw-writer "${args[@]}" >"$out" 2>"$err" &
      peer_pid=$!
      await_peer 30 "the raw writer did not print READY" "$err" grep -q '^READY ws://' "$err" || return 1
      url="$(grep -m1 -o '^READY ws://[^ ]*' "$err")"
      url="${url#READY }"
      ;;
  esac
}

# ---- one measurement -----------------------------------------------------------------------------

# run_load PEER FILE ARGS...: one kwb-load run as the generator (pinned for PEER); its stderr next
# to FILE; FILE holds {"error": ...} when it failed.
run_load() {
  local peer="$1" file="$2" status=0 pin
  shift 2
  pin="$(pin_load "$peer")"
  # shellcheck disable=SC2086
  $pin "$load" "$@" --out "$file" >/dev/null 2>"${file%.json}.stderr" || status=$?
  sed 's/^/    /' "${file%.json}.stderr" | tail -n 40 >&2
  if [ "$status" -ne 0 ]; then
    local msg
    msg="$(grep -m1 '^kwb-load:' "${file%.json}.stderr" | cut -c11- || true)"
    jq -n --arg e "${msg:-kwb-load exited with status $status}" '{error: $e}' >"$file"
  fi
  return "$status"
}

# common_args PEER CHANNEL: the arguments every outbound subcommand takes, for PEER.
common_args() {
  common=(--url "$url" --pid "$peer_pid" ${broker_pid_arg[@]+"${broker_pid_arg[@]}"}
    --bootstrap "$KAFKA_BOOTSTRAP" --size "$RECORD_BYTES" --channels-header "$2")
  case "$1" in
    centrifugo*) common+=(--protocol centrifugo) ;;
    raw) common+=(--raw) ;;
  esac
  if [ "$2" = keyed ]; then common+=(--topic "$t_keyed" --channel keyed); else common+=(--topic "$t_fan" --channel fanout); fi
  [ -z "$metrics_url" ] || common+=(--metrics-url "$metrics_url")
}

# measure PEER KIND ROUND FILE [EXTRA...]: fresh topics, a fresh PEER process, one kwb-load run.
# KIND: capacity-fanout | capacity-keyed | curve-fanout | curve-keyed | idle; EXTRA goes to kwb-load.
measure() {
  local peer="$1" kind="$2" round="$3" file="$4" scenario status=0
  shift 4
  scenario="${kind#*-}"
  [ "$kind" = idle ] && scenario=fanout
  mkdir -p "$results/$peer"
  next_block
  note_start "$peer" "$kind" "$round"
  say "$peer: $kind${round:+ (round $round)} → ${file#"$results"/}"
  fresh_broker
  case "$peer" in *-2core) repin_broker 0-1 ;; esac
  topics "$peer-$kind-$round-$addr_block"
  local tag
  tag="$(basename "${file%.json}")"
  if ! start_peer "$peer" "$scenario" "$tag"; then
    echo '{"error": "the peer did not start"}' >"$file"
    stop_peer
    repin_broker 1
    note_end 1
    return 1
  fi
  common_args "$peer" "$scenario"
  local args
  case "$kind" in
    capacity-*)
      args=(capacity --scenario "$scenario" "${common[@]}" --precision "$PRECISION" --warm "$WARM"
        --measure "$MEASURE" --max-steps "$MAX_STEPS" --bind-from "$bind_from" --bind-count "$bind_count") ;;
    curve-*)
      args=(curve --scenario "$scenario" "${common[@]}" --warm "$WARM" --measure "$MEASURE"
        --bind-from "$bind_from" --bind-count "$bind_count") ;;
    idle)
      local bind="" i
      for ((i = 2; i < 2 + bind_count; i++)); do bind="$bind${bind:+,}127.$addr_block.0.$i"; done
      args=(idle --url "$url" --pid "$peer_pid" --channel fanout --bind "$bind"
        --hold "$IDLE_HOLD" --settle "$IDLE_SETTLE")
      case "$peer" in centrifugo*) args+=(--protocol centrifugo) ;; esac
      ;;
  esac
  run_load "$peer" "$file" "${args[@]}" "$@" || status=$?
  if ! kill -0 "$peer_pid" 2>/dev/null; then
    echo "    $peer exited during $kind; log: $results/$peer/$tag.log" >&2
    status=1
  fi
  stop_peer
  repin_broker 1
  note_end "$status"
  return "$status"
}

# bracket PEER SCENARIO ROUND: "--sessions N --low L --high H" for a capacity search; rounds after
# the first start at 0.7x the peer's capacity in the round before, a variant (2 cores, GOGC) at
# 0.7x its one-core peer's last capacity (the high end stays a ceiling).
bracket() {
  local peer="$1" scenario="$2" round="$3" base low high prev="" sessions="$FAN_SESSIONS" last
  [ "$scenario" = keyed ] && sessions="$KEY_SESSIONS"
  base="${peer%-2core}"
  base="${base%-gogc}"
  read -r low high <<<"${seed[${scenario}_$base]}"
  if [ -f "$results/$peer/capacity-$scenario-r$((round - 1)).json" ]; then
    prev="$(capacity_of "$results/$peer/capacity-$scenario-r$((round - 1)).json")"
  elif [ "$base" != "$peer" ]; then
    last="$(find "$results/$base" -name "capacity-$scenario-r*.json" 2>/dev/null | sort -V | tail -n 1)"
    [ -z "$last" ] || prev="$(capacity_of "$last")"
  fi
  if [ -n "$prev" ] && above "$prev" 0; then
    low="$(awk -v c="$prev" 'BEGIN { printf "%.1f", c * 0.7 }')"
  fi
  echo "--sessions $sessions --low $low --high $high"
}

capacity_of() { jq -r '.capacity_records_per_sec // 0' "$1" 2>/dev/null || echo 0; }

# peer_round PEER ROUND [keyed|nokeyed] [curve|nocurve]: PEER's part of a round.
peer_round() {
  local peer="$1" r="$2" keyed="${3:-keyed}" curve="${4:-curve}" dir="$results/$1" cap
  mkdir -p "$dir"
  if [ "$peer" = raw ] && [ -f "$work/bridge-latest-fanout-capacity" ]; then
    local from
    from="$(cat "$work/bridge-latest-fanout-capacity")"
    # shellcheck disable=SC2016 # a jq program
    raw_fpw="$(frames_per_write "$from" '.capacity_records_per_sec as $c | .steps[] | select(.offered_records_per_sec == $c) | .peer_frames_per_write')"
    raw_fpw_from="the bridge's frames per write at its capacity (${from#"$results"/})"
  fi
  [ "$peer" = raw ] && echo "round $r: --frames-per-write $raw_fpw from $raw_fpw_from" >>"$dir/frames-per-write.txt"
  # shellcheck disable=SC2046 # bracket prints options, one word each
  measure "$peer" capacity-fanout "$r" "$dir/capacity-fanout-r$r.json" $(bracket "$peer" fanout "$r") || failed=1
  cap="$(capacity_of "$dir/capacity-fanout-r$r.json")"
  case "$peer" in bridge) echo "$dir/capacity-fanout-r$r.json" >"$work/bridge-latest-fanout-capacity" ;; esac
  if [ "$curve" = curve ]; then
    if above "$cap" 0; then
      measure "$peer" curve-fanout "$r" "$dir/curve-r$r.json" --sessions "$FAN_SESSIONS" \
        --capacity "$cap" --fractions "$FRACTIONS" || failed=1
    else
      jq -n '{error: "no capacity in this round: no curve"}' >"$dir/curve-r$r.json"
      failed=1
    fi
  fi
  # The floor at the bridge's own rate and batching: the raw writer at 50 % of the bridge's
  # capacity of this round with the bridge's frames per write there; and, keyed, at 50 % of the
  # bridge's keyed capacity of this round (the raw writer one frame per write to each socket).
  if [ "$peer" = bridge ] && has raw && above "$cap" 0; then
    raw_fpw="$(frames_per_write "$dir/curve-r$r.json" '.points[] | select(.fraction == 0.5) | .peer_frames_per_write')"
    raw_fpw_from="the bridge's frames per write at 50 % of its capacity, round $r"
    mkdir -p "$results/raw"
    echo "round $r (matched): --frames-per-write $raw_fpw from $raw_fpw_from" >>"$results/raw/frames-per-write.txt"
    measure raw curve-fanout "$r" "$results/raw/matched-fanout-r$r.json" --sessions "$FAN_SESSIONS" \
      --capacity "$cap" --fractions 0.5 || failed=1
  fi
  if [ "$keyed" = keyed ]; then
    # shellcheck disable=SC2046
    measure "$peer" capacity-keyed "$r" "$dir/capacity-keyed-r$r.json" $(bracket "$peer" keyed "$r") || failed=1
    cap="$(capacity_of "$dir/capacity-keyed-r$r.json")"
    if [ "$peer" = bridge ] && has raw && above "$cap" 0; then
      # At its capacity the bridge batches what a one-frame-per-write writer cannot keep up
      # with; both are compared where both keep up: 50 % of the bridge's keyed capacity.
      measure bridge curve-keyed "$r" "$dir/curve-keyed-r$r.json" --sessions "$KEY_SESSIONS" \
        --capacity "$cap" --fractions 0.5 || failed=1
      measure raw curve-keyed "$r" "$results/raw/matched-keyed-r$r.json" --sessions "$KEY_SESSIONS" \
        --capacity "$cap" --fractions 0.5 || failed=1
    fi
  fi
}

# ---- profiles ------------------------------------------------------------------------------------

# profile PEER: PEER under the fan-out load at 50 % of the bridge's latest capacity, profiled for
# PROFILE_SECS once the warm-up is over: perf (cpu-clock, call graphs) for the bridge, Go's
# pprof CPU profile for Centrifugo. Text reports in $results/profiles/.
profile() {
  local peer="$1" dir="$results/profiles" cap from
  mkdir -p "$dir" "$results/$peer"
  from="$(cat "$work/bridge-latest-fanout-capacity" 2>/dev/null || true)"
  cap="$(capacity_of "${from:-/nonexistent}")"
  if ! above "$cap" 0; then
    echo "no profile of $peer: the bridge's fan-out capacity was not measured in this run" >"$dir/$peer.txt"
    return 0
  fi
  case "$peer" in
    bridge) command -v perf >/dev/null || { echo "no profile: perf is not installed" >"$dir/$peer.txt"; return 0; } ;;
    centrifugo) command -v go >/dev/null || { echo "no profile: go is not installed" >"$dir/$peer.txt"; return 0; } ;;
  esac
  next_block
  note_start "$peer" profile ""
  say "$peer: profile at 50 % of the bridge's fan-out capacity of $cap records/s × $FAN_SESSIONS sessions"
  fresh_broker
  topics "$peer-profile-$addr_block"
  start_peer "$peer" fanout profile true || { stop_peer; note_end 1; return 1; }
  common_args "$peer" fanout
  local gen pin status=0
  pin="$(pin_load "$peer")"
  # shellcheck disable=SC2086
  $pin "$load" curve --scenario fanout "${common[@]}" --sessions "$FAN_SESSIONS" --capacity "$cap" \
    --fractions 0.5 --warm "$WARM" --measure $((PROFILE_SECS + 10)) \
    --bind-from "$bind_from" --bind-count "$bind_count" --out "$dir/$peer-load.json" \
    >/dev/null 2>"$dir/$peer-load.stderr" &
  gen=$!
  # Connecting (a second or two for 1,000 sessions) and the warm-up first: the profile covers
  # only the steady rate, inside the generator's window (PROFILE_SECS + 10 s).
  sleep $((WARM + 3))
  case "$peer" in
    bridge)
      # (Whole reports to files first: `| head` would end them with SIGPIPE, a failure under
      # pipefail.) The call-graph report's first 80 lines, and a flat one (self time by symbol).
      perf record -e cpu-clock -F 999 -g -p "$peer_pid" -o "$work/perf.data" -- sleep "$PROFILE_SECS" >/dev/null 2>"$dir/bridge-perf.stderr" || status=1
      perf report -i "$work/perf.data" --stdio --no-children >"$work/perf.txt" 2>>"$dir/bridge-perf.stderr" || status=1
      head -n 80 "$work/perf.txt" >"$dir/bridge-perf.txt"
      perf report -i "$work/perf.data" --stdio --no-children -g none --percent-limit 0.5 >"$work/perf-flat.txt" 2>>"$dir/bridge-perf.stderr" || status=1
      head -n 80 "$work/perf-flat.txt" >"$dir/bridge-perf-flat.txt"
      ;;
    centrifugo)
      curl -sf "http://127.0.0.1:$internal_port/debug/pprof/profile?seconds=$PROFILE_SECS" -o "$dir/centrifugo-cpu.pprof" || status=1
      go tool pprof -top "$centrifugo_bin" "$dir/centrifugo-cpu.pprof" >"$work/pprof.txt" 2>"$dir/centrifugo-pprof.stderr" || status=1
      head -n 80 "$work/pprof.txt" >"$dir/centrifugo-pprof-top.txt"
      ;;
  esac
  wait "$gen" || status=1
  stop_peer
  case "$peer" in
    bridge) [ -s "$dir/bridge-perf.txt" ] || status=1 ;;
    centrifugo) [ -s "$dir/centrifugo-pprof-top.txt" ] || status=1 ;;
  esac
  note_end "$status"
  return "$status"
}

# ---- several instances ---------------------------------------------------------------------------

stop_multi() {
  local p
  for p in ${multi_pids[@]+"${multi_pids[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
  for p in ${multi_pids[@]+"${multi_pids[@]}"}; do
    local deadline=$((SECONDS + 20))
    while kill -0 "$p" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  multi_pids=()
}

# measure_multi: past one process's open-file limit. MULTI_INSTANCES kafka-ws-bridge processes
# (each its own consumer group and port: what a user behind a load balancer runs), all pinned to
# core 0, each held MULTI_SESSIONS idle sessions by its own kwb-load process on core 1, from
# addresses of its own. Then MULTI_RECORDS records on the broadcast topic; the combined result
# lands in $results/multi/multi.json. A demonstration of several instances, not a target.
measure_multi() {
  local dir="$results/multi" i status=0 pin
  mkdir -p "$dir"
  pin="$(pin_load bridge)"
  next_block
  note_start multi idle ""
  say "multi: $MULTI_INSTANCES bridge instances x $MULTI_SESSIONS idle sessions, one broadcast"
  fresh_broker
  topics multi
  local urls=() pids=() gens=()
  for ((i = 1; i <= MULTI_INSTANCES; i++)); do
    if ! start_peer bridge fanout "multi$i"; then
      echo '{"error": "a bridge instance did not start"}' >"$dir/multi.json"
      stop_peer
      stop_multi
      note_end 1
      return 1
    fi
    mv "$results/bridge/multi$i".* "$dir/" 2>/dev/null || true
    multi_pids+=("$peer_pid")
    pids+=("$peer_pid")
    urls+=("$url")
    peer_pid=""
  done
  for ((i = 1; i <= MULTI_INSTANCES; i++)); do
    # shellcheck disable=SC2086
    $pin "$load" idle --url "${urls[$((i - 1))]}" --pid "${pids[$((i - 1))]}" --channel fanout \
      --sessions "$MULTI_SESSIONS" --bind "127.$addr_block.1.$i" --hold "$MULTI_HOLD" --settle "$IDLE_SETTLE" \
      --out "$dir/idle-$i.json" >/dev/null 2>"$dir/idle-$i.stderr" &
    gens+=($!)
  done
  local deadline=$((SECONDS + 300)) holding=0
  while [ "$holding" -lt "$MULTI_INSTANCES" ] && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.5
    holding=0
    for ((i = 1; i <= MULTI_INSTANCES; i++)); do
      grep -q 'idle: holding' "$dir/idle-$i.stderr" 2>/dev/null && holding=$((holding + 1))
    done
  done
  say "multi: $holding of $MULTI_INSTANCES generators hold their sessions; producing $MULTI_RECORDS records"
  # shellcheck disable=SC2086
  $pin "$load" produce --bootstrap "$KAFKA_BOOTSTRAP" --topic "$t_fan" --rate 1 \
    --duration "$MULTI_RECORDS" --size "$RECORD_BYTES" --channels-header fanout \
    --out "$dir/produce.json" >/dev/null 2>"$dir/produce.stderr" || status=1
  for g in "${gens[@]}"; do wait "$g" || status=1; done
  local produced
  produced="$(jq -r '.delivered // 0' "$dir/produce.json" 2>/dev/null || echo 0)"
  # Every generator was holding before the produce started, so every record counts for all.
  jq -cs --argjson produced "$produced" --argjson instances "$MULTI_INSTANCES" \
    --argjson each "$MULTI_SESSIONS" '
    {scenario: "multi", instances: $instances, sessions_per_instance: $each,
     sessions: (map(.sessions) | add),
     alive_at_end: (map(.alive_at_end) | add),
     rss_per_session_kib: ((map((.rss_after_kib // 0) - (.rss_before_kib // 0)) | add) / ((map(.sessions) | add) | if . == 0 then 1 else . end) * 100 | round / 100),
     rss_per_session_kib_each: map(.rss_per_session_kib),
     bridge_nofile_each: map(.bridge_nofile),
     records: $produced,
     broadcast_received: (map(.broadcast_received) | add),
     broadcast_delivered_ratio: (if $produced > 0 then ((map(.broadcast_received) | add) / ($produced * (map(.sessions) | add)) * 10000 | round / 10000) else 0 end),
     broadcast_p50_ms_each: map(.broadcast_latency.p50_ms),
     broadcast_p99_ms_each: map(.broadcast_latency.p99_ms),
     broadcast_p99_ms_worst: (map(.broadcast_latency.p99_ms) | max),
     idle_cpu_pct_each: map(.idle_cpu_pct),
     connect_failures: map(.connect_failures)}' \
    "$dir"/idle-*.json >"$dir/multi.json" 2>/dev/null ||
    { echo '{"error": "a generator failed; see multi/idle-*.stderr"}' >"$dir/multi.json"; status=1; }
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "    a bridge instance exited during multi" >&2; status=1; }
  done
  stop_multi
  note_end "$status"
  return "$status"
}

# ---- machine, versions ---------------------------------------------------------------------------

broker_text="$(broker_description)"
[ -z "$external_kafka" ] || broker_text="external cluster $external_kafka"
fresh="topics and peer process"
[ -z "$external_kafka" ] && [ "$KWB_BROKER" = tansu ] && fresh="broker, topics and peer process"
cpu_model="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
mem_gib="$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)"
rdkafka_version="$(grep -A1 '^name = "rdkafka-sys"' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')"
versions="$(jq -n \
  --arg bridge "$("$bin/kafka-ws-bridge" --version | awk '{print $2}') ($(git rev-parse --short HEAD 2>/dev/null || echo ?), $mode build)" \
  --arg rustc "$(rustc --version | awk '{print $2}')" \
  --arg librdkafka "${rdkafka_version#*+} (rdkafka-sys ${rdkafka_version%%+*})" \
  --arg broker "$broker_text" \
  --arg centrifugo "$([ "$uses_centrifugo" = 1 ] && echo "$CENTRIFUGO_VERSION (go install, $(go version | awk '{print $3}'))" || echo -)" \
  '{"kafka-ws-bridge": $bridge, rustc: $rustc, librdkafka: $librdkafka, broker: $broker, centrifugo: $centrifugo}')"

# ---- the run -------------------------------------------------------------------------------------

say "results in $results"
: >"$results/measurements.jsonl"
fresh_broker
topics floor
say "floor: plain librdkafka consumer, $FLOOR_RATE records/s, fetch.wait.max.ms $FETCH_WAIT_MS"
# shellcheck disable=SC2046
$(pin_peer bridge) "$load" floor --bootstrap "$KAFKA_BOOTSTRAP" --topic "$t_fan" --rate "$FLOOR_RATE" \
  --warm "$FLOOR_WARM" --measure "$FLOOR_MEASURE" --fetch-wait-ms "$FETCH_WAIT_MS" --size "$RECORD_BYTES" \
  --out "$results/floor.json" >/dev/null || { failed=1; echo '{"error": "floor failed"}' >"$results/floor.json"; }

# The rounds, interleaved: in round r the order of the peers is rotated by r-1 (bridge,
# centrifugo, raw; then centrifugo, raw, bridge; ...), so no peer always runs first or last.
round_peers=()
for p in bridge centrifugo raw; do has "$p" && round_peers+=("$p"); done
orders=()
for ((r = 1; r <= ROUNDS; r++)); do
  order=()
  n=${#round_peers[@]}
  for ((i = 0; i < n; i++)); do order+=("${round_peers[$(((i + r - 1) % n))]}"); done
  [ "$n" -gt 0 ] || continue
  orders+=("${order[*]}")
  say "round $r of $ROUNDS: ${order[*]}"
  for p in "${order[@]}"; do peer_round "$p" "$r"; done
done

# One round of the variants (after the rounds: one round each is enough to show the effect of a
# second core and of GOGC; their figures carry no spread).
for p in "${ONE_ROUND_PEERS[@]}"; do
  has "$p" || continue
  case "$p" in
    *-2core) peer_round "$p" 1 keyed nocurve ;;
    centrifugo-gogc) peer_round "$p" 1 nokeyed curve ;;
  esac
done

if has profiles; then
  profile bridge || failed=1
  profile centrifugo || failed=1
fi

if has inbound; then
  fresh_broker
  topics plain
  mkdir -p "$results/bridge"
  say "plain producer: FutureProducer, acks=all, idempotent, linger.ms=1, $((IN_CLIENTS * IN_WINDOW)) in flight"
  # shellcheck disable=SC2046
  $(pin_peer bridge) "$load" plain-produce --bootstrap "$KAFKA_BOOTSTRAP" --topic "$t_cmd" \
    --inflight $((IN_CLIENTS * IN_WINDOW)) --warm "$IN_WARM" --measure "$IN_MEASURE" --size "$RECORD_BYTES" \
    --out "$results/plain.json" >/dev/null || { failed=1; echo '{"error": "plain producer failed"}' >"$results/plain.json"; }
  next_block
  note_start bridge inbound ""
  topics inbound
  if start_peer bridge fanout inbound; then
    status=0
    run_load bridge "$results/bridge/inbound.json" inbound --url "$url" --pid "$peer_pid" \
      ${broker_pid_arg[@]+"${broker_pid_arg[@]}"} --channel commands --clients "$IN_CLIENTS" --window "$IN_WINDOW" \
      --warm "$IN_WARM" --measure "$IN_MEASURE" --size "$RECORD_BYTES" --bind "$bind_from" || status=1
    [ "$status" -eq 0 ] || failed=1
    note_end "$status"
  else
    echo '{"error": "the bridge did not start"}' >"$results/bridge/inbound.json"
    failed=1
    note_end 1
  fi
  stop_peer
fi

# Idle sessions last (then the several instances, which hold the most): the bridge and tuned
# Centrifugo, each size on addresses of its own, after the TIME_WAIT sockets of the rounds have
# gone (they would not stop a connect, but they are memory and table entries of the kernel).
if has idle; then
  wait_time_wait 5000 65
  for n in $IDLE_SIZES; do
    for p in bridge centrifugo; do
      measure "$p" idle "" "$results/$p/idle-$n.json" --sessions "$n" || failed=1
    done
  done
fi
if has multi; then
  wait_time_wait 5000 65
  measure_multi || failed=1
fi

# permessage-deflate (issue 16): Node `ws` sessions, which offer it as browsers do, against
# kafka-ws-bridge with compression off, then on. bench/compression.mjs starts its own bridge
# (not pinned) and publishes through it.
if has compression; then
  [ -d clients/js/node_modules/ws ] || (cd clients/js && npm ci --no-audit --no-fund --loglevel=error)
  fresh_broker
  say "compression: $DEFLATE_SESSIONS sessions, $DEFLATE_RECORDS records of ~1 KiB at $DEFLATE_RATE/s, $DEFLATE_IDLE idle sessions; off, then on"
  BRIDGE_BIN="$bin/kafka-ws-bridge" SESSIONS=$DEFLATE_SESSIONS RECORDS=$DEFLATE_RECORDS RATE=$DEFLATE_RATE \
    IDLE=$DEFLATE_IDLE OUT="$results/compression.json" node bench/compression.mjs >"$results/compression.log" 2>&1 || {
    failed=1
    echo '{"error": "bench/compression.mjs failed (compression.log)"}' >"$results/compression.json"
    tail -20 "$results/compression.log" >&2
  }
fi
stop_broker

# Schema Registry formats: decode + JSON per record, Avro and Protobuf next to the `json` format's
# own path, in one process, taking turns (src/registry/bench.rs).
if has registry; then
  say "registry formats: decode per record, Avro and Protobuf vs the json path"
  if [ "$mode" = smoke ]; then
    registry_bench=(env KWB_BENCH_ROUNDS=3 KWB_BENCH_N=300 cargo test --quiet --lib registry::bench)
  else
    registry_bench=(cargo test --quiet --release --lib registry::bench)
  fi
  "${registry_bench[@]}" -- --ignored --nocapture >"$results/registry.log" 2>&1 || failed=1
  sed -n 's/^bench-json: //p' "$results/registry.log" >"$results/registry.json"
  [ -s "$results/registry.json" ] || echo '{"error": "the registry bench printed no result (registry.log)"}' >"$results/registry.json"
fi

jq -cn --arg mode "$mode" --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" --arg stamp "$stamp" --arg pinning "$pinning" \
  --arg cpu "$cpu_model" --argjson nproc "$ncpu" --argjson mem "$mem_gib" --arg kernel "$(uname -r)" \
  --argjson nofile "$nofile" --argjson versions "$versions" \
  --arg load_start "$loadavg_start" --arg load_before "$loadavg_before" --arg load_after "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --arg max_load "$MAX_LOAD" --arg head "$(git rev-parse --short HEAD 2>/dev/null || echo ?)" \
  --argjson rounds "$ROUNDS" --arg orders "$(printf '%s\n' ${orders[@]+"${orders[@]}"})" \
  --arg parts "${parts[*]}" --argjson estimate "$estimate" --argjson secs $((SECONDS - started)) \
  --argjson warm "$WARM" --argjson measure "$MEASURE" --argjson max_steps "$MAX_STEPS" --arg precision "$PRECISION" \
  --arg fractions "$FRACTIONS" --argjson fan "$FAN_SESSIONS" --argjson keyed "$KEY_SESSIONS" \
  --arg settings "fan-out topics with $PARTITIONS partition(s), the keyed topic with $KEY_PARTITIONS, fresh $fresh per measurement; fetch wait $FETCH_WAIT_MS ms for every consumer; records of $RECORD_BYTES bytes {\"ts\": µs, \"seq\", \"pad\"}; kafka-ws-bridge: publish_rate off, max_inflight_publishes 256, max_connections 1000000, everything else default; Centrifugo: websocket.use_write_buffer_pool true, read_buffer_size 512, write_buffer_size 4096, GOMAXPROCS = its cores (centrifugo-gogc: GOGC=200), everything else default" \
  '{mode: $mode, date: $date, stamp: $stamp, pinning: $pinning, settings: $settings, versions: $versions,
    loadavg_at_start: $load_start, loadavg_before: $load_before, loadavg_after: $load_after,
    max_load: ($max_load | tonumber), commit: $head, parts: ($parts | split(" ")),
    rounds: $rounds, orders: ($orders | split("\n") | map(select(. != "") | split(" "))),
    method: {warm_secs: $warm, measure_secs: $measure, max_steps: $max_steps, precision: ($precision | tonumber),
             fractions: ($fractions | split(",") | map(tonumber)), fanout_sessions: $fan, keyed_sessions: $keyed},
    estimate_secs: $estimate, secs: $secs,
    machine: {nproc: $nproc, cpu_model: $cpu, mem_gib: $mem, kernel: $kernel, nofile_hard: $nofile}}' \
  >"$results/meta.json"

# The plot (when there are curves) and the table.
if compgen -G "$results/*/curve-r*.json" >/dev/null; then
  "$load" plot --dir "$results" --out "$results/latency.svg" >/dev/null 2>"$results/plot.stderr" ||
    { say "kwb-load plot failed (plot.stderr)"; failed=1; }
fi
"$load" report --dir "$results" >"$results/report.md" || failed=1
echo
cat "$results/report.md"
echo
if [ "$mode" = full ]; then
  # Every headline run's raw results are kept in the repository: the run's directory without
  # the files over 1 MB (peer logs, perf data), then latest.md from that copy.
  keep="bench/results/$stamp"
  mkdir -p "$keep"
  (cd "$results" && find . -type f -size -1025k -exec cp --parents {} "$repo/$keep/" \;)
  find "$results" -type f -size +1024k -printf '%P (%s bytes)\n' >"$keep/left-out.txt"
  "$load" report --dir "$keep" >bench/results/latest.md || failed=1
  say "table written to bench/results/latest.md; raw results in $keep (all of them in $results)"
else
  say "raw results in $results"
fi

# ---- smoke checks: the pipeline works and every file has its fields (the figures are not judged) --

if [ "$mode" = smoke ]; then
  check() { # check FILE JQ-EXPR DESCRIPTION
    if ! jq -e "$2" "$1" >/dev/null 2>&1; then
      echo "SMOKE FAIL: $3 ($1: $(head -c 300 "$1" 2>/dev/null))" >&2
      failed=1
    fi
  }
  step_fields='(.steps | length > 0) and (.steps | all(has("offered_records_per_sec") and has("offered_deliveries_per_sec") and has("delivered_ratio") and has("kept_up") and has("p99_ms") and has("peer_cpu_pct") and has("peer_cpu_us_per_delivery") and has("steal_pct") and has("loadavg1")))'
  cap_fields=".command == \"capacity\" and (.capacity_records_per_sec | type == \"number\") and (.capacity_deliveries_per_sec | type == \"number\") and $step_fields"
  curve_fields='.command == "curve" and (.points | length > 0) and (.points | all(has("fraction") and has("p50_ms") and has("p99_ms") and has("p999_ms") and has("peer_cpu_us_per_delivery") and has("deliveries_per_sec")))'
  check "$results/floor.json" '.count > 0' "the floor consumer received records"
  for p in bridge centrifugo raw bridge-2core centrifugo-2core centrifugo-gogc; do
    has "$p" || continue
    check "$results/$p/capacity-fanout-r1.json" "$cap_fields and .capacity_records_per_sec > 0" "$p: fan-out capacity with its steps"
    case "$p" in *-2core) ;; *) check "$results/$p/curve-r1.json" "$curve_fields and (.points | length == 4)" "$p: the latency curve, 4 points" ;; esac
    case "$p" in centrifugo-gogc) ;; *) check "$results/$p/capacity-keyed-r1.json" "$cap_fields" "$p: keyed capacity with its steps" ;; esac
  done
  has bridge && check "$results/bridge/capacity-fanout-r1.json" '.steps | all(has("peer_frames_per_write"))' "the bridge's steps carry frames per write"
  if has bridge && has raw; then
    check "$results/raw/matched-fanout-r1.json" "$curve_fields" "the raw writer at the bridge's rate and batching"
    check "$results/bridge/curve-keyed-r1.json" "$curve_fields" "the bridge keyed at 50 % of its keyed capacity"
    check "$results/raw/matched-keyed-r1.json" "$curve_fields" "the keyed raw floor at the bridge's keyed rate"
  fi
  if has profiles && has bridge; then
    command -v perf >/dev/null && check "$results/profiles/bridge-load.json" '.command == "curve"' "the bridge's profile ran under load"
    if command -v perf >/dev/null && ! grep -q '%' "$results/profiles/bridge-perf.txt" 2>/dev/null; then
      echo "SMOKE FAIL: no perf report in profiles/bridge-perf.txt" >&2
      failed=1
    fi
    if has centrifugo && ! grep -q 'flat' "$results/profiles/centrifugo-pprof-top.txt" 2>/dev/null; then
      echo "SMOKE FAIL: no pprof top in profiles/centrifugo-pprof-top.txt" >&2
      failed=1
    fi
  fi
  if has inbound; then
    check "$results/plain.json" '.acks_per_sec > 0 and .failed == 0' "the plain producer got acks"
    check "$results/bridge/inbound.json" '.acks_per_sec > 0 and (.errors | length) == 0 and .unanswered == 0' "publishes were acked"
  fi
  if has idle; then
    for p in bridge centrifugo; do
      check "$results/$p/idle-$IDLE_SIZES.json" ".sessions == $IDLE_SIZES and .rss_per_session_kib != null" "$p: every idle session connected"
    done
  fi
  has compression && check "$results/compression.json" '.on.sent_bytes_per_delivery < .off.sent_bytes_per_delivery and .on.idle_negotiated != "none" and .off.idle_negotiated == "none"' "compression: negotiated when on, fewer bytes per delivery"
  has registry && check "$results/registry.json" '.avro.walker_ns > 0 and .protobuf.walker_ns > 0 and .avro.json_validate_ns > 0' "registry formats: the decode bench measured Avro, Protobuf and the json path"
  has multi && check "$results/multi/multi.json" ".sessions == $((MULTI_INSTANCES * MULTI_SESSIONS)) and .broadcast_delivered_ratio >= 0.999" "several instances: every session held and got the broadcast"
  if [ ${#round_peers[@]} -gt 0 ]; then
    check "$results/meta.json" "(.orders | length) == $ROUNDS and (.orders | all(length == ${#round_peers[@]}))" "meta.json names the rounds and their order"
    [ -s "$results/latency.svg" ] || { echo "SMOKE FAIL: no latency.svg" >&2; failed=1; }
    grep -q '^## Capacity' "$results/report.md" || { echo "SMOKE FAIL: report.md has no capacity table" >&2; failed=1; }
  fi
fi

if [ "$failed" -ne 0 ]; then
  say "benchmark ${mode}: something FAILED after $((SECONDS - started)) s (see above; work files kept)"
  exit 1
fi
say "benchmark $mode done in $((SECONDS - started)) s (estimated $((estimate / 60)) min after the build)"
