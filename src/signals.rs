//! SIGINT (Ctrl-C), SIGTERM and SIGHUP: the first one asks the run to stop (the current
//! step or accuracy pass ends, what is finished is written, and the exit code is 128 +
//! the signal's number: 130, 143 or 129); a second one exits at once, but never in the
//! middle of writing a results file (see [`writing`]). This module only records (a flag
//! and the first signal's number) and prints nothing: [`install`] hands what it heard
//! to a function of the caller's.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

static INTERRUPT: AtomicBool = AtomicBool::new(false);
/// The number of the first signal received (0: none yet).
static FIRST: AtomicI32 = AtomicI32::new(0);
/// Held while an output file is being written; a second signal waits for it.
static WRITING: Mutex<()> = Mutex::new(());
/// The longest a second signal waits for a write in progress before exiting anyway.
const WRITE_GRACE: Duration = Duration::from_secs(5);

/// The flag measuring code polls.
pub fn flag() -> &'static AtomicBool {
    &INTERRUPT
}

pub fn interrupted() -> bool {
    INTERRUPT.load(Ordering::Relaxed)
}

/// The exit code of an interrupted run: 128 + the first signal's number (SIGINT 130,
/// SIGTERM 143, SIGHUP 129); 130 when the interruption did not come from a signal.
pub fn exit_code() -> i32 {
    match FIRST.load(Ordering::SeqCst) {
        0 => 130,
        n => 128 + n,
    }
}

/// Marks an output file write in progress: until the guard drops, a second signal does
/// not end the process, so the rename of a complete temp file is never cut short.
pub fn writing() -> MutexGuard<'static, ()> {
    WRITING.lock()
}

/// Records `signo` and returns whether it was the first signal.
pub fn note(signo: i32) -> bool {
    let _ = FIRST.compare_exchange(0, signo, Ordering::SeqCst, Ordering::SeqCst);
    !INTERRUPT.swap(true, Ordering::SeqCst)
}

fn name(signo: i32) -> &'static str {
    match signo {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// What the handler thread heard, for whoever prints (this module prints nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// The first signal (its name): the run finishes the current step and writes.
    First(&'static str),
    /// A second signal: the process exits once this returns (and any write is done).
    Second,
    /// The handlers could not be installed.
    NotInstalled,
}

fn on_signal(signo: i32, report: fn(Heard)) {
    if note(signo) {
        report(Heard::First(name(signo)));
        return;
    }
    report(Heard::Second);
    // Wait for a write in progress, so that results.json is the old or the new one.
    let _guard = WRITING.try_lock_for(WRITE_GRACE);
    std::process::exit(exit_code());
}

/// Installs the handlers on a small background thread (tokio's signal support), and
/// returns once they are in place (or failed): whatever the process prints afterwards,
/// a signal sent after seeing it is handled, not fatal. Tests rely on that to signal a
/// child at a stage it has printed. `report` is told of each signal (and of a failure
/// to install), to print it.
pub fn install(report: fn(Heard)) {
    let (installed, wait_installed) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                    signal(SignalKind::hangup()),
                ) else {
                    report(Heard::NotInstalled);
                    return;
                };
                let _ = installed.send(());
                loop {
                    let signo = tokio::select! {
                        Some(()) = int.recv() => libc::SIGINT,
                        Some(()) = term.recv() => libc::SIGTERM,
                        Some(()) = hup.recv() => libc::SIGHUP,
                        else => return,
                    };
                    on_signal(signo, report);
                }
            });
        });
    if spawned.is_err() {
        report(Heard::NotInstalled);
        return;
    }
    // Err: the thread ended without installing them (it said why).
    let _ = wait_installed.recv();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_signal() {
        // Before any signal, an interruption counts as Ctrl-C.
        assert_eq!(exit_code(), 130);
    }
}
