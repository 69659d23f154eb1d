# Shared by scripts/*.sh: install and run a local Tansu broker (a Kafka-compatible broker).
# Source it, then call ensure_tansu / start_broker / stop_broker.
#
# Tansu is run from its own directory with `--storage-engine sqlite://tansu.db`: the sqlite path
# is relative to the working directory (an absolute sqlite:/// path does not work), and the
# `memory://` engine reports wrong offsets.

TANSU_VERSION="${TANSU_VERSION:-0.6.0}"

tansu_bin() {
  if command -v tansu >/dev/null 2>&1; then
    command -v tansu
  elif [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]; then
    echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
  fi
}

# Installs Tansu with cargo when it is missing (about 11 minutes on 2 cores, once).
ensure_tansu() {
  if [ -n "$(tansu_bin)" ]; then
    return 0
  fi
  echo "==> installing the Tansu broker (cargo install tansu@$TANSU_VERSION; ~11 min on 2 cores, once)" >&2
  cargo install tansu --version "$TANSU_VERSION" --locked --features libsql >&2
  [ -n "$(tansu_bin)" ] || { echo "tansu was installed but is not on PATH or in ~/.cargo/bin" >&2; return 1; }
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_broker DIR PORT: runs Tansu with its data in DIR; sets BROKER_PID and KAFKA_BOOTSTRAP.
start_broker() {
  local dir="$1" port="$2" bin
  bin="$(tansu_bin)"
  mkdir -p "$dir"
  (cd "$dir" && exec "$bin" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "sqlite://tansu.db") >>"$dir/broker.log" 2>&1 &
  BROKER_PID=$!
  export KAFKA_BOOTSTRAP="127.0.0.1:$port"
  local deadline=$((SECONDS + 30))
  until port_open "$port"; do
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      echo "the broker exited at start; its log ($dir/broker.log):" >&2
      tail -n 20 "$dir/broker.log" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "the broker did not open port $port within 30 s; log: $dir/broker.log" >&2
      return 1
    fi
    sleep 0.1
  done
}

stop_broker() {
  if [ -n "${BROKER_PID:-}" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
}
