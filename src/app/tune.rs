//! Tuning (docs/CONTRACT.md §7.2): each candidate configuration gets its own sessions, built
//! once, and a short calibration (warm-up, closed-loop capacity, the latency of lone
//! queries); [`crate::tune::predict`] predicts its answers from that, and `run`
//! searches each target on the most promising candidate only.

use std::sync::Arc;

use anyhow::Result;

use crate::config::settings::Settings;
use crate::data::dataset::Dataset;

use crate::measure::schedule::Distribution;
use crate::measure::step::{self, StepSpec, StepSummary};
use crate::output::progress::Progress;
use crate::signals;
use crate::tune::candidates::Candidate;
use crate::tune::predict::{self, Calibration};

use super::common::{load_candidate, warm_up, Sut};

/// Lone queries timed per candidate: enough for a mean and a rough tail, cheap at
/// ResNet-50's ~50 ms.
const LONE_QUERIES: u64 = 30;

/// What a batch candidate's lone queries may take, where three single-query shares
/// of a call apart allows (see [`calibrate_loaded`]).
const LONE_SECONDS: f64 = 6.0;

/// The open-loop calibration's rate as a fraction of the closed-loop capacity: loaded
/// enough that calls run as they will near the answer, below the ceiling even where
/// open-loop calls are a fifth slower.
const OPEN_LOOP_LOAD: f64 = 0.8;

/// How far a batch candidate's full-batch floor from its first capacity probe must
/// exceed the loosest target before its calibration stops there: slow spells on the
/// development VM make calls up to half as long again, and only ever slower, so a
/// floor above 1.5 × the target stays above it however the probe was slowed.
const BATCH_PRUNE_MARGIN: f64 = 1.5;

/// A calibrated candidate, its sessions kept for the searches it wins.
pub(crate) struct Arm {
    pub candidate: Option<Candidate>,
    pub sut: Sut,
    /// The faster of the candidate's capacity probes (see [`reprobe`]).
    pub probe: StepSummary,
    pub calibration: Option<Calibration>,
    /// Mean seconds per call under the open-loop calibration load, for candidates
    /// with an intra-op pool (see [`predict::open_loop_capacity`]).
    pub open_loop_call: Option<f64>,
}

/// The settings with a candidate's configuration in place of the flags'.
pub(crate) fn with_candidate(settings: &Settings, c: Candidate) -> Settings {
    let mut s = settings.clone();
    s.threads = c.workers;
    s.intra_threads = Some(c.intra_threads);
    s.inter_threads = c.inter_threads;
    s.batch_size = c.batch_size;
    s
}

/// The closed-loop capacity probe: no open-loop answer lies above it.
pub(crate) fn probe(
    sut: &Sut,
    settings: &Settings,
    progress: &mut Progress,
    label: &str,
) -> Result<StepSummary> {
    probe_on(sut, settings, progress, label, None)
}

/// [`probe`], on the agents where the run has them (their rates add).
pub(crate) fn probe_on(
    sut: &Sut,
    settings: &Settings,
    progress: &mut Progress,
    label: &str,
    agents: Option<&mut super::coordinator::Agents>,
) -> Result<StepSummary> {
    let probe_time = step::probe_seconds(settings.time);
    progress.stage(label, &format!("{probe_time:.0} s closed loop"));
    let probe = match agents {
        Some(a) => a.probe(probe_time)?,
        None => step::run_probe(&sut.pool, settings.time, signals::flag(), |extra| {
            progress.stage(
                label,
                &format!("{extra:.0} s more closed loop: the calls' times vary"),
            );
        })?,
    };
    if let Some(f) = crate::measure::fault::of(&probe).filter(|_| !signals::interrupted()) {
        return Err(crate::error::ServerFault(f.describe(
            &super::common::fault_subject(settings, sut),
            "the capacity probe",
        ))
        .into());
    }
    if probe.count == 0 && probe.errors == 0 && !signals::interrupted() {
        return Err(crate::error::ServerFault(format!(
            "{} answered none of the capacity probe's queries in {probe_time:.0} s and the drain after it: it stopped answering or is far too slow to measure",
            super::common::fault_subject(settings, sut),
        ))
        .into());
    }
    if probe.count == 0 && !signals::interrupted() {
        anyhow::bail!(
            "the capacity probe completed no query in {probe_time:.0} s{}",
            probe
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    Ok(probe)
}

/// Squared coefficient of variation from the median and p99, as for a log-normal
/// law (ln(p99/p50) = 2.326 σ, cv² = e^σ² − 1): an exponential law gives 0.93, a
/// fixed one 0. The histograms keep no variance; the prediction needs only a rough one.
fn cv2_from_tail(p50: f64, p99: f64) -> f64 {
    if p50 <= 0.0 || p99 <= p50 {
        return 0.0;
    }
    let sigma = (p99 / p50).ln() / 2.326;
    (sigma * sigma).exp() - 1.0
}

/// The rate of the lone queries: each worker's three calls apart, and the pool's
/// never closer than 1.5 calls, so that no query waits and at most one is in flight
/// unless a call takes half as long again as usual. A worker of a candidate with
/// capacity `c` makes `c / (workers · batch)` calls a second, so that rate is
/// `c / (batch · max(3, 1.5 · workers))`: 1x2 three calls apart, 2x1 1.5 (spacing
/// 2x1 three calls apart too took 11 s of TF's 20 s calibration here, for the
/// same lone queries). A lone query is served as a batch of one, so a batch
/// candidate's spacing by full-batch calls is `batch` times longer than needed (17 s
/// for `2x1x0x4` here): there it may shrink to the same spacing in single-query
/// shares of a call, within [`LONE_SECONDS`] for all of them.
fn lone_rate(capacity: f64, workers: usize, batch: usize) -> f64 {
    let calls_apart = 3f64.max(1.5 * workers as f64);
    let spaced = capacity / (calls_apart * batch as f64);
    let quick = (capacity / calls_apart).min(LONE_QUERIES as f64 / LONE_SECONDS);
    spaced.max(quick)
}

/// Calibrates one candidate on its own sessions: see [`calibrate_loaded`].
/// `prune_batch`: a batch candidate whose first probe already puts a full batch
/// beyond every target (by [`BATCH_PRUNE_MARGIN`]) is left out, with an error that
/// says so, before its lone queries and second probe; the caller allows it when a
/// batch-1 candidate remains to answer the tight targets.
pub(crate) fn calibrate(
    settings: &Settings,
    dataset: &Arc<Dataset>,
    c: Candidate,
    prune_batch: bool,
    progress: &mut Progress,
) -> Result<Arm> {
    let s = with_candidate(settings, c);
    progress.stage(&format!("calibrate {c}"), "loading sessions");
    let sut = load_candidate(&s, dataset)?;
    let loosest = settings.max_latency.iter().copied().reduce(f64::max);
    calibrate_loaded(sut, &s, c, loosest.filter(|_| prune_batch), progress)
}

/// Calibrates loaded sessions: warm-up, closed-loop capacity, for candidates with an
/// intra-op pool an open-loop load at [`OPEN_LOOP_LOAD`] of it (whose call times can
/// lower the capacity the predictions start from: see
/// [`predict::open_loop_capacity`]), then lone queries (linear, spaced by
/// [`lone_rate`]), so that almost none waits. `calibration` is `None`
/// only when a signal cut it short. A batch candidate whose full batch (by the probe)
/// takes over [`BATCH_PRUNE_MARGIN`] × `prune_above` stops after the probe with an
/// error that says so: its lone queries could not bring it back.
fn calibrate_loaded(
    sut: Sut,
    s: &Settings,
    c: Candidate,
    prune_above: Option<f64>,
    progress: &mut Progress,
) -> Result<Arm> {
    warm_up(&sut, s, progress)?;
    let probe = probe(&sut, s, progress, &format!("calibrate {c}"))?;
    let floor = predict::batch_floor(c.workers, c.batch_size, probe.qps);
    if let Some(target) = prune_above.filter(|&t| floor > BATCH_PRUNE_MARGIN * t) {
        if !signals::interrupted() {
            anyhow::bail!(
                "a full batch and the wait for a session take {:.0} ms by its capacity probe ({:.1} queries/s), more than {BATCH_PRUNE_MARGIN} × the loosest target ({}): it cannot meet any target",
                1e3 * floor,
                probe.qps,
                crate::output::lines::py_float(target)
            );
        }
    }
    let mut calibration = None;
    let mut open_loop_call = None;
    if !signals::interrupted() {
        let mut capacity = probe.qps;
        if c.intra_threads > 1 {
            let seconds = (s.time / 4.0).clamp(1.0, 5.0);
            progress.stage(
                &format!("calibrate {c}"),
                &format!("{seconds:.0} s open loop"),
            );
            let spec = StepSpec::judged(
                Distribution::Linear,
                OPEN_LOOP_LOAD * probe.qps,
                seconds,
                0,
                None,
                s.seed,
                s.confidence,
            );
            let loaded = step::run_open(&sut.pool, &spec, signals::flag())?;
            open_loop_call = loaded.service.mean();
            capacity = predict::open_loop_capacity(
                probe.qps,
                c.workers,
                c.batch_size,
                c.intra_threads,
                open_loop_call,
            );
        }
        let rate = lone_rate(capacity, c.workers, c.batch_size);
        progress.stage(
            &format!("calibrate {c}"),
            &format!("{LONE_QUERIES} lone queries"),
        );
        let spec = StepSpec::judged(
            Distribution::Linear,
            rate,
            LONE_QUERIES as f64 / rate,
            LONE_QUERIES,
            None,
            s.seed,
            s.confidence,
        );
        let lone = step::run_open(&sut.pool, &spec, signals::flag())?;
        if !signals::interrupted() {
            let capacity = predict::partial_batch_capacity(
                capacity,
                c.workers,
                c.batch_size,
                probe.qps,
                lone.mean,
            );
            calibration = Some(Calibration {
                servers: c.workers,
                batch: c.batch_size,
                capacity,
                closed_loop: probe.qps,
                unloaded_mean: lone.mean,
                unloaded_p50: lone.percentiles.get(50.0),
                unloaded_p99: lone.p99(),
                unloaded_cv2: cv2_from_tail(lone.percentiles.get(50.0), lone.p99()),
            });
        }
    }
    Ok(Arm {
        candidate: Some(c),
        sut,
        probe,
        calibration,
        open_loop_call,
    })
}

/// Probes a calibrated candidate's capacity once more and keeps the faster probe.
/// The development VM has slow spells of several seconds in which calls take up to
/// half as long again; one probe caught in one ranked a candidate a quarter below
/// its capacity (ONNX Runtime 2x1: 32.3 against 43–48 qps) and lost it the loose
/// targets. A spell slows calls and never speeds them, so the faster of two probes
/// taken apart (after the other candidates' calibrations, in process) is the truer,
/// and it is also the better reference for the slowdown check.
pub(crate) fn reprobe(arm: &mut Arm, settings: &Settings, progress: &mut Progress) -> Result<()> {
    let (Some(c), Some(cal)) = (arm.candidate, arm.calibration.as_mut()) else {
        return Ok(());
    };
    let s = with_candidate(settings, c);
    let again = probe(&arm.sut, &s, progress, &format!("calibrate {c}"))?;
    if signals::interrupted() || again.qps <= arm.probe.qps {
        return Ok(());
    }
    cal.closed_loop = again.qps;
    cal.capacity = predict::partial_batch_capacity(
        predict::open_loop_capacity(
            again.qps,
            c.workers,
            c.batch_size,
            c.intra_threads,
            arm.open_loop_call,
        ),
        c.workers,
        c.batch_size,
        again.qps,
        cal.unloaded_mean,
    );
    arm.probe = again;
    Ok(())
}

/// The candidate a target is searched on, with every candidate's predicted answer
/// and the stderr line that says so.
pub(crate) struct Choice {
    pub best: usize,
    pub predicted: Vec<f64>,
    pub note: String,
}

/// Ranks calibrated candidates for one distribution and target.
pub(crate) fn choose(
    cands: &[Candidate],
    cals: &[Calibration],
    dist: Distribution,
    target: f64,
) -> Choice {
    let order = predict::ranking(cals, dist, target);
    let predicted: Vec<f64> = cals
        .iter()
        .map(|c| predict::predicted_answer(c, dist, target))
        .collect();
    let others: Vec<String> = order[1..]
        .iter()
        .map(|&i| {
            if predicted[i] > 0.0 && predict::marginal(&cals[i], target) {
                format!(
                    "{} {:.1}, set aside: a tenth of its unloaded queries take {:.1} ms or more, within {:.0} % of the target",
                    cands[i],
                    predicted[i],
                    1e3 * predict::bulk_latency(&cals[i]),
                    100.0 * (1.0 - predict::HEADROOM)
                )
            } else if predicted[i] > 0.0 {
                format!("{} {:.1}", cands[i], predicted[i])
            } else {
                // Say which bound pruned it: a slow spell during calibration can
                // raise a lone query's p99, and the user should see that figure.
                let batch_floor = predict::full_batch_floor(&cals[i]);
                if batch_floor > cals[i].unloaded_p99 {
                    format!(
                        "{} pruned: a full batch and the wait for a session take {:.0} ms",
                        cands[i],
                        1e3 * batch_floor
                    )
                } else {
                    format!(
                        "{} pruned: lone-query p99 {:.1} ms",
                        cands[i],
                        1e3 * cals[i].unloaded_p99
                    )
                }
            }
        })
        .collect();
    let best = order[0];
    let note = if predicted[best] <= 0.0 {
        // Every candidate is pruned: the search runs anyway, to show it fails.
        format!(
            "loadgen: {} {}: no configuration answers a lone query within the target; searching {}",
            dist.as_str(),
            crate::output::lines::py_float(target),
            cands[best]
        )
    } else {
        format!(
            "loadgen: {} {}: configuration {} (predicted {:.1} qps{}{})",
            dist.as_str(),
            crate::output::lines::py_float(target),
            cands[best],
            predicted[best],
            if others.is_empty() { "" } else { "; " },
            others.join(", ")
        )
    };
    Choice {
        best,
        predicted,
        note,
    }
}

/// Predictions are rough: whole queries per second above 10, hundredths below.
pub(crate) fn round_prediction(q: f64) -> f64 {
    if q >= 10.0 {
        q.floor()
    } else {
        (q * 100.0).floor() / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_the_winner_or_says_none_can_meet_the_target() {
        let cal = |servers: usize, p99: f64| Calibration {
            servers,
            batch: 1,
            capacity: 40.0,
            closed_loop: 40.0,
            unloaded_mean: 0.04,
            unloaded_p50: 0.04,
            unloaded_p99: p99,
            unloaded_cv2: 0.05,
        };
        let cands = crate::tune::candidates::default_candidates(2, false);
        let cals = [cal(2, 0.05), cal(1, 0.03)];
        let c = choose(&cands, &cals, Distribution::Linear, 0.04);
        assert_eq!(c.best, 1);
        assert!(
            c.note
                .starts_with("loadgen: linear 0.04: configuration 1x2 (predicted")
                && c.note.contains("2x1 pruned: lone-query p99 50.0 ms"),
            "{}",
            c.note
        );
        let none = choose(&cands, &cals, Distribution::Linear, 0.01);
        assert!(
            none.note
                .contains("no configuration answers a lone query within the target"),
            "{}",
            none.note
        );
    }

    #[test]
    fn lone_queries_are_three_calls_apart_per_worker_and_at_most_one_in_flight() {
        // One worker: three calls apart (45 qps: 22 ms calls, 67 ms apart).
        assert_eq!(lone_rate(45.0, 1, 1), 15.0);
        assert_eq!(lone_rate(3.0, 1, 1), 1.0);
        // Two workers at 45 qps (44 ms calls): each worker's three calls apart, the
        // pool's 1.5 calls (67 ms): a query ends before the next starts.
        assert_eq!(lone_rate(45.0, 2, 1), 15.0);
        // Four workers at 80 qps (50 ms calls): 1.5 calls apart (75 ms), not three
        // calls per worker (37.5 ms, two in flight).
        assert!((lone_rate(80.0, 4, 1) - 80.0 / 6.0).abs() < 1e-12);
        // Batch 4 at 43 qps: 3.6/s by full batches (8 s); 5/s, still 1.5
        // single-query shares of a call apart (14/s), takes 6 s.
        assert_eq!(lone_rate(43.0, 2, 4), 5.0);
        // A slow model: never closer than 1.5 single-query shares.
        assert_eq!(lone_rate(4.0, 2, 4), 4.0 / 3.0);
    }

    #[test]
    fn tail_ratio_gives_the_laws_variability() {
        // Exponential: p50 = ln 2, p99 = ln 100 (mean 1, cv² = 1).
        let e = cv2_from_tail(2f64.ln(), 100f64.ln());
        assert!((e - 1.0).abs() < 0.1, "{e}");
        assert_eq!(cv2_from_tail(0.005, 0.005), 0.0);
        assert_eq!(cv2_from_tail(0.0, 0.005), 0.0);
    }
}
