//! Serving with an asynchronous session (a network client). The worker claims queries
//! as the issuer releases them, submits each and goes back to the queue at once; the
//! answers arrive on the session's own threads and are recorded into this job's
//! [`Sink`]: the same histograms, exact late counts per threshold and live counters as
//! a blocking worker keeps, latency from the planned send time. At most
//! `max_in_flight` requests are out; the rest wait in the queue (where the early
//! verdict counts them), so the memory held per query stays O(1) and bounded.
//!
//! Live counters, as [`LiveCounters`] asks of every worker: `busy` names queries of
//! this worker that are in flight (never one already in `done` or `late`), and every
//! change is published under the sink's lock, `busy` first, then `done`, then `late`,
//! each with Release, so that the controller (Acquire, in the reverse order) never
//! counts a query twice. Many requests can be in flight but `busy` holds one range:
//! the longest run of consecutive query indices in flight from the oldest one (the
//! oldest are the ones that turn late first), bounded by [`BUSY_SCAN`] requests.
//! Queries in flight outside that run are missed by a check until they finish, which
//! at worst delays a stop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};

use super::{gather_batch, ns_since, pack_busy, LiveCounters, WorkerCtx, BUSY_LEN_BITS};
use crate::base::sut::{AsyncSession, BackendError};
use crate::measure::queue::{Claim, Query};
use crate::measure::stats::WorkerStats;

/// How long a closed-loop run waits for its last window of requests after its end.
const CLOSED_DRAIN: Duration = Duration::from_secs(10);

/// The most in-flight requests joined into the `busy` run per update: bounds the work
/// under the lock and the controller's scan of the run.
const BUSY_SCAN: usize = 64;

/// How long a job, once over, waits for the server to finish requests nobody waits
/// for any more (a step stopped early leaves up to `max_in_flight` of them), so that
/// the next step does not start behind them. Then they are dropped.
const SETTLE: Duration = Duration::from_secs(30);

/// Waits (bounded by [`SETTLE`], and by `idle` without a single request ending, cut
/// short by Ctrl-C) until the session has no request out, then drops any that are
/// left. Returns how many it dropped because none had ended for `idle`: the server
/// stopped answering (a live one, however slow, ends a request now and then; a
/// silent one would otherwise cost every step the whole [`SETTLE`]).
fn settle(session: &mut dyn AsyncSession, interrupt: &AtomicBool, idle: Duration) -> u64 {
    let start = Instant::now();
    let (mut left, mut moved) = (session.outstanding(), start);
    while left > 0
        && start.elapsed() < SETTLE
        && moved.elapsed() < idle
        && !interrupt.load(Ordering::Relaxed)
    {
        std::thread::sleep(Duration::from_millis(2));
        let now = session.outstanding();
        if now < left {
            moved = Instant::now();
        }
        left = now;
    }
    let stalled = if left > 0 && moved.elapsed() >= idle {
        left as u64
    } else {
        0
    };
    if session.outstanding() > 0 {
        session.cancel_all();
    }
    stalled
}

/// The queries of one request: one inline (batch 1, the usual case), more on the heap.
#[derive(Clone)]
enum Held {
    One(Query),
    Many(Box<[Query]>),
}

impl Held {
    fn new(qs: &[Query]) -> Held {
        match qs {
            [q] => Held::One(*q),
            _ => Held::Many(qs.into()),
        }
    }

    fn as_slice(&self) -> &[Query] {
        match self {
            Held::One(q) => std::slice::from_ref(q),
            Held::Many(v) => v,
        }
    }
}

struct SinkState {
    stats: WorkerStats,
    /// Requests submitted and not yet answered: first query index → its queries
    /// (their planned times judge them if the step ends first). A request's queries
    /// have consecutive indices (one claim or one closed batch).
    in_flight: BTreeMap<u64, Held>,
    /// The job is over: answers still arriving are ignored.
    closed: bool,
    /// The worker sleeps until a request ends.
    waiting: bool,
}

impl SinkState {
    /// The `busy` word: the run of consecutive indices in flight from the oldest.
    fn busy_word(&self) -> u64 {
        let mut it = self.in_flight.iter();
        let Some((&first, held)) = it.next() else {
            return 0;
        };
        let max_len = (1u64 << BUSY_LEN_BITS) - 1;
        let mut end = first + held.as_slice().len() as u64;
        for (&f, held) in it.take(BUSY_SCAN - 1) {
            let l = held.as_slice().len() as u64;
            if f != end || end - first + l > max_len {
                break;
            }
            end += l;
        }
        pack_busy(first, (end - first) as usize)
    }
}

/// Where one job's answers are recorded (shared by the worker and the completions).
struct Sink {
    state: Mutex<SinkState>,
    freed: Condvar,
    live: Arc<[CachePadded<LiveCounters>]>,
    id: usize,
    epoch: Instant,
    /// Whether `busy` is kept and requests still out at the end are judged at their
    /// age (open-loop steps; a closed-loop run has no verdict).
    track_busy: bool,
}

impl Sink {
    fn new(ctx: &WorkerCtx, epoch: Instant, thresholds: &[u64], track_busy: bool) -> Sink {
        let stats = WorkerStats {
            late: vec![0; thresholds.len()],
            thresholds: thresholds.to_vec(),
            ..WorkerStats::default()
        };
        Sink {
            state: Mutex::new(SinkState {
                stats,
                in_flight: BTreeMap::new(),
                closed: false,
                waiting: false,
            }),
            freed: Condvar::new(),
            live: Arc::clone(&ctx.live),
            id: ctx.id,
            epoch,
            track_busy,
        }
    }

    fn live(&self) -> &LiveCounters {
        &self.live[self.id]
    }

    /// A request for `queries` (consecutive indices) is about to be sent: from now on
    /// the live counters may count them as in service.
    fn submitted(&self, queries: &[Query]) {
        let Some(q) = queries.first() else {
            return;
        };
        let mut st = self.state.lock();
        st.in_flight.insert(q.index, Held::new(queries));
        if self.track_busy {
            self.live().busy.store(st.busy_word(), Ordering::Release);
        }
    }

    /// The answer for `queries` arrived (or failed).
    fn complete(&self, queries: &[Query], result: Result<(), BackendError>) {
        let done = ns_since(self.epoch);
        let mut st = self.state.lock();
        if st.closed {
            return;
        }
        if let Some(q) = queries.first() {
            st.in_flight.remove(&q.index);
        }
        let n = queries.len() as u64;
        match result {
            Ok(()) => {
                let live = self.live();
                for q in queries {
                    let corrected = done.saturating_sub(q.planned_ns);
                    st.stats
                        .record_served(corrected, done.saturating_sub(q.issued_ns));
                    // Under the lock: one writer at a time, as the histogram needs.
                    live.latency.record(corrected);
                }
                st.stats.completed += n;
            }
            Err(e) => {
                st.stats.errors += n;
                if st.stats.first_error.is_none() {
                    st.stats.first_error = Some(e.to_string());
                }
            }
        }
        st.stats.last_completion_ns = st.stats.last_completion_ns.max(done);
        // Under the lock, so that answers ending on several I/O threads publish in
        // order. These queries leave `busy` before they join `done` and `late`: the
        // early verdict may briefly miss them, never count them twice.
        let live = self.live();
        if self.track_busy {
            live.busy.store(st.busy_word(), Ordering::Release);
        }
        live.done
            .store(st.stats.completed + st.stats.errors, Ordering::Release);
        let late = st.stats.late.first().copied().unwrap_or(0);
        live.late.store(late, Ordering::Release);
        if st.waiting {
            self.freed.notify_one();
        }
    }

    /// Waits until fewer than `cap` requests are out; `false` if `give_up` said so first.
    fn wait_room(&self, cap: usize, give_up: impl Fn() -> bool) -> bool {
        let mut st = self.state.lock();
        while st.in_flight.len() >= cap {
            if give_up() {
                return false;
            }
            st.waiting = true;
            // The timeout lets `give_up` be asked again (it watches other flags).
            self.freed.wait_for(&mut st, Duration::from_millis(5));
            st.waiting = false;
        }
        true
    }

    /// Ends the job: its figures, and how many requests were still out. Answers that
    /// arrive later are not counted, so nothing is left in `busy`. In an open-loop
    /// step the queries of those requests are abandoned and judged at their age now
    /// (a lower bound of their latency), as the step's queue judges the queries it
    /// never handed out: the early verdict counted them, so the final one must too.
    fn close(&self) -> (WorkerStats, usize) {
        let now = ns_since(self.epoch);
        let mut st = self.state.lock();
        st.closed = true;
        let out = st.in_flight.len();
        if self.track_busy {
            self.live().busy.store(0, Ordering::Release);
            let in_flight = std::mem::take(&mut st.in_flight);
            for q in in_flight.values().flat_map(Held::as_slice) {
                st.stats.record_censored(now.saturating_sub(q.planned_ns));
            }
        }
        (std::mem::take(&mut st.stats), out)
    }
}

impl WorkerCtx {
    /// An open-loop step through the session's asynchronous side. `thresholds[0]` is
    /// the step's target, whose late count the live counters follow.
    pub(super) fn open_async(&mut self, epoch: Instant, thresholds: &[u64]) {
        let sink = Arc::new(Sink::new(self, epoch, thresholds, true));
        let queue = Arc::clone(&self.queue);
        let stop = Arc::clone(&self.stop);
        let mut buf = vec![Query::default(); self.batch_size];
        let Some(session) = self.session.as_async() else {
            return;
        };
        let cap = session.max_in_flight().max(1);
        let over = || stop.load(Ordering::Relaxed) || queue.is_aborted();
        loop {
            if !sink.wait_room(cap, over) {
                break;
            }
            // No spinning: the session's I/O threads need the cores.
            let Claim::Got(n) = queue.claim(&mut buf, Duration::ZERO) else {
                break;
            };
            let held = Held::new(&buf[..n]);
            sink.submitted(held.as_slice());
            let batch = gather_batch(&*self.samples, &mut self.gather, buf[0].index, n);
            let s = Arc::clone(&sink);
            session.submit(batch, Box::new(move |r| s.complete(held.as_slice(), r)));
        }
        // Everything was claimed: wait for the answers until the step is ended (the
        // step's drain decides how long), then drop what is still out.
        sink.wait_room(1, || stop.load(Ordering::Relaxed));
        let (mut stats, _) = sink.close();
        let target = Duration::from_nanos(thresholds.first().copied().unwrap_or(0));
        stats.stalled = settle(session, self.interrupt, super::settle_idle(target));
        self.stats = stats;
    }

    /// A closed-loop run: `closed_in_flight` requests out at all times until `until`;
    /// with a `sync_limit`, one request at a time and at most that many samples.
    pub(super) fn closed_async(&mut self, epoch: Instant, until: Instant, sync_limit: Option<u64>) {
        let sink = Arc::new(Sink::new(self, epoch, &[], false));
        let stop = Arc::clone(&self.stop);
        let n = self.batch_size;
        // Each worker starts at its own place in the library.
        let mut next = (self.id * n) as u64;
        let stride = (self.live.len() * n) as u64;
        let mut buf = vec![Query::default(); n];
        let Some(session) = self.session.as_async() else {
            return;
        };
        let window = match sync_limit {
            Some(_) => 1,
            None => session.closed_in_flight().max(1),
        };
        let limit = sync_limit.unwrap_or(u64::MAX);
        let mut submitted = 0u64;
        let over = || stop.load(Ordering::Relaxed) || Instant::now() >= until;
        while !over() && submitted < limit {
            if !sink.wait_room(window, over) {
                break;
            }
            let now = ns_since(epoch);
            for (k, q) in buf.iter_mut().enumerate() {
                *q = Query {
                    index: next + k as u64,
                    planned_ns: now,
                    issued_ns: now,
                };
            }
            let held = Held::new(&buf);
            sink.submitted(held.as_slice());
            let batch = gather_batch(&*self.samples, &mut self.gather, next, n);
            let s = Arc::clone(&sink);
            session.submit(batch, Box::new(move |r| s.complete(held.as_slice(), r)));
            submitted += n as u64;
            next += stride;
        }
        // The last window still counts (and should not be left on the server), unless
        // the run was interrupted before its end.
        let interrupted = || stop.load(Ordering::Relaxed) && Instant::now() < until;
        if !interrupted() {
            let deadline = Instant::now() + CLOSED_DRAIN;
            sink.wait_room(1, || interrupted() || Instant::now() >= deadline);
        }
        let (mut stats, _) = sink.close();
        if interrupted() {
            session.cancel_all();
        }
        stats.stalled = settle(session, self.interrupt, super::settle_idle(Duration::ZERO));
        self.stats = stats;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::pool::unpack_busy;

    fn state(entries: &[(u64, u64)]) -> SinkState {
        SinkState {
            stats: WorkerStats::default(),
            in_flight: entries
                .iter()
                .map(|&(first, len)| {
                    let qs: Vec<Query> = (first..first + len)
                        .map(|index| Query {
                            index,
                            ..Query::default()
                        })
                        .collect();
                    (first, Held::new(&qs))
                })
                .collect(),
            closed: false,
            waiting: false,
        }
    }

    #[test]
    fn busy_is_the_consecutive_run_from_the_oldest_request() {
        assert_eq!(state(&[]).busy_word(), 0);
        assert_eq!(unpack_busy(state(&[(7, 1)]).busy_word()), (7, 1));
        // 7, 8, 9 in flight; 10 answered out of order; 11 still out.
        let st = state(&[(7, 1), (8, 1), (9, 1), (11, 1)]);
        assert_eq!(unpack_busy(st.busy_word()), (7, 3));
        // Batches of 4, another worker's batch (8..12) in between.
        let st = state(&[(0, 4), (4, 4), (12, 4)]);
        assert_eq!(unpack_busy(st.busy_word()), (0, 8));
    }

    #[test]
    fn busy_joins_at_most_busy_scan_requests() {
        let entries: Vec<(u64, u64)> = (0..1000).map(|i| (i, 1)).collect();
        let st = state(&entries);
        assert_eq!(unpack_busy(st.busy_word()), (0, BUSY_SCAN as u64));
    }
}
