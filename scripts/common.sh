# shellcheck shell=bash
# Helpers shared by scripts/run_local.sh, run_helper.sh, run_and_time.sh and lint.sh.
# Sourced, never run. Expects ROOT (the project root) to be set by the caller.

# die CODE SENTENCE...: print "<script>: SENTENCE" on stderr and exit with CODE.
die() {
  local code=$1
  shift
  printf '%s: %s\n' "${0##*/}" "$*" >&2
  exit "$code"
}

# note SENTENCE...: a diagnostic line on stderr (stdout is kept for loadgen's log lines).
note() {
  printf '%s: %s\n' "${0##*/}" "$*" >&2
}

# is_runtime NAME / is_device NAME: the two words users already know.
is_runtime() { [[ ${1-} == tf || ${1-} == onnxruntime ]]; }
is_device() { [[ ${1-} == cpu || ${1-} == gpu ]]; }

# profile_for RUNTIME: the loadgen profile run_local.sh uses for it.
profile_for() {
  case $1 in
    tf) echo resnet50-tf ;;
    onnxruntime) echo resnet50-onnxruntime ;;
    openvino) echo resnet50-openvino ;;
    *) return 1 ;;
  esac
}

# model_file_for RUNTIME: the file name MODEL_DIR (or models/) must hold.
model_file_for() {
  case $1 in
    tf) echo resnet50_v1.pb ;;
    onnxruntime | openvino) echo resnet50_v1.onnx ;;
    *) return 1 ;;
  esac
}

# abs_dir VARNAME: print the absolute path of the directory named by $VARNAME,
# or die 2 with one sentence when it is not a directory.
abs_dir() {
  local name=$1 dir=${!1}
  [[ -d $dir ]] || die 2 "$name=$dir is not a directory; fix the path or unset $name."
  (cd -P -- "$dir" && pwd)
}

# tee_log FILE: copy stdin to stdout and append it to FILE. It ignores SIGINT, SIGTERM
# and SIGHUP, so the lines a program prints after such a signal (loadgen writes partial
# results and exits 130/143/129) still reach the log; it ends when its input closes.
tee_log() {
  (
    trap '' INT TERM HUP
    exec tee -a -- "$1"
  )
}

# venv_dir: the project's virtual environment (made by scripts/setup.sh).
venv_dir() {
  echo "${LOADGEN_VENV:-$ROOT/.venv}"
}

# gpu_library_path RUNTIME VENV: the folders of pip-installed NVIDIA libraries that a
# GPU run of RUNTIME should find first, joined with ':' (empty when there are none).
# LD_LIBRARY_PATH is read once when a process starts, so this is set before loadgen.
#  - tf: TensorFlow 2.21's [and-cuda] wheels (CUDA 12, cuDNN 9 for CUDA 12) live in
#    site-packages/nvidia/<lib>/lib. Loaded through the .venv/tensorflow-lib symlinks,
#    TF's own $ORIGIN-relative search may miss them, so name them.
#  - onnxruntime: onnxruntime-gpu's [cuda] wheels (CUDA 13) live in nvidia/cu13/lib;
#    its cuDNN 9 comes from the system (the CUDA base image). The CUDA 12 folders are
#    left out on purpose: nvidia/cudnn/lib holds TF's cuDNN built for CUDA 12.
gpu_library_path() {
  local runtime=$1 venv=$2 dir restore
  local -a dirs=()
  restore=$(shopt -p nullglob || true)
  shopt -s nullglob
  for dir in "$venv"/lib/python3*/site-packages/nvidia/*/lib; do
    [[ -d $dir ]] || continue
    case $runtime:${dir%/lib} in
      tf:*/cu13) ;;
      tf:*) dirs+=("$dir") ;;
      onnxruntime:*/cu13) dirs+=("$dir") ;;
    esac
  done
  eval "$restore"
  local IFS=:
  echo "${dirs[*]}"
}

# run_logged LOG OUT_DIR CMD...: runs CMD with its stdout kept to loadgen's log lines
# (parsers read it) and stderr left on stderr, the log copy LOG getting both; says
# where OUT_DIR/results.json and LOG are, and exits with CMD's status (1 if only the
# log copy failed).
run_logged() {
  local log_file=$1 out_dir=$2 rc
  shift 2
  : >"$log_file"
  printf '+%s\n' "$(printf ' %q' "$@")" | tee_log "$log_file" >&2
  local status=(0 0)
  "$@" 2> >(tee_log "$log_file" >&2) | tee_log "$log_file" || status=("${PIPESTATUS[@]}")
  rc=${status[0]}
  if [[ ${status[1]} -ne 0 ]]; then
    note "could not write the log copy $log_file (tee exit ${status[1]})."
    [[ $rc -ne 0 ]] || rc=1
  fi
  if [[ -f $out_dir/results.json ]]; then
    note "results: ${out_dir#"$ROOT"/}/results.json, report: ${out_dir#"$ROOT"/}/report.html, log: ${log_file#"$ROOT"/}"
  fi
  exit "$rc"
}
