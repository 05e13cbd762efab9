//! What the report says about the machine and the process: CPU, memory,
//! load average, and the process's peak resident set (VmHWM), which
//! `clear_refs` resets before each measured phase.

use std::fs;

/// Resets the kernel's peak-RSS mark of this process (`VmHWM`) to the
/// current RSS, so that the next [`peak_rss_kib`] covers one phase only.
/// Returns false where the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident set of this process since start or the last
/// [`reset_peak_rss`], in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    status_field("VmHWM:")
}

/// Current resident set of this process, in KiB.
pub fn rss_kib() -> Option<u64> {
    status_field("VmRSS:")
}

fn status_field(name: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `/proc/loadavg`, trimmed.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// One line per fact about the machine: CPU model, cores, memory, kernel,
/// compiler.
pub fn machine() -> Vec<(String, String)> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown".into(), |m| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or("unknown".into(), |s| s.trim().to_string());
    vec![
        ("CPU".into(), model),
        ("cores".into(), cores.to_string()),
        (
            "memory".into(),
            format!("{:.1} GiB", mem_kib as f64 / 1024.0 / 1024.0),
        ),
        ("kernel".into(), kernel),
        ("rustc".into(), rustc),
        ("load average at start".into(), loadavg()),
    ]
}
