//! `sim`: a model server with a chosen service-time law. Each worker serves one query
//! at a time, so `--threads c` makes an M/G/c queue. Service ends at an absolute
//! instant (start + drawn time), kept with the same precise wait as the issuer.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp, LogNormal, Uniform};

use crate::backend::config::BackendConfig;
use crate::base::clock;
use crate::base::limits;
use crate::base::model::ModelInfo;
use crate::base::sut::{Backend, BackendError, Batch, Prediction, Session};
use crate::base::text::quote_up_to;

/// A service-time law, parsed from `--sim-service-time`.
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceTime {
    /// Always the same.
    Fixed(Duration),
    /// Exponential with this mean (M/M/c).
    Exp(Duration),
    /// Log-normal with this mean and this sigma of the underlying normal.
    LogNormal(Duration, f64),
    /// Uniform between the two bounds.
    Uniform(Duration, Duration),
}

impl ServiceTime {
    /// Parses `fixed:5ms`, `exp:5ms`, `lognormal:5ms:0.5`, `uniform:2ms:8ms`.
    pub fn parse(spec: &str) -> Result<ServiceTime, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        // Values are quoted as a prefix: a 50 KB flag must not fill the terminal. A
        // law is a few characters, so 60 of the whole and of a part say enough.
        let quote = |v: &str| quote_up_to(v, 60);
        let whole = quote(spec);
        let dur = |s: &str| {
            let d = clock::parse_duration(s).ok_or_else(|| {
                format!(
                    "--sim-service-time '{whole}': '{}' is not a duration (try 5ms, 250us, 0.01s)",
                    quote(s)
                )
            })?;
            if d.as_secs_f64() > limits::MAX_SERVICE_SECONDS {
                return Err(format!(
                    "--sim-service-time '{whole}': '{}' is longer than the limit of an hour",
                    quote(s)
                ));
            }
            Ok(d)
        };
        let law = match parts.as_slice() {
            ["fixed", d] => ServiceTime::Fixed(dur(d)?),
            ["exp", d] => ServiceTime::Exp(dur(d)?),
            ["lognormal", d, sigma] => {
                let sigma: f64 = sigma
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= limits::MAX_SIGMA)
                    .ok_or_else(|| format!("--sim-service-time '{whole}': sigma '{}' must be a positive number, at most {}", quote(sigma), limits::MAX_SIGMA))?;
                ServiceTime::LogNormal(dur(d)?, sigma)
            }
            ["uniform", lo, hi] => {
                let (lo, hi) = (dur(lo)?, dur(hi)?);
                if lo > hi {
                    return Err(format!(
                        "--sim-service-time '{whole}': the lower bound is above the upper bound"
                    ));
                }
                ServiceTime::Uniform(lo, hi)
            }
            _ => {
                return Err(format!(
                    "--sim-service-time '{whole}' is not a law: use fixed:5ms, exp:5ms, lognormal:5ms:0.5 or uniform:2ms:8ms"
                ))
            }
        };
        if law.mean().is_zero() {
            return Err(format!("--sim-service-time '{whole}' has a zero mean"));
        }
        Ok(law)
    }

    /// Mean service time.
    pub fn mean(&self) -> Duration {
        match *self {
            ServiceTime::Fixed(d) | ServiceTime::Exp(d) | ServiceTime::LogNormal(d, _) => d,
            ServiceTime::Uniform(lo, hi) => (lo + hi) / 2,
        }
    }
}

/// Draws service times of one law.
#[derive(Clone, Debug)]
enum Sampler {
    Fixed(f64),
    Exp(Exp<f64>),
    LogNormal(LogNormal<f64>),
    Uniform(Uniform<f64>),
}

impl Sampler {
    fn new(law: &ServiceTime) -> Sampler {
        match *law {
            ServiceTime::Fixed(d) => Sampler::Fixed(d.as_secs_f64()),
            // Exp::new(λ) only fails for λ < 0 or NaN; the mean was checked > 0.
            ServiceTime::Exp(d) => Sampler::Exp(Exp::new(1.0 / d.as_secs_f64()).expect("rate > 0")), // ok: mean > 0 checked in parse
            ServiceTime::LogNormal(d, sigma) => {
                // mean = exp(mu + sigma²/2)  =>  mu = ln(mean) - sigma²/2
                let mu = d.as_secs_f64().ln() - sigma * sigma / 2.0;
                // Only fails for a non-finite or negative sigma, checked in parse.
                Sampler::LogNormal(LogNormal::new(mu, sigma).expect("sigma > 0"))
                // ok: sigma > 0 checked in parse
            }
            ServiceTime::Uniform(lo, hi) => {
                // Only fails for lo > hi or non-finite bounds, checked in parse.
                Sampler::Uniform(
                    Uniform::new_inclusive(lo.as_secs_f64(), hi.as_secs_f64()).expect("lo <= hi"), // ok: lo <= hi checked in parse
                )
            }
        }
    }

    fn sample(&self, rng: &mut SmallRng) -> Duration {
        let secs = match self {
            Sampler::Fixed(s) => *s,
            Sampler::Exp(d) => d.sample(rng),
            Sampler::LogNormal(d) => d.sample(rng),
            Sampler::Uniform(d) => d.sample(rng),
        };
        // A long tail (log-normal) may draw anything: clamp to the longest service time.
        limits::duration(secs.min(limits::MAX_SERVICE_SECONDS))
    }
}

pub struct SimBackend {
    law: ServiceTime,
    sampler: Sampler,
    seed: u64,
    info: ModelInfo,
}

impl SimBackend {
    pub fn new(cfg: &BackendConfig) -> Result<SimBackend, BackendError> {
        let spec = cfg.sim_service_time.as_deref().unwrap_or("fixed:5ms");
        let law = ServiceTime::parse(spec).map_err(BackendError::BadInput)?;
        Ok(SimBackend {
            sampler: Sampler::new(&law),
            law,
            seed: cfg.seed,
            info: ModelInfo::none(),
        })
    }

    pub fn law(&self) -> &ServiceTime {
        &self.law
    }
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn model(&self) -> &ModelInfo {
        &self.info
    }
    fn session(&self, worker: usize) -> Result<Box<dyn Session>, BackendError> {
        Ok(Box::new(SimSession {
            stall_ns: 0,
            sampler: self.sampler.clone(),
            rng: SmallRng::seed_from_u64(
                self.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(worker as u64 + 1)),
            ),
        }))
    }
}

struct SimSession {
    /// Overshoot of the last service beyond its drawn end (the machine's, not the
    /// simulated server's, delay).
    stall_ns: u64,
    sampler: Sampler,
    rng: SmallRng,
}

impl Session for SimSession {
    fn predict(&mut self, batch: Batch<'_>, out: &mut Prediction) -> Result<(), BackendError> {
        // Items are served one after the other: the batch takes the sum of their times.
        let mut end = Instant::now();
        for _ in 0..batch.len {
            end += self.sampler.sample(&mut self.rng);
        }
        clock::wait_until(end);
        self.stall_ns = Instant::now().saturating_duration_since(end).as_nanos() as u64;
        out.top1.extend(std::iter::repeat_n(0, batch.len));
        Ok(())
    }

    fn stall_ns(&self) -> Option<u64> {
        Some(self.stall_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_law() {
        assert_eq!(
            ServiceTime::parse("fixed:5ms"),
            Ok(ServiceTime::Fixed(Duration::from_millis(5)))
        );
        assert_eq!(
            ServiceTime::parse("exp:2ms"),
            Ok(ServiceTime::Exp(Duration::from_millis(2)))
        );
        assert_eq!(
            ServiceTime::parse("lognormal:5ms:0.5"),
            Ok(ServiceTime::LogNormal(Duration::from_millis(5), 0.5))
        );
        assert_eq!(
            ServiceTime::parse("uniform:2ms:8ms").map(|l| l.mean()),
            Ok(Duration::from_millis(5))
        );
    }

    #[test]
    fn rejects_bad_laws_with_a_sentence() {
        for bad in [
            "gauss:5ms",
            "fixed",
            "fixed:fast",
            "uniform:8ms:2ms",
            "lognormal:5ms:-1",
            "fixed:0ms",
            "fixed:1e20s",
            "fixed:2h",
            "exp:3601s",
            "uniform:1ms:1e30s",
            "lognormal:5ms:100",
        ] {
            let err = ServiceTime::parse(bad).unwrap_err();
            assert!(
                err.contains(bad) || err.contains("--sim-service-time"),
                "{err}"
            );
        }
    }

    #[test]
    fn sample_means_match_the_law() {
        let mut rng = SmallRng::seed_from_u64(7);
        for law in ["exp:5ms", "lognormal:5ms:0.5", "uniform:2ms:8ms"] {
            let s = Sampler::new(&ServiceTime::parse(law).unwrap());
            let n = 200_000;
            let mean: f64 = (0..n)
                .map(|_| s.sample(&mut rng).as_secs_f64())
                .sum::<f64>()
                / n as f64;
            assert!((mean - 0.005).abs() < 0.005 * 0.02, "{law}: mean {mean}");
        }
    }
}
