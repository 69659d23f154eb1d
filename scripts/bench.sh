#!/usr/bin/env bash
# Benchmark: kafka-ws-bridge next to Centrifugo (v6, the open-source real-time server, fed by its
# own Kafka consumer), the raw writer (the physical floor: the same frames to the same sockets,
# no Kafka, no logic) and the two baseline bridges (bench/baselines: Node kafkajs+ws, Python
# aiokafka+websockets); same broker, same records, same sessions, same pinning, one run, one table.
#
#   scripts/bench.sh                 # the full run (~35 min on 2 cores), release builds
#   scripts/bench.sh --smoke         # tiny sizes, debug builds, bridge + Centrifugo + raw writer +
#                                    # several instances; fails only when something breaks
#                                    # (scripts/test.sh runs it)
#   scripts/bench.sh --only bridge,centrifugo,raw,multi   # full sizes, a subset of peers
#                                    # (bridge, centrifugo, raw, multi, node, python)
#   KAFKA_BOOTSTRAP=host:9092 scripts/bench.sh   # against an existing cluster
#
# What it does (docs/performance.md explains each scenario and every setting):
#   - installs what is missing: the local broker (scripts/lib/broker.sh: Apache Kafka, or Tansu
#     with KWB_BROKER=tansu), `npm ci` for the Node baseline, a venv for the Python one (as
#     bench/baselines/smoke.sh does);
#   - builds kafka-ws-bridge and kwb-load (release; debug with --smoke), and Centrifugo once
#     (`go install github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION` into $KWB_CACHE);
#   - without KAFKA_BOOTSTRAP: one local Apache Kafka broker pinned to core 1, fresh topics for
#     every measurement (with KWB_BROKER=tansu: a FRESH Tansu broker for every measurement, as
#     Tansu's fetch cost grows with what earlier runs left behind, see docs/performance.md);
#     with it: fresh topics on that cluster for every measurement;
#   - the floor (plain librdkafka consumer) and the plain-producer reference, then for each
#     peer its scenarios (a-f; Centrifugo has no Kafka inbound path, so no e), each on a freshly
#     started process pinned to core 0, the load generator pinned to core 1; then "multi":
#     50,000 idle sessions over several bridge instances (one process may open 20,000 files
#     here) and one broadcast reaching all of them;
#   - permessage-deflate: kafka-ws-bridge with compression off, then on, ~1 KiB JSON records to
#     Node `ws` sessions (which offer it as browsers do): bytes on the wire, CPU and RSS per
#     session (bench/compression.mjs; its bridge is not pinned);
#   - Schema Registry formats: Avro and Protobuf decode + JSON per ~260-byte record next to the
#     json format's path on the same JSON (src/registry/bench.rs, in-process);
#   - prints the table and writes it to bench/results/latest.md (--smoke: only printed); the
#     raw JSON of every measurement stays in target/bench/<timestamp>/.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
source scripts/lib/broker.sh

mode=full
bridges=(bridge centrifugo raw multi node python)
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) mode=smoke; bridges=(bridge centrifugo raw multi) ;;
    --only) shift; IFS=, read -r -a bridges <<<"${1:?--only needs a list of bridge,centrifugo,raw,multi,node,python}" ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for b in "${bridges[@]}"; do
  case "$b" in bridge | centrifugo | raw | multi | node | python) ;; *) echo "unknown peer: $b" >&2; exit 2 ;; esac
done

started=$SECONDS
loadavg_before="$(cut -d' ' -f1-3 /proc/loadavg)"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
results="$repo/target/bench/$stamp-$mode"
work="$(mktemp -d -t kwb-bench-XXXXXX)"
mkdir -p "$results"
external_kafka="${KAFKA_BOOTSTRAP:-}"
bridge_pid=""
multi_pids=()
failed=0
say() { echo "==> $*" >&2; }

cleanup() {
  stop_bridge
  stop_multi
  stop_broker
  if [ "$failed" -eq 0 ]; then rm -rf "$work"; else echo "work files kept in $work" >&2; fi
}
trap cleanup EXIT
trap 'failed=1; exit 130' INT TERM

# ---- sizes -------------------------------------------------------------------------------------

if [ "$mode" = smoke ]; then
  FLOOR_RATE=20 FLOOR_WARM=1 FLOOR_MEASURE=3
  FAN_SESSIONS=50 FAN_START=10 FAN_MAX=20 FAN_WARM=1 FAN_MEASURE=2
  LAT_SESSIONS=50 LAT_RATE=20 LAT_WARM=1 LAT_MEASURE=3
  KEY_SESSIONS=50 KEY_START=50 KEY_MAX=100 KEY_WARM=1 KEY_MEASURE=2
  IN_CLIENTS=10 IN_WINDOW=4 IN_WARM=1 IN_MEASURE=3
  IDLE_SESSIONS=200 IDLE_HOLD=2 IDLE_SETTLE=1 IDLE_SMALL=100
  SAT_RATE=40 SAT_WARM=1 SAT_MEASURE=2
  MULTI_INSTANCES=2 MULTI_SESSIONS=100 MULTI_HOLD=10 MULTI_RECORDS=3
  DEFLATE_SESSIONS=20 DEFLATE_RECORDS=200 DEFLATE_RATE=200 DEFLATE_IDLE=100
else
  FLOOR_RATE=100 FLOOR_WARM=5 FLOOR_MEASURE=20
  FAN_SESSIONS=1000 FAN_START=2 FAN_MAX=20000 FAN_WARM=1 FAN_MEASURE=4
  LAT_SESSIONS=1000 LAT_RATE=100 LAT_WARM=5 LAT_MEASURE=20
  KEY_SESSIONS=10000 KEY_START=250 KEY_MAX=640000 KEY_WARM=1 KEY_MEASURE=4
  IN_CLIENTS=100 IN_WINDOW=16 IN_WARM=3 IN_MEASURE=15
  IDLE_SESSIONS="${IDLE_SESSIONS:-19000}" IDLE_HOLD=20 IDLE_SETTLE=5 IDLE_SMALL=10000
  # CPU per delivery "at saturation": 1,500 records/s to the 1,000 latency sessions (1.5 M
  # deliveries/s; kafka-ws-bridge's core is ~90 % busy there).
  SAT_RATE=1500 SAT_WARM=3 SAT_MEASURE=10
  # Several instances: 3 × 17,000 = 51,000 idle sessions (20,000 open files per process here).
  MULTI_INSTANCES="${MULTI_INSTANCES:-3}" MULTI_SESSIONS="${MULTI_SESSIONS:-17000}" MULTI_HOLD=60 MULTI_RECORDS=10
  # permessage-deflate: ~1 KiB JSON records at a fixed rate, off vs on (bench/compression.mjs).
  DEFLATE_SESSIONS=100 DEFLATE_RECORDS=4000 DEFLATE_RATE=400 DEFLATE_IDLE=1000
fi
# Scenarios per peer. Centrifugo and the raw writer have no inbound path to Kafka (no e);
# "idle" holds IDLE_SESSIONS, "idle10k" IDLE_SMALL; "sat" is the latency run at SAT_RATE.
if [ "$mode" = smoke ]; then
  scenarios_bridge="fanout latency keyed inbound idle"
  scenarios_centrifugo="latency keyed idle"
  scenarios_raw="latency"
else
  scenarios_bridge="fanout latency sat keyed inbound idle10k idle"
  scenarios_centrifugo="fanout latency sat keyed idle10k idle"
  scenarios_raw="fanout latency sat"
fi
scenarios_node="fanout latency keyed inbound idle"
scenarios_python="$scenarios_node"
PARTITIONS="${BENCH_PARTITIONS:-1}"
FETCH_WAIT_MS=10
RECORD_BYTES=140

# ---- pinning -----------------------------------------------------------------------------------

ncpu="$(nproc)"
if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null; then
  pin_bridge=(taskset -c 0)
  pin_load=(taskset -c 1)
  pinning="bridge on core 0; broker and load generator on core 1"
else
  pin_bridge=()
  pin_load=()
  pinning="none (fewer than 2 cores or no taskset)"
fi

# ---- dependencies and builds -------------------------------------------------------------------

venv="$repo/bench/baselines/python/.venv"
py="$venv/bin/python"
ensure_python_deps() {
  if [ ! -x "$py" ]; then
    local interpreter="${PYTHON:-}"
    [ -n "$interpreter" ] || interpreter="$(command -v python3.11 || command -v python3)"
    say "creating $venv with $interpreter"
    "$interpreter" -m venv "$venv"
  fi
  if ! cmp -s bench/baselines/python/requirements.txt "$venv/.installed-requirements.txt"; then
    say "pip install -r bench/baselines/python/requirements.txt"
    "$py" -m pip install --quiet --disable-pip-version-check -r bench/baselines/python/requirements.txt
    cp bench/baselines/python/requirements.txt "$venv/.installed-requirements.txt"
  fi
}
ensure_node_deps() {
  command -v node >/dev/null || { echo "node is not installed" >&2; return 1; }
  if ! (cd bench/baselines/node && npm ls --silent >/dev/null 2>&1); then
    say "npm ci (bench/baselines/node)"
    (cd bench/baselines/node && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
# jq and curl (Debian packages) are installed when missing, as root or through sudo.
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
has_peer() { local p; for p in "${bridges[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }
for b in "${bridges[@]}"; do
  case "$b" in node) ensure_node_deps ;; python) ensure_python_deps ;; centrifugo) ensure_centrifugo ;; esac
done
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
load="$bin/kwb-load"

# The fd limit: one session is one socket in the bridge and one in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 1048576 2>/dev/null || true
nofile="$(ulimit -n)"
if [ "$mode" = full ] && [ "$IDLE_SESSIONS" -gt $((nofile - 1000)) ]; then
  say "open-file limit is $nofile (hard limit; raising it is not permitted here): idle sessions capped at $((nofile - 1000))"
  IDLE_SESSIONS=$((nofile - 1000))
fi

# ---- broker per measurement --------------------------------------------------------------------

broker_pid_arg=()
fresh_broker() { # fresh_broker: a new empty Tansu; the running Kafka broker; the external cluster
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
  if [ ${#pin_load[@]} -gt 0 ]; then taskset -apc 1 "$BROKER_PID" >/dev/null; fi
  broker_pid_arg=(--broker-pid "$BROKER_PID")
}

suffix="$(date +%s)-$RANDOM"
topics() { # topics NAME: fresh topic names for one measurement, created
  t_fan="bench-fan-$1-$suffix"
  t_keyed="bench-keyed-$1-$suffix"
  t_cmd="bench-cmd-$1-$suffix"
  "$load" create-topics --bootstrap "$KAFKA_BOOTSTRAP" --partitions "$PARTITIONS" \
    "$t_fan" "$t_keyed" "$t_cmd" >/dev/null
}

# ---- bridges -----------------------------------------------------------------------------------

stop_bridge() {
  if [ -n "$bridge_pid" ] && kill -0 "$bridge_pid" 2>/dev/null; then
    kill -TERM "$bridge_pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$bridge_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$bridge_pid" 2>/dev/null || true
    wait "$bridge_pid" 2>/dev/null || true
  fi
  bridge_pid=""
}

# await_bridge SECONDS MESSAGE LOG COMMAND...: runs COMMAND every 0.1 s until it succeeds; fails
# with MESSAGE and the tail of LOG when the bridge process exits or SECONDS pass.
await_bridge() {
  local deadline=$((SECONDS + $1)) message="$2" log="$3"
  shift 3
  until "$@" 2>/dev/null; do
    if ! kill -0 "$bridge_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "$message; log $log:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    sleep 0.1
  done
}

# start_bridge KIND SCENARIO CHANNEL: starts KIND (bridge|node|python) with the channel the
# scenario needs (fanout | keyed) and the inbound channel; sets bridge_pid and url. Its config
# and log land in $results/KIND/SCENARIO.{yaml,json,log}.
start_bridge() {
  local kind="$1" scenario="$2" channel="$3" out="$work/$1-$2.out" err="$results/$1/$2.log"
  local name="$kind-$scenario" group="bench-$kind-$scenario-$suffix"
  case "$kind" in
    bridge)
      local port mport
      port="$(free_port)"
      mport="$(free_port)"
      local chan
      if [ "$channel" = keyed ]; then
        chan="  - {name: keyed, topic: $t_keyed, key: {from: record_key}, deliver: by_key, subscribe: {allow: anonymous, keys: any}}"
      else
        chan="  - {name: fanout, topic: $t_fan, deliver: broadcast, subscribe: {allow: anonymous}}"
      fi
      cat >"$work/$name.yaml" <<EOF
# kafka-ws-bridge configuration for one benchmark measurement (scripts/bench.sh).
instance_id: $name-$suffix
kafka:
  bootstrap_servers: $KAFKA_BOOTSTRAP
  group_id_prefix: bench-$kind
  auto_offset_reset: latest
  # The same fetch wait for every consumer (on Tansu, which answers a fetch only when it
  # expires, it is the latency floor).
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
      cp "$work/$name.yaml" "$results/$kind/$scenario.yaml"
      "${pin_bridge[@]}" "$bin/kafka-ws-bridge" --log-level warn run --config "$work/$name.yaml" >"$out" 2>"$err" &
      bridge_pid=$!
      url="ws://127.0.0.1:$port/ws"
      await_bridge 60 "kafka-ws-bridge did not become ready" "$err" \
        curl -sf "http://127.0.0.1:$mport/readyz" -o /dev/null || return 1
      ;;
    node | python)
      local chan
      if [ "$channel" = keyed ]; then
        chan="{\"name\": \"keyed\", \"topic\": \"$t_keyed\", \"deliver\": \"by_key\"}"
      else
        chan="{\"name\": \"fanout\", \"topic\": \"$t_fan\", \"deliver\": \"broadcast\"}"
      fi
      cat >"$work/$name.json" <<EOF
{"bootstrap": "$KAFKA_BOOTSTRAP", "listen": "127.0.0.1:0", "group_id": "$group",
 "fetch_max_wait_ms": $FETCH_WAIT_MS,
 "channels": [$chan],
 "inbound": [{"channel": "commands", "topic": "$t_cmd"}]}
EOF
      cp "$work/$name.json" "$results/$kind/$scenario.config.json"
      if [ "$kind" = node ]; then
        "${pin_bridge[@]}" node bench/baselines/node/bridge.mjs --config "$work/$name.json" >"$out" 2>"$err" &
      else
        "${pin_bridge[@]}" "$py" bench/baselines/python/bridge.py --config "$work/$name.json" >"$out" 2>"$err" &
      fi
      bridge_pid=$!
      await_bridge 90 "$kind baseline did not print READY" "$err" grep -q '^READY ws://' "$out" || return 1
      url="$(grep -m1 -o '^READY ws://[^ ]*' "$out")"
      url="${url#READY }ws"
      ;;
    centrifugo)
      # Centrifugo's own Kafka consumer in "publication data mode": the record value is the
      # publication, the channels come from the record's `centrifugo-channels` header (which
      # kwb-load puts on every record of the run, for every peer). Anonymous clients may
      # connect and subscribe to channels without a namespace; everything else is default.
      local port
      port="$(free_port)"
      local topic="$t_fan"
      [ "$channel" = keyed ] && topic="$t_keyed"
      cat >"$work/$name.json" <<EOF
{
  "log": {"level": "error"},
  "http_server": {"address": "127.0.0.1", "port": $port},
  "health": {"enabled": true},
  "client": {"allowed_origins": ["*"], "allow_anonymous_connect_without_token": true},
  "channel": {"without_namespace": {"allow_subscribe_for_client": true, "allow_subscribe_for_anonymous": true}},
  "consumers": [{
    "name": "bench", "enabled": true, "type": "kafka",
    "kafka": {
      "brokers": ["$KAFKA_BOOTSTRAP"], "topics": ["$topic"], "consumer_group": "$group",
      "fetch_max_wait": "${FETCH_WAIT_MS}ms",
      "publication_data_mode": {"enabled": true, "channels_header": "centrifugo-channels"}
    }
  }]
}
EOF
      cp "$work/$name.json" "$results/$kind/$scenario.config.json"
      "${pin_bridge[@]}" "$centrifugo_bin" --config "$work/$name.json" >"$out" 2>"$err" &
      bridge_pid=$!
      url="ws://127.0.0.1:$port/connection/websocket"
      await_bridge 60 "centrifugo did not become healthy" "$err" \
        curl -sf "http://127.0.0.1:$port/health" -o /dev/null || return 1
      ;;
    raw)
      "${pin_bridge[@]}" "$load" raw-writer --listen 127.0.0.1:0 --channel fanout --size "$RECORD_BYTES" \
        >"$out" 2>"$err" &
      bridge_pid=$!
      await_bridge 30 "the raw writer did not print READY" "$err" grep -q '^READY ws://' "$err" || return 1
      url="$(grep -m1 -o '^READY ws://[^ ]*' "$err")"
      url="${url#READY }"
      ;;
  esac
}

# ---- one measurement ---------------------------------------------------------------------------

# measure KIND SCENARIO: fresh broker, fresh topics, fresh bridge, one kwb-load run; the JSON
# lands in $results/KIND/SCENARIO.json ({"error": ...} when it failed).
measure() {
  local kind="$1" scenario="$2" file="$results/$1/$2.json" channel=fanout status=0
  mkdir -p "$results/$kind"
  [ "$scenario" = keyed ] && channel=keyed
  local t0=$SECONDS
  say "$kind: $scenario"
  fresh_broker
  topics "$kind-$scenario"
  if ! start_bridge "$kind" "$scenario" "$channel"; then
    echo '{"error": "the bridge did not start"}' >"$file"
    stop_bridge
    return 1
  fi
  local common=(--url "$url" --pid "$bridge_pid" "${broker_pid_arg[@]}")
  case "$kind" in
    centrifugo) common+=(--protocol centrifugo) ;;
  esac
  # Every record carries the `centrifugo-channels` header, whoever reads it: the same records
  # for every peer.
  local outbound=("${common[@]}" --bootstrap "$KAFKA_BOOTSTRAP" --size "$RECORD_BYTES" --channels-header "$channel")
  [ "$kind" = raw ] && outbound+=(--raw)
  local args
  case "$scenario" in
    fanout) args=(fanout "${outbound[@]}" --topic "$t_fan" --channel fanout --sessions "$FAN_SESSIONS"
      --start-rate "$FAN_START" --max-rate "$FAN_MAX" --p99-ms 50 --warm "$FAN_WARM" --measure "$FAN_MEASURE") ;;
    latency) args=(latency "${outbound[@]}" --topic "$t_fan" --channel fanout --sessions "$LAT_SESSIONS"
      --rate "$LAT_RATE" --warm "$LAT_WARM" --measure "$LAT_MEASURE") ;;
    sat) args=(latency "${outbound[@]}" --topic "$t_fan" --channel fanout --sessions "$LAT_SESSIONS"
      --rate "$SAT_RATE" --warm "$SAT_WARM" --measure "$SAT_MEASURE") ;;
    keyed) args=(keyed "${outbound[@]}" --topic "$t_keyed" --channel keyed --sessions "$KEY_SESSIONS"
      --start-rate "$KEY_START" --max-rate "$KEY_MAX" --p99-ms "$KEY_P99" --warm "$KEY_WARM" --measure "$KEY_MEASURE") ;;
    inbound) args=(inbound "${common[@]}" --channel commands --clients "$IN_CLIENTS" --window "$IN_WINDOW"
      --warm "$IN_WARM" --measure "$IN_MEASURE" --size "$RECORD_BYTES") ;;
    idle | idle10k)
      local n="$IDLE_SESSIONS"
      [ "$scenario" = idle10k ] && n="$IDLE_SMALL"
      local n_addr=$(((n + 19999) / 20000)) bind="" i
      for ((i = 2; i < 2 + n_addr; i++)); do bind="$bind${bind:+,}127.0.0.$i"; done
      args=(idle "${common[@]}" --channel fanout --sessions "$n" --bind "$bind"
        --hold "$IDLE_HOLD" --settle "$IDLE_SETTLE") ;;
  esac
  "${pin_load[@]}" "$load" "${args[@]}" --out "$file" >/dev/null 2>"$results/$kind/$scenario.stderr" || status=$?
  sed 's/^/    /' "$results/$kind/$scenario.stderr" >&2
  if [ "$status" -ne 0 ]; then
    local msg
    msg="$(grep -m1 '^kwb-load:' "$results/$kind/$scenario.stderr" | cut -c11- || true)"
    jq -n --arg e "${msg:-kwb-load exited with status $status}" '{error: $e}' >"$file"
  fi
  if ! kill -0 "$bridge_pid" 2>/dev/null; then
    echo "    $kind exited during $scenario; log: $results/$kind/$scenario.log" >&2
    status=1
  fi
  stop_bridge
  say "$kind: $scenario took $((SECONDS - t0)) s"
  return "$status"
}

stop_multi() {
  local p
  for p in "${multi_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${multi_pids[@]}"; do
    local deadline=$((SECONDS + 20))
    while kill -0 "$p" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  multi_pids=()
}

# measure_multi: past one process's open-file limit. MULTI_INSTANCES kafka-ws-bridge processes
# (each its own consumer group, each on its own port: what a user behind a load balancer runs),
# all pinned to core 0, each held MULTI_SESSIONS idle sessions by its own kwb-load process (the
# generator has the same per-process limit), all pinned to core 1. Once every generator holds
# its sessions, MULTI_RECORDS records are produced to the broadcast topic; each generator
# reports its sessions, the bridge's RSS per session and produce → receipt latency. The
# combined result lands in $results/multi/multi.json.
measure_multi() {
  local dir="$results/multi" i status=0
  mkdir -p "$dir" "$results/bridge"
  say "multi: $MULTI_INSTANCES bridge instances x $MULTI_SESSIONS idle sessions, one broadcast"
  fresh_broker
  topics multi
  local urls=() pids=() gens=()
  for ((i = 1; i <= MULTI_INSTANCES; i++)); do
    if ! start_bridge bridge "multi$i" fanout; then
      echo '{"error": "a bridge instance did not start"}' >"$dir/multi.json"
      stop_bridge
      stop_multi
      return 1
    fi
    multi_pids+=("$bridge_pid")
    pids+=("$bridge_pid")
    urls+=("$url")
    bridge_pid=""
  done
  for ((i = 1; i <= MULTI_INSTANCES; i++)); do
    "${pin_load[@]}" "$load" idle --url "${urls[$((i - 1))]}" --pid "${pids[$((i - 1))]}" --channel fanout \
      --sessions "$MULTI_SESSIONS" --bind "127.0.1.$i" --hold "$MULTI_HOLD" --settle "$IDLE_SETTLE" \
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
  "${pin_load[@]}" "$load" produce --bootstrap "$KAFKA_BOOTSTRAP" --topic "$t_fan" --rate 1 \
    --duration "$MULTI_RECORDS" --size "$RECORD_BYTES" --channels-header fanout \
    --out "$dir/produce.json" >/dev/null 2>"$dir/produce.stderr" || status=1
  for g in "${gens[@]}"; do wait "$g" || status=1; done
  for ((i = 1; i <= MULTI_INSTANCES; i++)); do sed 's/^/    /' "$dir/idle-$i.stderr" >&2; done
  local produced
  produced="$(jq -r '.delivered // 0' "$dir/produce.json" 2>/dev/null || echo 0)"
  # A session subscribed after the first records were produced would miss them: every
  # generator was holding before the produce started, so all of them count.
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
  return "$status"
}

# ---- machine, versions -------------------------------------------------------------------------

# What each measurement gets new (one Kafka broker serves the whole run; Tansu is restarted).
fresh="topics and bridge process"
[ -z "$external_kafka" ] && [ "$KWB_BROKER" = tansu ] && fresh="broker, topics and bridge process"
cpu_model="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
mem_gib="$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)"
rdkafka_version="$(grep -A1 '^name = "rdkafka-sys"' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')"
versions="$(jq -n \
  --arg bridge "$("$bin/kafka-ws-bridge" --version | awk '{print $2}') ($(git rev-parse --short HEAD 2>/dev/null || echo ?), $mode build)" \
  --arg rustc "$(rustc --version | awk '{print $2}')" \
  --arg librdkafka "${rdkafka_version#*+} (rdkafka-sys ${rdkafka_version%%+*})" \
  --arg node "$(node --version 2>/dev/null || echo -)" \
  --arg kafkajs "$(jq -r .dependencies.kafkajs bench/baselines/node/package.json)" \
  --arg ws "$(jq -r .dependencies.ws bench/baselines/node/package.json)" \
  --arg python "$("$py" --version 2>/dev/null | awk '{print $2}' || echo -)" \
  --arg aiokafka "$(sed -n 's/^aiokafka==//p' bench/baselines/python/requirements.txt)" \
  --arg websockets "$(sed -n 's/^websockets==//p' bench/baselines/python/requirements.txt)" \
  --arg broker "$([ -n "$external_kafka" ] && echo "external cluster $external_kafka" || broker_description)" \
  --arg centrifugo "$(has_peer centrifugo && echo "$CENTRIFUGO_VERSION (go install, $(go version | awk '{print $3}'))" || echo -)" \
  '{"kafka-ws-bridge": $bridge, rustc: $rustc, librdkafka: $librdkafka, node: $node, kafkajs: $kafkajs,
    ws: $ws, python: $python, aiokafka: $aiokafka, websockets: $websockets, broker: $broker,
    centrifugo: $centrifugo}')"

# ---- the run -----------------------------------------------------------------------------------

say "results in $results"
fresh_broker
topics floor
say "floor: plain librdkafka consumer, $FLOOR_RATE records/s, fetch.wait.max.ms $FETCH_WAIT_MS"
"${pin_bridge[@]}" "$load" floor --bootstrap "$KAFKA_BOOTSTRAP" --topic "$t_fan" --rate "$FLOOR_RATE" \
  --warm "$FLOOR_WARM" --measure "$FLOOR_MEASURE" --fetch-wait-ms "$FETCH_WAIT_MS" --size "$RECORD_BYTES" \
  --out "$results/floor.json" >/dev/null || { failed=1; echo '{"error": "floor failed"}' >"$results/floor.json"; }
floor_p99="$(jq -r '.p99_ms // 0' "$results/floor.json")"
KEY_P99="$(jq -n --argjson f "$floor_p99" '(($f + 20) * 10 | round) / 10')"
say "floor p99 $floor_p99 ms; keyed steps pass at p99 <= $KEY_P99 ms (floor + 20)"

fresh_broker
topics plain
say "plain producer: FutureProducer, acks=all, idempotent, linger.ms=1, $((IN_CLIENTS * IN_WINDOW)) in flight"
"${pin_bridge[@]}" "$load" plain-produce --bootstrap "$KAFKA_BOOTSTRAP" --topic "$t_cmd" \
  --inflight $((IN_CLIENTS * IN_WINDOW)) --warm "$IN_WARM" --measure "$IN_MEASURE" --size "$RECORD_BYTES" \
  --out "$results/plain.json" >/dev/null || { failed=1; echo '{"error": "plain producer failed"}' >"$results/plain.json"; }

for kind in "${bridges[@]}"; do
  if [ "$kind" = multi ]; then
    measure_multi || failed=1
    continue
  fi
  list="scenarios_$kind"
  for scenario in ${!list}; do
    measure "$kind" "$scenario" || failed=1
  done
done

# permessage-deflate (issue 16): Node `ws` sessions, which offer it as browsers do, against
# kafka-ws-bridge with compression off, then on — bytes on the wire, CPU and RSS per session.
# bench/compression.mjs starts its own bridge (not pinned) and publishes through it.
[ -d clients/js/node_modules/ws ] || (cd clients/js && npm ci --no-audit --no-fund --loglevel=error)
fresh_broker
say "compression: $DEFLATE_SESSIONS sessions, $DEFLATE_RECORDS records of ~1 KiB at $DEFLATE_RATE/s, $DEFLATE_IDLE idle sessions; off, then on"
BRIDGE_BIN="$bin/kafka-ws-bridge" SESSIONS=$DEFLATE_SESSIONS RECORDS=$DEFLATE_RECORDS RATE=$DEFLATE_RATE \
  IDLE=$DEFLATE_IDLE OUT="$results/compression.json" node bench/compression.mjs >"$results/compression.log" 2>&1 || {
  failed=1
  echo '{"error": "bench/compression.mjs failed (compression.log)"}' >"$results/compression.json"
  tail -20 "$results/compression.log" >&2
}
stop_broker

jq -cn --arg mode "$mode" --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" --arg pinning "$pinning" \
  --arg cpu "$cpu_model" --argjson nproc "$ncpu" --argjson mem "$mem_gib" --arg kernel "$(uname -r)" \
  --argjson nofile "$nofile" --argjson versions "$versions" \
  --arg load_before "$loadavg_before" --arg load_after "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --arg head "$(git rev-parse --short HEAD 2>/dev/null || echo ?)" \
  --arg settings "topics with $PARTITIONS partition(s), fresh $fresh per measurement; fetch wait $FETCH_WAIT_MS ms for every consumer; records of $RECORD_BYTES bytes {\"ts\": µs, \"seq\", \"pad\"}; kafka-ws-bridge: publish_rate off, max_inflight_publishes 256, max_connections 1000000, everything else default (send_queue_bytes 1 MiB, send_queue_messages 8192, on_slow_client disconnect, ping 20 s)" \
  '{mode: $mode, date: $date, pinning: $pinning, settings: $settings, versions: $versions,
    loadavg_before: $load_before, loadavg_after: $load_after, commit: $head,
    machine: {nproc: $nproc, cpu_model: $cpu, mem_gib: $mem, kernel: $kernel, nofile_hard: $nofile}}' \
  >"$results/meta.json"

# Schema Registry formats: decode + JSON per record, Avro and Protobuf next to the `json` format's
# own path (validating the same JSON), in one process, taking turns (src/registry/bench.rs). The
# smoke run uses a debug build and tiny sizes: it only keeps the measurement working.
say "registry formats: decode per record, Avro and Protobuf vs the json path"
if [ "$mode" = smoke ]; then
  registry_bench=(env KWB_BENCH_ROUNDS=3 KWB_BENCH_N=300 cargo test --quiet --lib registry::bench)
else
  registry_bench=(cargo test --quiet --release --lib registry::bench)
fi
"${registry_bench[@]}" -- --ignored --nocapture >"$results/registry.log" 2>&1 || failed=1
sed -n 's/^bench-json: //p' "$results/registry.log" >"$results/registry.json"
[ -s "$results/registry.json" ] || echo '{"error": "the registry bench printed no result (registry.log)"}' >"$results/registry.json"

table="$("$load" report --dir "$results")"
# The compression table, from bench/compression.mjs's results.
table="$table

$(jq -r 'if .error then "**Compression:** \(.error)" else
  "| permessage-deflate: ~1 KiB JSON records to \(.sessions) sessions at \(.rate) records/s (Node `ws` clients) | compression off | on | on vs off | target |",
  "|---|---|---|---|---|",
  "| bytes on the wire per delivery | \(.off.sent_bytes_per_delivery) | \(.on.sent_bytes_per_delivery) | \((.off.sent_bytes_per_delivery / .on.sent_bytes_per_delivery * 100 | round) / 100)× fewer | |",
  "| kafka-ws-bridge CPU per delivery (publishing and consuming included) | \(.off.cpu_us_per_delivery) µs | \(.on.cpu_us_per_delivery) µs | \(if .on.cpu_us_per_delivery > .off.cpu_us_per_delivery then "+" else "" end)\(((.on.cpu_us_per_delivery / .off.cpu_us_per_delivery - 1) * 100) | round) % | ≤ +20 % |",
  "| RSS per idle session, \(.on.idle_sessions) sessions each subscribed (negotiated: \(.on.idle_negotiated)) | \(.off.rss_kib_per_idle_session) KiB | \(.on.rss_kib_per_idle_session) KiB | | ≤ 12 KiB with compression on |"
  end' "$results/compression.json")"
# The registry formats table, from src/registry/bench.rs.
table="$table

$(jq -r 'if .error then "**Registry formats:** \(.error)" else
  "| Schema Registry formats: decode + JSON per record (best of \(.rounds) rounds of \(.n), taking turns in one process) | this format | the json path on the same JSON | ratio | target |",
  "|---|---|---|---|---|",
  (["avro", "protobuf"][] as $k | .[$k] |
   "| \($k): \(.payload_bytes) bytes → \(.json_bytes) bytes of JSON | \(.walker_ns | round) ns | \(.json_validate_ns | round) ns | \((.walker_ns / .json_validate_ns * 100 | round) / 100)× | ≤ 2× |")
  end' "$results/registry.json")"
echo
echo "$table"
echo
if [ "$mode" = full ]; then
  mkdir -p bench/results
  echo "$table" >bench/results/latest.md
  say "table written to bench/results/latest.md; raw results in $results"
else
  say "raw results in $results"
fi

# ---- smoke checks: the pipeline works (performance numbers are not judged) ----------------------

if [ "$mode" = smoke ]; then
  check() { # check FILE JQ-EXPR DESCRIPTION
    if ! jq -e "$2" "$1" >/dev/null 2>&1; then
      echo "SMOKE FAIL: $3 ($1: $(head -c 300 "$1" 2>/dev/null))" >&2
      failed=1
    fi
  }
  r="$results/bridge"
  check "$results/floor.json" '.count > 0' "the floor consumer received records"
  check "$results/plain.json" '.acks_per_sec > 0 and .failed == 0' "the plain producer got acks"
  check "$r/fanout.json" '.best_deliveries_per_sec > 0 and (.closes | length) == 0' "fan-out delivered, no session closed"
  check "$r/latency.json" '.delivered_ratio >= 0.99 and .bridge_cpu_us_per_delivery > 0' "latency run delivered everything and measured CPU"
  check "$r/keyed.json" '.best_deliveries_per_sec > 0 and (.errors | length) == 0' "keyed sessions received their keys"
  check "$r/inbound.json" '.acks_per_sec > 0 and (.errors | length) == 0 and .unanswered == 0' "publishes were acked"
  check "$r/idle.json" ".sessions == $IDLE_SESSIONS and .rss_per_session_kib != null" "every idle session connected"
  c="$results/centrifugo"
  if has_peer centrifugo; then
    check "$c/latency.json" '.delivered_ratio >= 0.99 and .bridge_cpu_us_per_delivery > 0' "Centrifugo: latency run delivered everything"
    check "$c/keyed.json" '.best_deliveries_per_sec > 0 and (.errors | length) == 0' "Centrifugo: keyed sessions received their channels"
    check "$c/idle.json" ".sessions == $IDLE_SESSIONS and .rss_per_session_kib != null" "Centrifugo: every idle session connected"
  fi
  if has_peer raw; then
    check "$results/raw/latency.json" '.delivered_ratio >= 0.99 and .bridge_cpu_us_per_delivery > 0' "raw writer: every frame arrived"
  fi
  check "$results/compression.json" '.on.sent_bytes_per_delivery < .off.sent_bytes_per_delivery and .on.idle_negotiated != "none" and .off.idle_negotiated == "none"' "compression: negotiated when on, fewer bytes per delivery"
  check "$results/registry.json" '.avro.walker_ns > 0 and .protobuf.walker_ns > 0 and .avro.json_validate_ns > 0' "registry formats: the decode bench measured Avro, Protobuf and the json path"
  if has_peer multi; then
    check "$results/multi/multi.json" ".sessions == $((MULTI_INSTANCES * MULTI_SESSIONS)) and .broadcast_delivered_ratio >= 0.999" "several instances: every session held and got the broadcast"
  fi
fi

if [ "$failed" -ne 0 ]; then
  say "benchmark ${mode}: something FAILED after $((SECONDS - started)) s (see above; work files kept)"
  exit 1
fi
say "benchmark $mode done in $((SECONDS - started)) s"
