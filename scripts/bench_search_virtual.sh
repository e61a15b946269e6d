#!/usr/bin/env bash
# The truth benchmark on the virtual clock: the search's real policy and step logic on
# a discrete-event queue whose answer theory knows, over many seeds, in seconds. For
# each queue it prints the answers' band, the interval ends shown (and how many lie on
# the wrong side of theory), their median width and the virtual time; it fails when a
# queue's median answer is more than 5 % off theory.
#
#   scripts/bench_search_virtual.sh [SEEDS]      (default 200 seeds, from seed 1)
#   QUEUES="mm1 md1t5" scripts/bench_search_virtual.sh 400
#
# Queues (see the harness in src/measure/search.rs): mm1, mm1fast (3 s steps), md1,
# mm2, md1t3, md1t5, md1t6 (flat tails), mm1slow. One target each, so a search gets
# the whole default --search-time (320 s); the capacity probe is drawn as it runs.
set -euo pipefail
root=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seeds=${1:-200}
queues=${QUEUES:-mm1 mm1fast md1 mm2 md1t3 md1t5 md1t6}
cargo test --release --lib --no-run --quiet
failed=0
for q in $queues; do
  t=10
  [[ $q == mm1fast ]] && t=3
  echo "== $q (--time $t, seeds 1-$seeds)"
  if ! QUEUE=$q TIME=$t SEEDS=$seeds PROBE=1 BUDGET=320 \
    cargo test --release --lib --quiet truth_distribution -- --ignored --nocapture 2>&1 |
    grep -E '^(ends shown|in band|late-burst)|panicked|outside'; then
    failed=1
  fi
done
exit "$failed"
