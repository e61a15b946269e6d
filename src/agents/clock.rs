//! The agents' clocks against the coordinator's. Before a run the coordinator pings
//! each agent a few times; from the exchange with the shortest round trip (the one
//! least delayed on the way) it takes the agent's offset, `agent − coordinator`, as
//! NTP does: the agent read its clock at some instant within the round trip, so the
//! offset is known to within half of it. Steps start at an instant of the
//! coordinator's clock, which each agent is sent on its own (offset added).
//!
//! A run refuses to start when an agent's clock is more than [`MAX_OFFSET`] off (the
//! clocks are not synchronised, and may be stepped while the run lasts) or its offset
//! is uncertain by more than [`MAX_UNCERTAINTY`] (the network between them is too
//! slow to agree on an instant).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest clock offset accepted between an agent and its coordinator.
pub const MAX_OFFSET: Duration = Duration::from_secs(1);

/// Largest uncertainty of that offset (half the best round trip).
pub const MAX_UNCERTAINTY: Duration = Duration::from_millis(10);

/// Pings per agent.
pub const PINGS: usize = 8;

/// One ping: the coordinator's clock when it sent it and when the answer came, and
/// the agent's clock in the answer (ns since the Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ping {
    pub sent: u64,
    pub agent: u64,
    pub back: u64,
}

/// An agent's clock against the coordinator's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Offset {
    /// `agent − coordinator`, ns.
    pub offset_ns: i64,
    /// Half the round trip of the ping it was read from, ns.
    pub uncertainty_ns: u64,
}

/// The offset from the ping with the shortest round trip; `None` without pings.
pub fn estimate(pings: &[Ping]) -> Option<Offset> {
    let best = pings
        .iter()
        .filter(|p| p.back >= p.sent)
        .min_by_key(|p| p.back - p.sent)?;
    let mid = best.sent as i128 + (best.back - best.sent) as i128 / 2;
    Some(Offset {
        offset_ns: (best.agent as i128 - mid).clamp(i64::MIN as i128, i64::MAX as i128) as i64,
        uncertainty_ns: (best.back - best.sent).div_ceil(2),
    })
}

/// Why the offset rules an agent out, in words; `None` when it is within bounds.
pub fn refusal(o: &Offset) -> Option<String> {
    let off = Duration::from_nanos(o.offset_ns.unsigned_abs());
    let unc = Duration::from_nanos(o.uncertainty_ns);
    if off > MAX_OFFSET {
        Some(format!(
            "its clock is {:.3} s {} the coordinator's (at most {} s: synchronise both with NTP)",
            off.as_secs_f64(),
            if o.offset_ns > 0 {
                "ahead of"
            } else {
                "behind"
            },
            MAX_OFFSET.as_secs()
        ))
    } else if unc > MAX_UNCERTAINTY {
        Some(format!(
            "its clock can only be compared to within {:.1} ms (the best of {PINGS} round trips took {:.1} ms; at most {} ms)",
            unc.as_secs_f64() * 1e3,
            2.0 * unc.as_secs_f64() * 1e3,
            MAX_UNCERTAINTY.as_millis()
        ))
    } else {
        None
    }
}

/// This machine's wall clock, ns since the Unix epoch.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A coordinator instant (ns of its wall clock) on the agent's clock.
pub fn on_agent(coordinator_ns: u64, o: &Offset) -> u64 {
    coordinator_ns.saturating_add_signed(o.offset_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_round_trip_gives_the_offset() {
        // An agent 5 ms ahead; the second ping's answer came back fastest.
        let pings = [
            Ping {
                sent: 0,
                agent: 5_000_000 + 9_000_000,
                back: 10_000_000,
            },
            Ping {
                sent: 20_000_000,
                agent: 25_000_000 + 500_000,
                back: 21_000_000,
            },
            Ping {
                sent: 40_000_000,
                agent: 45_000_000 + 100_000,
                back: 43_000_000,
            },
        ];
        let o = estimate(&pings).unwrap();
        assert_eq!(
            o,
            Offset {
                offset_ns: 5_000_000,
                uncertainty_ns: 500_000
            }
        );
        assert_eq!(on_agent(1_000_000_000, &o), 1_005_000_000);
        assert_eq!(estimate(&[]), None);
    }

    #[test]
    fn offsets_and_uncertainties_beyond_the_bounds_are_refused() {
        let cases = [
            (0, 100_000, None),
            (-900_000_000, 100_000, None),
            (1_500_000_000, 100_000, Some("ahead of")),
            (-2_000_000_000, 100_000, Some("behind")),
            (0, 11_000_000, Some("within 11.0 ms")),
        ];
        for (offset_ns, uncertainty_ns, words) in cases {
            let r = refusal(&Offset {
                offset_ns,
                uncertainty_ns,
            });
            match words {
                None => assert_eq!(r, None, "{offset_ns}"),
                Some(w) => assert!(r.as_deref().is_some_and(|r| r.contains(w)), "{r:?}"),
            }
        }
    }
}
