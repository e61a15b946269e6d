#!/usr/bin/env bash
# The container's entrypoint (Dockerfile.cpu / Dockerfile.gpu), usable outside one too:
# frames scripts/run_local.sh with STARTING/ENDING lines and drops the page cache first.
#
#   scripts/run_helper.sh tf|onnxruntime [cpu|gpu] [extra loadgen flags...]
#
# DROP_CACHES=0 skips dropping the page cache.
set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

now() { date '+%Y-%m-%d %r'; }

echo "STARTING RUN AT $(now)"

# Cold caches, as the old tool had: needs root and a writable /proc/sys (a plain
# `docker run` mounts it read-only), so where that is refused, say so and go on.
if [[ ${DROP_CACHES:-1} != 0 ]]; then
  sync
  if (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
    note "dropped the page cache."
  else
    note "could not drop the page cache (needs root and a writable /proc/sys); going on without."
  fi
fi

# run_local.sh runs in its own process group, so that a SIGINT or SIGTERM sent to this
# script (PID 1 in a container, which gets no default signal handling) reaches loadgen,
# which then writes its partial results and exits 130.
set -m
"$ROOT/scripts/run_local.sh" "$@" &
child=$!
set +m
forwarded=0
# shellcheck disable=SC2329 # called by the trap below
forward() {
  forwarded=1
  kill -INT -- "-$child" 2>/dev/null || kill -INT "$child" 2>/dev/null || true
}
trap forward INT TERM

rc=0
wait "$child" || rc=$?
# A trapped signal interrupts `wait` (status > 128): wait again for the real status.
while [[ $forwarded -eq 1 && $rc -gt 128 ]]; do
  forwarded=0
  rc=0
  wait "$child" || rc=$?
done
trap - INT TERM

echo "ENDING RUN AT $(now)"
exit "$rc"
