# Shared by scripts/*.sh: install and run the local broker the tests and scripts use.
#   KWB_BROKER=kafka (default): Apache Kafka (version pinned in scripts/kafka/pom.xml), its jars
#     fetched once with Maven into $KWB_CACHE, run in KRaft mode as one broker+controller.
#     Needs Java 17 or newer (a JDK: scripts/kafka/Ready.java is compiled); without it the
#     scripts say so and use Tansu instead.
#   KWB_BROKER=tansu: Tansu, a Kafka-compatible broker installed with cargo (docs/development.md
#     lists its quirks).
# Source it, then call ensure_broker / start_broker DIR PORT / stop_broker. scripts/kafka/broker.sh
# offers the same to programs (the Rust tests' own brokers).

KWB_BROKER="${KWB_BROKER:-kafka}"
KWB_CACHE="${KWB_CACHE:-$HOME/.cache/kafka-ws-bridge}"
kwb_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# ---- shared ------------------------------------------------------------------------------------

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  # Without Python: a random port of the ephemeral range that nothing listens on.
  local port
  while :; do
    port=$((32768 + RANDOM % 28000))
    port_open "$port" || { echo "$port"; return; }
  done
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Seconds since $1 (an $EPOCHREALTIME), one decimal.
elapsed_since() {
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# java_major JAVA: the major version of that java (17, 21, 25), nothing when it does not run.
java_major() {
  local version major
  version="$("$1" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
  major="${version%%.*}"
  [ "$major" = 1 ] && major="$(echo "$version" | cut -d. -f2)"
  echo "$major"
}

# pid_alive PID: the process exists and is not a zombie (a killed broker whose parent is gone
# may stay a zombie when nothing reaps it).
pid_alive() {
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# ensure_broker: installs what the chosen broker needs. Falls back to Tansu (and says why) when
# Apache Kafka cannot run here.
ensure_broker() {
  case "$KWB_BROKER" in
    kafka)
      local why
      why="$(kafka_java_problem)"
      if [ -n "$why" ]; then
        echo "==> Apache Kafka needs Java 17 or newer: $why." >&2
        echo "    Install a JDK (Debian: apt-get install openjdk-17-jdk-headless) to use it; using Tansu instead." >&2
        KWB_BROKER=tansu
        export KWB_BROKER
        ensure_tansu
        return
      fi
      ensure_kafka
      ;;
    tansu) ensure_tansu ;;
    *) echo "KWB_BROKER=$KWB_BROKER: expected kafka or tansu" >&2; return 2 ;;
  esac
}

# start_broker DIR PORT: starts the chosen broker with its data in DIR (kept when it is there
# already) and waits until it is ready; sets BROKER_PID and exports KAFKA_BOOTSTRAP.
start_broker() {
  case "$KWB_BROKER" in
    kafka) kafka_start "$1" "$2" ;;
    tansu) tansu_start "$1" "$2" ;;
    *) echo "KWB_BROKER=$KWB_BROKER: expected kafka or tansu" >&2; return 2 ;;
  esac
}

stop_broker() {
  if [ -n "${BROKER_PID:-}" ]; then
    case "$KWB_BROKER" in
      kafka) kafka_stop_pid "$BROKER_PID" ;;
      *) tansu_stop ;;
    esac
  fi
}

# A one-line description of the chosen broker, for the scripts' output and the bench table.
broker_description() {
  case "$KWB_BROKER" in
    kafka) echo "Apache Kafka $KAFKA_VERSION (KRaft, single node)" ;;
    tansu) echo "Tansu $("$(tansu_bin)" --version | awk '{print $2}') (sqlite storage)" ;;
  esac
}

# ---- Apache Kafka ------------------------------------------------------------------------------

KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$kwb_root/scripts/kafka/pom.xml")"
kafka_home="$KWB_CACHE/kafka-$KAFKA_VERSION"
# A 512 MiB heap is plenty for tests and benchmarks on one node; Kafka itself serves reads from
# the page cache. G1 as in Kafka's own scripts (start time is the same as with SerialGC here).
KWB_KAFKA_HEAP_OPTS="${KWB_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KWB_KAFKA_JVM_OPTS="${KWB_KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20}"

java_bin() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    echo "$JAVA_HOME/bin/java"
  else
    command -v java 2>/dev/null
  fi
}

# Prints why Java cannot run the Kafka broker here (nothing when it can).
kafka_java_problem() {
  local java version major
  java="$(java_bin)"
  if [ -z "$java" ]; then
    echo "no \`java\` on PATH (nor in \$JAVA_HOME)"
    return
  fi
  version="$("$java" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
  major="${version%%.*}"
  [ "$major" = 1 ] && major="$(echo "$version" | cut -d. -f2)"
  if ! [ "$major" -ge 17 ] 2>/dev/null; then
    echo "$java is version ${version:-unknown}"
    return
  fi
  # Ready.java is compiled here, which needs the compiler a JDK has and a JRE lacks.
  if [ ! -x "$(dirname "$(readlink -f "$java")")/javac" ]; then
    echo "$java is a Java $major runtime without the compiler (a JRE, not a JDK)"
  fi
  return 0
}

# ensure_kafka: the broker's jars in $kafka_home/libs, fetched with Maven once, then the
# class-data-sharing archive (kafka_make_cds). A marker holding the pom's checksum is written
# only after a complete download: a half download, or a changed pom, is fetched again.
# Concurrent callers (parallel tests) wait for each other.
ensure_kafka() {
  local marker="$kafka_home/complete" want cds
  want="$(sha256sum "$kwb_root/scripts/kafka/pom.xml" | cut -d' ' -f1)"
  cds="$(kafka_cds_archive)"
  if [ "$(cat "$marker" 2>/dev/null)" = "$want" ] && { [ -f "$cds" ] || [ -f "$cds.failed" ]; }; then
    return 0
  fi
  mkdir -p "$kafka_home"
  (
    flock 9
    if [ "$(cat "$marker" 2>/dev/null)" != "$want" ]; then
      kafka_download "$want" || exit 1
    fi
    if [ ! -f "$cds" ] && [ ! -f "$cds.failed" ]; then
      kafka_make_cds "$cds"
    fi
  ) 9>"$kafka_home.lock"
}

# ensure_mvn WHAT: installs Maven with apt-get (as root or through sudo) when it is missing;
# WHAT is what it fetches, for the messages.
ensure_mvn() {
  command -v mvn >/dev/null 2>&1 && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "==> installing Maven with apt-get (it fetches $1)" >&2
  "${sudo[@]}" apt-get install -y --no-install-recommends maven >&2 ||
    { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y --no-install-recommends maven >&2; } ||
    { echo "Maven (mvn) is needed once to fetch $1; install it" >&2; return 1; }
}

# kafka_download CHECKSUM: the Maven step of ensure_kafka; CHECKSUM goes into the marker.
kafka_download() {
  local marker="$kafka_home/complete"
  ensure_mvn "Apache Kafka" || { echo "(or use KWB_BROKER=tansu)" >&2; return 1; }
  local started="$EPOCHREALTIME"
  echo "==> fetching Apache Kafka $KAFKA_VERSION with Maven into $kafka_home (once)" >&2
  rm -rf "$kafka_home/libs" "$kafka_home/libs.partial" "$marker"
  if ! mvn -B -q -f "$kwb_root/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$kafka_home/libs.partial" >"$kafka_home/maven.log" 2>&1; then
    echo "fetching Apache Kafka $KAFKA_VERSION failed; the end of $kafka_home/maven.log:" >&2
    tail -n 30 "$kafka_home/maven.log" >&2
    return 1
  fi
  mv "$kafka_home/libs.partial" "$kafka_home/libs"
  echo "$1" >"$marker"
  echo "==> Apache Kafka $KAFKA_VERSION fetched in $(elapsed_since "$started") s ($(du -sh "$kafka_home/libs" | cut -f1))" >&2
}

# The class-data-sharing archive for the java in use (a new Java installation gets its own).
kafka_cds_archive() {
  local java
  java="$(readlink -f "$(java_bin)")"
  echo "$kafka_home/cds-$(echo "$java $(stat -c %Y "$java")" | sha256sum | cut -c1-12).jsa"
}

# kafka_make_cds ARCHIVE: records the classes a broker loads while it starts, in one training
# start and stop (about 10 s, once); later starts map them from ARCHIVE instead of loading and
# verifying them again, which takes a quarter (about 1 s) off a start on 2 cores. Optional: when it
# fails, brokers start without it (and it is not tried again).
kafka_make_cds() {
  local archive="$1" dir started="$EPOCHREALTIME"
  dir="$(mktemp -d -t kwb-kafka-cds-XXXXXX)"
  echo "==> recording the classes Kafka loads at start, for faster starts (once)" >&2
  if KWB_KAFKA_CDS_OPTS="-XX:ArchiveClassesAtExit=$archive.partial" \
    kafka_start "$dir" "$(free_port)" 2>>"$dir/broker.log"; then
    kafka_stop_pid "$BROKER_PID" # the JVM writes the archive as it exits
  fi
  if [ -s "$archive.partial" ]; then
    mv "$archive.partial" "$archive"
    echo "==> class-data-sharing archive written in $(elapsed_since "$started") s" >&2
  else
    rm -f "$archive.partial"
    touch "$archive.failed"
    echo "==> no class-data-sharing archive (Kafka starts without it); log: $dir/broker.log" >&2
    return 0
  fi
  rm -rf "$dir"
}

# kafka_java: runs java with the broker's classpath.
kafka_java() {
  "$(java_bin)" -cp "$kafka_home/libs/*" "$@"
}

# kafka_ready HOST:PORT SECONDS PID: scripts/kafka/Ready.java, compiled once per version of the
# file (as a source file it costs a second and a half of compiling at every start).
kafka_ready() {
  local src="$kwb_root/scripts/kafka/Ready.java" classes tmp
  classes="$kafka_home/ready-$(sha256sum "$src" | cut -c1-12)"
  if [ ! -f "$classes/Ready.class" ]; then
    tmp="$(mktemp -d "$kafka_home/ready.XXXXXX")"
    if "$(dirname "$(readlink -f "$(java_bin)")")/javac" -nowarn -cp "$kafka_home/libs/*" -d "$tmp" "$src" >&2; then
      mv -T "$tmp" "$classes" 2>/dev/null || rm -rf "$tmp" # another start compiled it first
    else
      rm -rf "$tmp"
      return 1
    fi
  fi
  "$(java_bin)" -cp "$classes:$kafka_home/libs/*" Ready "$@"
}

# kafka_start DIR PORT [KEY=VALUE...]: one broker+controller (KRaft) listening on PORT, its
# controller on a second free port; data in DIR/data, log in DIR/broker.log, pid in
# DIR/broker.pid. A DIR that holds data already is started again as it was (same controller
# port, same cluster). KEY=VALUE pairs are added to (and override) the server properties.
# Returns once the broker answers a metadata request; sets BROKER_PID, exports KAFKA_BOOTSTRAP.
# A node of a cluster (kafka_node_start) sets KWB_KAFKA_CONTROLLER_PORT (its fixed controller
# port, which the voters list names), KWB_KAFKA_CLUSTER_ID (the id its storage is formatted
# with) and KWB_KAFKA_READY_BROKERS (ready once the cluster lists that many brokers). The
# array KWB_KAFKA_FORMAT_ARGS holds extra options for formatting a new DIR (--add-scram ...).
kafka_start() {
  local dir="$1" port="$2" started="$EPOCHREALTIME" controller cluster
  shift 2
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ -n "${KWB_KAFKA_CONTROLLER_PORT:-}" ]; then
    controller="$KWB_KAFKA_CONTROLLER_PORT"
  elif [ -s "$dir/controller.port" ] && [ -s "$dir/data/meta.properties" ] &&
    ! port_open "$(cat "$dir/controller.port")"; then
    controller="$(cat "$dir/controller.port")"
  else
    # A new cluster, or the old controller port is taken now: the controller may move, as
    # its quorum (this one node) is identified by node id, not by address.
    controller="$(free_port)"
    while [ "$controller" = "$port" ]; do controller="$(free_port)"; done
  fi
  kafka_properties "$dir" "$port" "$controller" "$@" >"$dir/server.properties"
  if [ ! -s "$dir/data/meta.properties" ]; then
    cluster="${KWB_KAFKA_CLUSTER_ID:-$(kafka_cluster_id)}"
    if ! kafka_java kafka.tools.StorageTool format --cluster-id="$cluster" \
      --config "$dir/server.properties" ${KWB_KAFKA_FORMAT_ARGS[@]+"${KWB_KAFKA_FORMAT_ARGS[@]}"} \
      >>"$dir/broker.log" 2>&1; then
      echo "formatting the Kafka storage in $dir/data failed; its log ($dir/broker.log):" >&2
      tail -n 20 "$dir/broker.log" >&2
      return 1
    fi
  fi
  echo "$controller" >"$dir/controller.port"
  local cds="${KWB_KAFKA_CDS_OPTS:-}"
  if [ -z "$cds" ] && [ -f "$(kafka_cds_archive)" ]; then
    cds="-XX:SharedArchiveFile=$(kafka_cds_archive)"
  fi
  # shellcheck disable=SC2086 # the option variables hold several words on purpose
  "$(java_bin)" $KWB_KAFKA_HEAP_OPTS $KWB_KAFKA_JVM_OPTS $cds -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$kwb_root/scripts/kafka/log4j2.properties" \
    -cp "$kafka_home/libs/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/broker.log" 2>&1 &
  BROKER_PID=$!
  echo "$BROKER_PID" >"$dir/broker.pid"
  export KAFKA_BOOTSTRAP="127.0.0.1:$port"
  # 0: the caller waits (a cluster's first start waits once for all its nodes).
  [ "${KWB_KAFKA_READY_BROKERS:-1}" != 0 ] || return 0
  if ! kafka_ready "$KAFKA_BOOTSTRAP" "${KWB_KAFKA_START_TIMEOUT:-90}" "$BROKER_PID" \
    "${KWB_KAFKA_READY_BROKERS:-1}"; then
    echo "Apache Kafka did not become ready; the end of its log ($dir/broker.log):" >&2
    tail -n 40 "$dir/broker.log" >&2
    kafka_stop_pid "$BROKER_PID"
    return 1
  fi
  echo "==> Apache Kafka $KAFKA_VERSION ready at $KAFKA_BOOTSTRAP in $(elapsed_since "$started") s (log: $dir/broker.log)" >&2
}

# A random cluster id: 16 random bytes, URL-safe base64 without padding (Kafka's Uuid).
kafka_cluster_id() {
  head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='
}

# kafka_cluster_start DIR N [KEY=VALUE...]: a cluster of N nodes, each a broker+controller in
# DIR/node1..N with ports of its own, all N in the controller quorum, formatted with one cluster
# id; internal topics and new topics get N replicas, and at least 2 (when N >= 2) must be in
# sync. KEY=VALUE pairs go to every node's properties. Each node's settings are kept in
# DIR/nodeK/node.args, so kafka_node_start can start it again (same ports, same data); each
# node dir is an ordinary broker dir (broker.pid, broker.log). The nodes start together (a
# node alone has no quorum); returns once every node is ready and the cluster lists all N
# brokers, and prints the bootstrap list on stdout.
kafka_cluster_start() {
  local dir="$1" n="$2" started="$EPOCHREALTIME" cluster ports=() port i isr voters="" bootstrap="" pids=() failed=0
  shift 2
  [ "$n" -ge 1 ] 2>/dev/null || { echo "kafka_cluster_start: N must be a positive number" >&2; return 2; }
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  cluster="$(kafka_cluster_id)"
  while [ "${#ports[@]}" -lt $((2 * n)) ]; do
    port="$(free_port)"
    [[ " ${ports[*]} " == *" $port "* ]] || ports+=("$port")
  done
  isr=$((n < 2 ? n : 2))
  for ((i = 1; i <= n; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:${ports[2 * i - 1]}"
    bootstrap+="${bootstrap:+,}127.0.0.1:${ports[2 * i - 2]}"
  done
  for ((i = 1; i <= n; i++)); do
    mkdir -p "$dir/node$i"
    # One value a line: port, controller port, cluster id, brokers, then the properties.
    printf '%s\n' "${ports[2 * i - 2]}" "${ports[2 * i - 1]}" "$cluster" "$n" \
      "node.id=$i" "controller.quorum.voters=$voters" \
      "default.replication.factor=$n" "min.insync.replicas=$isr" \
      "offsets.topic.replication.factor=$n" \
      "transaction.state.log.replication.factor=$n" "transaction.state.log.min.isr=$isr" \
      "share.coordinator.state.topic.replication.factor=$n" \
      "share.coordinator.state.topic.min.isr=$isr" \
      "$@" >"$dir/node$i/node.args"
  done
  # The nodes start at once (each formats its storage and launches its JVM); then one
  # readiness check for all of them, rather than one JVM more per node on a busy machine.
  for ((i = 1; i <= n; i++)); do
    KWB_KAFKA_READY_BROKERS=0 kafka_node_start "$dir" "$i" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  if [ "$failed" -eq 0 ] && ! kafka_ready "$bootstrap" "${KWB_KAFKA_START_TIMEOUT:-90}" "" "$n"; then
    echo "the cluster in $dir did not list its $n brokers; the end of node 1's log:" >&2
    tail -n 40 "$dir/node1/broker.log" >&2
    failed=1
  fi
  if [ "$failed" -ne 0 ]; then
    for ((i = 1; i <= n; i++)); do
      [ -s "$dir/node$i/broker.pid" ] && kafka_stop_pid "$(cat "$dir/node$i/broker.pid")"
    done
    return 1
  fi
  echo "==> Apache Kafka $KAFKA_VERSION, $n brokers, ready at $bootstrap in $(elapsed_since "$started") s (logs: $dir/node*/broker.log)" >&2
  echo "$bootstrap"
}

# kafka_node_start DIR K: starts node K of the cluster in DIR (kafka_cluster_start) with its
# settings, returns once the cluster lists all its brokers again (KWB_KAFKA_READY_BROKERS=0:
# at once); sets BROKER_PID.
kafka_node_start() {
  local dir="$1" k="$2" args=()
  mapfile -t args <"$dir/node$k/node.args" ||
    { echo "no cluster node $k in $dir" >&2; return 1; }
  KWB_KAFKA_CONTROLLER_PORT="${args[1]}" KWB_KAFKA_CLUSTER_ID="${args[2]}" \
    KWB_KAFKA_READY_BROKERS="${KWB_KAFKA_READY_BROKERS:-${args[3]}}" \
    kafka_start "$dir/node$k" "${args[0]}" "${args[@]:4}"
}

# kafka_properties DIR PORT CONTROLLER_PORT [KEY=VALUE...]: the server.properties of one
# single-node cluster, tuned for tests (see docs/development.md).
kafka_properties() {
  local dir="$1" port="$2" controller="$3"
  shift 3
  cat <<EOF
# Written by scripts/lib/broker.sh at every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
# One node: every internal topic has one replica, and few partitions (each one costs start time
# when the first group or transaction creates its topic).
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
min.insync.replicas=1
# Tests create their topics through the admin API; auto-creation serves scripts/run.sh users.
auto.create.topics.enable=true
# After a kill -9, the restarted broker may register again only once the controller has waited
# out its old session (broker.session.timeout.ms, 9 s); it retries at every heartbeat, every
# 0.5 s instead of 2 s. The session keeps its default: with 3 s, a busy 2-core machine had the
# controller fence its own broker, which moved every group coordinator (consumers re-read).
broker.heartbeat.interval.ms=500
# A new consumer group is served at once instead of after 3 s.
group.initial.rebalance.delay.ms=0
# Retention (retention.ms, DeleteRecords aside) applied within a second or two, so tests can
# watch it happen; the default checks every 5 minutes, the first time after 30 s.
log.retention.check.interval.ms=1000
log.initial.task.delay.ms=0
EOF
  local kv
  for kv in "$@"; do echo "$kv"; done
}

# kafka_stop_pid PID: SIGTERM (Kafka shuts down cleanly), SIGKILL after 30 s.
kafka_stop_pid() {
  local pid="$1" deadline=$((SECONDS + 30))
  kill -TERM "$pid" 2>/dev/null || return 0
  while pid_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "Apache Kafka (pid $pid) still running 30 s after SIGTERM: killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || true
}

# ---- Tansu -------------------------------------------------------------------------------------
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

# tansu_start DIR PORT: runs Tansu with its data in DIR; sets BROKER_PID and KAFKA_BOOTSTRAP.
tansu_start() {
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

tansu_stop() {
  if [ -n "${BROKER_PID:-}" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
}
