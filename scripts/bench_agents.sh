#!/usr/bin/env bash
# What coordination costs: the answer of `loadgen run` against `loadgen serve --backend
# null` (a server that answers at once, so the client is the limit) from one process,
# and through one agent on the same machine (`--agents`), alternating, same sitting.
# Prints each pair and the ratio of the medians (goal: the agent path at least 0.9 ×).
#
#   scripts/bench_agents.sh [ROUNDS] [STEP_SECONDS]      (default 3 rounds, 3 s steps)
#
# LOADGEN_BIN picks the binary (default: a release build, made if missing).
set -euo pipefail
ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
rounds=${1:-3}
secs=${2:-3}
die() { echo "bench_agents: $2" >&2; exit "$1"; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die 2 "ROUNDS must be a positive whole number"
[[ $secs =~ ^[1-9][0-9]*$ ]] || die 2 "STEP_SECONDS must be a positive whole number"
LOADGEN=${LOADGEN_BIN:-$ROOT/target/release/loadgen}
if [[ -z ${LOADGEN_BIN:-} ]]; then
  cargo build --release --quiet --bin loadgen >&2 || die 1 "cargo build --release failed"
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Start a process in the background and wait for its "listening" line on stderr.
start() {
  local log=$1; shift
  "$@" 2>"$log" &
  pids+=($!)
  for _ in $(seq 1 200); do
    grep -q "listening" "$log" 2>/dev/null && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || die 1 "$1 $2 did not start: $(cat "$log")"
    sleep 0.05
  done
  die 1 "$1 $2 printed no listening line"
}
start "$work/serve.log" "$LOADGEN" serve --backend null --threads 2 --listen 127.0.0.1:0
url=$(grep -o 'http://[0-9.]*:[0-9]*' "$work/serve.log" | head -1)
export LOADGEN_TOKEN=bench-agents
start "$work/agent.log" "$LOADGEN" agent --listen 127.0.0.1:0
agent=$(grep -o '127.0.0.1:[0-9]*' "$work/agent.log" | head -1)

answer() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["final_results"]["linear"]["0.05"])' "$1"
}
run() {
  local out=$1; shift
  "$LOADGEN" run --backend kserve --url "$url" --model-name null --max-latency 0.05 \
    --distributions linear --time "$secs" --no-accuracy --quiet --output "$out" "$@" \
    >/dev/null 2>"$out.log" || die 1 "loadgen run failed: $(tail -3 "$out.log")"
  answer "$out"
}
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "machine: $cpu, $(nproc) cores; server: loadgen serve --backend null --threads 2; ${secs} s steps"
ones=() viaagent=()
for r in $(seq 1 "$rounds"); do
  a=$(run "$work/one-$r.json" --seed "$r")
  b=$(run "$work/agent-$r.json" --seed "$r" --agents "$agent")
  ones+=("$a") viaagent+=("$b")
  echo "round $r: one process $a qps, one agent $b qps"
done
python3 - "${ones[*]}" "${viaagent[*]}" <<'PY'
import statistics, sys
one = [float(x) for x in sys.argv[1].split()]
agent = [float(x) for x in sys.argv[2].split()]
m1, m2 = statistics.median(one), statistics.median(agent)
print(f"median: one process {m1:g} qps, one agent {m2:g} qps, ratio {m2 / m1:.3f} (goal >= 0.9)")
PY
