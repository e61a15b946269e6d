//! ONNX Runtime's session profile, read into per-node sums (`--op-profile`).
//!
//! A session opened with profiling records an event per kernel run and writes them,
//! when the profile is ended, to a JSON file in Chrome's trace format: an array of
//! `{"cat": "Node", "name": "<node>_kernel_time", "dur": <µs>, "args": {"op_name":
//! "Conv", "provider": "CPUExecutionProvider", …}}`, plus one `{"cat": "Session",
//! "name": "model_run"}` per inference and `_fence_before`/`_fence_after` markers
//! that are not kernel time. The file grows by a few hundred events per inference, so
//! it is folded as it is read, never held whole.

use std::fmt;
use std::io::Read;

use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use crate::base::op_profile::OpTotals;

/// The suffix of a kernel's event name; the node's name is what precedes it.
const KERNEL: &str = "_kernel_time";

#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    cat: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    dur: f64,
    #[serde(default)]
    args: Args,
}

#[derive(Default, Deserialize)]
struct Args {
    op_name: Option<String>,
    provider: Option<String>,
}

/// Adds each event to the totals as it is read.
struct Fold<'a>(&'a mut OpTotals);

impl<'de> Visitor<'de> for Fold<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of trace events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(e) = seq.next_element::<Event>()? {
            match e.cat.as_str() {
                "Session" if e.name == "model_run" => self.0.inferences += 1,
                "Node" => {
                    if let Some(node) = e.name.strip_suffix(KERNEL) {
                        let kind = e.args.op_name.as_deref().unwrap_or("?");
                        self.0.add(node, kind, e.args.provider.as_deref(), e.dur);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Fold<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

/// Adds the kernel times and inferences of the trace `reader` holds to `totals`.
pub fn read_trace(reader: impl Read, totals: &mut OpTotals) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    Fold(totals)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| format!("ONNX Runtime's profile does not read as a trace: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_events_sum_per_node_and_runs_count_inferences() {
        let trace = r#"[
          {"cat":"Session","name":"model_loading_uri","dur":900,"ts":1},
          {"cat":"Session","name":"model_run","dur":5000,"ts":2},
          {"cat":"Node","name":"conv0_fence_before","dur":0,"args":{"op_name":"Conv"}},
          {"cat":"Node","name":"conv0_kernel_time","dur":3000,
           "args":{"op_name":"Conv","provider":"CPUExecutionProvider","thread_scheduling_stats":{}}},
          {"cat":"Node","name":"conv0_fence_after","dur":0,"args":{"op_name":"Conv"}},
          {"cat":"Node","name":"fc_kernel_time","dur":400,"args":{"op_name":"Gemm"}},
          {"cat":"Session","name":"model_run","dur":4000,"ts":3},
          {"cat":"Node","name":"conv0_kernel_time","dur":2500,"args":{"op_name":"Conv"}},
          {"cat":"Api","name":"other","dur":1}
        ]"#;
        let mut t = OpTotals::default();
        read_trace(trace.as_bytes(), &mut t).unwrap();
        let p = t.profile();
        assert_eq!(p.inferences, 2);
        assert_eq!(p.ops.len(), 2, "{:?}", p.ops);
        assert_eq!(
            (p.ops[0].name.as_str(), p.ops[0].kind.as_str()),
            ("conv0", "Conv")
        );
        assert_eq!((p.ops[0].total_us, p.ops[0].count), (5500.0, 2));
        assert_eq!(p.ops[0].exec.as_deref(), Some("CPUExecutionProvider"));
        assert_eq!((p.ops[1].name.as_str(), p.ops[1].total_us), ("fc", 400.0));
    }

    #[test]
    fn a_file_that_is_not_a_trace_is_an_error() {
        for bad in ["{\"a\":1}", "[1,2", "", "[{\"cat\":3}]"] {
            let mut t = OpTotals::default();
            let e = read_trace(bad.as_bytes(), &mut t).unwrap_err();
            assert!(e.contains("profile"), "{bad}: {e}");
        }
    }
}
