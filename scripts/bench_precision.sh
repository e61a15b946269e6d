#!/usr/bin/env bash
# fp32 against int8 (issue 44) on ONNX Runtime and OpenVINO, in one sitting: closed-loop
# throughput, the linear 0.1-s answer of `loadgen run`, and the int8 model's agreement
# with fp32 on a generated ImageNet-layout set (the project's model has random weights:
# agreement, not accuracy, is what a precision costs). Also OpenVINO's bf16 where the
# CPU has it. The ratios within one runtime are what to read.
#
#   scripts/bench_precision.sh [SECONDS]
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
secs=${1-10}
scripts/setup.sh openvino >&2
cargo build --release --quiet
LG=$ROOT/target/release/loadgen
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
.venv/bin/python scripts/make_dataset.py --out "$data/set" --count 64 >/dev/null

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); ${secs} s per step"
for rt in onnxruntime openvino; do
  precisions="fp32 int8"
  [[ $rt == openvino ]] && precisions="fp32 int8 bf16"
  for p in $precisions; do
    tput=$("$LG" throughput --backend "$rt" --precision "$p" --threads 2 --time "$secs" --quiet |
      sed -n 's/^Throughput: \([0-9.]*\) images\/sec.*/\1/p')
    out="$data/$rt-$p.json"
    "$LG" run --backend "$rt" --precision "$p" --dataset-path "$data/set" --count 64 \
      --distributions linear --max-latency 0.1 --time "$secs" --quiet --output "$out" >/dev/null 2>&1 || true
    python3 - "$rt" "$p" "$tput" "$out" <<'PYEOF'
import json, sys
rt, p, tput, path = sys.argv[1:]
try:
    d = json.load(open(path))
except Exception as e:
    print(f"{rt} {p}: throughput {tput} images/s; run failed ({e})")
    sys.exit(0)
ans = d.get("final_results", {}).get("linear", {}).get("0.1")
agree = d.get("check_accuracy", {}).get("fp32_agreement")
info = d.get("runtime_info", {})
hint = info.get("compiled_model", {}).get("INFERENCE_PRECISION_HINT", "-")
a = f"top-1 agreement {agree['top1']} %, top-5 overlap {agree['top5_overlap']} %" if agree else "reference"
print(f"{rt} {p}: throughput {tput} images/s; linear 0.1 answer {ans} qps; {a}; OpenVINO hint {hint}")
PYEOF
  done
done
