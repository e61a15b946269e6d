#!/usr/bin/env bash
# loadgen's closed-loop throughput against the same runtime driven directly from
# Python, same model, sessions and threads, alternating runs in one go
# (docs/CONTRACT.md §8: loadgen may lose at most 3 %). The ratio is what to read; absolute figures move with the
# machine's load.
#
#   scripts/bench_runtime.sh onnxruntime|tf [SECONDS] [ROUNDS]
#
# Configurations: 2 workers x 1 intra thread, and 1 worker x 2 intra threads, batch 1.
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
rt=${1-}
secs=${2-10}
rounds=${3-3}
case $rt in
  onnxruntime) py=(scripts/bench_ort_python.py) profile=resnet50-onnxruntime ;;
  tf) py=(scripts/bench_tf_python.py) profile=resnet50-tf ;;
  *)
    echo "usage: scripts/bench_runtime.sh onnxruntime|tf [SECONDS] [ROUNDS]" >&2
    exit 2
    ;;
esac
scripts/setup.sh "$rt" >&2
cargo build --release --quiet
PY=$ROOT/.venv/bin/python

# The Python baseline with the same sessions/threads (each script's own flags).
python_bench() {
  case $rt in
    onnxruntime) "$PY" "${py[@]}" -S "$1" -I "$2" -B 1 -T "$secs" --warmup 2 ;;
    tf) "$PY" "${py[@]}" -S "$1" --intra "$2" -B 1 -T "$secs" ;;
  esac
}

tput() { sed -n 's/^Throughput: \([0-9.]*\) images\/sec.*/\1/p' | tail -1; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $rt; ${secs} s per run"
for cfg in "2 1" "1 2"; do
  read -r workers intra <<<"$cfg"
  ours=() theirs=()
  for _ in $(seq "$rounds"); do
    ours+=("$(target/release/loadgen throughput --profile "$profile" --threads "$workers" --intra-threads "$intra" \
      --time "$secs" --warmup 2 --quiet | tput)")
    theirs+=("$(python_bench "$workers" "$intra" | tput)")
  done
  python3 - "$workers" "$intra" "${ours[*]}" "${theirs[*]}" <<'PYEOF'
import statistics, sys
w, i, ours, theirs = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
mo, mt = statistics.median(ours), statistics.median(theirs)
print(f"{w} workers x {i} intra: loadgen {mo:.2f} images/s (runs {ours}), python {mt:.2f} images/s (runs {theirs}), ratio {mo / mt:.3f}")
PYEOF
done
