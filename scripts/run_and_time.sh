#!/usr/bin/env bash
# Build the benchmark image (Dockerfile.cpu / Dockerfile.gpu) and run it (docs/CONTRACT.md §2).
#
#   scripts/run_and_time.sh tf|onnxruntime cpu|gpu [extra loadgen flags...]
#
# The container runs scripts/run_helper.sh -> scripts/run_local.sh with out/ mounted,
# so results land in out/<profile>.<cpu|gpu>/ here; the whole log is copied there as
# output.txt. MODEL_DIR and DATA_DIR, when set, are mounted read-only.
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

usage() {
  cat <<'EOF'
usage: scripts/run_and_time.sh tf|onnxruntime cpu|gpu [extra loadgen flags...]

Builds Dockerfile.<cpu|gpu> as image loadgen:<cpu|gpu> and runs the benchmark in it
(needs a running Docker engine; gpu also needs the NVIDIA container toolkit).
Results: out/<profile>.<cpu|gpu>/results.json and output.txt.

Environment:
  MODEL_DIR   folder holding resnet50_v1.pb / resnet50_v1.onnx (mounted read-only);
              default: the models generated inside the image
  DATA_DIR    ImageNet validation folder (mounted read-only); default: synthetic inputs
Without Docker, run the same with scripts/run_local.sh.
EOF
}

case ${1-} in
  -h | --help)
    usage
    exit 0
    ;;
esac
if [[ $# -lt 2 ]] || ! is_runtime "$1" || ! is_device "$2"; then
  if [[ $# -lt 2 ]]; then
    note "give a runtime and a device, e.g. scripts/run_and_time.sh tf cpu."
  elif ! is_runtime "$1"; then
    note "'$1' is not a runtime; give tf or onnxruntime."
  else
    note "'$2' is not a device; give cpu or gpu."
  fi
  usage >&2
  exit 2
fi
runtime=$1
device=$2
shift 2

# Before anything slow: is there a Docker engine to talk to?
command -v docker >/dev/null 2>&1 ||
  die 2 "Docker is not installed (no docker command); use scripts/run_local.sh $runtime $device to run without Docker."
info_cmd=(docker info)
if command -v timeout >/dev/null 2>&1; then
  info_cmd=(timeout 30 docker info)
fi
"${info_cmd[@]}" >/dev/null 2>&1 ||
  die 2 "no Docker engine is reachable (docker info failed); use scripts/run_local.sh $runtime $device to run without Docker."

model_dir=
if [[ -n ${MODEL_DIR-} ]]; then
  model_dir=$(abs_dir MODEL_DIR)
  model_file=$(model_file_for "$runtime")
  [[ -f $model_dir/$model_file ]] ||
    die 2 "MODEL_DIR=$MODEL_DIR has no $model_file; put the model there or unset MODEL_DIR to use the image's own."
fi
data_dir=
if [[ -n ${DATA_DIR-} ]]; then
  data_dir=$(abs_dir DATA_DIR)
fi

image=loadgen:$device
note "building $image from Dockerfile.$device..."
docker build -f "$ROOT/Dockerfile.$device" -t "$image" "$ROOT" >&2 ||
  die 1 "docker build -f Dockerfile.$device failed; see its messages above."

# The project root inside the image is its working directory.
workdir=$(docker image inspect -f '{{.Config.WorkingDir}}' "$image")
[[ -n $workdir ]] || die 1 "image $image has no working directory; rebuild it from Dockerfile.$device."

profile=$(profile_for "$runtime")
out_dir=$ROOT/out/$profile.$device
mkdir -p "$out_dir"

# The container's own copy of the log stays inside it (LOADGEN_LOG_FILE): this script
# writes out/<profile>.<device>/output.txt, STARTING/ENDING lines included.
run=(docker run --rm
  -v "$ROOT/out:$workdir/out"
  -e LOADGEN_LOG_FILE=/tmp/loadgen-output.txt)
if [[ $device == gpu ]]; then
  run+=(--gpus all)
fi
if [[ -n $model_dir ]]; then
  run+=(-v "$model_dir:/mnt/models:ro" -e MODEL_DIR=/mnt/models)
fi
if [[ -n $data_dir ]]; then
  run+=(-v "$data_dir:/mnt/data:ro" -e DATA_DIR=/mnt/data)
fi
run+=("$image" "$runtime" "$device" "$@")

: >"$out_dir/output.txt"
status=(0 0)
"${run[@]}" 2>&1 | tee_log "$out_dir/output.txt" || status=("${PIPESTATUS[@]}")
rc=${status[0]}
if [[ ${status[1]} -ne 0 ]]; then
  note "could not write the log copy $out_dir/output.txt (tee exit ${status[1]})."
  [[ $rc -ne 0 ]] || rc=1
fi
exit "$rc"
