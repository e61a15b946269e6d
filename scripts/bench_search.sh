#!/usr/bin/env bash
# The truth benchmark (issue 8, SPEC §8): does the search find the answer queueing
# theory knows, run after run? For each queue and seed it runs `loadgen run` on the sim
# backend and prints the answer, its interval, the error against theory and the time.
#
#   scripts/bench_search.sh [SEEDS] [TIME]     (default: 5 seeds, --time 10)
#
# Queues (one server unless said):
#   M/M/1  exp:5ms,   exponential, T = 50 ms: theory mu - ln(100)/T = 107.9 qps
#   D/D/1  fixed:5ms, linear,      T = 20 ms: theory 200 qps (199 measurable)
# Acceptance (issue 8): M/M/1 median within ±5 %, every answer in [-12 %, +5 %], the
# interval covering theory in at least 4 of 5 seeds; D/D/1 in 190-201.
set -euo pipefail
root=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seeds=${1:-5}
time_s=${2:-10}
cargo build --release --quiet
bin=$root/target/release/loadgen
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run_queue() { # name law dist target theory
  local name=$1 law=$2 dist=$3 target=$4 theory=$5
  for seed in $(seq 1 "$seeds"); do
    local start end line
    start=$(date +%s)
    line=$("$bin" run --backend sim --sim-service-time "$law" --threads 1 --distributions "$dist" \
      --max-latency "$target" --no-accuracy --quiet --time "$time_s" --seed "$seed" \
      --output "$out/$name.$seed.json" 2>/dev/null | grep '^===RESULT')
    end=$(date +%s)
    python3 - "$name" "$seed" "$theory" "$((end - start))" "$line" <<'PY'
import re, sys
name, seed, theory, secs, line = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
q = re.search(r"qps=([0-9.]+|FAIL)", line).group(1)
lo, hi = map(float, re.search(r"interval=([0-9.]+)-([0-9.]+)", line).groups())
if q == "FAIL":
    print(f"{name} seed={seed} FAIL interval={lo}-{hi} time={secs}s")
else:
    v = float(q)
    cover = "covers" if lo <= theory <= hi else "MISSES"
    print(f"{name} seed={seed} qps={v:g} error={100 * (v / theory - 1):+.1f}% interval={lo:g}-{hi:g} ({cover} {theory}) time={secs}s")
PY
  done
}

run_queue "M/M/1" exp:5ms exponential 0.05 107.9
run_queue "D/D/1" fixed:5ms linear 0.02 200
