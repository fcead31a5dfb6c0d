//! The log collector as its own process (`drover logmon`, found through
//! Cargo's `CARGO_BIN_EXE_drover`): a collector outlives the handle that
//! started it (as it outlives a killed agent), the next `ensure` finds it
//! through its pid file instead of starting another, and stopping it
//! drains everything and ends the process; a collector whose log
//! directory is removed exits by itself.

use driver_api::LogPaths;
use logmon::{Collector, Launcher};
use std::io::Write;
use types::LogConfig;

fn launcher() -> Launcher {
    Launcher::Process {
        program: env!("CARGO_BIN_EXE_drover").into(),
        args: vec!["logmon".to_string()],
    }
}

fn collector_pid(logs: &LogPaths) -> i32 {
    std::fs::read_to_string(logs.dir.join(".web.logmon"))
        .expect("pid file")
        .split_whitespace()
        .next()
        .expect("pid")
        .parse()
        .expect("number")
}

#[tokio::test]
async fn a_collector_process_is_found_again_and_drains_on_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = LogPaths::for_task(dir.path(), "web", LogConfig::default());
    let first = Collector::ensure(&launcher(), &logs).await.expect("start");
    let pid = collector_pid(&logs);
    let mut stdout = driver_api::open_output(first.stdout_fifo()).expect("open");
    stdout.write_all(b"before\n").expect("write");
    // The agent goes away without stopping its collector.
    drop(first);

    let second = Collector::ensure(&launcher(), &logs).await.expect("reattach");
    assert_eq!(collector_pid(&logs), pid, "the same collector process serves the task");
    stdout.write_all(b"after\n").expect("write");
    drop(stdout);
    second.stop().await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("web.stdout.0")).expect("log"),
        "before\nafter\n"
    );
    let started = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        // The collector was our child only in the first handle's reaper;
        // it may linger as a zombie until then, never longer than a moment.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.contains(") Z") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "collector still running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!dir.path().join(".web.stdout.fifo").exists());
}

#[tokio::test]
async fn a_collector_whose_log_directory_is_gone_exits_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs_dir = dir.path().join("logs");
    let logs = LogPaths::for_task(&logs_dir, "web", LogConfig::default());
    let collector = Collector::ensure(&launcher(), &logs).await.expect("start");
    let pid = collector_pid(&logs);
    // The allocation is collected while no agent is there to stop it.
    drop(collector);
    std::fs::remove_dir_all(&logs_dir).expect("remove");
    let started = std::time::Instant::now();
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.is_empty() || state.contains(") Z") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the collector lingers"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
