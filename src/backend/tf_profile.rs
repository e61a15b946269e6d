//! TensorFlow's step stats, read into per-node sums (`--op-profile`).
//!
//! A step run with `RunOptions.trace_level = FULL_TRACE` returns a `RunMetadata`
//! whose `step_stats` list, per device, each node that ran: its name, when it started
//! and how long it took (`all_end_rel_*`, from the start of its scheduling to its end:
//! what TensorFlow's own timeline draws), and a label `name = Type(inputs)` that names
//! its operation type. Only the fields read here are declared (from
//! tensorflow/core/framework/step_stats.proto and core/protobuf/config.proto).

use crate::base::op_profile::OpTotals;

/// `RunOptions` with only `trace_level`.
#[derive(Clone, PartialEq, prost::Message)]
struct RunOptions {
    #[prost(int32, tag = "1")]
    trace_level: i32,
}

/// `RunOptions.TraceLevel.FULL_TRACE`.
const FULL_TRACE: i32 = 3;

/// The serialized `RunOptions` that asks a step for its step stats.
pub fn traced_run_options() -> Vec<u8> {
    use prost::Message;
    RunOptions {
        trace_level: FULL_TRACE,
    }
    .encode_to_vec()
}

#[derive(Clone, PartialEq, prost::Message)]
struct RunMetadata {
    #[prost(message, optional, tag = "1")]
    step_stats: Option<StepStats>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StepStats {
    #[prost(message, repeated, tag = "1")]
    dev_stats: Vec<DeviceStepStats>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DeviceStepStats {
    #[prost(string, tag = "1")]
    device: String,
    #[prost(message, repeated, tag = "2")]
    node_stats: Vec<NodeExecStats>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NodeExecStats {
    #[prost(string, tag = "1")]
    node_name: String,
    #[prost(int64, tag = "5")]
    all_end_rel_micros: i64,
    #[prost(string, tag = "8")]
    timeline_label: String,
    #[prost(int64, tag = "16")]
    all_end_rel_nanos: i64,
}

/// The operation type in a timeline label `name = Type(inputs)`, else `None`.
fn op_type(label: &str) -> Option<&str> {
    let (_, rest) = label.split_once(" = ")?;
    let ty = rest.split('(').next()?.trim();
    (!ty.is_empty()).then_some(ty)
}

/// Adds one step's `RunMetadata` (serialized) to `totals`: one inference.
pub fn add_run_metadata(bytes: &[u8], totals: &mut OpTotals) -> Result<(), String> {
    use prost::Message;
    let meta = RunMetadata::decode(bytes)
        .map_err(|e| format!("TensorFlow's run metadata does not decode: {e}"))?;
    for dev in meta.step_stats.iter().flat_map(|s| &s.dev_stats) {
        // A GPU's stream lanes repeat the kernels its compute lane already lists.
        if dev.device.contains("/stream:") || dev.device.contains("memcpy") {
            continue;
        }
        for n in &dev.node_stats {
            let us = if n.all_end_rel_nanos > 0 {
                n.all_end_rel_nanos as f64 / 1e3
            } else {
                n.all_end_rel_micros as f64
            };
            let kind = op_type(&n.timeline_label).unwrap_or(&n.node_name);
            totals.add(&n.node_name, kind, None, us);
        }
    }
    totals.inferences += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_run_options_ask_for_a_full_trace() {
        // Python: RunOptions(trace_level=FULL_TRACE).SerializeToString()
        assert_eq!(traced_run_options(), [0x08, 0x03]);
    }

    #[test]
    fn reads_step_stats_written_by_tensorflow() {
        // Python (tensorflow 2.21's protos): a RunMetadata with one CPU device whose
        // nodes are conv1/Conv2D (all_end_rel 1502 µs, 1,502,250 ns), _SOURCE (2 µs)
        // and relu (40 µs), plus a cost graph loadgen does not read.
        let bytes = unhex(
            "0ab4010ab1010a2c2f6a6f623a6c6f63616c686f73742f7265706c6963613a302f7461736b3a302f\
             6465766963653a4350553a30124f0a0c636f6e76312f436f6e7632441064180120dc0b28de0b422a\
             636f6e76312f436f6e763244203d20436f6e76324428696e7075742c20636f6e76312f6b65726e65\
             6c29500768a08d068001aad85b120b0a075f534f55524345280212230a0472656c752828421972656c\
             75203d2052656c7528636f6e76312f436f6e7632442912050a030a0178",
        );
        let mut t = OpTotals::default();
        add_run_metadata(&bytes, &mut t).unwrap();
        add_run_metadata(&bytes, &mut t).unwrap();
        let p = t.profile();
        assert_eq!(p.inferences, 2);
        let got: Vec<(&str, &str, f64, u64)> = p
            .ops
            .iter()
            .map(|o| (o.name.as_str(), o.kind.as_str(), o.total_us, o.count))
            .collect();
        assert_eq!(
            got,
            [
                ("conv1/Conv2D", "Conv2D", 3004.5, 2),
                ("relu", "Relu", 80.0, 2),
                ("_SOURCE", "_SOURCE", 4.0, 2),
            ]
        );
        let e = add_run_metadata(&[0x0a, 0xff], &mut t).unwrap_err();
        assert!(e.contains("does not decode"), "{e}");
    }

    #[test]
    fn labels_name_the_operation_type() {
        assert_eq!(op_type("a/b = Conv2D(x, y)"), Some("Conv2D"));
        assert_eq!(op_type("a = NoOp()"), Some("NoOp"));
        assert_eq!(op_type("weird"), None);
        assert_eq!(op_type("a = (x)"), None);
    }
}
