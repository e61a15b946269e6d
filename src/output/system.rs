//! A description of the machine for `results.json`, so a figure is never read without
//! knowing what produced it.

use serde_json::{json, Value};

fn first_line_with(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

pub fn describe() -> Value {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mem_kb: Option<u64> = first_line_with("/proc/meminfo", "MemTotal")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()));
    json!({
        "hostname": hostname,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "kernel": kernel,
        "cpu": first_line_with("/proc/cpuinfo", "model name").unwrap_or_default(),
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "memory_gib": mem_kb.map(|kb| (kb as f64 / 1048576.0 * 10.0).round() / 10.0),
        "loadgen": env!("CARGO_PKG_VERSION"),
    })
}
