#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. formatting and clippy;
#   2. cargo test: unit and integration tests that need no runtime library;
#   3. scripts/setup.sh all: ONNX Runtime and TensorFlow from their pinned wheels in
#      .venv, and the project's ResNet-50 models;
#   4. the tests that need the runtimes (cargo test -- --ignored);
#   5. golden checks on a generated ImageNet-layout set: preprocessing vs OpenCV,
#      top-1 vs Python onnxruntime, top-1 and softmax vs Python TensorFlow;
#   6. the scripts: shellcheck, hadolint, run_and_time.sh without Docker, and a short
#      run_local.sh per runtime.
#
#   scripts/test.sh            (from anywhere; a fresh clone took 27 minutes on 2 busy
#                               cores, plus downloading crates and ~400 MB of wheels)
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=$ROOT/.venv/bin/python
step() { printf '\n=== %s\n' "$*"; }

step "format and lint (cargo fmt --check, clippy -D warnings)"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings

step "tests without any runtime library (cargo test)"
cargo test --quiet

step "runtimes and models (scripts/setup.sh all)"
scripts/setup.sh all

step "tests that need ONNX Runtime and TensorFlow (cargo test -- --ignored)"
cargo test --quiet -- --ignored

step "golden checks on a generated ImageNet-layout set"
cargo build --release --quiet
data=$ROOT/data/testset
[[ -f $data/val_map.txt ]] || "$PY" scripts/make_dataset.py --out "$data"
golden=$ROOT/out/golden
rm -rf "$golden"
target/release/loadgen accuracy --profile resnet50-onnxruntime --dataset-path "$data" --dump "$golden/onnx" --quiet
"$PY" scripts/compare_preprocess.py --dataset "$data" --inputs "$golden/onnx/inputs.npy" \
  --names "$golden/onnx/names.txt" --layout NCHW --labels "$golden/onnx/labels.npy" --ref-out "$golden/onnx/ref.npy"
"$PY" scripts/golden_onnx.py --model models/resnet50_v1.onnx --ref "$golden/onnx/ref.npy" --top1 "$golden/onnx/top1.npy"
target/release/loadgen accuracy --profile resnet50-tf --dataset-path "$data" --dump "$golden/tf" --quiet
"$PY" scripts/compare_preprocess.py --dataset "$data" --inputs "$golden/tf/inputs.npy" \
  --names "$golden/tf/names.txt" --layout NHWC
"$PY" scripts/ref_tf.py --model models/resnet50_v1.pb --inputs "$golden/tf/inputs.npy" \
  --top1 "$golden/tf/top1.npy" --scores "$golden/tf/scores.npy"

step "scripts: shellcheck and hadolint"
scripts/lint.sh

step "run_and_time.sh / run_local.sh: usage, no Docker, no GPU exit 2"
expect_exit() {
  local want=$1
  shift
  local got=0
  "$@" >/dev/null 2>&1 || got=$?
  if [[ $got != "$want" ]]; then
    echo "FAIL: '$*' exited $got, expected $want" >&2
    return 1
  fi
  echo "ok: '$*' exits $want"
}
expect_exit 2 scripts/run_and_time.sh
expect_exit 2 scripts/run_and_time.sh tensorflow cpu
expect_exit 2 scripts/run_local.sh pytorch
if ! docker info >/dev/null 2>&1; then
  expect_exit 2 scripts/run_and_time.sh onnxruntime cpu
fi
if ! nvidia-smi -L >/dev/null 2>&1; then
  expect_exit 2 scripts/run_local.sh onnxruntime gpu
fi

step "run_local.sh end to end, short (both runtimes)"
for rt in onnxruntime tf; do
  log=$(mktemp)
  DATA_DIR=$data scripts/run_local.sh "$rt" cpu --time 1 --max-latency 0.5 --distributions linear \
    --count 16 --warmup 1 --min-queries 10 --quiet | tee "$log"
  grep -q '^check_accuracy accuracy=' "$log" || { echo "FAIL: $rt: no check_accuracy line" >&2; exit 1; }
  final=$(grep '^===FINAL_RESULT: ' "$log")
  [[ $final =~ \'0\.5\':\ ([0-9.]+) ]] || { echo "FAIL: $rt: no positive qps in: $final" >&2; exit 1; }
  profile=resnet50-$([[ $rt == tf ]] && echo tf || echo onnxruntime)
  [[ -s out/$profile.cpu/results.json && -s out/$profile.cpu/output.txt ]] ||
    { echo "FAIL: $rt: out/$profile.cpu/{results.json,output.txt} missing" >&2; exit 1; }
  echo "ok: run_local.sh $rt cpu: $final"
  rm -f "$log"
done

printf '\nall checks passed\n'
