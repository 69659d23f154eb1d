#!/usr/bin/env bash
# Smoke check of the baseline bridges (node: kafkajs + ws, python: aiokafka + websockets).
#
#   bench/baselines/smoke.sh             # both
#   bench/baselines/smoke.sh python      # one of them
#
#   - KAFKA_BOOTSTRAP set: use that cluster; otherwise start a local broker (Apache Kafka, or
#     Tansu with KWB_BROKER=tansu) on a free port in a temp dir (scripts/lib/broker.sh) and stop
#     it afterwards.
#   - Installs what is missing: `npm ci` in node/, a venv at python/.venv with requirements.txt
#     (PYTHON picks the interpreter; default python3.11, else python3).
#   - Creates three random topics, then for each baseline: writes a config, starts it, waits
#     for its READY line, runs smoke_client.py check against it, stops it with SIGTERM and
#     expects a clean exit.
# Exits non-zero when anything fails. Work files (configs, bridge logs) are kept on failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$repo/scripts/lib/broker.sh"

baselines=("$@")
[ ${#baselines[@]} -gt 0 ] || baselines=(node python)
for b in "${baselines[@]}"; do
  case "$b" in node | python) ;; *) echo "unknown baseline: $b (node or python)" >&2; exit 2 ;; esac
done

work="$(mktemp -d -t kwb-baselines-XXXXXX)"
bridge_pid=""
failed=0
cleanup() {
  if [ -n "$bridge_pid" ] && kill -0 "$bridge_pid" 2>/dev/null; then
    kill "$bridge_pid" 2>/dev/null || true
    wait "$bridge_pid" 2>/dev/null || true
  fi
  stop_broker
  if [ "$failed" -eq 0 ]; then rm -rf "$work"; else echo "work files kept in $work" >&2; fi
}
trap cleanup EXIT
trap 'failed=1; exit 130' INT TERM

# ---- dependencies ----------------------------------------------------------------------------

venv="$here/python/.venv"
py="$venv/bin/python"
ensure_python_deps() {
  if [ ! -x "$py" ]; then
    local interpreter="${PYTHON:-}"
    if [ -z "$interpreter" ]; then
      interpreter="$(command -v python3.11 || command -v python3)"
    fi
    echo "==> creating $venv with $interpreter"
    "$interpreter" -m venv "$venv"
  fi
  # Reinstall whenever requirements.txt differs from what was installed last.
  if ! cmp -s "$here/python/requirements.txt" "$venv/.installed-requirements.txt"; then
    echo "==> pip install -r python/requirements.txt"
    "$py" -m pip install --quiet --disable-pip-version-check -r "$here/python/requirements.txt"
    cp "$here/python/requirements.txt" "$venv/.installed-requirements.txt"
  fi
}

ensure_node_deps() {
  command -v node >/dev/null || { echo "node is not installed" >&2; return 1; }
  if ! (cd "$here/node" && npm ls --silent >/dev/null 2>&1); then
    echo "==> npm ci (bench/baselines/node)"
    (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

ensure_python_deps # the smoke client needs it whichever baselines run
for b in "${baselines[@]}"; do
  if [ "$b" = node ]; then ensure_node_deps; fi
done

# ---- broker and topics -----------------------------------------------------------------------

if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  ensure_broker
  start_broker "$work/broker" "$(free_port)"
  echo "==> $(broker_description) at $KAFKA_BOOTSTRAP (data in $work/broker)"
else
  echo "==> using the Kafka cluster at $KAFKA_BOOTSTRAP"
fi

suffix="$(date +%s)-$RANDOM"
fanout_topic="smoke-fanout-$suffix"
keyed_topic="smoke-keyed-$suffix"
commands_topic="smoke-commands-$suffix"
"$py" "$here/smoke_client.py" create-topics --bootstrap "$KAFKA_BOOTSTRAP" \
  "$fanout_topic" "$keyed_topic" "$commands_topic"
echo "==> topics $fanout_topic, $keyed_topic, $commands_topic (3 partitions each)"

# ---- one baseline ----------------------------------------------------------------------------

# run_baseline NAME: 0 when the smoke check passed and the bridge exited cleanly on SIGTERM.
run_baseline() {
  local name="$1" config="$work/$1.json" out="$work/$1.out" err="$work/$1.err" url="" status=0
  cat >"$config" <<EOF
{"bootstrap": "$KAFKA_BOOTSTRAP", "listen": "127.0.0.1:0", "group_id": "baseline-$name-$suffix",
 "fetch_max_wait_ms": 10,
 "channels": [{"name": "fanout", "topic": "$fanout_topic", "deliver": "broadcast"},
              {"name": "keyed", "topic": "$keyed_topic", "deliver": "by_key"}],
 "inbound": [{"channel": "commands", "topic": "$commands_topic"}]}
EOF
  case "$name" in
    node) node "$here/node/bridge.mjs" --config "$config" >"$out" 2>"$err" & ;;
    python) "$py" "$here/python/bridge.py" --config "$config" >"$out" 2>"$err" & ;;
  esac
  bridge_pid=$!

  local started=$SECONDS
  until url="$(grep -m1 -o '^READY ws://[^ ]*' "$out" 2>/dev/null)"; do
    if ! kill -0 "$bridge_pid" 2>/dev/null; then
      echo "FAIL $name: exited before READY; stderr:" >&2
      tail -n 20 "$err" >&2
      bridge_pid=""
      return 1
    fi
    if [ $((SECONDS - started)) -ge 60 ]; then
      echo "FAIL $name: no READY line within 60 s; stderr:" >&2
      tail -n 20 "$err" >&2
      return 1
    fi
    sleep 0.1
  done
  url="${url#READY }"
  echo "==> $name: $url (ready in $((SECONDS - started)) s)"

  "$py" "$here/smoke_client.py" check --url "$url" --bootstrap "$KAFKA_BOOTSTRAP" \
    --fanout-topic "$fanout_topic" --keyed-topic "$keyed_topic" --commands-topic "$commands_topic" ||
    status=1

  kill -TERM "$bridge_pid"
  local code=0 deadline=$((SECONDS + 15))
  while kill -0 "$bridge_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if kill -0 "$bridge_pid" 2>/dev/null; then
    echo "FAIL $name: still running 15 s after SIGTERM" >&2
    kill -KILL "$bridge_pid" 2>/dev/null || true
    status=1
  fi
  wait "$bridge_pid" || code=$?
  bridge_pid=""
  if [ "$code" -ne 0 ]; then
    echo "FAIL $name: exit status $code after SIGTERM" >&2
    status=1
  fi
  if [ "$status" -ne 0 ]; then
    echo "---- $name stderr (last 20 lines) ----" >&2
    tail -n 20 "$err" >&2
  fi
  return "$status"
}

results=()
for b in "${baselines[@]}"; do
  echo "==> smoke check: $b"
  if run_baseline "$b"; then
    results+=("$b: PASS")
  else
    results+=("$b: FAIL")
    failed=1
  fi
done

echo "==> results"
printf '    %s\n' "${results[@]}"
exit "$failed"
