//! The cgroup module against the host's real cgroup trees: processes
//! joined before exec (children included), stats, a group-wide kill that
//! reaches a double-forked daemon, the OOM killer at the memory limit, and
//! the unified (v2) tree where the host mounts one beside v1.

use cgroups::{Cgroup, Hierarchy, Limits, Version};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn spawn_in(group: &Cgroup, script: &str) -> Child {
    let mut command = Command::new("/bin/sh");
    command.args(["-c", script]).stdout(Stdio::null()).stderr(Stdio::null());
    let procs = group.join_on_spawn(&mut command).expect("open cgroup.procs");
    let child = command.spawn().expect("spawn");
    drop(procs);
    child
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn detects_the_host_version() {
    let hierarchy = Hierarchy::detect().expect("cgroups are mounted");
    let v2_root = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let expected = if v2_root { Version::V2 } else { Version::V1 };
    assert_eq!(hierarchy.version(), expected);
}

#[test]
fn a_group_holds_every_descendant_and_kill_all_empties_it() {
    let hierarchy = Hierarchy::detect().expect("cgroups");
    let group = hierarchy
        .create(
            "drover-test",
            &unique("kill"),
            &Limits {
                cpu_shares: 512,
                ..Limits::default()
            },
        )
        .expect("create");
    // The shell double-forks a daemon that outlives it.
    let mut child = spawn_in(&group, "(setsid sleep 300 &) ; sleep 300");
    wait_until("three members", || group.pids().len() >= 2);
    let stats = group.stats();
    assert!(stats.pids >= 2, "{stats:?}");
    group.kill_all().expect("kill");
    child.wait().expect("reap");
    wait_until("an empty group", || group.is_empty());
    group.destroy().expect("destroy");
    assert!(!group.exists());
}

#[test]
fn the_oom_killer_fires_at_the_memory_limit() {
    let hierarchy = Hierarchy::detect().expect("cgroups");
    if !hierarchy.has_controller("memory") {
        panic!("the memory controller is required on CI hosts");
    }
    let group = hierarchy
        .create(
            "drover-test",
            &unique("oom"),
            &Limits {
                memory_bytes: 32 << 20,
                ..Limits::default()
            },
        )
        .expect("create");
    // `tail` buffers a line that never ends: it grows until killed.
    let mut child = spawn_in(&group, "exec tail /dev/zero");
    let status = child.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(group.oom_kills() >= 1);
    wait_until("an empty group", || group.is_empty());
    group.destroy().expect("destroy");
}

#[test]
fn the_unified_tree_works_without_controllers() {
    let hierarchy = Hierarchy::detect().expect("cgroups");
    let unified = match hierarchy.version() {
        Version::V2 => hierarchy,
        Version::V1 => {
            let mount = std::path::Path::new("/sys/fs/cgroup/unified");
            if !mount.join("cgroup.procs").exists() {
                // A pure v1 host: nothing to check here.
                return;
            }
            Hierarchy::v2_at(mount)
        }
    };
    let group = unified
        .create("drover-test", &unique("v2"), &Limits::default())
        .expect("create");
    let mut child = spawn_in(&group, "(setsid sleep 300 &) ; sleep 300");
    wait_until("members", || group.pids().len() >= 2);
    assert!(group.stats().pids >= 2);
    group.kill_all().expect("kill");
    child.wait().expect("reap");
    wait_until("an empty group", || group.is_empty());
    group.destroy().expect("destroy");
}

#[test]
fn a_missing_override_is_an_error() {
    let hierarchy = Hierarchy::detect().expect("cgroups");
    let key = match hierarchy.version() {
        Version::V1 => "memory",
        Version::V2 => "unified",
    };
    let paths = std::collections::BTreeMap::from([(key.to_string(), "/no/such/group".to_string())]);
    assert!(hierarchy.existing(&paths).is_err());
}
