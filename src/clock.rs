//! Precise waiting. `thread::sleep` overshoots by 50 µs to over 1 ms (timer slack,
//! scheduler tick), so we sleep until shortly before the instant and spin the rest.

use std::time::{Duration, Instant};

/// How long before the deadline we stop sleeping and start spinning.
pub const SPIN_WINDOW: Duration = Duration::from_micros(200);

/// Asks the kernel for 1 µs timer slack on the calling thread (default 50 µs), so the
/// sleep part of [`wait_until`] lands close to where it aimed. Best effort.
pub fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes a per-thread scheduling hint.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Returns at `deadline` or just after it (sub-microsecond on an idle core).
#[inline]
pub fn wait_until(deadline: Instant) {
    let now = Instant::now();
    if deadline <= now {
        return;
    }
    let left = deadline - now;
    if left > SPIN_WINDOW {
        std::thread::sleep(left - SPIN_WINDOW);
    }
    spin_until(deadline);
}

/// Busy-waits until `deadline`, yielding the core now and then so that a
/// worker on the same core is not starved.
#[inline]
pub fn spin_until(deadline: Instant) {
    let mut spins = 0u32;
    while Instant::now() < deadline {
        spins = spins.wrapping_add(1);
        if spins % 64 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Parses a duration such as `5ms`, `250us`, `1.5ms`, `0.2s`, `800ns`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic() || c == 'µ')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.trim().parse().ok()?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" | "" => 1.0,
        _ => return None,
    };
    let secs = value * scale;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("5ms"), Some(Duration::from_millis(5)));
        assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_duration("1.5ms"), Some(Duration::from_micros(1500)));
        assert_eq!(parse_duration("0.2s"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("800ns"), Some(Duration::from_nanos(800)));
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("-1ms"), None);
        assert_eq!(parse_duration("ms"), None);
    }

    #[test]
    fn wait_until_is_not_early_and_not_much_late() {
        tighten_timer_slack();
        let mut worst = Duration::ZERO;
        for _ in 0..20 {
            let deadline = Instant::now() + Duration::from_micros(700);
            wait_until(deadline);
            let now = Instant::now();
            assert!(now >= deadline, "returned before the deadline");
            worst = worst.max(now - deadline);
        }
        // Generous bound: this asserts correctness (not early, not a 1 ms tick late),
        // not speed; the lateness figures live in the benchmarks.
        assert!(worst < Duration::from_millis(5), "worst lateness {worst:?}");
    }
}
