//! One first-in first-out queue of requests served by `threads` worker threads, each
//! owning one backend [`Session`]. A worker takes the oldest waiting request only once
//! it is idle and serves it to the end, so the server is a textbook c-server queue:
//! `sim` with an exponential service law under Poisson arrivals is M/M/c, whose
//! answers theory knows (with one worker the mean sojourn is 1/(μ - λ)). A request
//! waits for a worker in the queue, never in the network stack or the runtime.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::base::sut::{Backend, BackendError, Batch, Prediction, Session};

/// One request waiting for a worker: its raw FP32 values, its item count, and where
/// the top-1 classes go.
struct Job {
    raw: Bytes,
    items: usize,
    reply: oneshot::Sender<Result<Vec<i64>, BackendError>>,
}

/// The queue and its workers. Dropping it closes the queue; the workers finish the
/// request they hold and end.
pub struct Queue {
    tx: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Queue {
    /// Opens one session per worker first, so that a backend that cannot serve says
    /// so before the port opens, then starts the workers.
    pub fn start(backend: &dyn Backend, threads: usize) -> Result<Queue, BackendError> {
        let sessions = (0..threads.max(1))
            .map(|w| backend.session(w))
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = mpsc::channel::<Job>();
        // The workers share the receiving end: the idle one that holds the lock takes
        // the next request in arrival order.
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(sessions.len());
        for (w, session) in sessions.into_iter().enumerate() {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("serve-{w}"))
                .spawn(move || work(session, &rx))
                .map_err(|e| BackendError::Runtime(format!("could not start a worker: {e}")))?;
            workers.push(spawned);
        }
        Ok(Queue {
            tx: Some(tx),
            workers,
        })
    }

    /// Queues one request of `items` items and waits for its top-1 classes.
    pub async fn run(&self, raw: Bytes, items: usize) -> Result<Vec<i64>, BackendError> {
        let (reply, answer) = oneshot::channel();
        let closed = || BackendError::Runtime("the server is stopping".into());
        let tx = self.tx.as_ref().ok_or_else(closed)?;
        tx.send(Job { raw, items, reply }).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A worker: serves requests until the queue closes. Its buffers are reused.
fn work(mut session: Box<dyn Session>, rx: &Mutex<mpsc::Receiver<Job>>) {
    let mut data: Vec<f32> = Vec::new();
    let mut out = Prediction::default();
    loop {
        let job = rx.lock().recv();
        let Ok(job) = job else {
            return;
        };
        data.clear();
        data.extend(
            job.raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        out.clear();
        let batch = Batch {
            data: &data,
            len: job.items,
        };
        let result = session.predict(batch, &mut out).map(|()| out.top1.clone());
        // The client may have gone; a server finishes the work anyway.
        let _ = job.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::base::model::ModelInfo;

    /// Each request takes 20 ms of a worker.
    struct Slow(ModelInfo);
    struct SlowSession;

    impl Session for SlowSession {
        fn predict(&mut self, b: Batch<'_>, out: &mut Prediction) -> Result<(), BackendError> {
            std::thread::sleep(Duration::from_millis(20));
            out.top1.extend(std::iter::repeat_n(7, b.len));
            Ok(())
        }
    }

    impl Backend for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn version(&self) -> String {
            String::new()
        }
        fn model(&self) -> &ModelInfo {
            &self.0
        }
        fn session(&self, _: usize) -> Result<Box<dyn Session>, BackendError> {
            Ok(Box::new(SlowSession))
        }
    }

    /// Four requests at once on one worker are served one after the other (the last
    /// answer comes after 4 × 20 ms); on four workers, side by side (well before).
    #[test]
    fn workers_serve_one_request_each_at_a_time() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (threads, serial) in [(1, true), (4, false)] {
            let q = Queue::start(&Slow(ModelInfo::none()), threads).unwrap();
            let t0 = Instant::now();
            let answers = rt.block_on(async {
                let raw = Bytes::from(vec![0u8; 8]);
                let (a, b, c, d) = tokio::join!(
                    q.run(raw.clone(), 2),
                    q.run(raw.clone(), 2),
                    q.run(raw.clone(), 2),
                    q.run(raw.clone(), 2)
                );
                [a, b, c, d].map(Result::unwrap)
            });
            let took = t0.elapsed();
            assert!(answers.iter().all(|a| a == &[7, 7]), "{answers:?}");
            if serial {
                assert!(took >= Duration::from_millis(80), "{took:?}");
            } else {
                // Four parallel sleeps end long before four serial ones would,
                // even on a busy machine: sleeping needs no core.
                assert!(took < Duration::from_millis(75), "{took:?}");
            }
        }
    }
}
