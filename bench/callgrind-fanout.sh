#!/usr/bin/env bash
# bench/callgrind-fanout.sh BINARY LABEL [json|stomp|sse]: the bridge under valgrind's callgrind
# at a small fixed broadcast load (20 records/s to 100 sessions of the dialect for about 20 s)
# against the broker in KAFKA_BOOTSTRAP; prints the instructions executed inside
# `RecordSink::record` (decode, encode, route, queue) and, for json, `write_frames` (socket
# writes) — for stomp and sse the whole session task, where they encode — and per delivery. Instruction counts do not
# depend on what else the machine runs, so two binaries compare on a loaded machine where
# timings cannot (docs/performance.md, "A/B runs"); batching still varies a little with timing
# (about 3 % between runs of one binary).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/broker.sh
: "${KAFKA_BOOTSTRAP:?start a broker first (scripts/lib/broker.sh start_broker) or set KAFKA_BOOTSTRAP}"
bin="$(realpath "$1")" label="$2" dialect="${3:-json}" out="target/bench/callgrind-$2-${3:-json}${WHOLE:+-whole}-r${RATE:-20}"
rm -rf "$out"; mkdir -p "$out"
load="${CARGO_TARGET_DIR:-target}/release/kwb-load"
[ -x "$load" ] || cargo build --release -p kwb-load --bin kwb-load
topic="cg-$label-$RANDOM$RANDOM"
"$load" create-topics --bootstrap "$KAFKA_BOOTSTRAP" --partitions 1 "$topic" >/dev/null
port="$(free_port)" mport="$(free_port)"
cat >"$out/b.yaml" <<EOC
instance_id: cg-$label-$RANDOM
kafka: {bootstrap_servers: '$KAFKA_BOOTSTRAP', auto_offset_reset: latest, consumer_properties: {fetch.wait.max.ms: 10}}
server: {listen: '127.0.0.1:$port', ws_path: /ws, sse_path: /sse, ping_interval_ms: 0, stomp: {enabled: true, topic_prefix: /topic/}}
metrics: {listen: '127.0.0.1:$mport'}
auth: {mode: none}
channels:
  - {name: fanout, topic: $topic, deliver: broadcast, subscribe: {allow: anonymous}}
EOC
# json: routing and socket writes, as published. stomp and sse: routing and the whole session
# task (its encoding of the queue happens there, outside write_frames), named as either
# version of the code names it (ws::session::Session::serve, ws::socket::Connection::serve,
# ws::sse::Writer::serve).
case "$dialect" in
  json) toggles=(--toggle-collect='*RecordSink*record*' --toggle-collect='*write_frames*') protocol=kwb url="ws://127.0.0.1:$port/ws" ;;
  stomp | sse)
    toggles=(--toggle-collect='*RecordSink*record*' --toggle-collect='*ws*Session*serve*' --toggle-collect='*ws*Connection*serve*' --toggle-collect='*ws*Writer*serve*')
    protocol=$dialect url="ws://127.0.0.1:$port/ws"
    [ "$dialect" = sse ] && url="http://127.0.0.1:$port/sse" ;;
  *) echo "unknown dialect $dialect (json, stomp, sse)" >&2; exit 2 ;;
esac
# WHOLE=1: every instruction of the process (no toggles), for a differential measurement: the
# same run at RATE=0 gives what does not depend on deliveries (start-up, idle sessions, the
# Kafka client's polling), so (I(RATE) - I(0)) / deliveries is what a delivery costs in all.
[ "${WHOLE:-0}" = 1 ] && toggles=()
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" ${toggles[@]+"${toggles[@]}"} \
  "$bin" run --config "$out/b.yaml" 2>"$out/bridge.log" &
pid=$!
deadline=$((SECONDS + 180))
until curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null; do [ $SECONDS -lt $deadline ] || { echo not ready; kill $pid; exit 1; }; sleep 0.5; done
"$load" latency --protocol "$protocol" --url "$url" --pid "$pid" --bootstrap "$KAFKA_BOOTSTRAP" --size 140 --topic "$topic" --channel fanout --sessions 100 --rate "${RATE:-20}" --warm 5 --measure 15 --out "$out/l.json" > "$out/load.log" 2>&1 || true
delivered=$(curl -s "http://127.0.0.1:$mport/metrics" | awk '/^kafka_ws_bridge_messages_delivered_total\{channel="fanout"\}/ {print $2}')
consumed=$(curl -s "http://127.0.0.1:$mport/metrics" | awk '/^kafka_ws_bridge_records_consumed_total/ {print $2}')
kill -TERM $pid; wait $pid || true
total=$(callgrind_annotate "$out/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
echo "$label $dialect rate ${RATE:-20}${WHOLE:+ whole}: instructions collected: $total; records consumed $consumed; deliveries $delivered; per delivery $(python3 -c "print(round($total/max($delivered,1)))")"
