#!/usr/bin/env bash
# A real KServe v2 server for loadgen's kserve backend: Triton (tritonserver 2.51 from
# the nvidia-pytriton wheel, no GPU needed) serving the project's ResNet-50 through ONNX
# Runtime as model `resnet50` (dynamic batching on) and a trivial `identity` model.
#
#   scripts/serve_triton.sh [--port P]        (default 8000)
#
# HTTP on P, gRPC on P+1, metrics on P+2, all on 127.0.0.1. The first run makes
# .venv-triton (its own venv: pytriton pins numpy<2) and, when missing,
# models/resnet50_v1.onnx (scripts/setup.sh onnxruntime). Once both models answer it
# prints one line on stdout,
#   ready: http://127.0.0.1:P grpc://127.0.0.1:P+1
# then serves until stopped: SIGTERM or Ctrl-C stops every process it started. Server
# logs go to stderr. Startup takes about a minute on 2 cores (READY_TIMEOUT, default
# 300 s). TRITON_VENV names another venv.
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/common.sh
source "$ROOT/scripts/common.sh"

usage() { die 2 "usage: scripts/serve_triton.sh [--port P] (HTTP on P, gRPC on P+1, metrics on P+2)"; }

port=8000
while [[ $# -gt 0 ]]; do
  case $1 in
    --port) [[ $# -ge 2 ]] || usage; port=$2; shift 2 ;;
    --port=*) port=${1#--port=}; shift ;;
    -h | --help) usage ;;
    *) die 2 "unknown argument '$1'; usage: scripts/serve_triton.sh [--port P]" ;;
  esac
done
if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65533)); then
  die 2 "--port '$port' must be a number from 1 to 65533 (P+1 and P+2 are used too)"
fi
ready_timeout=${READY_TIMEOUT:-300}
[[ $ready_timeout =~ ^[0-9]+$ ]] || die 2 "READY_TIMEOUT='$ready_timeout' must be whole seconds"

venv=${TRITON_VENV:-$ROOT/.venv-triton}
py=$venv/bin/python
if ! [[ -x $py ]] || ! "$py" -c 'import pytriton, onnxruntime' 2>/dev/null; then
  note "installing $(grep -v '^#' "$ROOT/scripts/requirements-triton.txt" | xargs) into $venv (about 120 MB, once)"
  [[ -x $py ]] || python3 -m venv "$venv" || die 2 "could not make $venv: install Python 3.11 with venv (python3 -m venv)"
  "$py" -m pip install --quiet --disable-pip-version-check -r "$ROOT/scripts/requirements-triton.txt" >&2 ||
    die 2 "pip could not install scripts/requirements-triton.txt into $venv (network to PyPI?)"
fi
model=$ROOT/models/resnet50_v1.onnx
if [[ ! -s $model ]]; then
  note "making $model (scripts/setup.sh onnxruntime)"
  "$ROOT/scripts/setup.sh" onnxruntime >&2
fi

# Triton's Python-backend stub must load this interpreter's own libpython (a system
# libpython of another patch release fails model loading with
# "'_thread.RLock' object has no attribute '_recursion_count'").
libdir=$("$py" -c 'import sys; print(sys.base_prefix)')/lib
compgen -G "$libdir/libpython3*.so*" >/dev/null ||
  die 2 "$libdir holds no shared libpython, which Triton's Python backend needs: use a Python built with --enable-shared (e.g. pyenv's 3.11)"

for p in "$port" "$((port + 1))" "$((port + 2))"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    die 2 "port $p on 127.0.0.1 is already in use: pick another --port"
  fi
done

# The server runs in its own session (process group), so that stopping it reaches
# tritonserver and the Python-backend stubs as well; they are also stopped by PID.
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  setsid "$py" "$ROOT/scripts/serve_triton.py" --port "$port" --model "$model" >&2 &
server=$!

descendants() {
  local p
  for p in $(pgrep -P "$1" 2>/dev/null || true); do
    echo "$p"
    descendants "$p"
  done
}

stopped=0
stop_server() {
  ((stopped)) && return
  stopped=1
  local pids
  pids="$server $(descendants "$server" | xargs)"
  # shellcheck disable=SC2086 # a list of PIDs
  kill -TERM -- "-$server" $pids 2>/dev/null || true
  for _ in $(seq 100); do
    # shellcheck disable=SC2086
    kill -0 $pids 2>/dev/null || return 0
    sleep 0.1
  done
  note "the server did not stop within 10 s: killing it"
  # shellcheck disable=SC2086
  kill -KILL -- "-$server" $pids 2>/dev/null || true
}
trap 'stop_server; exit 143' TERM
trap 'stop_server; exit 130' INT
trap 'stop_server' EXIT

ready() { curl -sf -o /dev/null "http://127.0.0.1:$port$1"; }
deadline=$((SECONDS + ready_timeout))
until ready /v2/health/ready && ready /v2/models/resnet50/ready && ready /v2/models/identity/ready; do
  kill -0 "$server" 2>/dev/null || die 1 "Triton stopped before it was ready (its log is above)"
  ((SECONDS < deadline)) || die 1 "Triton was not ready within $ready_timeout s (READY_TIMEOUT raises it)"
  sleep 1
done
echo "ready: http://127.0.0.1:$port grpc://127.0.0.1:$((port + 1))"
# `wait` returns early when a trapped signal arrives, so the traps run at once.
wait "$server" || die 1 "Triton exited ($?)"
