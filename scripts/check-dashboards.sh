#!/usr/bin/env bash
# Validates the monitoring assets in dashboards/:
#   1. dashboards/alerts.yml with `promtool check rules`, plus unit tests of every alert
#      (`promtool test rules`, test cases below);
#   2. every PromQL query of dashboards/kafka-ws-bridge.json (panel targets and template variable
#      queries): Grafana variables are replaced by placeholders, the queries are written to a
#      temporary file of recording rules and checked with `promtool check rules`; the dashboard's
#      structure, metric names (against src/metrics/mod.rs) and `$instance` / `$channel` filters are
#      linted as well.
# Installs promtool (Debian package `prometheus`) when it is missing. On a machine running
# systemd that package also installs and starts a Prometheus server; stop/disable it if unwanted.
# Prints one summary line; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

DASHBOARD=dashboards/kafka-ws-bridge.json
ALERTS=dashboards/alerts.yml

ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  echo "==> promtool not found; installing the Debian package prometheus" >&2
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends prometheus >&2; then
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" apt-get install -y --no-install-recommends prometheus >&2
  fi
  command -v promtool >/dev/null 2>&1 || { echo "promtool is still missing after installing prometheus" >&2; return 1; }
}

ensure_promtool
for f in "$DASHBOARD" "$ALERTS"; do
  [ -f "$f" ] || { echo "check-dashboards: FAILED: $f does not exist" >&2; exit 1; }
done

work="$(mktemp -d -t kwb-check-dashboards-XXXXXX)"
trap 'rm -rf "$work"' EXIT
failures=()

# run NAME COMMAND...: runs a check quietly; shows its output only when it fails.
run() {
  local name="$1"
  shift
  if ! "$@" >"$work/out.txt" 2>&1; then
    echo "--- $name failed: $*" >&2
    cat "$work/out.txt" >&2
    failures+=("$name")
    return 1
  fi
}

# --- 1. Alert rules ----------------------------------------------------------------------------
run "promtool check rules $ALERTS" promtool check rules "$ALERTS" || true
alert_rules="$(grep -cE '^[[:space:]]*- alert:' "$ALERTS" || true)"
# Metric names used by the alerts must exist (same allow-list as the dashboard, see below).
run "alert metric names" python3 - "$ALERTS" <<'PY' || true
import re, sys
text = open(sys.argv[1]).read()
known = set()
src = open("src/metrics/mod.rs").read()
hist = set(re.findall(r'HistogramOpts::new\(\s*name\("(\w+)"\)', src))
for short in re.findall(r'\bname\("(\w+)"\)', src):
    full = "kafka_ws_bridge_" + short
    known.add(full)
    if short in hist:
        known.update(full + s for s in ("_bucket", "_sum", "_count"))
bad = sorted({m for m in re.findall(r"\bkafka_ws_bridge_\w+", text) if m not in known})
if bad:
    sys.exit(f"{sys.argv[1]}: unknown metric names: {', '.join(bad)}")
PY

# Unit tests of the alerts: synthetic series at 1m resolution, checked at chosen times.
cat >"$work/alerts_test.yml" <<EOF
rule_files:
  - $PWD/$ALERTS
evaluation_interval: 1m
tests:
  - name: nothing scraped at all
    interval: 1m
    input_series:
      - series: 'some_other_metric{job="other"}'
        values: '1x10'
    alert_rule_test:
      - eval_time: 4m
        alertname: KafkaWsBridgeAbsent
        exp_alerts: []
      - eval_time: 6m
        alertname: KafkaWsBridgeAbsent
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: No kafka-ws-bridge instance is being scraped
              description: >-
                Prometheus has no kafka_ws_bridge_build_info series at all for 5 minutes: every bridge
                instance is down or no scrape target reaches it. Check that the pods/processes run, that
                the metrics listener (metrics.listen, default :9464) is reachable from Prometheus, and the
                scrape config. A single instance being down is caught by your generic \`up == 0\` alert.

  - name: not ready and Kafka unreachable
    interval: 1m
    input_series:
      - series: 'kafka_ws_bridge_build_info{job="kwb", instance="b1:9464", version="0.1.0"}'
        values: '1x10'
      - series: 'kafka_ws_bridge_ready{job="kwb", instance="b1:9464"}'
        values: '1 1 0x8'
      - series: 'kafka_ws_bridge_ready{job="kwb", instance="b2:9464"}'
        values: '1x10'
      - series: 'kafka_ws_bridge_kafka_brokers_up{job="kwb", instance="b1:9464"}'
        values: '3 3 0x8'
      - series: 'kafka_ws_bridge_kafka_brokers_up{job="kwb", instance="b2:9464"}'
        values: '3x10'
    alert_rule_test:
      - eval_time: 3m
        alertname: KafkaWsBridgeNotReady
        exp_alerts: []
      - eval_time: 4m
        alertname: KafkaWsBridgeNotReady
        exp_alerts:
          - exp_labels: {severity: critical, job: kwb, instance: "b1:9464"}
            exp_annotations:
              summary: kafka-ws-bridge b1:9464 is not ready
              description: >-
                b1:9464 has answered 503 on /readyz for 2 minutes, so the load balancer sends
                it no new clients. GET /readyz on the metrics port: its JSON body names the failing check
                (kafka_reachable, partitions_assigned, consumer_positioned, accepting_connections). Then
                check the bridge logs and the Kafka brokers.
      - eval_time: 3m
        alertname: KafkaWsBridgeKafkaUnreachable
        exp_alerts:
          - exp_labels: {severity: critical, job: kwb, instance: "b1:9464"}
            exp_annotations:
              summary: kafka-ws-bridge b1:9464 cannot reach Kafka
              description: >-
                b1:9464 has had no connection to any Kafka broker (consumer or producer) for
                1 minute: no records are delivered and publishes fail with \`unavailable\`. Check the brokers,
                DNS and network from the bridge to kafka.bootstrap_servers, and TLS/SASL errors in the
                bridge logs (librdkafka warnings).
      - eval_time: 6m
        alertname: KafkaWsBridgeAbsent
        exp_alerts: []

  - name: consumer lag and rebalances
    interval: 1m
    input_series:
      # growing 200 records/min: above 1000 from 6m on, growing all the time
      - series: 'kafka_ws_bridge_consumer_lag_messages{job="kwb", instance="b1:9464", topic="growing", partition="0"}'
        values: '0+200x30'
      # high but flat (deriv 0): only the "high" alert
      - series: 'kafka_ws_bridge_consumer_lag_messages{job="kwb", instance="b1:9464", topic="stuck", partition="0"}'
        values: '12000x30'
      # moderate and flat: no alert
      - series: 'kafka_ws_bridge_consumer_lag_messages{job="kwb", instance="b1:9464", topic="flat", partition="0"}'
        values: '5000x30'
      - series: 'kafka_ws_bridge_consumer_rebalances_total{job="kwb", instance="b1:9464"}'
        values: '0+1x30'
    alert_rule_test:
      - eval_time: 15m
        alertname: KafkaWsBridgeConsumerLagGrowing
        exp_alerts: []
      - eval_time: 20m
        alertname: KafkaWsBridgeConsumerLagGrowing
        exp_alerts:
          - exp_labels: {severity: warning, job: kwb, instance: "b1:9464", topic: growing}
            exp_annotations:
              summary: Consumer lag on growing keeps growing on b1:9464
              description: >-
                b1:9464 is 4k records behind on topic growing
                and the lag has been growing for 10 minutes: records arrive faster than the bridge routes
                them. If only this instance lags, check its CPU and slow-client drops; if every instance
                lags, the topic's traffic grew or the brokers are slow (records consumed/s, delivery latency).
      - eval_time: 20m
        alertname: KafkaWsBridgeConsumerLagHigh
        exp_alerts:
          - exp_labels: {severity: warning, job: kwb, instance: "b1:9464", topic: stuck}
            exp_annotations:
              summary: Consumer lag on stuck is high on b1:9464
              description: >-
                b1:9464 has been more than 10000 records behind on topic stuck
                for 15 minutes (now 12k), so subscribers see stale data. Check whether the
                consumer is stuck (records consumed/s at 0, /api/v1/status, logs) or just too slow.
      - eval_time: 10m
        alertname: KafkaWsBridgeRebalancing
        exp_alerts:
          - exp_labels: {severity: warning, job: kwb, instance: "b1:9464"}
            exp_annotations:
              summary: kafka-ws-bridge b1:9464 keeps rebalancing its consumer
              description: >-
                b1:9464 had 10 partition assignments/revocations in 15
                minutes. Each instance is alone in its consumer group, so this points to consumer session
                timeouts, broker restarts or topic partition changes. Check the bridge logs and the brokers.

  - name: delivery latency, slow clients and drops
    interval: 1m
    input_series:
      # every delivery takes between 2.5 s and 5 s: p99 about 4.975 s
      - series: 'kafka_ws_bridge_delivery_latency_seconds_bucket{job="kwb", instance="b1:9464", channel="prices", le="1"}'
        values: '0x30'
      - series: 'kafka_ws_bridge_delivery_latency_seconds_bucket{job="kwb", instance="b1:9464", channel="prices", le="2.5"}'
        values: '0x30'
      - series: 'kafka_ws_bridge_delivery_latency_seconds_bucket{job="kwb", instance="b1:9464", channel="prices", le="5"}'
        values: '0+60x30'
      - series: 'kafka_ws_bridge_delivery_latency_seconds_bucket{job="kwb", instance="b1:9464", channel="prices", le="+Inf"}'
        values: '0+60x30'
      # a third of the closes are slow clients
      - series: 'kafka_ws_bridge_sessions_closed_total{job="kwb", instance="b1:9464", reason="slow_client"}'
        values: '0+5x30'
      - series: 'kafka_ws_bridge_sessions_closed_total{job="kwb", instance="b1:9464", reason="client_closed"}'
        values: '0+10x30'
      # 10% of the deliveries of "prices" dropped for full queues; "news" drops nothing
      - series: 'kafka_ws_bridge_messages_delivered_total{job="kwb", instance="b1:9464", channel="prices"}'
        values: '0+600x30'
      - series: 'kafka_ws_bridge_messages_dropped_total{job="kwb", instance="b1:9464", channel="prices", reason="queue_full"}'
        values: '0+60x30'
      - series: 'kafka_ws_bridge_messages_delivered_total{job="kwb", instance="b1:9464", channel="news"}'
        values: '0+600x30'
      - series: 'kafka_ws_bridge_messages_dropped_total{job="kwb", instance="b1:9464", channel="news", reason="queue_full"}'
        values: '0x30'
      # one undecodable record at 5m
      - series: 'kafka_ws_bridge_messages_dropped_total{job="kwb", instance="b1:9464", channel="news", reason="undecodable"}'
        values: '0x4 1x26'
    alert_rule_test:
      - eval_time: 15m
        alertname: KafkaWsBridgeDeliveryLatencyHigh
        exp_alerts:
          - exp_labels: {severity: warning, job: kwb, instance: "b1:9464", channel: prices}
            exp_annotations:
              summary: p99 delivery latency on prices is high on b1:9464
              description: >-
                The p99 time from Kafka timestamp to socket write on channel prices has been
                above 2s for 10 minutes (now 4.975s). Look at consumer lag first
                (latency includes it), then at the producers' timestamps and the instance's CPU.
      - eval_time: 15m
        alertname: KafkaWsBridgeSlowClientDisconnects
        exp_alerts:
          - exp_labels: {severity: warning, job: kwb, instance: "b1:9464"}
            exp_annotations:
              summary: Many slow-client disconnects on b1:9464
              description: >-
                33.33% of the sessions closed on b1:9464 over 10
                minutes were closed because their send queue overflowed (close code 4001). Either clients
                cannot keep up with a channel's rate (raise server.send_queue_messages, or use drop_oldest /
                latest_per_key for that channel) or the instance's network or CPU is saturated.
      - eval_time: 15m
        alertname: KafkaWsBridgeQueueFullDrops
        exp_alerts:
          - exp_labels: {severity: warning, job: kwb, instance: "b1:9464", channel: prices}
            exp_annotations:
              summary: Messages dropped for full send queues on prices (b1:9464)
              description: >-
                More than 1% of the messages for channel prices on b1:9464
                (now 10%) are dropped because subscribers' send queues are
                full. Expected in small amounts on drop_oldest / latest_per_key channels; sustained drops
                mean subscribers lose updates. Check client bandwidth, the channel's rate and
                server.send_queue_messages.
      - eval_time: 12m
        alertname: KafkaWsBridgeUndecodableRecords
        exp_alerts:
          - exp_labels: {severity: info, job: kwb, instance: "b1:9464", channel: news, reason: undecodable}
            exp_annotations:
              summary: Records on channel news are dropped as undecodable
              description: >-
                b1:9464 dropped records of channel news as undecodable
                (1 in the last 10 minutes): undecodable means the payload does not
                match the channel's format, no_key that the channel routes by key and the record has none. A producer writes records the channel
                config does not expect: the bridge logs name the topic, partition and offset.
      - eval_time: 30m
        alertname: KafkaWsBridgeUndecodableRecords
        exp_alerts: []

  - name: connections
    interval: 1m
    input_series:
      - series: 'kafka_ws_bridge_connections_accepted_total{job="kwb", instance="b1:9464"}'
        values: '0+60x20'
      - series: 'kafka_ws_bridge_connections_rejected_total{job="kwb", instance="b1:9464", reason="unauthorized"}'
        values: '0+30x20'
      - series: 'kafka_ws_bridge_connections_rejected_total{job="kwb", instance="b1:9464", reason="too_many_connections"}'
        values: '0+6x20'
      - series: 'kafka_ws_bridge_connections_accepted_total{job="kwb", instance="b2:9464"}'
        values: '0+60x20'
      - series: 'kafka_ws_bridge_connections_rejected_total{job="kwb", instance="b2:9464", reason="unauthorized"}'
        values: '0+1x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: KafkaWsBridgeConnectionLimitReached
        exp_alerts:
          - exp_labels: {severity: warning, job: kwb, instance: "b1:9464"}
            exp_annotations:
              summary: "kafka-ws-bridge b1:9464 refuses connections: limit reached"
              description: >-
                b1:9464 has answered handshakes with 503 because server.max_connections is
                reached (0.10/s over 5 minutes). Add instances, raise
                server.max_connections (and the fd limit), or check the load balancer spreads clients evenly.
      - eval_time: 15m
        alertname: KafkaWsBridgeUnauthorizedRejectionsHigh
        exp_alerts:
          - exp_labels: {severity: warning, job: kwb, instance: "b1:9464"}
            exp_annotations:
              summary: Many unauthorized handshakes on b1:9464
              description: >-
                31.25% of the WebSocket handshakes on b1:9464 are
                refused as unauthorized. Usually the token issuer and the bridge disagree (rotated key or
                secret, algorithm, audience/issuer, clock skew beyond auth.jwt.leeway_seconds) or a client
                ships without tokens; otherwise someone is probing. The exact reason is in the body of the 401
                answer (e.g. try a handshake with a real token; reasons in docs/auth.md); refused handshakes
                are not logged.

  - name: publishes
    interval: 1m
    input_series:
      - series: 'kafka_ws_bridge_publishes_total{job="kwb", instance="b1:9464", channel="commands", result="ok"}'
        values: '0+60x20'
      - series: 'kafka_ws_bridge_publishes_total{job="kwb", instance="b1:9464", channel="commands", result="unavailable"}'
        values: '0+15x20'
      - series: 'kafka_ws_bridge_publishes_total{job="kwb", instance="b1:9464", channel="healthy", result="ok"}'
        values: '0+60x20'
      - series: 'kafka_ws_bridge_publishes_total{job="kwb", instance="b1:9464", channel="healthy", result="unavailable"}'
        values: '0x20'
      # errors only, but too few publishes to judge
      - series: 'kafka_ws_bridge_publishes_total{job="kwb", instance="b1:9464", channel="quiet", result="forbidden"}'
        values: '0 0 0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1'
    alert_rule_test:
      - eval_time: 5m
        alertname: KafkaWsBridgePublishErrorRatioHigh
        exp_alerts: []
      - eval_time: 10m
        alertname: KafkaWsBridgePublishErrorRatioHigh
        exp_alerts:
          - exp_labels: {severity: warning, job: kwb, instance: "b1:9464", channel: commands}
            exp_annotations:
              summary: Publishes to commands fail on b1:9464
              description: >-
                20% of the publishes to inbound channel commands on
                b1:9464 were not acknowledged over 5 minutes. The dashboard panel "Publish
                errors/s by channel and result" shows which result: unavailable/internal point at Kafka or
                the producer (brokers, topic, ACLs, server.publish_timeout_ms); bad_request, invalid,
                forbidden, too_large and rate_limited point at the clients or the channel config.
EOF
alert_tests="$(grep -c '^  - name:' "$work/alerts_test.yml")"
run "promtool test rules (alert unit tests)" promtool test rules "$work/alerts_test.yml" || true

# --- 2. Dashboard ------------------------------------------------------------------------------
# Lints the JSON and writes every query, with Grafana variables replaced, as a recording rule.
# The rule file is written as JSON, which promtool reads as YAML.
run "dashboard lint" python3 - "$DASHBOARD" "$work/dashboard_rules.yml" "$work/dashboard_counts" <<'PY' || true
import json, re, sys

path, rules_out, counts_out = sys.argv[1:4]
errors = []

# Metric names the daemon exports: src/metrics/mod.rs plus the prometheus crate's process collector.
src = open("src/metrics/mod.rs").read()
hist = set(re.findall(r'HistogramOpts::new\(\s*name\("(\w+)"\)', src))
known = set()
for short in re.findall(r'\bname\("(\w+)"\)', src):
    full = "kafka_ws_bridge_" + short
    known.add(full)
    if short in hist:
        known.update(full + s for s in ("_bucket", "_sum", "_count"))
for short in ("cpu_seconds_total", "open_fds", "max_fds", "virtual_memory_bytes",
              "resident_memory_bytes", "start_time_seconds", "threads"):
    known.add("kafka_ws_bridge_process_" + short)
if len(known) < 20:
    errors.append(f"only {len(known)} metric names found in src/metrics/mod.rs; has its layout changed?")

# Label filters each metric's selector must carry (beyond instance).
CHANNEL_FILTER = {
    "messages_delivered_total": '$channel', "subscriptions": '$channel',
    "messages_dropped_total": '$channel', "delivery_latency_seconds_bucket": '$channel',
    "publishes_total": '$inbound', "publish_ack_seconds_bucket": '$inbound',
}

try:
    dash = json.load(open(path))
except Exception as e:  # noqa: BLE001
    sys.exit(f"{path}: not valid JSON: {e}")

for key in ("title", "uid", "panels", "templating", "schemaVersion"):
    if key not in dash:
        errors.append(f"missing top-level key {key!r}")
variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
for name in ("datasource", "instance", "channel"):
    if name not in variables:
        errors.append(f"missing template variable ${name}")
if variables.get("datasource", {}).get("type") != "datasource":
    errors.append("$datasource must be a variable of type datasource")

def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))

panels = list(all_panels(dash.get("panels", [])))
ids = [p.get("id") for p in panels]
if len(ids) != len(set(ids)):
    errors.append("panel ids are not unique")
occupied = {}
for p in panels:
    where = f"panel {p.get('id')} {p.get('title')!r}"
    g = p.get("gridPos", {})
    if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")):
        errors.append(f"{where}: gridPos needs integer x, y, w, h")
        continue
    if g["x"] < 0 or g["x"] + g["w"] > 24:
        errors.append(f"{where}: gridPos is outside the 24-column grid")
    for cx in range(g["x"], g["x"] + g["w"]):
        for cy in range(g["y"], g["y"] + g["h"]):
            if (cx, cy) in occupied:
                errors.append(f"{where}: overlaps panel {occupied[(cx, cy)]}")
                break
            occupied[(cx, cy)] = p.get("id")
        else:
            continue
        break
    if p.get("type") != "row":
        if not p.get("targets"):
            errors.append(f"{where}: no queries")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"{where}: datasource must be ${{datasource}}")

queries = []  # (where, expr)
for p in panels:
    refs = set()
    for t in p.get("targets", []):
        where = f"panel {p.get('id')} {p.get('title')!r} query {t.get('refId')}"
        if t.get("refId") in refs:
            errors.append(f"{where}: duplicate refId")
        refs.add(t.get("refId"))
        if not t.get("expr", "").strip():
            errors.append(f"{where}: empty expr")
            continue
        queries.append((where, t["expr"], True))
for name, v in variables.items():
    if v.get("type") != "query":
        continue
    q = v.get("query")
    q = q.get("query", "") if isinstance(q, dict) else (q or "")
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", q, re.S)
    m = m or re.fullmatch(r"\s*query_result\((.*)\)\s*", q, re.S)
    if m:
        queries.append((f"variable ${name}", m.group(1), False))
    elif not re.fullmatch(r"\s*(label_names|metrics|label_values)\(.*\)\s*", q, re.S):
        errors.append(f"variable ${name}: unsupported query {q!r}")

INTERVALS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h",
             "__interval_ms": "60000", "__range_ms": "3600000", "__range_s": "3600"}
def substitute(expr):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return INTERVALS.get(name, ".*")
    return re.sub(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)", repl, expr)

rules = []
for i, (where, expr, is_panel) in enumerate(queries):
    for m in re.finditer(r"\b(kafka_ws_bridge_\w+)\s*(\{[^}]*\})?", expr):
        metric, selector = m.group(1), m.group(2) or ""
        if metric not in known:
            errors.append(f"{where}: unknown metric {metric}")
        if is_panel and 'instance=~"$instance"' not in selector:
            errors.append(f"{where}: {metric} is not filtered by instance=~\"$instance\"")
        want = CHANNEL_FILTER.get(metric.removeprefix("kafka_ws_bridge_"))
        if is_panel and want and f'channel=~"{want}"' not in selector:
            errors.append(f"{where}: {metric} is not filtered by channel=~\"{want}\"")
    for m in re.finditer(r"([a-zA-Z_:][\w:]*)\s*\{", expr):
        if not m.group(1).startswith("kafka_ws_bridge_"):
            errors.append(f"{where}: metric {m.group(1)} is not one of the bridge's")
    rules.append({"record": f"dashboard:query_{i}", "expr": substitute(expr),
                  "labels": {"dashboard_query": where}})

if not rules:
    errors.append("no queries found in the dashboard")
with open(rules_out, "w") as f:
    json.dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, f, indent=1)
with open(counts_out, "w") as f:
    f.write(f"{sum(1 for p in panels if p.get('type') != 'row')} {len(rules)}\n")
if errors:
    sys.exit("\n".join(f"{path}: {e}" for e in errors))
PY
read -r panel_count query_count <"$work/dashboard_counts" 2>/dev/null || { panel_count=0; query_count=0; }
if [ -s "$work/dashboard_rules.yml" ]; then
  run "promtool check rules (dashboard queries)" promtool check rules "$work/dashboard_rules.yml" || true
fi

version="$(promtool --version 2>&1 | head -n1 | awk '{print $3}')"
if [ "${#failures[@]}" -gt 0 ]; then
  echo "check-dashboards: FAILED: $(IFS=';'; echo "${failures[*]}" | sed 's/;/; /g')" >&2
  exit 1
fi
echo "check-dashboards: OK — $ALERTS: $alert_rules alert rules valid, $alert_tests unit-test groups passed; $DASHBOARD: $panel_count panels, $query_count PromQL queries valid (promtool $version)"
