#!/usr/bin/env bash
# bench/callgrind-keyed.sh [LABEL]: the keyed consumer stage's instructions per record, load-free
# (no Kafka, no sockets, no writer tasks): src/outbound/bench.rs routes keyed records to 10,000
# sessions each on its own key, over 8 partitions, under valgrind's callgrind, once with N1 and
# once with N2 records; (I(N2) - I(N1)) / (N2 - N1) is what one record costs the consumer
# stage (decode, key, the shared delivery, the hub's lookup, the session's queue) with the
# set-up (10,000 sessions subscribed) taken out. BIN=path measures a test binary built before. Instruction counts do not depend on what else
# the machine runs. Prints one line; writes target/bench/callgrind-keyed-LABEL/.
set -euo pipefail
cd "$(dirname "$0")/.."
label="${1:-head}" n1="${N1:-10000}" n2="${N2:-30000}"
out="${CARGO_TARGET_DIR:-target}/bench/callgrind-keyed-$label"
rm -rf "$out"; mkdir -p "$out"
# The lib's test binary, release profile, as `cargo test --release --lib` builds it (or BIN,
# a copy kept from another commit, for an A/B).
bin="${BIN:-}"
[ -n "$bin" ] || bin="$(cargo test --release --lib --no-run --message-format=json 2>/dev/null |
  jq -r 'select(.profile.test == true and .target.kind == ["lib"]) | .executable' | tail -1)"
[ -x "$bin" ] || { echo "could not build the lib's test binary" >&2; exit 1; }
count() { # count N: instructions of the whole test process routing N records
  KWB_BENCH_N="$1" valgrind --tool=callgrind --callgrind-out-file="$out/cg-$1.out" \
    "$bin" --exact outbound::bench::keyed_records_through_the_consumer_stage --ignored --nocapture \
    >"$out/run-$1.log" 2>&1
  callgrind_annotate "$out/cg-$1.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'
}
i1="$(count "$n1")"
i2="$(count "$n2")"
echo "$label: keyed consumer stage, $(( (i2 - i1) / (n2 - n1) )) instructions per record ($n1 → $n2 records: $i1 → $i2)"
