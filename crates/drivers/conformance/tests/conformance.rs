//! The driver conformance suite: the same tests against raw_exec, exec and
//! docker (real processes, the real Docker Engine with the image built by
//! `scripts/docker-test-image.sh`): start, wait and exit codes, stop with a
//! timeout, the kill signal, restart, reattach after the client is killed
//! with SIGKILL, stats, signals, the environment, logs and rotation.
//!
//! Output goes through the log collector exactly as under the client: the
//! task writes into FIFOs and the collector writes the rotated files.

use conformance::{DriverKind, TaskSpec};
use driver_api::{Driver, ExitResult, TaskHandle};
use logmon::{Collector, Launcher};
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Long enough for any step on a loaded 2-core machine; reached only when
/// something is broken.
const PATIENCE: Duration = Duration::from_secs(60);
const LOOP: &str = "echo ready; while true; do sleep 0.1; done";

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique_alloc_id() -> String {
    format!("conf{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

struct Harness {
    kind: DriverKind,
    _dir: tempfile::TempDir,
    spec: TaskSpec,
    driver: Arc<dyn Driver>,
    collector: Option<Collector>,
}

impl Harness {
    fn new(kind: DriverKind, script: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = TaskSpec::new(kind, dir.path(), &unique_alloc_id(), script);
        Harness {
            kind,
            _dir: dir,
            spec,
            driver: kind.driver(),
            collector: None,
        }
    }

    async fn start(&mut self) -> TaskHandle {
        // As the client does: a driver that writes its own log files gets
        // no collector.
        if self.driver.capabilities().writes_log_files {
            let config = self.spec.task_config(Path::new(""), Path::new(""));
            return self.driver.start(config).await.expect("start");
        }
        if self.collector.is_none() {
            self.collector = Some(
                Collector::ensure(&Launcher::InProcess, &self.spec.logs())
                    .await
                    .expect("collector"),
            );
        }
        let collector = self.collector.as_ref().expect("collector");
        let config = self.spec.task_config(collector.stdout_fifo(), collector.stderr_fifo());
        self.driver.start(config).await.expect("start")
    }

    async fn wait(&self, handle: &TaskHandle) -> ExitResult {
        tokio::time::timeout(PATIENCE, self.driver.wait(handle))
            .await
            .expect("the task exits")
            .expect("wait")
    }

    /// Stops the collector (it drains first) so the files are complete.
    async fn drain_logs(&mut self) {
        if let Some(collector) = self.collector.take() {
            collector.stop().await;
        }
    }

    fn read_stream(&self, stream: &str) -> String {
        let logs = self.spec.logs();
        let prefix = if stream == "stdout" {
            logs.stdout_prefix
        } else {
            logs.stderr_prefix
        };
        let mut text = String::new();
        for index in logmon::rotate::existing_indexes(&logs.dir, &prefix) {
            text.push_str(&std::fs::read_to_string(logs.dir.join(format!("{prefix}.{index}"))).unwrap_or_default());
        }
        text
    }

    async fn wait_for_output(&self, needle: &str) {
        let started = Instant::now();
        while !self.read_stream("stdout").contains(needle) {
            assert!(
                started.elapsed() < PATIENCE,
                "{needle:?} never appeared in stdout: {:?}",
                self.read_stream("stdout")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // A failed test must not leave a container running.
        if self.kind == DriverKind::Docker {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", &format!("{}-{}", self.spec.task_name, self.spec.alloc_id)])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// A task killed by SIGKILL: a signal for processes, exit code 137 for
/// containers (the Engine reports only the code).
fn killed_by_sigkill(exit: &ExitResult) -> bool {
    exit.signal == 9 || exit.exit_code == 137
}

async fn exit_codes_and_output(kind: DriverKind) {
    let mut harness = Harness::new(kind, "echo out; echo err >&2; exit 3");
    let handle = harness.start().await;
    let exit = harness.wait(&handle).await;
    assert_eq!(exit.exit_code, 3, "{exit:?}");
    assert!(!exit.successful());
    // The result stays readable until destroy.
    assert_eq!(harness.driver.wait(&handle).await.expect("wait again").exit_code, 3);
    harness.driver.destroy(&handle, false).await.expect("destroy");
    harness.drain_logs().await;
    assert_eq!(harness.read_stream("stdout"), "out\n");
    assert_eq!(harness.read_stream("stderr"), "err\n");
    let mut ok = Harness::new(kind, "true");
    let handle = ok.start().await;
    assert!(ok.wait(&handle).await.successful());
    ok.driver.destroy(&handle, false).await.expect("destroy");
}

async fn environment(kind: DriverKind) {
    let mut harness = Harness::new(kind, "echo \"$GREETING|$NOMAD_TEST\"");
    harness.spec.env.insert("GREETING".into(), "hello world".into());
    harness.spec.env.insert("NOMAD_TEST".into(), "a=b".into());
    let handle = harness.start().await;
    assert!(harness.wait(&handle).await.successful());
    harness.driver.destroy(&handle, false).await.expect("destroy");
    harness.drain_logs().await;
    assert_eq!(harness.read_stream("stdout"), "hello world|a=b\n");
}

async fn stop_with_a_timeout(kind: DriverKind) {
    let mut harness = Harness::new(kind, &format!("trap '' TERM; {LOOP}"));
    let handle = harness.start().await;
    harness.wait_for_output("ready").await;
    let kill_timeout = Duration::from_millis(500);
    let began = Instant::now();
    tokio::time::timeout(PATIENCE, harness.driver.stop(&handle, kill_timeout, "SIGTERM"))
        .await
        .expect("stop returns")
        .expect("stop");
    let took = began.elapsed();
    assert!(took >= kill_timeout, "SIGKILL came before the timeout: {took:?}");
    let exit = harness.wait(&handle).await;
    assert!(killed_by_sigkill(&exit), "{exit:?}");
    harness.driver.destroy(&handle, false).await.expect("destroy");
}

async fn the_kill_signal_is_sent(kind: DriverKind) {
    let mut harness = Harness::new(kind, &format!("trap 'echo got-int; exit 7' INT; {LOOP}"));
    let handle = harness.start().await;
    harness.wait_for_output("ready").await;
    let began = Instant::now();
    harness
        .driver
        .stop(&handle, Duration::from_secs(30), "SIGINT")
        .await
        .expect("stop");
    assert!(began.elapsed() < Duration::from_secs(20), "the task honoured SIGINT");
    let exit = harness.wait(&handle).await;
    assert_eq!(exit.exit_code, 7, "{exit:?}");
    harness.driver.destroy(&handle, false).await.expect("destroy");
    harness.drain_logs().await;
    assert!(harness.read_stream("stdout").contains("got-int"));
}

async fn signals_reach_the_task(kind: DriverKind) {
    let mut harness = Harness::new(kind, &format!("trap 'echo got-usr1' USR1; {LOOP}"));
    let handle = harness.start().await;
    harness.wait_for_output("ready").await;
    harness.driver.signal(&handle, "SIGUSR1").await.expect("signal");
    harness.wait_for_output("got-usr1").await;
    assert!(harness.driver.signal(&handle, "SIGNOPE").await.is_err());
    harness
        .driver
        .stop(&handle, Duration::from_secs(1), "SIGKILL")
        .await
        .expect("stop");
    harness.driver.destroy(&handle, false).await.expect("destroy");
}

async fn a_task_restarts(kind: DriverKind) {
    let mut harness = Harness::new(kind, "echo run");
    for _ in 0..2 {
        let handle = harness.start().await;
        assert!(harness.wait(&handle).await.successful());
        harness.driver.destroy(&handle, false).await.expect("destroy");
    }
    harness.drain_logs().await;
    assert_eq!(harness.read_stream("stdout"), "run\nrun\n");
}

async fn stats_are_reported(kind: DriverKind) {
    let mut harness = Harness::new(kind, LOOP);
    let handle = harness.start().await;
    harness.wait_for_output("ready").await;
    let stats = harness.driver.stats(&handle).await.expect("stats");
    assert!(stats.pids >= 1, "{stats:?}");
    assert!(stats.rss_bytes > 0, "{stats:?}");
    harness
        .driver
        .stop(&handle, Duration::from_millis(500), "")
        .await
        .expect("stop");
    harness.driver.destroy(&handle, false).await.expect("destroy");
}

async fn logs_rotate(kind: DriverKind) {
    let script = "head -c 3500000 /dev/zero | tr '\\0' a; echo; echo done";
    let mut harness = Harness::new(kind, script);
    harness.spec.max_files = 2;
    harness.spec.max_file_size_mb = 1;
    let handle = harness.start().await;
    assert!(harness.wait(&handle).await.successful());
    harness.driver.destroy(&handle, false).await.expect("destroy");
    harness.drain_logs().await;
    let logs = harness.spec.logs();
    let indexes = logmon::rotate::existing_indexes(&logs.dir, &logs.stdout_prefix);
    assert_eq!(indexes, vec![2, 3], "3.5 MB in 1 MiB files, two kept");
    for index in &indexes {
        let size = std::fs::metadata(harness.spec.stdout_file(*index)).expect("meta").len();
        assert!(size <= 1 << 20, "file {index} has {size} bytes");
    }
    let newest = std::fs::read_to_string(harness.spec.stdout_file(3)).expect("read");
    assert!(
        newest.ends_with("a\ndone\n"),
        "{:?}",
        &newest[newest.len().saturating_sub(20)..]
    );
}

/// The numbers of the `tick N` lines, which must run 0, 1, 2… without a
/// gap or a repeat.
fn ticks(output: &str) -> Vec<u64> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix("tick ")?.parse().ok())
        .collect()
}

async fn reattach_after_the_client_is_killed(kind: DriverKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done";
    let spec = TaskSpec::new(kind, dir.path(), &unique_alloc_id(), script);
    let mut host = std::process::Command::new(env!("CARGO_BIN_EXE_driver-host"))
        .arg("run")
        .arg(serde_json::to_string(&spec).expect("spec"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the host");
    let mut line = String::new();
    std::io::BufReader::new(host.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the handle");
    let handle: TaskHandle = serde_json::from_str(&line).unwrap_or_else(|error| panic!("{error}: {line:?}"));
    let log_len = || {
        std::fs::metadata(spec.stdout_file(0))
            .map(|meta| meta.len())
            .unwrap_or(0)
    };
    let started = Instant::now();
    while log_len() == 0 {
        assert!(started.elapsed() < PATIENCE, "no output before the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // SIGKILL: the host runs no cleanup at all.
    host.kill().expect("kill -9");
    host.wait().expect("reap");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A new client: the collector process is found through its pid file,
    // the task is reattached by a fresh driver.
    let driver = kind.driver();
    let collector = if driver.capabilities().writes_log_files {
        None
    } else {
        Some(
            Collector::ensure(
                &Launcher::Process {
                    program: env!("CARGO_BIN_EXE_driver-host").into(),
                    args: vec!["logmon".to_string()],
                },
                &spec.logs(),
            )
            .await
            .expect("collector found again"),
        )
    };
    driver.recover(&handle).await.expect("reattach");
    let at_recover = log_len();
    let started = Instant::now();
    while log_len() <= at_recover + 64 {
        assert!(started.elapsed() < PATIENCE, "the log stopped after the reattach");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    driver
        .stop(&handle, Duration::from_secs(5), "SIGKILL")
        .await
        .expect("stop the reattached task");
    let exit = tokio::time::timeout(PATIENCE, driver.wait(&handle))
        .await
        .expect("exit seen")
        .expect("wait");
    assert!(
        exit.signal == 9 || exit.exit_code == 137 || exit.err.is_some(),
        "{exit:?}"
    );
    driver.destroy(&handle, true).await.expect("destroy");
    if let Some(collector) = collector {
        collector.stop().await;
    }
    // Nothing lost across the kill and the reattach. A process writes into
    // the collector's FIFO directly: nothing is doubled either. A
    // container's output is copied from the Engine's log in batches, each
    // followed by its resume mark: a kill between the two repeats at most
    // that batch.
    let output = std::fs::read_to_string(spec.stdout_file(0)).expect("log");
    let numbers = ticks(&output);
    assert!(numbers.len() > 10, "{output}");
    let mut distinct = numbers.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let expected: Vec<u64> = (0..distinct.len() as u64).collect();
    assert_eq!(distinct, expected, "ticks lost");
    let repeated = numbers.len() - distinct.len();
    match kind {
        DriverKind::RawExec | DriverKind::Exec => assert_eq!(repeated, 0, "ticks repeated"),
        DriverKind::Docker => assert!(repeated <= 512, "{repeated} ticks repeated"),
    }
    if kind == DriverKind::Docker {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &format!("web-{}", spec.alloc_id)])
            .status();
    }
    let _ = Path::new(&spec.root);
}

macro_rules! conformance {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn exit_codes_and_output() {
                super::exit_codes_and_output($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn environment() {
                super::environment($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stop_with_a_timeout() {
                super::stop_with_a_timeout($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_kill_signal_is_sent() {
                super::the_kill_signal_is_sent($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn signals_reach_the_task() {
                super::signals_reach_the_task($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_task_restarts() {
                super::a_task_restarts($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stats_are_reported() {
                super::stats_are_reported($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn logs_rotate() {
                super::logs_rotate($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reattach_after_the_client_is_killed() {
                super::reattach_after_the_client_is_killed($kind).await;
            }
        }
    };
}

conformance!(raw_exec, DriverKind::RawExec);
conformance!(exec, DriverKind::Exec);
conformance!(docker, DriverKind::Docker);
