//! The hand-off between the issuer and the workers: two counters over a ring of
//! planned/issued times. Queries `[claimed, released)` wait for a worker. Releasing
//! and claiming are one atomic store and one compare-and-swap, so the generator stays
//! far above any real model's rate (docs/CONTRACT.md §8).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};

/// Ring size: how many released-but-unclaimed queries can wait. A backlog this deep
/// means the step failed long ago; the issuer then waits for room (and is late).
pub const RING_CAPACITY: usize = 1 << 18;

/// How long an idle worker spins before it sleeps on the condition variable, when
/// there are cores to spare.
pub const WORKER_SPIN: Duration = Duration::from_micros(50);

#[derive(Default)]
struct Slot {
    planned_ns: AtomicU64,
    issued_ns: AtomicU64,
}

/// A query as a worker sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Position in the step's schedule; picks the sample (`index % samples`).
    pub index: u64,
    /// Planned send time, ns from the step's start.
    pub planned_ns: u64,
    /// When the issuer actually released it, ns from the step's start.
    pub issued_ns: u64,
}

/// What [`QueryQueue::claim`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This many queries were written to the buffer.
    Got(usize),
    /// The issuer is done and every query has been claimed, or the step was aborted.
    Finished,
}

/// The hand-off between the issuer and the workers (single producer, many consumers).
pub struct QueryQueue {
    slots: Box<[Slot]>,
    mask: u64,
    released: CachePadded<AtomicU64>,
    claimed: CachePadded<AtomicU64>,
    closed: AtomicBool,
    aborted: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl QueryQueue {
    /// `capacity` is rounded up to a power of two.
    pub fn new(capacity: usize) -> QueryQueue {
        let cap = capacity.next_power_of_two().max(2);
        QueryQueue {
            slots: (0..cap).map(|_| Slot::default()).collect(),
            mask: cap as u64 - 1,
            released: CachePadded::new(AtomicU64::new(0)),
            claimed: CachePadded::new(AtomicU64::new(0)),
            closed: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// Empties the queue for a new step. Only call while no worker is claiming.
    pub fn reset(&self) {
        self.released.store(0, Ordering::SeqCst);
        self.claimed.store(0, Ordering::SeqCst);
        self.closed.store(false, Ordering::SeqCst);
        self.aborted.store(false, Ordering::SeqCst);
    }

    pub fn capacity(&self) -> u64 {
        self.mask + 1
    }

    pub fn released(&self) -> u64 {
        self.released.load(Ordering::Acquire)
    }

    pub fn claimed(&self) -> u64 {
        self.claimed.load(Ordering::Acquire)
    }

    /// Planned offset of a released query that has not been claimed yet.
    /// Only the issuer's thread may call it (it is the only writer of the slots).
    pub(crate) fn planned_of(&self, index: u64) -> u64 {
        self.slots[(index & self.mask) as usize]
            .planned_ns
            .load(Ordering::Relaxed)
    }

    /// Issuer side: makes query `index` visible to workers (with `publish`).
    #[inline]
    pub(crate) fn write(&self, index: u64, planned_ns: u64, issued_ns: u64) {
        let slot = &self.slots[(index & self.mask) as usize];
        slot.planned_ns.store(planned_ns, Ordering::Relaxed);
        slot.issued_ns.store(issued_ns, Ordering::Relaxed);
    }

    /// Issuer side: everything below `released` may now be claimed.
    #[inline]
    pub(crate) fn publish(&self, released: u64, newly: u64) {
        self.released.store(released, Ordering::SeqCst);
        if newly > 0 && self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock();
            if newly == 1 {
                self.wake.notify_one();
            } else {
                self.wake.notify_all();
            }
        }
    }

    /// No more queries will be released.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock();
        self.wake.notify_all();
    }

    /// Stop handing out queries now; the unclaimed backlog is abandoned.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.close();
    }

    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// Worker side: takes up to `out.len()` queries in FIFO order, waiting for them.
    /// `spin` is how long to busy-wait before sleeping: worth it only while there are
    /// fewer workers than cores (else spinning steals the issuer's core).
    pub fn claim(&self, out: &mut [Query], spin: Duration) -> Claim {
        let max = out.len() as u64;
        let mut spin_started: Option<Instant> = None;
        loop {
            if self.aborted.load(Ordering::Acquire) {
                return Claim::Finished;
            }
            // `closed` first: the issuer publishes its last `released` before it closes,
            // so a worker that sees the queue closed also sees every query. Read the
            // other way round, a worker could pair an old `released` with `closed` and
            // leave the last queries unserved until the drain timeout.
            let closed = self.closed.load(Ordering::Acquire);
            #[cfg(test)]
            test_hook::pause_between_loads();
            let c = self.claimed.load(Ordering::Acquire);
            let r = self.released.load(Ordering::Acquire);
            if c < r {
                let n = (r - c).min(max);
                // Read before claiming: slots in [claimed, released) are not overwritten
                // while `claimed` is still `c`, so a successful CAS validates the read.
                for (k, q) in out.iter_mut().take(n as usize).enumerate() {
                    let index = c + k as u64;
                    let slot = &self.slots[(index & self.mask) as usize];
                    *q = Query {
                        index,
                        planned_ns: slot.planned_ns.load(Ordering::Relaxed),
                        issued_ns: slot.issued_ns.load(Ordering::Relaxed),
                    };
                }
                if self
                    .claimed
                    .compare_exchange_weak(c, c + n, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Claim::Got(n as usize);
                }
                continue;
            }
            if closed {
                return Claim::Finished;
            }
            // Nothing to do: spin briefly (the next query is often microseconds away),
            // then sleep until the issuer wakes us.
            let started = *spin_started.get_or_insert_with(Instant::now);
            if started.elapsed() < spin {
                std::hint::spin_loop();
                continue;
            }
            let mut guard = self.lock.lock();
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            let idle = self.claimed.load(Ordering::SeqCst) >= self.released.load(Ordering::SeqCst)
                && !self.closed.load(Ordering::SeqCst);
            if idle {
                // The timeout only guards against a lost wake-up; normal wake-ups come
                // from `publish` and `close`.
                self.wake.wait_for(&mut guard, Duration::from_millis(5));
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            drop(guard);
            spin_started = None;
        }
    }

    /// Released, unclaimed queries from index `from` (a snapshot of `claimed`) that
    /// were planned before `before_ns`: certainly late once `before_ns = now − target`.
    /// Issuer thread only.
    pub(crate) fn backlog_planned_before(&self, from: u64, before_ns: u64) -> u64 {
        let (mut lo, hi) = (from, self.released());
        if lo >= hi || self.planned_of(lo) >= before_ns {
            return 0;
        }
        // Planned times rise with the index: binary search the first one not before the cut.
        let start = lo;
        let mut hi = hi;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.planned_of(mid) < before_ns {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo - start
    }
}

/// A pause injected between the loads of [`QueryQueue::claim`], so a test can make the
/// issuer publish and close in between (the interleaving that used to lose queries).
#[cfg(test)]
pub(crate) mod test_hook {
    use std::cell::Cell;
    use std::time::Duration;

    thread_local! {
        static PAUSE: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    }

    pub fn set_pause(d: Duration) {
        PAUSE.with(|p| p.set(d));
    }

    pub fn pause_between_loads() {
        let d = PAUSE.with(Cell::get);
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_close_between_the_loads_of_a_claim_loses_no_query() {
        // The worker pauses between its loads; meanwhile the issuer releases the last
        // query and closes. The worker must still get that query.
        for _ in 0..20 {
            let q = Arc::new(QueryQueue::new(16));
            let worker = {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    test_hook::set_pause(Duration::from_millis(2));
                    let mut buf = [Query::default(); 4];
                    let mut got = 0;
                    while let Claim::Got(n) = q.claim(&mut buf, Duration::ZERO) {
                        got += n;
                    }
                    got
                })
            };
            std::thread::sleep(Duration::from_micros(500));
            q.write(0, 0, 0);
            q.publish(1, 1);
            q.close();
            assert_eq!(worker.join().unwrap(), 1, "the last query was lost");
        }
    }

    #[test]
    fn backlog_counts_only_waiting_queries_planned_before_the_cut() {
        let q = QueryQueue::new(16);
        for i in 0..10 {
            q.write(i, i * 100, i * 100);
        }
        q.publish(10, 10);
        let mut buf = [Query::default(); 3];
        assert_eq!(q.claim(&mut buf, WORKER_SPIN), Claim::Got(3)); // claimed: 0,1,2
        assert_eq!(q.backlog_planned_before(q.claimed(), 450), 2); // 3 and 4
        assert_eq!(q.backlog_planned_before(q.claimed(), 10_000), 7);
        assert_eq!(q.backlog_planned_before(q.claimed(), 250), 0);
    }
}
