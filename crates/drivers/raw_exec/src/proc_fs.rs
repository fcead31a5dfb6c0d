//! Reading processes through `/proc`: liveness, start time (to tell a
//! recycled pid apart), process-group members and their resource use.

use driver_api::TaskStats;
use std::collections::BTreeMap;
use std::time::Duration;

/// The fields of `/proc/<pid>/stat` after the command name, split on
/// whitespace. Index 0 is field 3 (state) of proc(5).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces or ')'.
    let after_name = &text[text.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

fn field(fields: &[String], number: usize) -> Option<&str> {
    fields.get(number.checked_sub(3)?).map(String::as_str)
}

/// The start time (field 22, clock ticks after boot) of `pid`.
pub fn start_time(pid: i32) -> Option<u64> {
    field(&stat_fields(pid)?, 22)?.parse().ok()
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    match stat_fields(pid) {
        Some(fields) => !matches!(field(&fields, 3), Some("Z" | "X" | "x")),
        None => false,
    }
}

/// The environment `pid` was started with.
pub fn environ(pid: i32) -> std::io::Result<BTreeMap<String, String>> {
    let bytes = std::fs::read(format!("/proc/{pid}/environ"))?;
    Ok(bytes
        .split(|byte| *byte == 0)
        .filter_map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (name, value) = text.split_once('=')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect())
}

/// Memory and CPU time summed over every live process in the group `pgid`.
pub fn group_stats(pgid: i32) -> std::io::Result<TaskStats> {
    let ticks_per_second = sysconf_or(nix::unistd::SysconfVar::CLK_TCK, 100).max(1);
    let page_size = sysconf_or(nix::unistd::SysconfVar::PAGE_SIZE, 4096);
    let mut stats = TaskStats::default();
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        let Some(fields) = stat_fields(pid) else { continue };
        if field(&fields, 5).and_then(|group| group.parse::<i32>().ok()) != Some(pgid) {
            continue;
        }
        let number = |n: usize| field(&fields, n).and_then(|text| text.parse::<u64>().ok()).unwrap_or(0);
        ticks += number(14) + number(15);
        stats.rss_bytes += number(24) * page_size;
        stats.pids += 1;
    }
    stats.cpu_time = Duration::from_millis(ticks * 1000 / ticks_per_second);
    Ok(stats)
}

/// Resident memory summed over `pids` (field 24 of their stat files).
pub fn pids_rss(pids: &[i32]) -> u64 {
    let page_size = sysconf_or(nix::unistd::SysconfVar::PAGE_SIZE, 4096);
    pids.iter()
        .filter_map(|pid| stat_fields(*pid))
        .filter_map(|fields| field(&fields, 24).and_then(|text| text.parse::<u64>().ok()))
        .sum::<u64>()
        * page_size
}

fn sysconf_or(variable: nix::unistd::SysconfVar, fallback: u64) -> u64 {
    nix::unistd::sysconf(variable)
        .ok()
        .flatten()
        .and_then(|value| u64::try_from(value).ok())
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let pid = i32::try_from(std::process::id()).expect("pid fits");
        assert!(is_alive(pid));
        assert!(start_time(pid).is_some());
        let stats = group_stats(nix::unistd::getpgrp().as_raw()).expect("stats");
        assert!(stats.pids >= 1);
        assert!(stats.rss_bytes > 0);
    }

    #[test]
    fn missing_pids_are_dead() {
        assert!(!is_alive(i32::MAX));
        assert_eq!(start_time(i32::MAX), None);
    }
}
