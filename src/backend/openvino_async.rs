//! OpenVINO's asynchronous infer requests as a worker's in-flight path (`--requests
//! N`, benchmark_app's `-nireq`): one worker thread keeps up to N requests running on
//! one compiled model, as the kserve backend keeps N requests on a server, instead of
//! N worker threads each blocked on a synchronous request.
//!
//! OpenVINO's C API calls a request's callback on its own thread when an inference
//! ends, without saying how it ended. So the callback only sends the request's index
//! down a channel; a reaper thread per session receives it, asks the request for its
//! outcome ([`InferRequest::wait`], which returns at once for an ended inference),
//! hands that to the query's completion and frees the request for the next query.
//!
//! Ownership: a request is the submitting worker's while free, OpenVINO's while it
//! runs, and the reaper's from its callback until it is marked free again; the state
//! lock moves it between them, so no two threads ever use one request (only
//! `cancel`, which OpenVINO allows from any thread).

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::ov_capi::{Callback, CompiledModel, InferRequest};
use crate::base::op_profile::{self, OpTotals, SharedTotals};
use crate::base::sut::{BackendError, Batch, Completion};

/// Sent down the channel to stop the reaper.
const STOP: usize = usize::MAX;

/// How long `submit` waits for a request to come free (the pool keeps at most as many
/// in flight as there are requests, so it waits only behind cancelled ones, which end
/// within one inference), and `Drop` for the last ones to end.
const PATIENCE: Duration = Duration::from_secs(60);

/// What a request's callback needs: which request ended, and where to say so; and
/// the callback itself, whose address OpenVINO keeps.
struct Signal {
    index: usize,
    tx: Sender<usize>,
    callback: Callback,
}

/// The callback OpenVINO calls when request `args.index` ends.
///
/// # Safety
/// `args` is a [`Signal`] that outlives the request (see [`OvRequests`]'s field order).
unsafe extern "C" fn on_done(args: *mut c_void) {
    // SAFETY: as documented; the channel is thread-safe.
    let s = unsafe { &*(args as *const Signal) };
    let _ = s.tx.send(s.index);
}

/// One request and the batch it reads.
struct Slot {
    request: InferRequest,
    /// `batch × item_len` values at a fixed address (the Box's), bound to the request;
    /// written only while the request is free.
    input: Mutex<Box<[f32]>>,
}

#[derive(Default)]
struct State {
    /// Per request: the completion of the query it runs (`None` when free, or when
    /// `cancel_all` dropped it).
    waiting: Vec<Option<Completion>>,
    free: Vec<usize>,
}

struct Shared {
    slots: Vec<Slot>,
    state: Mutex<State>,
    freed: Condvar,
    outstanding: AtomicUsize,
    profile: Option<SharedTotals>,
}

// SAFETY: the requests (Send, not Sync) are used by one thread at a time as the module
// comment describes; everything else is behind a lock or atomic.
unsafe impl Sync for Shared {}

impl Shared {
    /// Marks request `i` free again and wakes a waiting submit.
    fn release(&self, i: usize) {
        self.state.lock().free.push(i);
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
        self.freed.notify_all();
    }
}

/// A worker's asynchronous requests on the shared compiled model.
pub struct OvRequests {
    shared: Arc<Shared>,
    reaper: Option<JoinHandle<()>>,
    stop: Sender<usize>,
    /// The static batch and the values per item.
    full: usize,
    item_len: usize,
    // Dropped after `shared` (which frees the requests): the callbacks' arguments and
    // the compiled model the requests were made from.
    // Boxed: each callback holds its signal's address.
    #[allow(clippy::vec_box)]
    signals: Vec<Box<Signal>>,
    _compiled: Arc<CompiledModel>,
}

fn runtime(e: impl std::fmt::Display) -> BackendError {
    BackendError::Runtime(format!("OpenVINO: {e}"))
}

impl OvRequests {
    /// `count` requests on `compiled`, each with its own input of shape `dims`.
    pub fn new(
        compiled: &Arc<CompiledModel>,
        count: usize,
        dims: &[i64],
        profile: Option<SharedTotals>,
    ) -> Result<OvRequests, BackendError> {
        let full = dims[0].max(1) as usize;
        let item_len = dims[1..].iter().product::<i64>().max(0) as usize;
        let (tx, rx) = channel();
        let mut slots = Vec::with_capacity(count);
        let mut signals = Vec::with_capacity(count);
        for index in 0..count {
            let mut request = compiled.request().map_err(BackendError::Runtime)?;
            let mut input = vec![0f32; full * item_len].into_boxed_slice();
            let mut signal = Box::new(Signal {
                index,
                tx: tx.clone(),
                callback: Callback::new(on_done, std::ptr::null_mut()),
            });
            let args = &*signal as *const Signal as *mut c_void;
            signal.callback.set_args(args);
            // SAFETY: the input's heap block and the signal live in this struct until
            // after the request is freed (field order, and `Drop` waits for every
            // inference to end); the input is written only while the request is free.
            unsafe {
                request
                    .bind_input(input.as_mut_ptr(), dims)
                    .map_err(runtime)?;
                request.set_callback(&signal.callback).map_err(runtime)?;
            }
            slots.push(Slot {
                request,
                input: Mutex::new(input),
            });
            signals.push(signal);
        }
        let shared = Arc::new(Shared {
            slots,
            state: Mutex::new(State {
                waiting: (0..count).map(|_| None).collect(),
                free: (0..count).rev().collect(),
            }),
            freed: Condvar::new(),
            outstanding: AtomicUsize::new(0),
            profile,
        });
        let reaper = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("loadgen-ov-reaper".into())
                .spawn(move || reap(&shared, &rx))
                .map_err(|e| runtime(format!("could not start a thread: {e}")))?
        };
        Ok(OvRequests {
            shared,
            reaper: Some(reaper),
            stop: tx,
            full,
            item_len,
            signals,
            _compiled: Arc::clone(compiled),
        })
    }

    /// How many requests there are.
    pub fn count(&self) -> usize {
        self.shared.slots.len()
    }

    /// Requests started and not ended yet.
    pub fn outstanding(&self) -> usize {
        self.shared.outstanding.load(Ordering::Acquire)
    }

    /// Starts `batch` on a free request (waiting for one if none is); `done` runs on
    /// the reaper thread when it ends.
    pub fn submit(&self, batch: Batch<'_>, done: Completion) {
        let n = batch.len;
        if n == 0 || n > self.full || batch.data.len() != n * self.item_len {
            return done(Err(runtime(format!(
                "a batch of {n} items with {} values does not fit the compiled batch of {}",
                batch.data.len(),
                self.full
            ))));
        }
        let shared = &*self.shared;
        let deadline = Instant::now() + PATIENCE;
        let i = {
            let mut st = shared.state.lock();
            loop {
                if let Some(i) = st.free.pop() {
                    break i;
                }
                if shared.freed.wait_until(&mut st, deadline).timed_out() {
                    drop(st);
                    return done(Err(runtime(format!(
                        "no infer request came free within {} s",
                        PATIENCE.as_secs()
                    ))));
                }
            }
        };
        {
            let mut input = shared.slots[i].input.lock();
            input[..batch.data.len()].copy_from_slice(batch.data);
            input[batch.data.len()..].fill(0.0);
        }
        shared.outstanding.fetch_add(1, Ordering::AcqRel);
        shared.state.lock().waiting[i] = Some(done);
        // SAFETY: request `i` was taken from the free list above: no other thread uses
        // it until its callback hands it to the reaper.
        if let Err(e) = unsafe { shared.slots[i].request.start() } {
            let done = shared.state.lock().waiting[i].take();
            shared.release(i);
            if let Some(done) = done {
                done(Err(runtime(e)));
            }
        }
    }

    /// Drops the completions of every request running and asks OpenVINO to stop them;
    /// they end (and come free) on their own.
    pub fn cancel_all(&self) {
        let mut st = self.shared.state.lock();
        for (i, waiting) in st.waiting.iter_mut().enumerate() {
            if waiting.take().is_some() {
                self.shared.slots[i].request.cancel();
            }
        }
    }
}

/// The reaper: for each request that ended, its outcome to its completion.
fn reap(shared: &Shared, rx: &Receiver<usize>) {
    let mut mine = shared.profile.as_ref().map(|_| OpTotals::default());
    while let Ok(i) = rx.recv() {
        let Some(slot) = shared.slots.get(i) else {
            break; // STOP
        };
        // SAFETY: request `i` ended (its callback sent `i`) and is not started again
        // until `release` below.
        let result = unsafe { slot.request.wait() };
        let done = shared.state.lock().waiting[i].take();
        if let (Some(totals), Ok(()), Some(_)) = (mine.as_mut(), &result, &done) {
            if let Err(e) = slot.request.add_profile(totals) {
                if totals.problems.is_empty() {
                    totals.problems.push(e);
                }
            }
        }
        // The completion first: once `outstanding` reads 0, every answer is counted.
        if let Some(done) = done {
            done(result.map_err(runtime));
        }
        shared.release(i);
    }
    if let (Some(shared_totals), Some(totals)) = (&shared.profile, mine) {
        op_profile::merge_into(shared_totals, totals);
    }
}

impl Drop for OvRequests {
    fn drop(&mut self) {
        self.cancel_all();
        let deadline = Instant::now() + PATIENCE;
        {
            let mut st = self.shared.state.lock();
            while self.outstanding() > 0 {
                if self.shared.freed.wait_until(&mut st, deadline).timed_out() {
                    break;
                }
            }
        }
        let ended = self.outstanding() == 0;
        let _ = self.stop.send(STOP);
        if let Some(t) = self.reaper.take() {
            let _ = t.join();
        }
        if !ended {
            // OpenVINO still holds a request that never ended: freeing it, or the
            // signal its callback reads, could crash later. Leak them instead.
            std::mem::forget(Arc::clone(&self.shared));
            std::mem::forget(std::mem::take(&mut self.signals));
        }
    }
}
