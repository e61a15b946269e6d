#!/usr/bin/env bash
# loadgen's OpenVINO backend against the wheel's own benchmark_app, same model and
# machine, one after the other in one sitting (issue 43's goals: throughput at least
# 0.95 x benchmark_app's, sync median within 10 %), and what --op-profile's operations
# add up to against the measured time, per runtime (goal: within 20 %). The ratios are
# what to read; absolute figures move with the machine and its load.
#
#   scripts/bench_openvino.sh [SECONDS]
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
secs=${1-20}
scripts/setup.sh openvino >&2
scripts/setup.sh onnxruntime >&2
cargo build --release --quiet
BA=$ROOT/.venv/bin/benchmark_app
LG=$ROOT/target/release/loadgen
MODEL=models/resnet50_v1.onnx
BA_ARGS=(-m "$MODEL" -d CPU -shape "[1,3,224,224]" -t "$secs")

# benchmark_app's "Throughput: X FPS" and "Median: Y ms" lines.
ba_fps() { sed -n 's/.*Throughput: *\([0-9.]*\) FPS.*/\1/p' | tail -1; }
ba_median() { sed -n 's/.*Median: *\([0-9.]*\) ms.*/\1/p' | tail -1; }
lg_tput() { sed -n 's/^Throughput: \([0-9.]*\) images\/sec.*/\1/p' | tail -1; }
lg_median() { sed -n 's/^Latency: .*median=\([0-9.]*\),.*/\1/p' | tail -1; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.3f}')" "$1" "$2"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); ${secs} s per run"

theirs=$("$BA" "${BA_ARGS[@]}" -hint throughput 2>&1 | ba_fps)
ours=$("$LG" throughput --backend openvino --threads 2 --time "$secs" --quiet | lg_tput)
ours_async=$("$LG" throughput --backend openvino --threads 1 --requests 2 --time "$secs" --quiet | lg_tput)
echo "throughput: benchmark_app -hint throughput ${theirs} FPS; loadgen --threads 2 ${ours} images/s (ratio $(ratio "$ours" "$theirs")); loadgen --threads 1 --requests 2 ${ours_async} images/s (ratio $(ratio "$ours_async" "$theirs"))"

theirs=$("$BA" "${BA_ARGS[@]}" -hint latency -api sync 2>&1 | ba_median)
ours=$("$LG" latency --backend openvino --time "$secs" --quiet | lg_median)
ours_ms=$(python3 -c "import sys; print(f'{float(sys.argv[1]) * 1e3:.2f}')" "$ours")
echo "sync latency: benchmark_app median ${theirs} ms; loadgen median ${ours_ms} ms (ratio $(ratio "$ours_ms" "$theirs"))"

for rt in openvino onnxruntime; do
  for cmd in latency throughput; do
    line=$("$LG" "$cmd" --backend "$rt" --time "$((secs / 4 + 1))" --op-profile --quiet 2>&1 >/dev/null | grep '^op profile:')
    echo "op profile, $rt $cmd: ${line#op profile: }"
  done
done
