#!/usr/bin/env bash
# Keycloak, the identity provider tests/keycloak.rs runs against (OpenID Connect discovery, its
# JWKS, password and refresh_token grants, realm roles, key providers added at run time). Its
# Quarkus distribution (org.keycloak:keycloak-quarkus-dist, a 177 MB zip) is fetched once with
# Maven into $KWB_CACHE/keycloak-<version>/ and run with `bin/kc.sh start-dev` on Java 17 or
# newer: development mode, an H2 database in files, one node (local caches, no cluster ports).
#
#   scripts/keycloak/keycloak.sh ensure
#        fetch and unpack it (once: 12 s with an empty ~/.m2, 188 MB unpacked), then one first
#        start and stop (once, 37-52 s on 2 cores): Keycloak builds its server image for the
#        development profile and creates its database (schema, master realm, the admin user
#        admin/admin); later starts begin from a copy of that database instead of creating it
#        again (a start takes 6-14 s instead of 30-50 s). Prints nothing.
#   scripts/keycloak/keycloak.sh start DIR PORT [--https CERT KEY] [--owner PID]
#        run one Keycloak on 127.0.0.1:PORT (HTTP; with --https, HTTPS with that PEM certificate
#        chain and key, and HTTP on a free port), its home, database and log in DIR, pid in
#        DIR/keycloak.pid; returns once its master realm's discovery document answers and prints
#        its base URL (http://127.0.0.1:PORT or https://127.0.0.1:PORT). A realm's issuer is
#        that URL + /realms/<name>. The only other port it opens is the one H2 picks for its
#        server (AUTO_SERVER), also on 127.0.0.1; the management interface stays off (no health
#        or metrics), and so do cluster ports (local caches in development mode).
#        With --owner, Keycloak is stopped when process PID exits.
#   scripts/keycloak/keycloak.sh stop DIR
#        SIGTERM, SIGKILL after 30 s
#   scripts/keycloak/keycloak.sh java
#        the java it runs with (or why there is none)
#
# Source it for the same as functions: keycloak_ensure, keycloak_start DIR PORT [CERT KEY] (sets
# KEYCLOAK_PID and KEYCLOAK_URL), keycloak_stop DIR.
# The master realm's administrator is admin/admin (KEYCLOAK_ADMIN_USER, KEYCLOAK_ADMIN_PASSWORD
# below; created at the first start from KC_BOOTSTRAP_ADMIN_USERNAME/PASSWORD): a test
# instance, on loopback only.
# Settings: KWB_KEYCLOAK_JAVA (a java binary, 17 or newer), KWB_KEYCLOAK_JAVA_OPTS,
# KWB_KEYCLOAK_START_TIMEOUT (seconds, 120; the first start in `ensure` gets 600).

# shellcheck source=scripts/lib/broker.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/broker.sh"

KEYCLOAK_VERSION=26.7.3
KEYCLOAK_ARTIFACT="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip"
KEYCLOAK_ADMIN_USER="admin"
KEYCLOAK_ADMIN_PASSWORD="admin"
keycloak_home="$KWB_CACHE/keycloak-$KEYCLOAK_VERSION"
# kc.sh's own options minus its collector: the serial collector and C1 alone (no C2) start it in
# two thirds of the time with 40 % less memory (measured on 2 cores, Java 17: 9.3 s instead of
# 12.6 s, 320 MB instead of 560 MB resident; Java 25: 6.4 s instead of 9.3 s). A test realm sees
# a few hundred requests, where C2 would never pay off. (An AOT cache on Java 25 — 172 MB, a
# 20 s training exit — gave 5.4-7.2 s against 6.4 s: not used.)
KWB_KEYCLOAK_JAVA_OPTS="${KWB_KEYCLOAK_JAVA_OPTS:--Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:MetaspaceSize=96M -XX:MaxMetaspaceSize=256m -XX:+ExitOnOutOfMemoryError -Dfile.encoding=UTF-8 -Dstdout.encoding=UTF-8 -Dstderr.encoding=UTF-8 -Djava.security.egd=file:/dev/urandom}"
# Build options (kc.sh persists them in the server image it builds at the first start): every
# start passes the same, so no start rebuilds the shared image. Changing them means removing
# $keycloak_home.
KEYCLOAK_BUILD_OPTIONS=(--db=dev-file)

# keycloak_java: prints a java binary of version 17 or newer: $KWB_KEYCLOAK_JAVA, else the
# newest of $JAVA_HOME, `java` on PATH and the JVMs under /usr/lib/jvm (a newer one starts
# Keycloak faster: 6.4 s on Java 25, 9.3 s on Java 17). Without one, says what to install and
# returns 1.
keycloak_java() {
  local candidate seen=() major best="" best_major=0
  if [ -n "${KWB_KEYCLOAK_JAVA:-}" ]; then
    major="$(java_major "$KWB_KEYCLOAK_JAVA")"
    if [ "${major:-0}" -ge 17 ] 2>/dev/null; then
      echo "$KWB_KEYCLOAK_JAVA"
      return 0
    fi
    echo "KWB_KEYCLOAK_JAVA=$KWB_KEYCLOAK_JAVA is not a java of version 17 or newer (${major:-does not run})" >&2
    return 1
  fi
  local candidates=()
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
  if [ "$best_major" -ge 17 ]; then
    echo "$best"
    return 0
  fi
  if [ -n "$best" ]; then
    echo "Keycloak $KEYCLOAK_VERSION needs Java 17 or newer; the newest java here is $best (Java $best_major)." >&2
  else
    echo "Keycloak $KEYCLOAK_VERSION needs Java 17 or newer; there is no java here." >&2
  fi
  echo "Install a JDK or JRE 17+ (Debian: apt-get install openjdk-17-jre-headless), or point KWB_KEYCLOAK_JAVA at one." >&2
  return 1
}

# keycloak_ensure: the distribution unpacked in $keycloak_home/dist, then its first start (the
# server image and the seed database in $keycloak_home/seed). Markers are written after each
# complete step: a half one is redone. Concurrent callers (parallel tests) wait for each other.
keycloak_ensure() {
  keycloak_java >/dev/null || return 1
  if [ -f "$keycloak_home/dist/complete" ] && [ -f "$keycloak_home/seed/complete" ]; then
    return 0
  fi
  mkdir -p "$keycloak_home"
  (
    flock 9
    if [ ! -f "$keycloak_home/dist/complete" ]; then
      rm -rf "$keycloak_home/seed"
      keycloak_download || exit 1
    fi
    if [ ! -f "$keycloak_home/seed/complete" ]; then
      keycloak_make_seed || exit 1
    fi
  ) 9>"$keycloak_home.lock"
}

keycloak_download() {
  ensure_mvn "Keycloak" || return 1
  local started="$EPOCHREALTIME" partial="$keycloak_home/download.partial"
  echo "==> fetching Keycloak $KEYCLOAK_VERSION with Maven into $keycloak_home (once)" >&2
  rm -rf "$partial" "$keycloak_home/dist" "$keycloak_home/dist.partial"
  # dependency:copy of the one artifact (no transitive dependencies: the zip holds them all).
  if ! mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="$KEYCLOAK_ARTIFACT" -DoutputDirectory="$partial" \
    >"$keycloak_home/maven.log" 2>&1; then
    echo "fetching Keycloak $KEYCLOAK_VERSION failed; the end of $keycloak_home/maven.log:" >&2
    tail -n 30 "$keycloak_home/maven.log" >&2
    return 1
  fi
  local fetched="$EPOCHREALTIME" zip
  zip="$(ls "$partial"/*.zip)"
  rm -rf "$keycloak_home/unpack.partial"
  mkdir -p "$keycloak_home/unpack.partial"
  # unzip keeps the files' modes (kc.sh executable); Python's zipfile is the fallback.
  if command -v unzip >/dev/null 2>&1; then
    unzip -q "$zip" -d "$keycloak_home/unpack.partial"
  else
    python3 -m zipfile -e "$zip" "$keycloak_home/unpack.partial" &&
      chmod +x "$keycloak_home/unpack.partial/keycloak-$KEYCLOAK_VERSION"/bin/*.sh
  fi || { echo "unpacking $zip failed" >&2; return 1; }
  mv "$keycloak_home/unpack.partial/keycloak-$KEYCLOAK_VERSION" "$keycloak_home/dist.partial" &&
    rmdir "$keycloak_home/unpack.partial" || return 1
  [ -x "$keycloak_home/dist.partial/bin/kc.sh" ] ||
    { echo "$zip has no keycloak-$KEYCLOAK_VERSION/bin/kc.sh" >&2; return 1; }
  # The zip stays in Maven's own repository (~/.m2); the cache keeps the unpacked copy only.
  rm -rf "$partial"
  touch "$keycloak_home/dist.partial/complete"
  mv "$keycloak_home/dist.partial" "$keycloak_home/dist"
  echo "==> Keycloak $KEYCLOAK_VERSION fetched in $(awk -v a="$started" -v b="$fetched" 'BEGIN { printf "%.1f", b - a }') s and unpacked in $(elapsed_since "$fetched") s ($(du -sh "$keycloak_home/dist" | cut -f1))" >&2
}

# keycloak_make_seed: the first start, in a temporary instance: kc.sh builds the server image
# for the development profile into the shared dist/lib (Quarkus' augmentation: about 40 s), then
# Keycloak creates its database (schema and master realm, with the admin user: about 30 s). Its
# database, once Keycloak has stopped, is the seed every later start copies.
keycloak_make_seed() {
  local dir started="$EPOCHREALTIME"
  dir="$(mktemp -d -t kwb-keycloak-seed-XXXXXX)"
  echo "==> Keycloak's first start: building its server image and creating its database (once, about 40-60 s)" >&2
  rm -rf "$keycloak_home/seed" "$keycloak_home/seed.partial"
  KWB_KEYCLOAK_SEEDING=1 KWB_KEYCLOAK_START_TIMEOUT=600 \
    keycloak_start "$dir" "$(free_port)" >/dev/null || return 1
  keycloak_stop "$dir"
  if [ ! -s "$dir/home/data/h2/keycloakdb.mv.db" ]; then
    echo "Keycloak left no database in $dir/home/data/h2; its log: $dir/keycloak.log" >&2
    return 1
  fi
  mkdir -p "$keycloak_home/seed.partial"
  cp "$dir/home/data/h2/keycloakdb.mv.db" "$keycloak_home/seed.partial/"
  touch "$keycloak_home/seed.partial/complete"
  mv "$keycloak_home/seed.partial" "$keycloak_home/seed"
  echo "==> Keycloak's first start done in $(elapsed_since "$started") s" >&2
  rm -rf "$dir"
}

# keycloak_instance DIR: DIR/home, a Keycloak home of its own that shares the distribution:
# kc.sh copied (it takes its home from its own path), lib, conf, providers and themes linked,
# and a data directory (database, transaction logs, temporary files) of its own, so that several
# instances run side by side. The database starts as a copy of the seed (none while seeding).
keycloak_instance() {
  local home="$1/home" part
  rm -rf "$home"
  mkdir -p "$home/bin" "$home/data/h2"
  cp "$keycloak_home/dist/bin/kc.sh" "$home/bin/"
  for part in lib conf providers themes version.txt; do
    ln -s "$keycloak_home/dist/$part" "$home/$part"
  done
  if [ -z "${KWB_KEYCLOAK_SEEDING:-}" ]; then
    cp "$keycloak_home/seed/keycloakdb.mv.db" "$home/data/h2/"
  fi
}

# keycloak_status URL: the HTTP status of the master realm's discovery document (000: no
# answer). Plain HTTP over bash's own /dev/tcp; HTTPS with curl (any certificate: this only
# checks that Keycloak answers).
keycloak_status() {
  local url="$1" port status=""
  port="${url##*:}"
  if [[ "$url" == https://* ]]; then
    status="$(curl -sk -m 5 -o /dev/null -w '%{http_code}' "$url/realms/master/.well-known/openid-configuration" 2>/dev/null)"
  else
    # A subshell: the descriptor and the read's timeout stay in there.
    status="$(
      exec 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
      printf 'GET /realms/master/.well-known/openid-configuration HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$port" >&3
      read -r -t 5 _ code _ <&3 && echo "$code"
    )"
  fi
  echo "${status:-000}"
}

# keycloak_start DIR PORT [CERT KEY]: see the header. Each start begins from the seed: realms
# made by an earlier start in DIR are gone.
keycloak_start() {
  local dir="$1" port="$2" cert="${3:-}" key="${4:-}" started="$EPOCHREALTIME" java deadline status
  local timeout="${KWB_KEYCLOAK_START_TIMEOUT:-120}" args=()
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  java="$(keycloak_java)" || return 1
  [ -f "$keycloak_home/dist/complete" ] || { echo "Keycloak is not installed: run keycloak_ensure first" >&2; return 1; }
  [ -n "${KWB_KEYCLOAK_SEEDING:-}" ] || [ -f "$keycloak_home/seed/complete" ] ||
    { echo "Keycloak has not had its first start: run keycloak_ensure first" >&2; return 1; }
  keycloak_instance "$dir"
  mkdir -p "$dir/home/data/tmp"
  args=(start-dev "${KEYCLOAK_BUILD_OPTIONS[@]}" --http-host=127.0.0.1)
  if [ -n "$cert" ]; then
    # Development mode listens on HTTP whatever --http-enabled says (on 8080 by default): on a
    # free port then, so that two can run.
    args+=(--http-port="$(free_port)" --https-port="$port"
      --https-certificate-file="$(readlink -f "$cert")" --https-certificate-key-file="$(readlink -f "$key")")
    KEYCLOAK_URL="https://127.0.0.1:$port"
  else
    args+=(--http-port="$port")
    KEYCLOAK_URL="http://127.0.0.1:$port"
  fi
  # -Dkwb.keycloak.dir marks the processes (kc.sh and its java) as this DIR's (keycloak_pid).
  # kc.sh runs java as its child and forwards SIGTERM to it.
  (cd "$dir" && JAVA="$java" JAVA_OPTS="$KWB_KEYCLOAK_JAVA_OPTS" \
    KC_BOOTSTRAP_ADMIN_USERNAME="$KEYCLOAK_ADMIN_USER" KC_BOOTSTRAP_ADMIN_PASSWORD="$KEYCLOAK_ADMIN_PASSWORD" \
    exec "$dir/home/bin/kc.sh" "${args[@]}" -Dkwb.keycloak.dir="$dir" -Djava.io.tmpdir="$dir/home/data/tmp") \
    </dev/null >>"$dir/keycloak.log" 2>&1 &
  KEYCLOAK_PID=$!
  echo "$KEYCLOAK_PID" >"$dir/keycloak.pid"
  deadline=$((SECONDS + timeout))
  while :; do
    status="$(keycloak_status "$KEYCLOAK_URL")"
    [ "$status" = 200 ] && break
    if ! pid_alive "$KEYCLOAK_PID"; then
      echo "Keycloak exited at start; the end of its log ($dir/keycloak.log):" >&2
      tail -n 40 "$dir/keycloak.log" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "Keycloak did not answer on $KEYCLOAK_URL/realms/master/.well-known/openid-configuration within $timeout s (last status: $status); the end of its log ($dir/keycloak.log):" >&2
      tail -n 40 "$dir/keycloak.log" >&2
      keycloak_stop "$dir"
      return 1
    fi
    sleep 0.1
  done
  echo "==> Keycloak $KEYCLOAK_VERSION ready at $KEYCLOAK_URL in $(elapsed_since "$started") s (log: $dir/keycloak.log)" >&2
  echo "$KEYCLOAK_URL"
}

# keycloak_pid DIR: the pid in DIR/keycloak.pid (kc.sh) when that process still runs and is the
# Keycloak of DIR (not another process that was given the same pid since).
keycloak_pid() {
  local dir pid
  dir="$(cd "$1" 2>/dev/null && pwd)" || return 1
  pid="$(cat "$dir/keycloak.pid" 2>/dev/null)" || return 1
  pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-Dkwb.keycloak.dir=$dir " && echo "$pid"
}

# keycloak_stop_pid PID: SIGTERM to kc.sh (which hands it to its java and waits for it), SIGKILL
# to both after 30 s.
keycloak_stop_pid() {
  local pid="$1" deadline=$((SECONDS + 30)) children
  children="$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)"
  kill -TERM "$pid" 2>/dev/null || return 0
  while pid_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "Keycloak (pid $pid) still running 30 s after SIGTERM: killing it" >&2
      # shellcheck disable=SC2086 # one pid per word
      kill -KILL "$pid" $children 2>/dev/null || true
      break
    fi
    sleep 0.05
  done
  wait "$pid" 2>/dev/null || true
}

keycloak_stop() {
  local pid
  if pid="$(keycloak_pid "$1")"; then
    keycloak_stop_pid "$pid"
  fi
}

# keycloak_watch_owner OWNER DIR: stops the Keycloak of DIR when process OWNER exits (a test
# binary that dies without cleaning up). Polls once a second.
keycloak_watch_owner() {
  local owner="$1" dir="$2" keycloak
  keycloak="$(keycloak_pid "$dir")" || return 0
  (
    while pid_alive "$owner" && pid_alive "$keycloak"; do sleep 1; done
    if pid_alive "$keycloak"; then
      echo "[owner $owner exited: stopping Keycloak]" >>"$dir/keycloak.log"
      keycloak_stop_pid "$keycloak"
    fi
  ) </dev/null >/dev/null 2>&1 &
  disown
}

keycloak_main() {
  set -euo pipefail
  local command="${1:-}" dir port owner="" cert="" key="" pid
  [ $# -gt 0 ] && shift
  case "$command" in
    ensure) [ $# -eq 0 ] || keycloak_usage; keycloak_ensure ;;
    java) [ $# -eq 0 ] || keycloak_usage; keycloak_java ;;
    start)
      [ $# -ge 2 ] || keycloak_usage
      dir="$1" port="$2"
      shift 2
      while [ $# -gt 0 ]; do
        case "$1" in
          --https) [ $# -ge 3 ] || keycloak_usage; cert="$2" key="$3"; shift 3 ;;
          --owner) [ $# -ge 2 ] || keycloak_usage; owner="$2"; shift 2 ;;
          *) keycloak_usage ;;
        esac
      done
      keycloak_ensure
      mkdir -p "$dir"
      if pid="$(keycloak_pid "$dir")"; then
        echo "a Keycloak (pid $pid) already runs in $dir" >&2
        exit 1
      fi
      keycloak_start "$dir" "$port" "$cert" "$key"
      [ -z "$owner" ] || keycloak_watch_owner "$owner" "$dir"
      ;;
    stop) [ $# -eq 1 ] || keycloak_usage; keycloak_stop "$1" ;;
    *) keycloak_usage ;;
  esac
}

keycloak_usage() {
  sed -n '2,33p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  keycloak_main "$@"
fi
