//! The worker pool: one thread per `--threads`, each owning its backend session and
//! its own histograms. The pool is started once (sessions load once) and runs many
//! jobs: open-loop steps fed by the issuer, closed-loop runs, the accuracy pass.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::base::sut::{Backend, BackendError, Batch, Prediction, Session};
use crate::measure::live_histogram::LiveHistogram;
use crate::measure::queue::{Claim, Query, QueryQueue, RING_CAPACITY, WORKER_SPIN};
use crate::measure::stats::WorkerStats;

mod inflight;

/// The samples queries point at (LoadGen's "query sample library"): tensors already
/// preprocessed and in RAM, so the timed path only reads memory.
pub trait SampleLibrary: Send + Sync {
    /// Number of samples (at least 1); query `i` uses sample `i % count`.
    fn count(&self) -> usize;
    /// Elements in one sample (0 for backends that take no input).
    fn item_len(&self) -> usize;
    /// `n` consecutive samples from `start`, back to back (`start + n <= len`).
    fn items(&self, start: usize, n: usize) -> &[f32];
}

/// Counters a worker keeps current during a step so that the step's controller can
/// decide early (each worker's on its own cache line).
///
/// Ordering contract (so that the controller never counts a query twice): after a
/// batch the worker clears `busy`, then stores `done`, then `late`, each with Release;
/// the controller loads `late`, then `done`, then `busy`, each with Acquire. A batch
/// seen in `late` is therefore never also seen as busy; at worst a batch is missed for
/// one check, which only delays a stop.
#[derive(Default)]
pub struct LiveCounters {
    /// Queries finished (served or failed).
    pub done: AtomicU64,
    /// Served with latency above the step's target.
    pub late: AtomicU64,
    /// The batch in service: first index in the high 40 bits, length in the low 24
    /// (0: idle). One word, so index and length always belong to the same batch.
    pub busy: AtomicU64,
    /// The served queries' latencies from their planned send, coarsely: the progress
    /// bar's p99 so far.
    pub latency: LiveHistogram,
}

const BUSY_LEN_BITS: u32 = 24;

/// How long, after a step against an asynchronous session, the server may hold the
/// requests still out without answering any before it counts as stopped: 5 s, or
/// twice the step's `target` where that is longer (a server legitimately that slow
/// still ends a request now and then). A live server answers its backlog far more
/// often: the slowest here, Triton's ResNet-50 on 2 cores, ends one every 0.2 s.
pub fn settle_idle(target: Duration) -> Duration {
    (2 * target).max(Duration::from_secs(5))
}

/// Packs a batch in service for [`LiveCounters::busy`].
pub fn pack_busy(first: u64, len: usize) -> u64 {
    (first << BUSY_LEN_BITS) | (len as u64 & ((1 << BUSY_LEN_BITS) - 1))
}

/// `(first index, length)` of a packed batch; length 0 when idle.
pub fn unpack_busy(word: u64) -> (u64, u64) {
    (word >> BUSY_LEN_BITS, word & ((1 << BUSY_LEN_BITS) - 1))
}

impl LiveCounters {
    fn reset(&self) {
        self.done.store(0, Ordering::Relaxed);
        self.late.store(0, Ordering::Relaxed);
        self.busy.store(0, Ordering::Relaxed);
        self.latency.reset();
    }
}

/// What the accuracy pass collects: raw top-1 per sample, scores when asked.
pub struct AccuracyOutput {
    pub top1: Vec<i64>,
    pub scores: Option<Vec<f32>>,
    pub stats: WorkerStats,
    pub seconds: f64,
}

enum Job {
    /// Serve the queue until it is finished; latencies from `epoch`.
    Open {
        epoch: Instant,
        /// Latency thresholds whose exceedances are counted exactly; the first is the
        /// step's target (the one the live counter follows).
        thresholds: Arc<[u64]>,
    },
    /// Back-to-back batches until `until` (or abort).
    Closed {
        epoch: Instant,
        until: Instant,
        /// One query in flight per worker (an asynchronous session too), and at most
        /// this many samples per worker: the sync run of `loadgen latency`.
        sync_limit: Option<u64>,
    },
    /// Predict samples `[0, n)`, taking batches from a shared cursor.
    Accuracy(Arc<AccuracyJob>),
    Exit,
}

struct AccuracyJob {
    n: usize,
    cursor: AtomicUsize,
    top1: Mutex<Vec<i64>>,
    scores: Option<Mutex<Vec<f32>>>,
    classes: usize,
    epoch: Instant,
}

struct Worker {
    jobs: Sender<Job>,
    thread: Option<JoinHandle<()>>,
}

/// Workers plus the queue they drain.
pub struct WorkerPool {
    workers: Vec<Worker>,
    reports: Receiver<WorkerStats>,
    queue: Arc<QueryQueue>,
    live: Arc<[CachePadded<LiveCounters>]>,
    stop: Arc<AtomicBool>,
    batch_size: usize,
}

struct WorkerCtx {
    session: Box<dyn Session>,
    samples: Arc<dyn SampleLibrary>,
    queue: Arc<QueryQueue>,
    live: Arc<[CachePadded<LiveCounters>]>,
    stop: Arc<AtomicBool>,
    /// Set by whoever records signals: ends an accuracy pass and a settle early.
    interrupt: &'static AtomicBool,
    id: usize,
    batch_size: usize,
    /// Scratch for batches that wrap around the sample library.
    gather: Vec<f32>,
    pred: Prediction,
    stats: WorkerStats,
}

impl WorkerPool {
    /// Starts `threads` workers, each opening its own session (in parallel, since
    /// loading can take seconds). Fails if any session fails.
    pub fn start(
        backend: &Arc<dyn Backend>,
        samples: Arc<dyn SampleLibrary>,
        threads: usize,
        batch_size: usize,
    ) -> Result<WorkerPool, BackendError> {
        static NEVER: AtomicBool = AtomicBool::new(false);
        WorkerPool::start_interruptible(backend, samples, threads, batch_size, &NEVER)
    }

    /// [`WorkerPool::start`], with a flag that, once set (a signal), ends an accuracy
    /// pass after the batches in flight and cuts short the wait for abandoned requests.
    pub fn start_interruptible(
        backend: &Arc<dyn Backend>,
        samples: Arc<dyn SampleLibrary>,
        threads: usize,
        batch_size: usize,
        interrupt: &'static AtomicBool,
    ) -> Result<WorkerPool, BackendError> {
        let queue = Arc::new(QueryQueue::new(RING_CAPACITY));
        let live: Arc<[CachePadded<LiveCounters>]> = (0..threads)
            .map(|_| CachePadded::new(LiveCounters::default()))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let (report_tx, reports) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut workers = Vec::with_capacity(threads);
        for id in 0..threads {
            let (jobs, job_rx) = mpsc::channel();
            let backend = Arc::clone(backend);
            let ctx_parts = (
                Arc::clone(&samples),
                Arc::clone(&queue),
                Arc::clone(&live),
                Arc::clone(&stop),
            );
            let report_tx = report_tx.clone();
            let ready_tx = ready_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("worker-{id}"))
                .spawn(move || {
                    crate::base::clock::tighten_timer_slack();
                    crate::base::clock::yield_priority_to_issuer();
                    let session = match backend.session(id) {
                        Ok(s) => {
                            let _ = ready_tx.send(Ok(()));
                            s
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let (samples, queue, live, stop) = ctx_parts;
                    let mut ctx = WorkerCtx {
                        session,
                        samples,
                        queue,
                        live,
                        stop,
                        interrupt,
                        id,
                        batch_size,
                        gather: Vec::new(),
                        pred: Prediction::default(),
                        stats: WorkerStats::default(),
                    };
                    ctx.serve(job_rx, report_tx);
                })
                .map_err(|e| {
                    BackendError::Runtime(format!("could not start a worker thread: {e}"))
                })?;
            workers.push(Worker {
                jobs,
                thread: Some(thread),
            });
        }
        drop(ready_tx);
        let mut first_err = None;
        for _ in 0..threads {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(BackendError::Runtime(
                        "a worker thread died while loading".into(),
                    ));
                }
            }
        }
        let pool = WorkerPool {
            workers,
            reports,
            queue,
            live,
            stop,
            batch_size,
        };
        match first_err {
            Some(e) => Err(e),
            None => Ok(pool),
        }
    }

    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn queue(&self) -> &QueryQueue {
        &self.queue
    }

    pub fn live_handle(&self) -> Arc<[CachePadded<LiveCounters>]> {
        Arc::clone(&self.live)
    }

    pub fn live(&self) -> &[CachePadded<LiveCounters>] {
        &self.live
    }

    fn broadcast(&self, make: impl Fn() -> Job) {
        for w in &self.workers {
            let _ = w.jobs.send(make());
        }
    }

    fn prepare(&self) {
        self.queue.reset();
        self.stop.store(false, Ordering::SeqCst);
        for l in self.live.iter() {
            l.reset();
        }
    }

    /// Starts an open-loop step: workers serve the queue, which the caller then fills
    /// with [`crate::measure::issuer::issue`] and ends with [`WorkerPool::collect`].
    /// `thresholds[0]` is the step's target (`u64::MAX` for none).
    pub fn begin_open(&self, epoch: Instant, thresholds: Arc<[u64]>) {
        self.prepare();
        self.broadcast(|| Job::Open {
            epoch,
            thresholds: Arc::clone(&thresholds),
        });
    }

    /// Starts a closed-loop run until `until`; end it with [`WorkerPool::collect`].
    pub fn begin_closed(&self, epoch: Instant, until: Instant) {
        self.prepare();
        self.broadcast(|| Job::Closed {
            epoch,
            until,
            sync_limit: None,
        });
    }

    /// Starts the sync run ([`crate::measure::sync`]): each worker one query at a time,
    /// back to back, until `until` or `limit` samples.
    pub fn begin_sync(&self, epoch: Instant, until: Instant, limit: u64) {
        self.prepare();
        self.broadcast(|| Job::Closed {
            epoch,
            until,
            sync_limit: Some(limit),
        });
    }

    /// Asks workers to finish the batch in hand and report (closed loop, interrupts).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.queue.abort();
    }

    /// Waits for every worker's report of the current job and merges them.
    pub fn collect(&self) -> Result<WorkerStats, BackendError> {
        let mut total = WorkerStats::default();
        for _ in 0..self.workers.len() {
            let s = self
                .reports
                .recv()
                .map_err(|_| BackendError::Runtime("a worker thread died".into()))?;
            total.merge(&s);
        }
        Ok(total)
    }

    /// Predicts samples `[0, n)` once, spread over the workers.
    pub fn run_accuracy(
        &self,
        n: usize,
        classes: usize,
        keep_scores: bool,
    ) -> Result<AccuracyOutput, BackendError> {
        self.prepare();
        let job = Arc::new(AccuracyJob {
            n,
            cursor: AtomicUsize::new(0),
            top1: Mutex::new(vec![-1; n]),
            scores: keep_scores.then(|| Mutex::new(vec![0.0; n * classes])),
            classes,
            epoch: Instant::now(),
        });
        self.broadcast(|| Job::Accuracy(Arc::clone(&job)));
        let stats = self.collect()?;
        let seconds = job.epoch.elapsed().as_secs_f64();
        if let Some(e) = &stats.first_error {
            return Err(BackendError::Runtime(e.clone()));
        }
        let job = Arc::try_unwrap(job)
            .map_err(|_| BackendError::Runtime("accuracy job still shared".into()))?;
        Ok(AccuracyOutput {
            top1: job.top1.into_inner(),
            scores: job.scores.map(Mutex::into_inner),
            stats,
            seconds,
        })
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.stop();
        self.broadcast(|| Job::Exit);
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[inline]
fn ns_since(epoch: Instant) -> u64 {
    Instant::now().saturating_duration_since(epoch).as_nanos() as u64
}

/// The samples for queries `first..first+n`, without a copy unless they wrap around
/// the end of the library.
fn gather_batch<'a>(
    samples: &'a dyn SampleLibrary,
    gather: &'a mut Vec<f32>,
    first: u64,
    n: usize,
) -> Batch<'a> {
    let len = samples.count();
    if samples.item_len() == 0 {
        return Batch { data: &[], len: n };
    }
    let start = (first % len as u64) as usize;
    if start + n <= len {
        return Batch {
            data: samples.items(start, n),
            len: n,
        };
    }
    gather.clear();
    for k in 0..n {
        gather.extend_from_slice(samples.items((start + k) % len, 1));
    }
    Batch {
        data: gather,
        len: n,
    }
}

impl WorkerCtx {
    fn serve(&mut self, jobs: Receiver<Job>, reports: Sender<WorkerStats>) {
        while let Ok(job) = jobs.recv() {
            self.stats.reset();
            match job {
                Job::Open { epoch, thresholds } => self.open(epoch, &thresholds),
                Job::Closed {
                    epoch,
                    until,
                    sync_limit,
                } => self.closed(epoch, until, sync_limit),
                Job::Accuracy(job) => self.accuracy(&job),
                Job::Exit => return,
            }
            if reports.send(self.stats.clone()).is_err() {
                return;
            }
        }
    }

    fn predict(&mut self, first: u64, n: usize) -> Result<(), BackendError> {
        self.pred.clear();
        let batch = gather_batch(&*self.samples, &mut self.gather, first, n);
        self.session.predict(batch, &mut self.pred)
    }

    fn note_error(&mut self, n: usize, e: BackendError) {
        self.stats.errors += n as u64;
        if self.stats.first_error.is_none() {
            self.stats.first_error = Some(e.to_string());
        }
    }

    fn open(&mut self, epoch: Instant, thresholds: &[u64]) {
        if self.session.as_async().is_some() {
            return self.open_async(epoch, thresholds);
        }
        let mut buf = vec![Query::default(); self.batch_size];
        let queue = Arc::clone(&self.queue);
        let live = Arc::clone(&self.live);
        let live = &live[self.id];
        self.stats.late = vec![0; thresholds.len()];
        self.stats.thresholds = thresholds.to_vec();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // The issuer needs a core of its own at high rates: spin only if one is left.
        let spin = if self.live.len() < cores {
            WORKER_SPIN
        } else {
            Duration::ZERO
        };
        while let Claim::Got(n) = queue.claim(&mut buf, spin) {
            let batch = &buf[..n];
            live.busy
                .store(pack_busy(batch[0].index, n), Ordering::Release);
            let start = ns_since(epoch);
            let result = self.predict(batch[0].index, n);
            let done = ns_since(epoch);
            live.busy.store(0, Ordering::Release);
            match result {
                Ok(()) => {
                    self.stats.service.record(done.saturating_sub(start));
                    for q in batch {
                        let corrected = done.saturating_sub(q.planned_ns);
                        self.stats
                            .record_served(corrected, done.saturating_sub(q.issued_ns));
                        live.latency.record(corrected);
                    }
                    self.stats.completed += n as u64;
                    if let Some(stall) = self.session.stall_ns() {
                        self.stats.stalls.record(stall);
                    }
                }
                Err(e) => self.note_error(n, e),
            }
            self.stats.last_completion_ns = done;
            live.done
                .store(self.stats.completed + self.stats.errors, Ordering::Release);
            let late = self.stats.late.first().copied().unwrap_or(0);
            live.late.store(late, Ordering::Release);
        }
    }

    fn closed(&mut self, epoch: Instant, until: Instant, sync_limit: Option<u64>) {
        if self.session.as_async().is_some() {
            return self.closed_async(epoch, until, sync_limit);
        }
        let limit = sync_limit.unwrap_or(u64::MAX);
        let n = self.batch_size;
        let live = Arc::clone(&self.live);
        let live = &live[self.id];
        // Each worker starts at its own place in the library.
        let mut next = (self.id * n) as u64;
        let stride = (self.live.len() * n) as u64;
        while !self.stop.load(Ordering::Relaxed)
            && Instant::now() < until
            && self.stats.completed + self.stats.errors < limit
        {
            let start = ns_since(epoch);
            let result = self.predict(next, n);
            let done = ns_since(epoch);
            match result {
                Ok(()) => {
                    self.stats.corrected.record_n(done - start, n as u64);
                    self.stats.uncorrected.record_n(done - start, n as u64);
                    self.stats.service.record(done - start);
                    self.stats.completed += n as u64;
                }
                Err(e) => self.note_error(n, e),
            }
            self.stats.last_completion_ns = done;
            live.done
                .store(self.stats.completed + self.stats.errors, Ordering::Release);
            next += stride;
        }
    }

    fn accuracy(&mut self, job: &AccuracyJob) {
        let bs = self.batch_size;
        loop {
            // A signal ends the pass after the batches in flight (docs/CONTRACT.md §9).
            if self.stop.load(Ordering::Relaxed) || self.interrupt.load(Ordering::Relaxed) {
                return;
            }
            let first = job.cursor.fetch_add(bs, Ordering::Relaxed);
            if first >= job.n {
                return;
            }
            let n = bs.min(job.n - first);
            self.pred.keep_scores = job.scores.is_some();
            let start = ns_since(job.epoch);
            let result = self.predict(first as u64, n);
            let done = ns_since(job.epoch);
            match result {
                Ok(()) if self.pred.top1.len() == n => {
                    self.stats.corrected.record_n(done - start, n as u64);
                    self.stats.uncorrected.record_n(done - start, n as u64);
                    self.stats.completed += n as u64;
                    job.top1.lock()[first..first + n].copy_from_slice(&self.pred.top1);
                    if let Some(scores) = &job.scores {
                        let c = job.classes;
                        if self.pred.scores.len() == n * c {
                            scores.lock()[first * c..(first + n) * c]
                                .copy_from_slice(&self.pred.scores);
                        }
                    }
                }
                Ok(()) => self.note_error(
                    n,
                    BackendError::Runtime(format!(
                        "the backend returned {} classes for a batch of {n}",
                        self.pred.top1.len()
                    )),
                ),
                Err(e) => self.note_error(n, e),
            }
            self.stats.last_completion_ns = done;
        }
    }
}
