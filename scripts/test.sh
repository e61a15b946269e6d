#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Each stage prints its wall
# time, and a table of all of them ends the run (also when a stage fails):
#   setup     (in the background from the start) scripts/setup.sh all: ONNX Runtime,
#             TensorFlow and OpenVINO from their pinned wheels in .venv, and the project's ResNet-50
#             models, then scripts/setup_checks.sh: the PyPI hdrhistogram package, and
#             Debian's chromium with tests/browser's npm packages for the report's
#             browser test, .venv-k8s (kubernetes-validate) and .venv-kfp (the
#             Kubeflow Pipelines SDK) for the deploy/ checks; once the ONNX model is there, a real Triton
#             (scripts/serve_triton.sh, its own .venv-triton) starts on TRITON_PORT
#             (default 8730, and 8731/8732) for the kserve tests, stopped at the end;
#   lint      the layering rule (scripts/check_layers.py), formatting;
#   build     every test target and binary, in one profile (`ci`, see Cargo.toml) that
#             the later stages share (no second, release build), with clippy's lints
#             (-D warnings) on the workspace's crates as they compile;
#   test      the tests that need no runtime library (cargo nextest, two at a time,
#             the real-time CLI runs one at a time: .config/nextest.toml), while the
#             setup finishes;
#   runtimes  wait for the setup and Triton;
#   ignored   the tests that need ONNX Runtime, TensorFlow, OpenVINO, Triton, Chromium, the
#             PyPI hdrhistogram, kubernetes-validate or kfp (--run-ignored only);
#   golden    golden checks on a generated ImageNet-layout set: preprocessing vs
#             OpenCV, top-1 vs Python onnxruntime, top-1 and softmax vs Python TF;
#   scripts   shellcheck, hadolint, run_and_time.sh without Docker, a short
#             run_local.sh per runtime and against the running Triton.
#
#   scripts/test.sh            (from anywhere)
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=$ROOT/.venv/bin/python
# The one build profile of the suite, and the loadgen it builds.
PROFILE=ci
LOADGEN=$ROOT/target/$PROFILE/loadgen
export LOADGEN_BIN=$LOADGEN

# Stage timing: `stage NAME WHAT` ends the previous stage and starts the next.
now() { date +%s.%N; }
t_start=$(now)
stage_name="" stage_t0=""
times=()
end_stage() {
  [[ -n $stage_name ]] || return 0
  local s
  s=$(awk -v a="$stage_t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')
  times+=("$stage_name $s")
  printf '=== %s: %s s\n' "$stage_name" "$s"
  stage_name=""
}
stage() {
  end_stage
  stage_name=$1
  stage_t0=$(now)
  printf '\n=== %s: %s\n' "$1" "$2"
}
summary() {
  end_stage
  printf '\n=== stage times (wall seconds)\n'
  local t name secs
  for t in "${times[@]}"; do
    read -r name secs <<<"$t"
    printf '  %-10s %6s\n' "$name" "$secs"
  done
  printf '  %-10s %6s\n' total "$(awk -v a="$t_start" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')"
}

# The slowest tests of the nextest pass that just ended, from its JUnit report
# (.config/nextest.toml): where the stage's time went.
slowest() {
  python3 - "$ROOT/target/nextest/default/junit.xml" <<'PY' || true
import sys, xml.etree.ElementTree as ET
cases = [(float(c.get("time", 0)), c.get("classname", "") + " " + c.get("name", ""))
         for c in ET.parse(sys.argv[1]).iter("testcase")]
cases.sort(reverse=True)
print(f"slowest of {len(cases)} tests ({sum(t for t, _ in cases):.0f} s in all):")
for t, name in cases[:8]:
    print(f"  {t:6.1f} s  {name}")
PY
}

# Background: the runtimes and models, then Triton once the ONNX model exists. Their
# downloads and model making overlap the compile.
logs=$(mktemp -d)
triton_port=${TRITON_PORT:-8730}
(
  scripts/setup.sh onnxruntime
  touch "$logs/onnx-ready"
  scripts/setup.sh tf
  scripts/setup.sh openvino
  scripts/setup_checks.sh hdrhistogram
) >"$logs/setup.log" 2>&1 &
setup_pid=$!
(
  until [[ -e $logs/onnx-ready ]]; do
    kill -0 "$setup_pid" 2>/dev/null || exit 1
    sleep 1
  done
  exec scripts/serve_triton.sh --port "$triton_port"
) >"$logs/triton.ready" 2>"$logs/triton.log" &
triton_pid=$!
# The report's browser test: Debian's chromium and tests/browser/node_modules.
scripts/setup_checks.sh browser >"$logs/browser.log" 2>&1 &
browser_pid=$!
# The deploy/ checks: kubernetes-validate and kfp, each in a venv of its own.
(
  scripts/setup_checks.sh k8s
  scripts/setup_checks.sh kfp
) >"$logs/deploy.log" 2>&1 &
deploy_pid=$!
# shellcheck disable=SC2329 # called by the trap
finish() {
  local rc=$?
  kill -TERM "$setup_pid" 2>/dev/null || true
  kill -TERM "$triton_pid" 2>/dev/null || true
  kill -TERM "$browser_pid" 2>/dev/null || true
  kill -TERM "$deploy_pid" 2>/dev/null || true
  wait "$triton_pid" 2>/dev/null || true
  if ((rc != 0)); then
    [[ ${stage_name} == runtimes ]] && tail -n 40 "$logs/setup.log" "$logs/triton.log" >&2
    printf '\nFAIL in stage %s\n' "${stage_name:-?}" >&2
  fi
  summary
  rm -rf "$logs"
  exit "$rc"
}
trap finish EXIT

stage lint "the layering rule (scripts/check_layers.py), cargo fmt --check"
command -v cargo-nextest >/dev/null 2>&1 || {
  echo "FAIL: cargo-nextest was not found; install it (cargo install --locked cargo-nextest)" >&2
  exit 1
}
python3 scripts/check_layers.py
cargo fmt --all -- --check

# Clippy lints the workspace's crates while they are built (its driver wraps rustc
# for them, as `cargo clippy` does): one compile of the dependencies instead of a
# `cargo check` of all of them and then a build. Every cargo call below keeps these
# two variables, or cargo would rebuild the workspace without the wrapper.
clippy_driver=$(command -v clippy-driver) || {
  echo "FAIL: clippy-driver was not found; install it (rustup component add clippy)" >&2
  exit 1
}
export RUSTC_WORKSPACE_WRAPPER=$clippy_driver
export CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
stage build "tests and binaries, profile $PROFILE, clippy -D warnings (cargo test --no-run)"
cargo test --workspace --profile "$PROFILE" --no-run --quiet

stage test "tests without any runtime library (cargo nextest, .config/nextest.toml), while the setup finishes"
cargo nextest run --workspace --cargo-profile "$PROFILE" --status-level fail --final-status-level slow
slowest

stage runtimes "waiting for scripts/setup.sh all, scripts/setup_checks.sh and scripts/serve_triton.sh"
if ! wait "$setup_pid"; then
  cat "$logs/setup.log" >&2
  echo "FAIL: scripts/setup.sh all failed (its log is above)" >&2
  exit 1
fi
tail -n 4 "$logs/setup.log"
if ! wait "$browser_pid"; then
  cat "$logs/browser.log" >&2
  echo "FAIL: scripts/setup_checks.sh browser failed (its log is above)" >&2
  exit 1
fi
tail -n 2 "$logs/browser.log"
if ! wait "$deploy_pid"; then
  cat "$logs/deploy.log" >&2
  echo "FAIL: scripts/setup_checks.sh k8s / kfp failed (its log is above)" >&2
  exit 1
fi
tail -n 2 "$logs/deploy.log"
until grep -q '^ready: ' "$logs/triton.ready"; do
  if ! kill -0 "$triton_pid" 2>/dev/null; then
    cat "$logs/triton.log" >&2
    echo "FAIL: scripts/serve_triton.sh --port $triton_port stopped before it was ready (its log is above)" >&2
    exit 1
  fi
  sleep 1
done
export TRITON_PORT=$triton_port
echo "ok: $(cat "$logs/triton.ready")"

stage ignored "tests that need ONNX Runtime, TensorFlow, OpenVINO, Triton, Chromium, PyPI's hdrhistogram, kubernetes-validate or kfp (cargo nextest --run-ignored only)"
cargo nextest run --workspace --cargo-profile "$PROFILE" --run-ignored only --status-level fail --final-status-level slow
slowest

stage golden "golden checks on a generated ImageNet-layout set"
data=$ROOT/data/testset
[[ -f $data/val_map.txt ]] || "$PY" scripts/make_dataset.py --out "$data"
golden=$ROOT/out/golden
rm -rf "$golden"
"$LOADGEN" accuracy --profile resnet50-onnxruntime --dataset-path "$data" --dump "$golden/onnx" --quiet
"$PY" scripts/compare_preprocess.py --dataset "$data" --inputs "$golden/onnx/inputs.npy" \
  --names "$golden/onnx/names.txt" --layout NCHW --labels "$golden/onnx/labels.npy" --ref-out "$golden/onnx/ref.npy"
"$PY" scripts/golden_onnx.py --model models/resnet50_v1.onnx --ref "$golden/onnx/ref.npy" --top1 "$golden/onnx/top1.npy"
"$LOADGEN" accuracy --profile resnet50-tf --dataset-path "$data" --dump "$golden/tf" --quiet
"$PY" scripts/compare_preprocess.py --dataset "$data" --inputs "$golden/tf/inputs.npy" \
  --names "$golden/tf/names.txt" --layout NHWC
"$PY" scripts/ref_tf.py --model models/resnet50_v1.pb --inputs "$golden/tf/inputs.npy" \
  --top1 "$golden/tf/top1.npy" --scores "$golden/tf/scores.npy"

stage scripts "shellcheck and hadolint; run_and_time.sh, run_local.sh"
scripts/lint.sh
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

# run_local.sh end to end, short: both runtimes, then kserve against the running Triton
# (LOADGEN_BIN: the suite's own build, not a second one).
check_run() {
  local what=$1 profile=$2 log=$3
  grep -q '^check_accuracy accuracy=' "$log" || { echo "FAIL: $what: no check_accuracy line" >&2; exit 1; }
  final=$(grep '^===FINAL_RESULT: ' "$log")
  [[ $final =~ \'0\.5\':\ ([0-9.]+) ]] || { echo "FAIL: $what: no positive qps in: $final" >&2; exit 1; }
  [[ -s out/$profile/results.json ]] || { echo "FAIL: $what: out/$profile/results.json missing" >&2; exit 1; }
  [[ $what == kserve || -s out/$profile/output.txt ]] ||
    { echo "FAIL: $what: out/$profile/output.txt missing" >&2; exit 1; }
  echo "ok: run_local.sh $what cpu: $final"
}
# No tuning: the tests in tests/cli_runtime.rs tune on both runtimes; this checks the scripts.
short=(--time 1 --max-latency 0.5 --distributions linear --count 16 --warmup 1 --min-queries 10 --no-tune --quiet)
for rt in onnxruntime tf openvino; do
  log=$logs/run_local.$rt
  DATA_DIR=$data scripts/run_local.sh "$rt" cpu "${short[@]}" | tee "$log"
  check_run "$rt" "resnet50-$rt.cpu" "$log"
done
log=$logs/run_local.kserve
KSERVE_URL=http://127.0.0.1:$triton_port DATA_DIR=$data scripts/run_local.sh kserve cpu "${short[@]}" | tee "$log"
check_run kserve kserve.cpu "$log"
expect_exit 2 scripts/run_local.sh kserve gpu
expect_exit 2 scripts/serve_triton.sh --port 0

printf '\nall checks passed\n'
