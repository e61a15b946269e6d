#!/usr/bin/env bash
# `scripts/run_local.sh kserve cpu [extra loadgen flags...]` lands here: the cloud
# procedure against a KServe v2 server over the network.
#
#   KSERVE_URL   http://HOST:PORT or grpc://HOST:PORT of a running server; without it
#                the project's Triton (scripts/serve_triton.sh) is started for the run
#                on TRITON_PORT (default 8000) and stopped after it
#   MODEL_NAME   the model's name on the server (default resnet50)
#   DATA_DIR, LOADGEN_BIN, LOADGEN_LOG_FILE  as for run_local.sh
#
# Writes out/kserve.cpu/results.json and the log beside it as output.txt.
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

data_dir=
if [[ -n ${DATA_DIR-} ]]; then
  data_dir=$(abs_dir DATA_DIR)
fi
if [[ -n ${LOADGEN_BIN-} && ! -x ${LOADGEN_BIN} ]]; then
  die 2 "LOADGEN_BIN=$LOADGEN_BIN is not an executable file; build loadgen or unset LOADGEN_BIN."
fi
model_name=${MODEL_NAME:-resnet50}
cd "$ROOT"

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

url=${KSERVE_URL-}
if [[ -z $url ]]; then
  port=${TRITON_PORT:-8000}
  ready=$(mktemp)
  note "no KSERVE_URL: starting the project's Triton on port $port (scripts/serve_triton.sh)"
  "$ROOT/scripts/serve_triton.sh" --port "$port" >"$ready" &
  triton=$!
  # shellcheck disable=SC2329 # called by the trap
  stop_triton() {
    kill -TERM "$triton" 2>/dev/null || true
    wait "$triton" 2>/dev/null || true
    rm -f "$ready"
  }
  trap stop_triton EXIT
  until grep -q '^ready: ' "$ready"; do
    kill -0 "$triton" 2>/dev/null || die 1 "scripts/serve_triton.sh stopped before the server was ready; see its messages above."
    sleep 1
  done
  url=http://127.0.0.1:$port
fi

out_dir=$ROOT/out/kserve.cpu
mkdir -p "$out_dir"
log_file=${LOADGEN_LOG_FILE:-$out_dir/output.txt}
cmd=("$loadgen" run --backend kserve --url "$url" --model-name "$model_name"
  --output "$out_dir/results.json")
if [[ -n $data_dir ]]; then
  cmd+=(--dataset-path "$data_dir")
fi
cmd+=("$@")

run_logged "$log_file" "$out_dir" "${cmd[@]}"
