//! The configurations tuning tries (docs/CONTRACT.md §7.2): how many sessions serve in parallel
//! (workers), the intra- and inter-op threads of each, and the batch queued queries
//! are coalesced into.

use std::fmt;

use crate::base::limits;

/// A `--configs` list that does not parse: one sentence naming the entry and the fix
/// (the settings turn it into their own error, exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CandidateError(pub String);

/// One configuration of an in-process backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub workers: usize,
    pub intra_threads: usize,
    /// `None`: the runtime's own default. TensorFlow's inter-op pool is shared by every
    /// session of the process, so pinning it to 1 serialises two workers (measured:
    /// 27 instead of 53 images/s for 2x1 ResNet-50); ONNX Runtime's default is 1.
    pub inter_threads: Option<usize>,
    pub batch_size: usize,
}

impl fmt::Display for Candidate {
    /// `2x1` (2 workers × 1 intra-op thread), with `x0x4` appended for inter-op
    /// threads (0: the runtime's default) and batch when either is set: the syntax
    /// `--configs` reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.workers, self.intra_threads)?;
        if self.inter_threads.is_some() || self.batch_size != 1 {
            write!(
                f,
                "x{}x{}",
                self.inter_threads.unwrap_or(0),
                self.batch_size
            )?;
        }
        Ok(())
    }
}

/// The larger batch tried beside batch 1 when the model's batch dimension is dynamic.
pub const LARGER_BATCH: usize = 4;

/// The default set for `cores` cores: every split of the cores into workers ×
/// intra-op threads (the runtime's inter-op default, batch 1),
/// and, when the model takes any batch, the most-workers split again with batch
/// [`LARGER_BATCH`] (batching pays where queues form, which is where workers are many).
pub fn default_candidates(cores: usize, dynamic_batch: bool) -> Vec<Candidate> {
    let cores = cores.max(1);
    let mut out: Vec<Candidate> = (1..=cores)
        .rev()
        .filter(|&w| cores.is_multiple_of(w))
        .map(|w| Candidate {
            workers: w,
            intra_threads: cores / w,
            inter_threads: None,
            batch_size: 1,
        })
        .collect();
    if dynamic_batch {
        out.push(Candidate {
            batch_size: LARGER_BATCH,
            ..out[0]
        });
    }
    out
}

/// Parses `--configs`: comma-separated `WxI[xN[xB]]` (workers × intra-op threads
/// [× inter-op threads, 0 for the runtime's default [× batch]]), e.g.
/// `2x1,1x2,2x1x0x4`.
pub fn parse_candidates(spec: &str) -> Result<Vec<Candidate>, CandidateError> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim) {
        // An item is a few characters (`2x1x0x4`): 40 of a long one say enough, and
        // leave the sentence room for the fix.
        let bad = |why: &str| {
            CandidateError(format!(
                "--configs item '{}' {why}; write WORKERSxINTRA[xINTER[xBATCH]] (INTER 0: the runtime's default), e.g. 2x1,1x2,2x1x0x4",
                crate::base::text::quote_up_to(item, 40)
            ))
        };
        if item.is_empty() {
            return Err(bad("is empty"));
        }
        let nums: Vec<usize> = item
            .split('x')
            .map(|p| p.parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad("is not made of whole numbers joined by x"))?;
        if !(2..=4).contains(&nums.len()) {
            return Err(bad("needs 2 to 4 numbers"));
        }
        let c = Candidate {
            workers: nums[0],
            intra_threads: nums[1],
            inter_threads: nums.get(2).copied().filter(|&n| n > 0),
            batch_size: nums.get(3).copied().unwrap_or(1),
        };
        if c.workers == 0 || c.workers > limits::max_threads() {
            return Err(bad(&format!(
                "has {} workers; use 1 to {}",
                c.workers,
                limits::max_threads()
            )));
        }
        let rt = limits::max_runtime_threads();
        if c.intra_threads == 0 || c.intra_threads > rt || c.inter_threads.is_some_and(|n| n > rt) {
            return Err(bad(&format!("has threads per session outside 1 to {rt}")));
        }
        if c.batch_size == 0 || c.batch_size > limits::MAX_BATCH {
            return Err(bad(&format!(
                "has batch {}; use 1 to {}",
                c.batch_size,
                limits::MAX_BATCH
            )));
        }
        if out.contains(&c) {
            return Err(bad("is listed twice"));
        }
        out.push(c);
    }
    if out.len() > limits::MAX_CANDIDATES {
        return Err(CandidateError(format!(
            "--configs lists {} configurations; at most {} are calibrated in one run",
            out.len(),
            limits::MAX_CANDIDATES
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_set_splits_the_cores() {
        let names = |v: Vec<Candidate>| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(names(default_candidates(2, false)), ["2x1", "1x2"]);
        assert_eq!(
            names(default_candidates(2, true)),
            ["2x1", "1x2", "2x1x0x4"]
        );
        assert_eq!(
            names(default_candidates(6, false)),
            ["6x1", "3x2", "2x3", "1x6"]
        );
        assert_eq!(names(default_candidates(1, false)), ["1x1"]);
    }

    #[test]
    fn configs_parse_and_print_the_same_way() {
        let v = parse_candidates("2x1, 1x2,2x1x0x4,1x2x2").unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!((v[2].inter_threads, v[2].batch_size), (None, 4));
        assert_eq!((v[3].inter_threads, v[3].batch_size), (Some(2), 1));
        let back: Vec<String> = v.iter().map(|c| c.to_string()).collect();
        assert_eq!(back.join(","), "2x1,1x2,2x1x0x4,1x2x2x1");
    }

    #[test]
    fn bad_configs_get_one_sentence() {
        for bad in [
            "",
            "2",
            "2x",
            "0x1",
            "2x0",
            "ax1",
            "1x1x1x1x1",
            "2x1,2x1",
            "1x1x1x0",
        ] {
            let e = parse_candidates(bad).unwrap_err().0;
            assert!(e.starts_with("--configs item"), "{bad}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
