#!/usr/bin/env bash
# Apicurio Registry, the schema registry the Schema Registry tests run against (its Confluent-
# compatible API, /apis/ccompat/v7, is what Confluent's clients and the bridge speak). Its
# Quarkus fast-jar (io.apicurio:apicurio-registry-app, classifier `all`, tar.gz) is fetched once
# with Maven into $KWB_CACHE/apicurio-<version>/ and run with Java 21 or newer, storage in memory
# (H2), no authentication.
#
#   scripts/registry/apicurio.sh ensure
#        fetch and unpack it (once; about 160 MB), then record the classes it loads at start
#        (Java 25 or newer: an AOT cache, once, which halves the start); prints nothing
#   scripts/registry/apicurio.sh start DIR PORT [--owner PID]
#        run one registry on 127.0.0.1:PORT (its management interface on a port the system
#        picks, also on 127.0.0.1), log in DIR/registry.log, pid in DIR/registry.pid; returns
#        once the ccompat API answers and prints its URL (http://127.0.0.1:PORT/apis/ccompat/v7).
#        With --owner, the registry is stopped when process PID exits.
#   scripts/registry/apicurio.sh stop DIR
#        SIGTERM (after a SIGCONT, should it be paused), SIGKILL after 30 s
#   scripts/registry/apicurio.sh java
#        the java it runs with (or why there is none)
#
# Source it for the same as functions: apicurio_ensure, apicurio_start DIR PORT (sets
# REGISTRY_PID and REGISTRY_URL), apicurio_stop DIR.
# Settings: KWB_REGISTRY_JAVA (a java binary, 21 or newer), KWB_APICURIO_JAVA_OPTS,
# KWB_APICURIO_START_TIMEOUT (seconds, 90).

# shellcheck source=scripts/lib/broker.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/broker.sh"

APICURIO_VERSION=3.3.3
APICURIO_ARTIFACT="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all"
apicurio_home="$KWB_CACHE/apicurio-$APICURIO_VERSION"
# A small heap is plenty for a test registry holding a few hundred schemas; the serial collector
# and C1 alone (no C2) start it in about half the time and take 20 % less memory (measured on
# 2 cores: 4.4 s instead of 8.6 s, 200 MB instead of 260 MB resident).
KWB_APICURIO_JAVA_OPTS="${KWB_APICURIO_JAVA_OPTS:--Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"

# apicurio_java: prints a java binary of version 21 or newer (Apicurio Registry 3 is built for
# 21): $KWB_REGISTRY_JAVA, else the Temurin 25 JDK when installed, else $JAVA_HOME, `java` on
# PATH or any JVM under /usr/lib/jvm, the newest first. Without one, says what to install and
# returns 1.
apicurio_java() {
  local candidate candidates=() seen=() major best="" best_major=0
  if [ -n "${KWB_REGISTRY_JAVA:-}" ]; then
    major="$(java_major "$KWB_REGISTRY_JAVA")"
    if [ "${major:-0}" -ge 21 ] 2>/dev/null; then
      echo "$KWB_REGISTRY_JAVA"
      return 0
    fi
    echo "KWB_REGISTRY_JAVA=$KWB_REGISTRY_JAVA is not a java of version 21 or newer (${major:-does not run})" >&2
    return 1
  fi
  candidates+=(/usr/lib/jvm/temurin-25-jdk-amd64/bin/java)
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null 2>&1 && candidates+=("$(command -v java)")
  for candidate in /usr/lib/jvm/*/bin/java; do candidates+=("$candidate"); done
  for candidate in "${candidates[@]}"; do
    [ -x "$candidate" ] || continue
    candidate="$(readlink -f "$candidate")"
    [[ " ${seen[*]} " == *" $candidate "* ]] && continue
    seen+=("$candidate")
    major="$(java_major "$candidate")"
    if [ "${major:-0}" -gt "$best_major" ] 2>/dev/null; then
      best="$candidate" best_major="$major"
    fi
  done
  if [ "$best_major" -ge 21 ]; then
    echo "$best"
    return 0
  fi
  if [ -n "$best" ]; then
    echo "Apicurio Registry $APICURIO_VERSION needs Java 21 or newer; the newest java here is $best (Java $best_major)." >&2
  else
    echo "Apicurio Registry $APICURIO_VERSION needs Java 21 or newer; there is no java here." >&2
  fi
  echo "Install a JDK or JRE 21+ (Eclipse Temurin 21 or 25, or openjdk-21-jre-headless on Debian 13), or point KWB_REGISTRY_JAVA at one." >&2
  return 1
}

# apicurio_ensure: the registry unpacked in $apicurio_home/dist (a marker written after a
# complete unpack: a half one is redone), then the AOT cache of the java in use. Concurrent
# callers (parallel tests) wait for each other.
apicurio_ensure() {
  local java aot
  java="$(apicurio_java)" || return 1
  aot="$(apicurio_aot_cache "$java")"
  if [ -f "$apicurio_home/dist/complete" ] && { [ -z "$aot" ] || [ -f "$aot" ] || [ -f "$aot.failed" ]; }; then
    return 0
  fi
  mkdir -p "$apicurio_home"
  (
    flock 9
    if [ ! -f "$apicurio_home/dist/complete" ]; then
      apicurio_download || exit 1
    fi
    if [ -n "$aot" ] && [ ! -f "$aot" ] && [ ! -f "$aot.failed" ]; then
      apicurio_make_aot "$java" "$aot"
    fi
  ) 9>"$apicurio_home.lock"
}

apicurio_download() {
  ensure_mvn "Apicurio Registry" || return 1
  local started="$EPOCHREALTIME" partial="$apicurio_home/download.partial"
  echo "==> fetching Apicurio Registry $APICURIO_VERSION with Maven into $apicurio_home (once)" >&2
  rm -rf "$partial" "$apicurio_home/dist" "$apicurio_home/dist.partial"
  # dependency:copy of the one artifact (no transitive dependencies: the tarball holds them all).
  if ! mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="$APICURIO_ARTIFACT" -DoutputDirectory="$partial" \
    >"$apicurio_home/maven.log" 2>&1; then
    echo "fetching Apicurio Registry $APICURIO_VERSION failed; the end of $apicurio_home/maven.log:" >&2
    tail -n 30 "$apicurio_home/maven.log" >&2
    return 1
  fi
  local fetched="$EPOCHREALTIME" tarball
  tarball="$(ls "$partial"/*.tar.gz)"
  mkdir -p "$apicurio_home/dist.partial"
  tar -xzf "$tarball" -C "$apicurio_home/dist.partial" || { echo "unpacking $tarball failed" >&2; return 1; }
  [ -f "$apicurio_home/dist.partial/quarkus-run.jar" ] ||
    { echo "$tarball has no quarkus-run.jar" >&2; return 1; }
  # The tarball stays in Maven's own repository (~/.m2); the cache keeps the unpacked copy only.
  rm -rf "$partial"
  touch "$apicurio_home/dist.partial/complete"
  mv "$apicurio_home/dist.partial" "$apicurio_home/dist"
  echo "==> Apicurio Registry $APICURIO_VERSION fetched in $(awk -v a="$started" -v b="$fetched" 'BEGIN { printf "%.1f", b - a }') s and unpacked in $(elapsed_since "$fetched") s ($(du -sh "$apicurio_home/dist" | cut -f1))" >&2
}

# apicurio_aot_cache JAVA: where the AOT cache of that java is kept (one per Java installation);
# nothing for a java older than 25, which has no -XX:AOTCacheOutput.
apicurio_aot_cache() {
  local java="$1" major
  major="$(java_major "$java")"
  [ "${major:-0}" -ge 25 ] 2>/dev/null || return 0
  echo "$apicurio_home/aot-$(echo "$java $(stat -c %Y "$java") $KWB_APICURIO_JAVA_OPTS" | sha256sum | cut -c1-12).aot"
}

# apicurio_make_aot JAVA CACHE: one training start and stop (the JVM writes the cache as it
# exits: about 20 s, once); later starts map the classes it loaded, already parsed and linked,
# from CACHE (measured: 2-2.7 s to the first answer instead of 4.4 s). Optional: when it fails,
# the registry starts without it (and it is not tried again).
apicurio_make_aot() {
  local java="$1" aot="$2" dir started="$EPOCHREALTIME"
  dir="$(mktemp -d -t kwb-apicurio-aot-XXXXXX)"
  echo "==> recording the classes Apicurio Registry loads at start, for faster starts (once)" >&2
  if KWB_APICURIO_AOT_OPTS="-XX:AOTCacheOutput=$aot.partial" \
    apicurio_start "$dir" "$(free_port)" >/dev/null 2>>"$dir/registry.log"; then
    # A schema registered and read back, so that the classes of that path are in the cache.
    apicurio_http POST "$REGISTRY_URL/subjects/aot-training-value/versions" \
      '{"schema":"{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"a\",\"type\":\"string\"}]}"}' \
      >/dev/null || true
    apicurio_http GET "$REGISTRY_URL/schemas/ids/1" >/dev/null || true
    apicurio_stop "$dir"
  fi
  if [ -s "$aot.partial" ]; then
    mv "$aot.partial" "$aot"
    echo "==> AOT cache written in $(elapsed_since "$started") s ($(du -sh "$aot" | cut -f1))" >&2
    rm -rf "$dir"
  else
    rm -f "$aot.partial"
    touch "$aot.failed"
    echo "==> no AOT cache (Apicurio Registry starts without it); log: $dir/registry.log" >&2
  fi
  return 0
}

# apicurio_http METHOD URL [BODY]: one request with curl (a JSON body goes with the Confluent
# content type); prints the status code. 5 s at most.
apicurio_http() {
  local method="$1" url="$2" body="${3:-}" args=()
  command -v curl >/dev/null 2>&1 || return 1
  [ -n "$body" ] && args=(-H 'Content-Type: application/vnd.schemaregistry.v1+json' --data "$body")
  curl -s -m 5 -X "$method" "${args[@]}" -o /dev/null -w '%{http_code}\n' "$url"
}

# apicurio_status PORT: the HTTP status of GET /apis/ccompat/v7/subjects (000: no answer), over
# bash's own /dev/tcp, so that no curl is needed for the readiness check.
apicurio_status() {
  local port="$1" status=""
  # A subshell: the descriptor and the read's timeout stay in there.
  status="$(
    exec 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf 'GET /apis/ccompat/v7/subjects HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$port" >&3
    read -r -t 5 _ code _ <&3 && echo "$code"
  )"
  echo "${status:-000}"
}

# apicurio_start DIR PORT: see the header. A registry that keeps nothing: each start is empty.
apicurio_start() {
  local dir="$1" port="$2" started="$EPOCHREALTIME" java aot="" deadline status
  mkdir -p "$dir/tmp"
  dir="$(cd "$dir" && pwd)"
  java="$(apicurio_java)" || return 1
  [ -f "$apicurio_home/dist/complete" ] || { echo "Apicurio Registry is not installed: run apicurio_ensure first" >&2; return 1; }
  if [ -n "${KWB_APICURIO_AOT_OPTS:-}" ]; then
    aot="$KWB_APICURIO_AOT_OPTS"
  elif [ -n "$(apicurio_aot_cache "$java")" ] && [ -f "$(apicurio_aot_cache "$java")" ]; then
    aot="-XX:AOTCache=$(apicurio_aot_cache "$java")"
  fi
  # -Dkwb.registry.dir marks the process as this DIR's (apicurio_pid). The management interface
  # (health, metrics) cannot be turned off (fixed at build time): it gets port 0, any free
  # port, on loopback. Telemetry (OpenTelemetry) is off in the build already; H2 runs in memory.
  # Deleting subjects and versions is allowed, as on a Confluent registry.
  # shellcheck disable=SC2086 # the option variables hold several words on purpose
  (cd "$dir" && exec "$java" $KWB_APICURIO_JAVA_OPTS $aot -XX:+ExitOnOutOfMemoryError \
    -Dkwb.registry.dir="$dir" -Djava.io.tmpdir="$dir/tmp" \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port=0 \
    -Dapicurio.storage.snapshot.location="$dir/tmp" -Dapicurio.import.work-dir="$dir/tmp" \
    -Dapicurio.rest.deletion.artifact.enabled=true \
    -Dapicurio.rest.deletion.artifact-version.enabled=true \
    -Dapicurio.rest.deletion.group.enabled=true \
    -jar "$apicurio_home/dist/quarkus-run.jar") </dev/null >>"$dir/registry.log" 2>&1 &
  REGISTRY_PID=$!
  echo "$REGISTRY_PID" >"$dir/registry.pid"
  REGISTRY_URL="http://127.0.0.1:$port/apis/ccompat/v7"
  deadline=$((SECONDS + ${KWB_APICURIO_START_TIMEOUT:-90}))
  while :; do
    status="$(apicurio_status "$port")"
    [ "$status" = 200 ] && break
    if ! pid_alive "$REGISTRY_PID"; then
      echo "Apicurio Registry exited at start; the end of its log ($dir/registry.log):" >&2
      tail -n 40 "$dir/registry.log" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "Apicurio Registry did not answer on $REGISTRY_URL/subjects within ${KWB_APICURIO_START_TIMEOUT:-90} s (last status: $status); the end of its log ($dir/registry.log):" >&2
      tail -n 40 "$dir/registry.log" >&2
      apicurio_stop "$dir"
      return 1
    fi
    sleep 0.1
  done
  echo "==> Apicurio Registry $APICURIO_VERSION ready at $REGISTRY_URL in $(elapsed_since "$started") s (log: $dir/registry.log)" >&2
  echo "$REGISTRY_URL"
}

# apicurio_pid DIR: the pid in DIR/registry.pid when that process still runs and is the registry
# of DIR (not another process that was given the same pid since).
apicurio_pid() {
  local dir pid
  dir="$(cd "$1" 2>/dev/null && pwd)" || return 1
  pid="$(cat "$dir/registry.pid" 2>/dev/null)" || return 1
  pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-Dkwb.registry.dir=$dir " && echo "$pid"
}

# apicurio_stop_pid PID: SIGCONT (a paused registry would not see the SIGTERM), SIGTERM, SIGKILL
# after 30 s.
apicurio_stop_pid() {
  local pid="$1" deadline=$((SECONDS + 30))
  kill -CONT "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  while pid_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "Apicurio Registry (pid $pid) still running 30 s after SIGTERM: killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.05
  done
  wait "$pid" 2>/dev/null || true
}

apicurio_stop() {
  local pid
  if pid="$(apicurio_pid "$1")"; then
    apicurio_stop_pid "$pid"
  fi
}

# apicurio_watch_owner OWNER DIR: stops the registry of DIR when process OWNER exits (a test
# binary that dies without cleaning up). Polls once a second.
apicurio_watch_owner() {
  local owner="$1" dir="$2" registry
  registry="$(apicurio_pid "$dir")" || return 0
  (
    while pid_alive "$owner" && pid_alive "$registry"; do sleep 1; done
    if pid_alive "$registry"; then
      echo "[owner $owner exited: stopping the registry]" >>"$dir/registry.log"
      apicurio_stop_pid "$registry"
    fi
  ) </dev/null >/dev/null 2>&1 &
  disown
}

apicurio_main() {
  set -euo pipefail
  local command="${1:-}" dir port owner=""
  [ $# -gt 0 ] && shift
  case "$command" in
    ensure) [ $# -eq 0 ] || apicurio_usage; apicurio_ensure ;;
    java) [ $# -eq 0 ] || apicurio_usage; apicurio_java ;;
    start)
      [ $# -eq 2 ] || [ $# -eq 4 ] || apicurio_usage
      dir="$1" port="$2"
      if [ $# -eq 4 ]; then
        [ "$3" = --owner ] || apicurio_usage
        owner="$4"
      fi
      apicurio_ensure
      mkdir -p "$dir"
      if pid="$(apicurio_pid "$dir")"; then
        echo "a registry (pid $pid) already runs in $dir" >&2
        exit 1
      fi
      apicurio_start "$dir" "$port"
      [ -z "$owner" ] || apicurio_watch_owner "$owner" "$dir"
      ;;
    stop) [ $# -eq 1 ] || apicurio_usage; apicurio_stop "$1" ;;
    *) apicurio_usage ;;
  esac
}

apicurio_usage() {
  sed -n '2,22p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  apicurio_main "$@"
fi
