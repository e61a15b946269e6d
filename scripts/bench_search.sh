#!/usr/bin/env bash
# The truth benchmark (issue 8; figures in docs/BENCHMARKS.md): does the search
# find the answer queueing theory knows, run after run? For each queue and seed it runs `loadgen run` on the sim
# backend and prints the answer, its interval, the error against theory and the time;
# for M/M/1 also the late queries its steps from 15 % below to 5 % above theory saw,
# against what theory expects of them (`near-theory late 51 of 6535 (theory 32)`: that
# seed's draws were unlucky there, not the search).
#
#   scripts/bench_search.sh [SEEDS] [TIME]     (default: 5 seeds, --time 10)
#   QUEUES="M/D/1 M/M/2" scripts/bench_search.sh   (only those queues)
#   JOBS=35 scripts/bench_search.sh   (runs at once, default 1: a sim run sleeps between
#                                      queries and uses ~5 % of a core, so a quiet
#                                      2-core machine holds all 35 runs together)
#
# Queues (one server unless said):
#   M/M/1  exp:5ms,   exponential, T = 50 ms:  theory mu - ln(100)/T = 107.9 qps
#   M/D/1  fixed:5ms, exponential, T = 50 ms:  theory 154.7 qps (Erlang's series for
#          the M/D/1 wait)
#   M/M/2  exp:10ms,  exponential, T = 100 ms, 2 servers: theory 151.6 qps (Erlang C
#          wait plus exponential service)
#   M/D/1-T3, -T5, -T6  fixed:5ms, exponential, T = 15, 25, 30 ms: theory 63.9, 112.2,
#          125.9 qps (flat tails: the late fraction climbs slowly near the answer)
#   D/D/1  fixed:5ms, linear,      T = 20 ms:  theory 200 qps (199 measurable)
# Each line says whether the interval covers theory and the median width of the
# intervals with both ends; an end no step showed with confidence is '?'.
# The M/D/1 and M/M/2 answers come from the formulas in the search harness
# (src/measure/search.rs, unit-tested) and agree with a 2 M-query simulation.
# Acceptance (issue 8): M/M/1 median within ±5 %, every answer in [-12 %, +5 %], the
# interval covering theory in at least 4 of 5 seeds; the other queues the same way;
# D/D/1 in 190-201. After each queue a summary line says which of these held.
set -euo pipefail
root=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seeds=${1:-5}
time_s=${2:-10}
cargo build --release --quiet
bin=$root/target/release/loadgen
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

queues=${QUEUES:-M/M/1 M/D/1 M/M/2 M/D/1-T3 M/D/1-T5 M/D/1-T6 D/D/1}

jobs_max=${JOBS:-1}
# One run: its ===RESULT line and its wall seconds, in files named after the queue and
# seed (a / in a queue's name becomes _).
run_one() { # name law dist target threads seed
  local f=$out/${1//\//_}.$6 start
  start=$(date +%s)
  "$bin" run --backend sim --sim-service-time "$2" --threads "$5" --distributions "$3" \
    --max-latency "$4" --no-accuracy --quiet --time "$time_s" --seed "$6" \
    --output "$f.json" 2>/dev/null | grep '^===RESULT' >"$f.line" || true
  echo $(($(date +%s) - start)) >"$f.secs"
}

# First every run (JOBS at a time), then each queue's lines and summary.
start_queue() { # name law dist target theory threads [cover]
  case " $queues " in *" $1 "*) ;; *) return 0 ;; esac
  local seed
  for seed in $(seq 1 "$seeds"); do
    while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
    run_one "$1" "$2" "$3" "$4" "$6" "$seed" &
  done
}

run_queue() { # name law dist target theory threads [rate the interval should cover]
  local name=$1 law=$2 target=$4 theory=$5 cover=${7:-$5}
  case " $queues " in *" $name "*) ;; *) return 0 ;; esac
  : >"$out/summary"
  for seed in $(seq 1 "$seeds"); do
    local f=$out/${name//\//_}.$seed line secs
    line=$(cat "$f.line")
    secs=$(cat "$f.secs")
    python3 - "$name" "$seed" "$theory" "$secs" "$line" "$out/summary" "$cover" "$f.json" "$law" "$target" <<'PY'
import json, math, re, sys
name, seed, theory, secs, line, summary = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
want = float(sys.argv[7])
# M/M/1 only (its late fraction is e^-(mu - lambda)T): the late queries this run's
# steps within 15 % below to 5 % above theory saw, against what theory expects of
# them. Far more than expected means the run's random draws were unlucky there (the
# sim and the schedules are seeded, so a seed replays nearly the same draws), and an
# answer below the band then follows its data rather than a fault of the search.
luck = ""
if name == "M/M/1":
    steps = [s for d in json.load(open(sys.argv[8]))["scan"].values() for s in d.values()]
    near = [s for s in steps if s.get("offered_qps") and 0.85 * theory <= s["offered_qps"] <= 1.05 * theory]
    judged = sum(s["judged"] for s in near)
    late = sum(s["late"] for s in near)
    # mu and T from this queue's own arguments (law exp:<ms>ms, target in seconds).
    mu = 1e3 / float(re.fullmatch(r"exp:([0-9.]+)ms", sys.argv[9]).group(1))
    t = float(sys.argv[10])
    expect = sum(s["judged"] * math.exp(-(mu - s["offered_qps"]) * t) for s in near)
    luck = f" near-theory late {late} of {judged} (theory {expect:.0f})"
q = re.search(r"qps=([0-9.]+|FAIL)", line).group(1)
# An end no step showed with confidence is '?'.
lo_s, hi_s = re.search(r"interval=([0-9.]+|\?)-([0-9.]+|\?)", line).groups()
lo = None if lo_s == "?" else float(lo_s)
hi = None if hi_s == "?" else float(hi_s)
v = 0.0 if q == "FAIL" else float(q)
cover = lo is not None and hi is not None and lo <= want <= hi
width = "nan" if lo is None or hi is None else f"{100 * (hi - lo) / theory:.1f}"
with open(summary, "a") as f:
    f.write(f"{v} {int(cover)} {width}\n")
if q == "FAIL":
    print(f"{name} seed={seed} FAIL interval={lo_s}-{hi_s} time={secs}s{luck}")
else:
    print(f"{name} seed={seed} qps={v:g} error={100 * (v / theory - 1):+.1f}% interval={lo_s}-{hi_s} ({'covers' if cover else 'does not cover'} {want:g}) time={secs}s{luck}")
PY
  done
  python3 - "$name" "$theory" "$out/summary" <<'PY'
import statistics, sys
name, theory, summary = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rows = [line.split() for line in open(summary)]
errs = [100 * (float(r[0]) / theory - 1) for r in rows]
n = len(rows)
med = statistics.median(errs)
band = sum(-12 <= e <= 5 for e in errs)
cov = sum(int(r[1]) for r in rows)
widths = [float(r[2]) for r in rows if r[2] != "nan"]
width = (f"median width {statistics.median(widths):.0f} % of theory over the {len(widths)} with both ends"
         if widths else "no interval with both ends")
if name == "D/D/1":
    ok = sum(190 <= float(r[0]) <= 201 for r in rows)
    print(f"{name}: {ok} of {n} answers in 190-201, intervals cover 199 in {cov} of {n}; {width}")
else:
    print(f"{name}: median {med:+.1f} % ({'within' if abs(med) <= 5 else 'OUTSIDE'} ±5 %), "
          f"{band} of {n} in [-12 %, +5 %], intervals cover theory in {cov} of {n}; {width}")
PY
}

each_queue() { # what to do with each queue: start_queue or run_queue
  "$1" "M/M/1" exp:5ms exponential 0.05 107.9 1
  "$1" "M/D/1" fixed:5ms exponential 0.05 154.7 1
  "$1" "M/M/2" exp:10ms exponential 0.1 151.6 2
  # Flat tails: deterministic service and a target of 3, 5 or 6 service times, where
  # the late fraction climbs slowly near the answer (at 89 % of it 0.66, 0.43, 0.34 %).
  "$1" "M/D/1-T3" fixed:5ms exponential 0.015 63.9 1
  "$1" "M/D/1-T5" fixed:5ms exponential 0.025 112.2 1
  "$1" "M/D/1-T6" fixed:5ms exponential 0.03 125.9 1
  # D/D/1: at 200 qps the server is never idle, so the highest rate a step can pass is
  # 199 (whole numbers from 10 qps up); the interval is checked against that.
  "$1" "D/D/1" fixed:5ms linear 0.02 200 1 199
}
each_queue start_queue
wait
each_queue run_queue
