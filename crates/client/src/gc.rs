//! Client garbage collection: the directories of terminal allocations are
//! removed, oldest first, while the node holds more than `gc_max_allocs`
//! allocations or its data disk is fuller (in bytes or inodes) than the
//! thresholds, as Nomad's client does every `gc_interval`. The servers may
//! still list a collected allocation; it is terminal, so it is never
//! started again.
//!
//! The choice is a pure function, [`plan_gc`], of the allocations and a
//! disk-usage probe; the client's loop removes what it returns.

use std::path::Path;
use std::time::Duration;

/// When the client collects terminal allocations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GcConfig {
    /// How often the collector runs (Nomad's `gc_interval`, 1m).
    pub interval: Duration,
    /// Most allocations the node keeps, running ones included
    /// (`gc_max_allocs`, 50).
    pub max_allocs: usize,
    /// Disk usage, in percent, past which terminal allocations go
    /// (`gc_disk_usage_threshold`, 80).
    pub disk_usage_threshold: f64,
    /// Inode usage, in percent, past which they go
    /// (`gc_inode_usage_threshold`, 70).
    pub inode_usage_threshold: f64,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval: Duration::from_secs(60),
            max_allocs: 50,
            disk_usage_threshold: 80.0,
            inode_usage_threshold: 70.0,
        }
    }
}

/// One allocation the node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcCandidate {
    pub alloc_id: String,
    /// When its last task died (Unix nanoseconds); `None` while it runs.
    pub finished_at: Option<i64>,
}

/// Disk and inode usage in percent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DiskUsage {
    pub disk_percent: f64,
    pub inode_percent: f64,
}

/// The usage of the file system holding `path`.
pub fn disk_usage(path: &Path) -> Option<DiskUsage> {
    let stats = nix::sys::statvfs::statvfs(path).ok()?;
    let percent = |free: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            100.0 * (total.saturating_sub(free)) as f64 / total as f64
        }
    };
    Some(DiskUsage {
        disk_percent: percent(stats.blocks_available(), stats.blocks()),
        inode_percent: percent(stats.files_available(), stats.files()),
    })
}

/// Which terminal allocations to collect, oldest first. `usage` is asked
/// again after each pick (a removal frees space; the caller's probe may
/// account for it), so the plan stops as soon as the node is within its
/// limits.
pub fn plan_gc(allocs: &[GcCandidate], config: &GcConfig, mut usage: impl FnMut(usize) -> DiskUsage) -> Vec<String> {
    let mut terminal: Vec<&GcCandidate> = allocs.iter().filter(|alloc| alloc.finished_at.is_some()).collect();
    terminal.sort_by_key(|alloc| (alloc.finished_at, alloc.alloc_id.clone()));
    let mut collected = Vec::new();
    for alloc in terminal {
        let remaining = allocs.len() - collected.len();
        let now = usage(collected.len());
        let over = remaining > config.max_allocs
            || now.disk_percent > config.disk_usage_threshold
            || now.inode_percent > config.inode_usage_threshold;
        if !over {
            break;
        }
        collected.push(alloc.alloc_id.clone());
    }
    collected
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(id: &str, finished_at: Option<i64>) -> GcCandidate {
        GcCandidate {
            alloc_id: id.to_string(),
            finished_at,
        }
    }

    fn config(max_allocs: usize) -> GcConfig {
        GcConfig {
            max_allocs,
            ..GcConfig::default()
        }
    }

    #[test]
    fn past_max_allocs_the_oldest_terminal_ones_go() {
        let allocs = [
            alloc("running", None),
            alloc("newest", Some(30)),
            alloc("oldest", Some(10)),
            alloc("middle", Some(20)),
        ];
        let calm = |_| DiskUsage::default();
        assert_eq!(plan_gc(&allocs, &config(4), calm), Vec::<String>::new());
        assert_eq!(plan_gc(&allocs, &config(3), calm), vec!["oldest".to_string()]);
        assert_eq!(
            plan_gc(&allocs, &config(2), calm),
            vec!["oldest".to_string(), "middle".to_string()]
        );
        // Running allocations are never collected, whatever the count.
        assert_eq!(plan_gc(&allocs, &config(0), calm).len(), 3);
    }

    #[test]
    fn a_full_disk_collects_until_it_is_below_the_threshold() {
        let allocs = [alloc("a", Some(1)), alloc("b", Some(2)), alloc("c", Some(3))];
        // Each removal frees 10 points of disk; 95% → below 80% after two.
        let usage = |removed: usize| DiskUsage {
            disk_percent: 95.0 - 10.0 * removed as f64,
            inode_percent: 0.0,
        };
        assert_eq!(
            plan_gc(&allocs, &config(50), usage),
            vec!["a".to_string(), "b".to_string()]
        );
        let inodes = |removed: usize| DiskUsage {
            disk_percent: 0.0,
            inode_percent: if removed == 0 { 75.0 } else { 10.0 },
        };
        assert_eq!(plan_gc(&allocs, &config(50), inodes), vec!["a".to_string()]);
    }
}
