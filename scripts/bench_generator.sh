#!/usr/bin/env bash
# The load generator's own limits (docs/CONTRACT.md §8), on the `null` and `sim` backends:
#   1. null, linear, 1 M queries/s offered for 5 s: completed queries per second;
#   2. sim fixed:1ms at 10 k queries/s with 16 servers: issue lateness p50/p99/max;
#   3. null at 1 M queries/s for 10 s (10 M queries): resident memory sampled every
#      second must stay flat (per-query state is O(1)).
#
#   scripts/bench_generator.sh            (builds the release binary first)
#
# Prints one line per figure; docs/BENCHMARKS.md's table is copied from it.
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
cargo build --release --quiet
bin=target/release/loadgen

field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().splitlines()[-1]); print($1)"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

out=$("$bin" fixed --backend null --qps 1000000 --distribution linear --time 5 --warmup 0 --quiet --json)
echo "null 1M qps offered: completed $(echo "$out" | field "f\"{d['count']} queries, {d['qps']:.0f} queries/s, errors {d['errors']}\"")"

out=$("$bin" fixed --backend sim --sim-service-time fixed:1ms --threads 16 --qps 10000 --distribution linear --time 5 --warmup 0 --quiet --json)
echo "sim fixed:1ms 10k qps 16 threads: $(echo "$out" | field "f\"achieved {d['qps']:.0f} q/s, lateness p50 {d['lateness']['p50']*1e6:.1f} us, p99 {d['lateness']['p99']*1e6:.1f} us, max {d['lateness']['max']*1e6:.0f} us\"")"

log=$(mktemp)
"$bin" fixed --backend null --qps 1000000 --distribution linear --time 10 --warmup 0 --quiet --json >"$log" &
pid=$!
rss=()
while kill -0 "$pid" 2>/dev/null; do
  kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  [[ -n $kb ]] && rss+=("$kb")
  sleep 1
done
wait "$pid"
echo "null 10M queries: completed $(field "d['count']" <"$log"), RSS each second (KiB): ${rss[*]}"
rm -f "$log"
