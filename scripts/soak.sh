#!/usr/bin/env bash
# Soak test of kafka-ws-bridge (release build) with connection churn, end to end.
#
#   scripts/soak.sh                      # 2 minutes
#   scripts/soak.sh --duration 600       # seconds (or 10m, 1h)
#   scripts/soak.sh --subscribers 50 --publishers 10 --rate 20
#   KAFKA_BOOTSTRAP=host:9092 scripts/soak.sh
#
# Publishers publish (acks awaited) on the inbound channel `soak-in`, whose topic the broadcast
# channel `soak` reads. Subscribers and publishers connect and disconnect continuously;
# subscribers come back with `resume` (positions tracked as docs/protocol.md describes), some
# after pauses long enough that the replay comes from Kafka rather than memory. At the end
# publishing stops, every subscriber reconnects and catches up, and each subscriber's received
# records are compared with every acked publish after its first subscription.
#
# Prints published/acked, expected vs received per subscriber, LOST (acked, never received:
# must be 0), duplicates, out-of-order deliveries, gap answers, errors by code, the bridge's RSS
# at start and end and its CPU. Exits non-zero when a record was lost (or delivered with other
# content than what was acked at its position), or when anything failed to run.
# Not part of scripts/test.sh.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
source scripts/lib/broker.sh

duration=120 subscribers=20 publishers=5 rate=20
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) shift; duration="$1" ;;
    --subscribers) shift; subscribers="$1" ;;
    --publishers) shift; publishers="$1" ;;
    --rate) shift; rate="$1" ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$duration" in
  *h) duration=$((${duration%h} * 3600)) ;;
  *m) duration=$((${duration%m} * 60)) ;;
  *s) duration=${duration%s} ;;
esac

work="$(mktemp -d -t kwb-soak-XXXXXX)"
bridge_pid=""
status=0
cleanup() {
  if [ -n "$bridge_pid" ] && kill -0 "$bridge_pid" 2>/dev/null; then
    kill -TERM "$bridge_pid" 2>/dev/null || true
    wait "$bridge_pid" 2>/dev/null || true
  fi
  stop_broker
  if [ "$status" -eq 0 ]; then rm -rf "$work"; else echo "work files (config, bridge log, result) kept in $work" >&2; fi
}
trap cleanup EXIT
trap 'status=130; exit 130' INT TERM

command -v jq >/dev/null || { echo "jq is required" >&2; exit 1; }
echo "==> cargo build --release -p kafka-ws-bridge -p kwb-load" >&2
cargo build --quiet --release -p kafka-ws-bridge -p kwb-load
bin="${CARGO_TARGET_DIR:-$repo/target}/release"

if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  ensure_broker
  start_broker "$work/broker" "$(free_port)"
  echo "==> $(broker_description) at $KAFKA_BOOTSTRAP (data in $work/broker)" >&2
else
  echo "==> using the Kafka cluster at $KAFKA_BOOTSTRAP" >&2
fi

suffix="$(date +%s)-$RANDOM"
topic="soak-$suffix"
"$bin/kwb-load" create-topics --bootstrap "$KAFKA_BOOTSTRAP" --partitions 3 "$topic" >/dev/null
port="$(free_port)"
mport="$(free_port)"
cat >"$work/bridge.yaml" <<EOF
instance_id: soak-$suffix
kafka:
  bootstrap_servers: $KAFKA_BOOTSTRAP
  group_id_prefix: soak
server:
  listen: 127.0.0.1:$port
metrics:
  listen: 127.0.0.1:$mport
auth: {mode: none}
channels:
  - name: soak
    topic: $topic
    deliver: broadcast
    subscribe: {allow: anonymous}
    # Short on purpose: resumes after a long pause miss more than memory holds and are
    # served from Kafka.
    history: 300
inbound:
  - {channel: soak-in, topic: $topic, key: none, allow: anonymous}
EOF
"$bin/kafka-ws-bridge" --log-level warn run --config "$work/bridge.yaml" >"$work/bridge.out" 2>"$work/bridge.log" &
bridge_pid=$!
deadline=$((SECONDS + 60))
until curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1; do
  if ! kill -0 "$bridge_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "the bridge did not become ready; log:" >&2
    tail -n 20 "$work/bridge.log" >&2
    status=1
    exit 1
  fi
  sleep 0.1
done

echo "==> soak: $duration s, $subscribers subscribers and $publishers publishers (x $rate publishes/s), all churning" >&2
load_status=0
"$bin/kwb-load" soak --url "ws://127.0.0.1:$port/ws" --pid "$bridge_pid" --out-channel soak \
  --in-channel soak-in --subscribers "$subscribers" --publishers "$publishers" --rate "$rate" \
  --duration "$duration" --out "$work/result.json" >/dev/null || load_status=$?
if [ ! -s "$work/result.json" ]; then
  echo "kwb-load soak failed (status $load_status)" >&2
  status=1
  exit 1
fi
if ! kill -0 "$bridge_pid" 2>/dev/null; then
  echo "the bridge exited during the soak; log: $work/bridge.log" >&2
  status=1
fi

jq -r '
  def mib: if . == null then "?" else "\(. / 1024 * 10 | round / 10) MiB" end;
  if .error then "ERROR: \(.error)" else
  "soak: \(.duration_secs) s (+ drain, \(.elapsed_secs) s in all), \(.subscribers) subscribers, \(.publishers) publishers x \(.publish_rate_per_publisher)/s, all churning",
  "  published                      \(.published)",
  "  acked                          \(.acked)   (unanswered when a publisher disconnected: \(.unanswered_at_disconnect))",
  "  expected per subscriber        min \(.expected_per_subscriber_min), max \(.expected_per_subscriber_max)   (acked after its first subscription)",
  "  received of those              \(.received_expected_total) of \(.expected_total)",
  "  LOST                           \(.lost)",
  "  duplicates                     \(.duplicates)",
  "  out of order (per connection)  \(.out_of_order)",
  "  gap: true answers              \(.gap_answers)",
  "  content mismatches             \(.content_mismatches)",
  "  subscriber connections         \(.subscriber_connects) (\(.resumes) resumes, \(.replayed_frames) replayed frames)",
  "  publisher connections          \(.publisher_connects)",
  "  errors by code                 \(.errors | if length == 0 then "none" else tojson end)",
  "  unexpected closes              \(.unexpected_closes | if length == 0 then "none" else tojson end)",
  "  bridge RSS                     start \(.bridge_rss_start_kib | mib), end \(.bridge_rss_end_kib | mib)",
  "  bridge CPU                     \(.bridge_cpu_secs) s (\(.bridge_cpu_pct) % of a core on average)",
  "RESULT: \(if .pass then "PASS" else "FAIL" end)"
  end' "$work/result.json"
cp "$work/result.json" "$repo/target/soak-latest.json" 2>/dev/null || true
if [ "$load_status" -ne 0 ]; then status=1; fi
exit "$status"
