#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. formatting and clippy;
#   2. cargo test: unit and integration tests that need no runtime library;
#   3. scripts/setup.sh all: ONNX Runtime and TensorFlow from their pinned wheels in
#      .venv, and the project's ResNet-50 models; meanwhile a real Triton
#      (scripts/serve_triton.sh, its own .venv-triton) starts on TRITON_PORT (default
#      8730, and 8731/8732) for the kserve tests, and is stopped when this script ends;
#   4. the tests that need the runtimes or Triton (cargo test -- --ignored);
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

step "runtimes and models (scripts/setup.sh all); Triton starting (scripts/serve_triton.sh)"
triton_port=${TRITON_PORT:-8730}
triton_ready=$(mktemp)
scripts/serve_triton.sh --port "$triton_port" >"$triton_ready" &
triton_pid=$!
# shellcheck disable=SC2329 # called by the trap
stop_triton() {
  kill -TERM "$triton_pid" 2>/dev/null || true
  wait "$triton_pid" 2>/dev/null || true
  rm -f "$triton_ready"
}
trap stop_triton EXIT
scripts/setup.sh all
until grep -q '^ready: ' "$triton_ready"; do
  kill -0 "$triton_pid" 2>/dev/null ||
    { echo "FAIL: scripts/serve_triton.sh --port $triton_port stopped before it was ready (see above)" >&2; exit 1; }
  sleep 1
done
export TRITON_PORT=$triton_port
echo "ok: $(cat "$triton_ready")"

step "tests that need ONNX Runtime, TensorFlow or Triton (cargo test -- --ignored)"
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

step "run_local.sh kserve against the running Triton, short"
log=$(mktemp)
KSERVE_URL=http://127.0.0.1:$triton_port DATA_DIR=$data scripts/run_local.sh kserve cpu --time 1 \
  --max-latency 0.5 --distributions linear --count 16 --warmup 1 --min-queries 10 --quiet | tee "$log"
grep -q '^check_accuracy accuracy=' "$log" || { echo "FAIL: kserve: no check_accuracy line" >&2; exit 1; }
final=$(grep '^===FINAL_RESULT: ' "$log")
[[ $final =~ \'0\.5\':\ ([0-9.]+) ]] || { echo "FAIL: kserve: no positive qps in: $final" >&2; exit 1; }
[[ -s out/kserve.cpu/results.json ]] || { echo "FAIL: kserve: out/kserve.cpu/results.json missing" >&2; exit 1; }
echo "ok: run_local.sh kserve cpu: $final"
rm -f "$log"
expect_exit 2 scripts/run_local.sh kserve gpu
expect_exit 2 scripts/serve_triton.sh --port 0

printf '\nall checks passed\n'
