#!/usr/bin/env bash
# Run the cloud image-classification benchmark here, without Docker (docs/CONTRACT.md §2).
#
#   scripts/run_local.sh tf|onnxruntime [cpu|gpu] [extra loadgen flags...]
#   scripts/run_local.sh openvino|kserve [cpu] [extra loadgen flags...]
#
# Writes out/<profile>.<cpu|gpu>/results.json (kserve: out/kserve.cpu/) and the run's
# log beside it as output.txt.
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

usage() {
  cat <<'EOF'
usage: scripts/run_local.sh tf|onnxruntime [cpu|gpu] [extra loadgen flags...]
       scripts/run_local.sh kserve [cpu] [extra loadgen flags...]

Runs `loadgen run` with profile resnet50-tf or resnet50-onnxruntime and writes
out/<profile>.<cpu|gpu>/results.json plus a copy of the log (output.txt) beside it.
kserve measures a KServe v2 server (Triton, KServe, ...) over the network instead and
writes out/kserve.cpu/: the server at KSERVE_URL, or, without it, the project's own
Triton started with scripts/serve_triton.sh for the run and stopped after it.
Extra flags go to loadgen last, so they override (relative paths in them are taken
from the project root).

Environment:
  MODEL_DIR    folder holding resnet50_v1.pb (tf) / resnet50_v1.onnx (onnxruntime, openvino);
               default: the project's own models/, prepared by scripts/setup.sh
  DATA_DIR     ImageNet validation folder (val_map.txt + images); default: synthetic
               inputs, and the accuracy pass is skipped
  LOADGEN_BIN  the loadgen binary to run; default: cargo build --release here
  LOADGEN_LOG_FILE  where the log copy goes; default: output.txt beside results.json
  KSERVE_URL   kserve: http://HOST:PORT or grpc://HOST:PORT of a running server
  MODEL_NAME   kserve: the model's name on the server; default resnet50
  TRITON_PORT  kserve without KSERVE_URL: the port of the started Triton; default 8000
EOF
}

case ${1-} in
  -h | --help)
    usage
    exit 0
    ;;
esac
if ! is_runtime "${1-}" && [[ ${1-} != kserve && ${1-} != openvino ]]; then
  if [[ $# -eq 0 ]]; then
    note "which runtime? Give tf, onnxruntime, openvino or kserve."
  else
    note "'$1' is not a runtime; give tf, onnxruntime, openvino or kserve."
  fi
  usage >&2
  exit 2
fi
runtime=$1
shift
device=cpu
if [[ $# -gt 0 && ${1-} != -* ]]; then
  if ! is_device "$1"; then
    note "'$1' is not a device; give cpu or gpu (or a --flag for loadgen)."
    usage >&2
    exit 2
  fi
  device=$1
  shift
fi

if [[ $runtime == kserve ]]; then
  [[ $device == cpu ]] ||
    die 2 "kserve measures a server, which decides where its model runs; give cpu (or nothing)."
  exec "$ROOT/scripts/run_kserve.sh" "$@"
fi

[[ $runtime != openvino || $device == cpu ]] ||
  die 2 "openvino runs here on the CPU (its GPU plugin needs an Intel GPU); give cpu (or nothing)."
profile=$(profile_for "$runtime")
model_file=$(model_file_for "$runtime")

# Check what the user gave before anything slow.
if [[ -n ${MODEL_DIR-} ]]; then
  model_dir=$(abs_dir MODEL_DIR)
  [[ -f $model_dir/$model_file ]] ||
    die 2 "MODEL_DIR=$MODEL_DIR has no $model_file; put the model there or unset MODEL_DIR to use the project's own."
else
  model_dir=$ROOT/models
fi
data_dir=
if [[ -n ${DATA_DIR-} ]]; then
  data_dir=$(abs_dir DATA_DIR)
fi
# The log copy is written only as a regular file (a symlink to one is followed): a
# device, FIFO, socket or folder there is refused before anything slow.
out_dir=$ROOT/out/$profile.$device
log_file=${LOADGEN_LOG_FILE:-$out_dir/output.txt}
if [[ -e $log_file || -L $log_file ]] && [[ ! -f $log_file ]]; then
  die 2 "the log copy $log_file exists and is not a regular file; remove it or set LOADGEN_LOG_FILE to a file path."
fi
if [[ -n ${LOADGEN_BIN-} && ! -x ${LOADGEN_BIN} ]]; then
  die 2 "LOADGEN_BIN=$LOADGEN_BIN is not an executable file; build loadgen or unset LOADGEN_BIN."
fi

cd "$ROOT"

# The runtime (and, without MODEL_DIR, the default models): setup.sh installs only
# what is missing. Its output goes to stderr: stdout carries loadgen's log lines.
if [[ $device == gpu ]]; then
  # Say so before downloading gigabytes of CUDA wheels that could not be used.
  if ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }; then
    die 2 "gpu needs an NVIDIA GPU and its driver, and nvidia-smi finds none here; run with cpu instead."
  fi
  export LOADGEN_GPU=1 # setup.sh: install the GPU wheels (requirements-*-gpu.txt)
  # The GPU wheels own the same package folders as the CPU ones: keep them apart.
  export LOADGEN_VENV=${LOADGEN_VENV:-$ROOT/.venv-gpu}
fi
[[ -x $ROOT/scripts/setup.sh ]] ||
  die 2 "scripts/setup.sh is missing or not executable; restore it from git."
setup_rc=0
"$ROOT/scripts/setup.sh" "$runtime" >&2 || setup_rc=$?
[[ $setup_rc -eq 0 ]] ||
  die "$setup_rc" "scripts/setup.sh $runtime failed (exit $setup_rc); see its messages above."
[[ -f $model_dir/$model_file ]] ||
  die 1 "scripts/setup.sh did not produce models/$model_file; run scripts/setup.sh $runtime and read its messages."

if [[ -n ${LOADGEN_BIN-} ]]; then
  loadgen=$LOADGEN_BIN
else
  command -v cargo >/dev/null 2>&1 ||
    die 2 "cargo was not found; install Rust (rustup.rs) or set LOADGEN_BIN to a built loadgen."
  note "building loadgen (cargo build --release)..."
  cargo build --release --quiet >&2 ||
    die 1 "cargo build --release failed; see the compiler's messages above."
  loadgen=$ROOT/target/release/loadgen
fi

venv=$(venv_dir)
if [[ -z ${LOADGEN_VENV-} && -d $venv ]]; then
  export LOADGEN_VENV=$venv # where loadgen finds the runtime libraries
fi
if [[ $device == gpu ]]; then
  libs=$(gpu_library_path "$runtime" "$venv")
  if [[ -n $libs ]]; then
    export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi

mkdir -p "$out_dir"

cmd=("$loadgen" run
  --profile "$profile"
  --backend "$runtime"
  --model "$model_dir/$model_file"
  --output "$out_dir/results.json")
if [[ $device == gpu ]]; then
  cmd+=(--device gpu)
fi
if [[ -n $data_dir ]]; then
  cmd+=(--dataset-path "$data_dir")
fi
cmd+=("$@")

run_logged "$log_file" "$out_dir" "${cmd[@]}"
