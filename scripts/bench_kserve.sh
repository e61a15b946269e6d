#!/usr/bin/env bash
# The kserve client's own ceiling, side by side with a peer users trust (oha), against
# a fast local KServe v2 server (`loadgen serve --backend null`: model `null`, one
# worker that answers at once, its answer one FP32 per item), both sending the same
# HTTP request (binary tensor extension, one FP32 [1,16] tensor) at the same fixed
# open-loop rates over the same number of
# connections, latency corrected for coordinated omission on both sides (oha
# --latency-correction; loadgen always times from the planned send).
#
#   scripts/bench_kserve.sh [--rates 1000,2000,...] [--time S] [--connections C]
#
# Prints one table row per rate (achieved rate and p99 of both) and then the highest
# rate loadgen finds with p99 under 10 ms (`loadgen run --max-latency 0.01`). oha comes
# from PATH, else is built once into .tools/ (cargo install oha). Client, peer and
# server share this machine's cores: the figures are for this machine only.
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

rates=1000,2000,4000,8000,12000,16000
secs=10
conns=64
port=${BENCH_PORT:-8760}
while [[ $# -gt 0 ]]; do
  case $1 in
    --rates) rates=${2-}; shift 2 ;;
    --time) secs=${2-}; shift 2 ;;
    --connections) conns=${2-}; shift 2 ;;
    *) die 2 "unknown argument '$1'; usage: scripts/bench_kserve.sh [--rates R1,R2] [--time S] [--connections C]" ;;
  esac
done
[[ $rates =~ ^[0-9]+(,[0-9]+)*$ ]] || die 2 "--rates '$rates' must be whole queries/s, comma separated"
[[ $secs =~ ^[0-9]+$ && $secs -gt 0 ]] || die 2 "--time '$secs' must be whole seconds"
[[ $conns =~ ^[0-9]+$ && $conns -gt 0 ]] || die 2 "--connections '$conns' must be a positive number"

cd "$ROOT"
note "building loadgen (cargo build --release; the server is loadgen serve)..."
cargo build --release --quiet --bin loadgen -p loadgen >&2 || die 1 "cargo build --release failed"
loadgen=$ROOT/target/release/loadgen
oha=$(command -v oha || true)
if [[ -z $oha ]]; then
  oha=$ROOT/.tools/bin/oha
  if [[ ! -x $oha ]]; then
    note "building oha into .tools/ (cargo install --locked oha; once, a few minutes)"
    cargo install --quiet --locked --root "$ROOT/.tools" oha >&2 || die 1 "cargo install oha failed"
  fi
fi

"$loadgen" serve --backend null --shape 16 --threads 1 --listen "127.0.0.1:$port" 2>/tmp/bench_kserve.$$ &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f /tmp/bench_kserve.$$ "$body"' EXIT
body=$(mktemp)
until grep -q '^loadgen serve: listening on ' /tmp/bench_kserve.$$; do
  kill -0 "$server" 2>/dev/null || die 1 "loadgen serve did not start: $(cat /tmp/bench_kserve.$$) (port $port busy? set BENCH_PORT)"
  sleep 0.2
done
url=http://127.0.0.1:$port

# The request loadgen sends (binary tensor extension), written once for oha.
header='{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","parameters":{"binary_data_size":64}}],"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}]}'
{
  printf '%s' "$header"
  head -c 64 /dev/zero
} >"$body"

oha_json=(--output-format json)
"$oha" --help 2>/dev/null | grep -q -- '--output-format' || oha_json=(--json)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo "machine: $cpu, $(nproc) cores; server: loadgen serve --backend null (1 worker); ${secs} s per rate, $conns connections"
printf '%8s | %12s %10s | %12s %10s %12s\n' offered oha_qps oha_p99_ms loadgen_qps lg_p99_ms lg_late_p99
for r in ${rates//,/ }; do
  o=$("$oha" -z "${secs}s" -q "$r" -c "$conns" --latency-correction --no-tui "${oha_json[@]}" \
    -m POST -H "Inference-Header-Content-Length: ${#header}" -H 'Content-Type: application/octet-stream' \
    -D "$body" "$url/v2/models/null/infer" 2>/dev/null || true)
  oq=$(printf '%s' "$o" | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["summary"]; print("%.0f %.2f %d" % (s["requestsPerSec"]*s["successRate"], d["latencyPercentiles"]["p99"]*1e3, sum(d.get("errorDistribution",{}).values())))' 2>/dev/null || echo "? ? ?")
  l=$("$loadgen" fixed --backend kserve --url "$url" --model-name null --qps "$r" --time "$secs" \
    --distribution linear --connections "$conns" --warmup 1 --quiet --json 2>/dev/null | tail -n 1)
  lq=$(printf '%s' "$l" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f %.2f %.3f %d" % (d["qps"], d["percentiles"]["99.0"]*1e3, d["lateness"]["p99"]*1e3, d["errors"]))' 2>/dev/null || echo "? ? ? ?")
  read -r oqps op99 oerr <<<"$oq"
  read -r lqps lp99 llate lerr <<<"$lq"
  printf '%8s | %12s %10s | %12s %10s %10sms%s\n' "$r" "$oqps" "$op99" "$lqps" "$lp99" "$llate" \
    "$([[ $oerr != 0 || $lerr != 0 ]] && echo "  (errors: oha $oerr, loadgen $lerr)")"
done

echo "highest rate loadgen sustains with p99 under 10 ms (loadgen run --max-latency 0.01, linear):"
mkdir -p out
"$loadgen" run --backend kserve --url "$url" --model-name null --max-latency 0.01 \
  --distributions linear --time "$secs" --connections "$conns" --quiet --output out/bench_kserve.json \
  2>out/bench_kserve.stderr | grep -E '^===RESULT' || true
grep -E 'warning' out/bench_kserve.stderr || true
echo "(every step's verdict: out/bench_kserve.stderr; the record: out/bench_kserve.json)"
