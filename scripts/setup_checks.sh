#!/usr/bin/env bash
# What the suite's cross-checks need beside the runtimes: scripts/setup_checks.sh browser|hdrhistogram|k8s|kfp
#   browser       Debian's chromium (apt-get, as root, when /usr/bin/chromium is missing)
#                 and tests/browser/node_modules (npm ci: playwright-core, which drives
#                 that chromium, and pngjs), for the report's browser test;
#   hdrhistogram  the PyPI hdrhistogram package in .venv (scripts/setup.sh makes it),
#                 which reads results.json's stored histograms in scripts/check_histograms.py;
#   k8s           .venv-k8s with the pinned kubernetes-validate (scripts/requirements-k8s.txt),
#                 which checks `loadgen k8s`'s manifests offline (scripts/check_k8s.py);
#   kfp           .venv-kfp with the pinned Kubeflow Pipelines SDK (deploy/kubeflow/
#                 requirements.txt), which compiles deploy/kubeflow/pipeline.py and runs
#                 it with its local runner. Own venvs: no pin of the runtimes' .venv moves.
# Safe to run again: a second run only checks. No browser is downloaded by npm:
# playwright-core brings none, and the test starts Debian's.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { echo "setup_checks: $*"; }

browser() {
    local chromium=${CHROMIUM:-/usr/bin/chromium}
    if [[ -x $chromium ]]; then
        say "chromium already there ($chromium)"
    elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing Debian's chromium"
        apt-get install -y -q chromium >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
    else
        echo "setup_checks: $chromium is missing; install Debian's chromium (apt-get install chromium) or set CHROMIUM" >&2
        exit 1
    fi
    command -v npm >/dev/null || { echo "setup_checks: npm was not found; install Node.js and npm" >&2; exit 1; }
    local dir=$root/tests/browser
    if [[ -d $dir/node_modules/playwright-core && $dir/node_modules/.package-lock.json -nt $dir/package-lock.json ]]; then
        say "tests/browser/node_modules already there"
    else
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        say "installed tests/browser/node_modules"
    fi
}

hdrhistogram() {
    local py=${LOADGEN_VENV:-$root/.venv}/bin/python
    [[ -x $py ]] || { echo "setup_checks: $py is missing; run scripts/setup.sh onnxruntime first" >&2; exit 1; }
    local req=$root/scripts/requirements-check.txt pin
    pin=$(sed -n 's/^hdrhistogram==\([^ #]*\).*/\1/p' "$req")
    if "$py" -c 'from importlib.metadata import version; import sys; sys.exit(version("hdrhistogram") != sys.argv[1])' "$pin" 2>/dev/null; then
        say "hdrhistogram already in the venv"
    else
        "$py" -m pip install -q -r "$req"
        say "installed hdrhistogram in the venv"
    fi
}

# A venv of its own from one requirements file; a copy of the file in the venv marks
# it done, so an edited pin installs again.
own_venv() {
    local venv=$1 req=$2
    if [[ -x $venv/bin/python ]] && cmp -s "$req" "$venv/installed-requirements.txt"; then
        say "${venv#"$root"/} already there"
        return
    fi
    command -v python3 >/dev/null || { echo "setup_checks: python3 was not found; install python3 and python3-venv" >&2; exit 1; }
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/installed-requirements.txt"
    say "installed ${venv#"$root"/} from ${req#"$root"/}"
}

case "${1:-}" in
    browser) browser ;;
    hdrhistogram) hdrhistogram ;;
    k8s) own_venv "$root/.venv-k8s" "$root/scripts/requirements-k8s.txt" ;;
    kfp) own_venv "$root/.venv-kfp" "$root/deploy/kubeflow/requirements.txt" ;;
    *) echo "usage: $0 browser|hdrhistogram|k8s|kfp" >&2; exit 2 ;;
esac
