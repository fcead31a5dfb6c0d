//! Resident memory of a process, read from `/proc/<pid>/status`.

/// The resident set size of `pid` in MiB, if it can be read.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The peak resident set size (`VmHWM`) of `pid` in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_rss() {
        let rss = super::rss_mib(std::process::id()).expect("own /proc status");
        assert!(rss > 0.1, "{rss}");
        let peak = super::peak_rss_mib(std::process::id()).expect("own peak");
        assert!(peak >= rss * 0.5, "{peak} vs {rss}");
    }
}
