#!/usr/bin/env bash
# Prepare a runtime for loadgen: scripts/setup.sh onnxruntime|tf|openvino|all
#
# Makes <repo>/.venv (once), pip-installs the runtime's pinned wheels (only when a pin is
# not already satisfied), then prepares what loadgen loads at run time:
#   onnxruntime  the library .venv/.../onnxruntime/capi/libonnxruntime.so.* and
#                models/resnet50_v1.onnx (made by models/make_onnx_model.py if missing)
#                and models/resnet50_v1.int8.onnx (models/make_int8_model.py)
#   openvino     the library .venv/.../openvino/libs/libopenvino_c.so.* (the CPU plugin
#                beside it) and models/resnet50_v1.onnx, which OpenVINO reads directly
#   tf           .venv/tensorflow-lib/ (libtensorflow.so and libtensorflow_framework.so.2
#                symlinks into the wheel: point TENSORFLOW_DIR at it) and
#                models/resnet50_v1.pb (made by models/make_tf_model.py if missing)
# Safe to run again: a second run only checks, and takes about a second.
# pip honours PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS etc. as usual.
set -euo pipefail

usage() {
    echo "usage: $0 onnxruntime|tf|openvino|all" >&2
    exit 2
}

[[ $# -eq 1 ]] || usage
case "$1" in
    onnxruntime | ort) runtimes=(onnxruntime) ;;
    tf | tensorflow) runtimes=(tf) ;;
    openvino | ov) runtimes=(onnxruntime openvino) ;;
    all) runtimes=(onnxruntime tf openvino) ;;
    *) usage ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# LOADGEN_VENV: another venv (run_local.sh ... gpu keeps the GPU wheels in .venv-gpu).
venv="${LOADGEN_VENV:-$root/.venv}"
py="$venv/bin/python"

say() { echo "setup: $*"; }

make_venv() {
    if [[ -x "$py" ]]; then
        say "python venv $venv already there"
        return
    fi
    if ! python3 -m venv "$venv"; then
        echo "setup: could not create $venv with 'python3 -m venv' (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    fi
    say "created python venv $venv"
}

# Prints the pins of a requirements file that the venv does not satisfy (none: all good).
unsatisfied() {
    "$py" - "$1" <<'PY'
import re, sys
from importlib import metadata
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[A-Za-z0-9_,\-]*\])?==([A-Za-z0-9_.+\-]+)", line)
    if not m:
        print(line)  # not a plain pin: let pip decide
        continue
    try:
        if metadata.version(m.group(1)) != m.group(2):
            print(line)
    except metadata.PackageNotFoundError:
        print(line)
PY
}

# LOADGEN_GPU=1 (Dockerfile.gpu, run_local.sh ... gpu) picks the GPU wheels instead.
pip_install() {
    local req="$root/scripts/requirements-$1.txt"
    if [[ "${LOADGEN_GPU:-0}" == 1 ]]; then
        req="$root/scripts/requirements-$1-gpu.txt"
    fi
    local missing
    missing="$(unsatisfied "$req")"
    if [[ -z "$missing" ]]; then
        say "python packages of $(basename "$req") already installed"
        return
    fi
    say "installing $(echo "$missing" | tr '\n' ' ')(from $(basename "$req"))"
    "$py" -m pip install --disable-pip-version-check -q -r "$req"
    say "installed python packages of $(basename "$req")"
}

site_packages() {
    "$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
}

setup_onnxruntime() {
    pip_install onnxruntime
    local lib
    lib="$(find "$(site_packages)/onnxruntime/capi" -maxdepth 1 -name 'libonnxruntime.so*' -type f | sort | tail -n 1)"
    if [[ -z "$lib" ]]; then
        echo "setup: the onnxruntime wheel holds no onnxruntime/capi/libonnxruntime.so*" >&2
        exit 1
    fi
    say "ONNX Runtime library $lib"
    local model="$root/models/resnet50_v1.onnx"
    if [[ -f "$model" ]]; then
        say "model $model already there"
    else
        say "making $model (about a minute)"
        "$py" "$root/models/make_onnx_model.py" --out "$model"
        say "made $model"
    fi
    # --precision int8: the same model, quantized (static, QDQ, calibrated on generated
    # images; reproducible with the pinned wheel).
    local int8="$root/models/resnet50_v1.int8.onnx"
    if [[ -f "$int8" && "$int8" -nt "$model" ]]; then
        say "model $int8 already there"
    else
        say "making $int8 (quantizing the fp32 model, about 10 s)"
        "$py" "$root/models/make_int8_model.py" --fp32 "$model" --out "$int8"
        say "made $int8"
    fi
}

# OpenVINO reads the ONNX model that setup_onnxruntime makes (it runs first).
setup_openvino() {
    pip_install openvino
    local lib
    lib="$(find "$(site_packages)/openvino/libs" -maxdepth 1 -name 'libopenvino_c.so*' -type f | sort | tail -n 1)"
    if [[ -z "$lib" ]]; then
        echo "setup: the openvino wheel holds no openvino/libs/libopenvino_c.so*" >&2
        exit 1
    fi
    say "OpenVINO library $lib"
}

setup_tf() {
    pip_install tf
    local sp tfdir="$venv/tensorflow-lib"
    sp="$(site_packages)"
    local cc="$sp/tensorflow/libtensorflow_cc.so.2" fw="$sp/tensorflow/libtensorflow_framework.so.2"
    for f in "$cc" "$fw"; do
        if [[ ! -f "$f" ]]; then
            echo "setup: $f is missing from the tensorflow-cpu wheel" >&2
            exit 1
        fi
    done
    if [[ "$(readlink "$tfdir/libtensorflow.so" 2>/dev/null || true)" == "$cc" &&
        "$(readlink "$tfdir/libtensorflow_framework.so.2" 2>/dev/null || true)" == "$fw" ]]; then
        say "TensorFlow library folder $tfdir already there (TENSORFLOW_DIR=$tfdir)"
    else
        mkdir -p "$tfdir"
        ln -sfn "$cc" "$tfdir/libtensorflow.so"
        ln -sfn "$fw" "$tfdir/libtensorflow_framework.so.2"
        say "made TensorFlow library folder $tfdir (TENSORFLOW_DIR=$tfdir)"
    fi
    local model="$root/models/resnet50_v1.pb" script="$root/models/make_tf_model.py"
    if [[ -f "$model" ]]; then
        say "model $model already there"
    elif [[ ! -f "$script" ]]; then
        echo "setup: $script is missing, so $model cannot be made" >&2
        exit 1
    else
        say "making $model"
        (cd "$root" && "$py" "$script" --out "$model")
        say "made $model"
    fi
}

make_venv
for rt in "${runtimes[@]}"; do
    "setup_$rt"
done
