//! Ctrl-C: the first one asks the run to stop (the current step ends, what is finished
//! is written, exit code 130); a second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPT: AtomicBool = AtomicBool::new(false);

/// The flag measuring code polls.
pub fn flag() -> &'static AtomicBool {
    &INTERRUPT
}

pub fn interrupted() -> bool {
    INTERRUPT.load(Ordering::Relaxed)
}

/// Installs the handler on a small background thread (tokio's signal support).
pub fn install() {
    let spawned = std::thread::Builder::new().name("signals".into()).spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            loop {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                if INTERRUPT.swap(true, Ordering::SeqCst) {
                    eprintln!("loadgen: interrupted twice, exiting now");
                    std::process::exit(130);
                }
                eprintln!("loadgen: interrupted; finishing the current step and writing results (Ctrl-C again to quit now)");
            }
        });
    });
    if spawned.is_err() {
        eprintln!("loadgen: warning: could not install the Ctrl-C handler");
    }
}
