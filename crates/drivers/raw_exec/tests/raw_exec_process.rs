//! The raw_exec driver against real processes: exit codes, logs, the
//! environment, stopping whole process groups, and reattaching after an
//! agent restart.

use driver_api::{Driver, LogPaths, RecoverTaskError, StartTaskError, TaskConfig, TaskHandle};
use raw_exec::RawExecDriver;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use types::LogConfig;

/// Long enough for any of these steps on a loaded 2-core machine; only
/// reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(20);

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("alloc/logs")).expect("logs dir");
        std::fs::create_dir_all(root.join("web/local")).expect("task dir");
        Fixture { _dir: dir, root }
    }

    fn task(&self, config: serde_json::Value) -> TaskConfig {
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), "/usr/local/bin:/usr/bin:/bin".to_string());
        TaskConfig {
            // Unique per test process: the alloc ID names the task's cgroup.
            alloc_id: format!("a1b2c3-{}", std::process::id()),
            task_name: "web".to_string(),
            config,
            env,
            alloc_dir: self.root.join("alloc"),
            task_dir: self.root.join("web"),
            logs: LogPaths::for_task(self.root.join("alloc/logs"), "web", LogConfig::default()),
            ..TaskConfig::default()
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.root.join("alloc/logs/web.stdout.0")).expect("stdout log")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.root.join("alloc/logs/web.stderr.0")).expect("stderr log")
    }
}

fn shell(script: &str) -> serde_json::Value {
    serde_json::json!({"command": "/bin/sh", "args": ["-c", script]})
}

fn pid_of(handle: &TaskHandle) -> i32 {
    handle.state["pid"].as_i64().expect("pid in handle") as i32
}

/// Whether any process is still in the process group `pgid`.
fn group_has_members(pgid: i32) -> bool {
    std::fs::read_dir("/proc").expect("proc").flatten().any(|entry| {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is the state, fields[2] the process group.
        fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z")
    })
}

/// Creates a FIFO the task writes to once it is ready, and returns a future
/// that resolves when it does: a notification, not a sleep.
fn ready_fifo(dir: &Path) -> (PathBuf, tokio::task::JoinHandle<String>) {
    let path = dir.join("ready.fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let reader_path = path.clone();
    let reader = tokio::task::spawn_blocking(move || std::fs::read_to_string(reader_path).expect("read fifo"));
    (path, reader)
}

#[tokio::test]
async fn exit_code_and_logs_and_env_reach_the_caller() {
    let fixture = Fixture::new();
    let driver = RawExecDriver::new();
    let mut task = fixture.task(shell("echo \"hello $GREETING from $(pwd)\"; echo oops >&2; exit 3"));
    task.env.insert("GREETING".to_string(), "drover".to_string());
    let handle = driver.start(task).await.expect("start");
    assert_eq!(handle.driver, "raw_exec");
    let exit = tokio::time::timeout(PATIENCE, driver.wait(&handle))
        .await
        .expect("task exits")
        .expect("wait");
    assert_eq!(exit.exit_code, 3);
    assert_eq!(exit.signal, 0);
    assert!(!exit.successful());
    let task_dir = fixture.root.join("web").canonicalize().expect("canonical");
    assert_eq!(fixture.stdout(), format!("hello drover from {}\n", task_dir.display()));
    assert_eq!(fixture.stderr(), "oops\n");
    // The result stays readable until destroy.
    assert_eq!(driver.wait(&handle).await.expect("second wait").exit_code, 3);
    driver.destroy(&handle, false).await.expect("destroy");
    assert!(driver.wait(&handle).await.is_err());
}

#[tokio::test]
async fn agent_environment_is_not_inherited() {
    let fixture = Fixture::new();
    let driver = RawExecDriver::new();
    // HOME is set for the test process; the task must not see it.
    let handle = driver
        .start(fixture.task(shell("echo \"home=${HOME:-unset}\"")))
        .await
        .expect("start");
    let exit = tokio::time::timeout(PATIENCE, driver.wait(&handle))
        .await
        .expect("exits")
        .expect("wait");
    assert!(exit.successful());
    assert_eq!(fixture.stdout(), "home=unset\n");
}

#[tokio::test]
async fn stop_kills_the_whole_group_after_the_kill_timeout() {
    let fixture = Fixture::new();
    let (fifo, ready) = ready_fifo(&fixture.root);
    let driver = RawExecDriver::new();
    // The leader ignores SIGTERM and leaves two grandchildren behind.
    let script = format!(
        "trap '' TERM; sleep 300 & sleep 300 & echo ready > {}; wait",
        fifo.display()
    );
    let handle = driver.start(fixture.task(shell(&script))).await.expect("start");
    let pid = pid_of(&handle);
    tokio::time::timeout(PATIENCE, ready)
        .await
        .expect("task ready")
        .expect("join");
    assert!(group_has_members(pid));

    let kill_timeout = Duration::from_millis(300);
    let began = Instant::now();
    tokio::time::timeout(PATIENCE, driver.stop(&handle, kill_timeout, "SIGTERM"))
        .await
        .expect("stop returns")
        .expect("stop");
    let took = began.elapsed();
    assert!(took >= kill_timeout, "SIGKILL came before the kill timeout: {took:?}");
    assert!(took < kill_timeout + Duration::from_secs(5), "stop took {took:?}");
    let exit = driver.wait(&handle).await.expect("wait");
    assert_eq!(exit.signal, 9, "{exit:?}");
    // SIGKILL has been sent to the whole group; the grandchildren are not
    // our children, so there is nothing to wait on but /proc: they must be
    // gone (or zombies) within a bounded time, not necessarily at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_has_members(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!group_has_members(pid), "processes of group {pid} survived the stop");
}

#[tokio::test]
async fn stop_returns_early_when_the_task_honours_the_signal() {
    let fixture = Fixture::new();
    let (fifo, ready) = ready_fifo(&fixture.root);
    let driver = RawExecDriver::new();
    let script = format!("echo ready > {}; exec sleep 300", fifo.display());
    let handle = driver.start(fixture.task(shell(&script))).await.expect("start");
    tokio::time::timeout(PATIENCE, ready)
        .await
        .expect("task ready")
        .expect("join");
    let began = Instant::now();
    driver
        .stop(&handle, Duration::from_secs(30), "SIGINT")
        .await
        .expect("stop");
    assert!(began.elapsed() < Duration::from_secs(10));
    assert_eq!(driver.wait(&handle).await.expect("wait").signal, 2);
}

#[tokio::test]
async fn recover_reattaches_to_a_running_process() {
    let fixture = Fixture::new();
    let (fifo, ready) = ready_fifo(&fixture.root);
    let first_agent = RawExecDriver::new();
    let script = format!("echo ready > {}; exec sleep 300", fifo.display());
    let handle = first_agent.start(fixture.task(shell(&script))).await.expect("start");
    tokio::time::timeout(PATIENCE, ready)
        .await
        .expect("task ready")
        .expect("join");

    // A new driver, as after an agent restart, with only the stored handle.
    let stored = serde_json::to_string(&handle).expect("encode handle");
    let restored: TaskHandle = serde_json::from_str(&stored).expect("decode handle");
    let second_agent = RawExecDriver::new();
    second_agent.recover(&restored).await.expect("recover");
    // Recovering twice is harmless.
    second_agent.recover(&restored).await.expect("recover again");

    second_agent
        .stop(&restored, Duration::from_secs(5), "SIGTERM")
        .await
        .expect("stop through the new driver");
    let exit = tokio::time::timeout(PATIENCE, second_agent.wait(&restored))
        .await
        .expect("exit seen")
        .expect("wait");
    // The new driver is not the process's parent: the status is unknown.
    assert!(exit.err.is_some(), "{exit:?}");
    assert!(!group_has_members(pid_of(&handle)));
}

#[tokio::test]
async fn recover_refuses_a_dead_or_recycled_pid() {
    let driver = RawExecDriver::new();
    let gone = TaskHandle {
        version: 1,
        driver: "raw_exec".into(),
        alloc_id: "a".into(),
        task_name: "t".into(),
        state: serde_json::json!({"pid": i32::MAX, "start_time_ticks": 1}),
    };
    assert!(matches!(
        driver.recover(&gone).await,
        Err(RecoverTaskError::Gone { .. })
    ));
    let own_pid = std::process::id() as i32;
    let recycled = TaskHandle {
        state: serde_json::json!({"pid": own_pid, "start_time_ticks": 1}),
        ..gone.clone()
    };
    assert!(matches!(
        driver.recover(&recycled).await,
        Err(RecoverTaskError::Gone { .. })
    ));
    let foreign = TaskHandle {
        driver: "docker".into(),
        ..gone
    };
    assert!(matches!(
        driver.recover(&foreign).await,
        Err(RecoverTaskError::WrongDriver { .. })
    ));
}

#[tokio::test]
async fn unknown_config_keys_are_rejected() {
    let fixture = Fixture::new();
    let driver = RawExecDriver::new();
    let error = driver
        .start(fixture.task(serde_json::json!({"command": "/bin/true", "image": "redis"})))
        .await
        .expect_err("unknown key");
    assert!(matches!(error, StartTaskError::InvalidConfig { .. }), "{error}");
    assert!(error.to_string().contains("image"), "{error}");
    let error = driver
        .start(fixture.task(serde_json::json!({"args": ["x"]})))
        .await
        .expect_err("no command");
    assert!(error.to_string().contains("command"), "{error}");
    let error = driver
        .start(fixture.task(serde_json::json!({"command": "/no/such/binary"})))
        .await
        .expect_err("missing binary");
    assert!(matches!(error, StartTaskError::Spawn { .. }), "{error}");
}

#[tokio::test]
async fn exec_runs_in_the_task_environment() {
    let fixture = Fixture::new();
    let (fifo, ready) = ready_fifo(&fixture.root);
    let driver = RawExecDriver::new();
    let mut task = fixture.task(shell(&format!("echo ready > {}; exec sleep 300", fifo.display())));
    task.env.insert("SECRET_WORD".to_string(), "swordfish".to_string());
    let handle = driver.start(task).await.expect("start");
    tokio::time::timeout(PATIENCE, ready)
        .await
        .expect("ready")
        .expect("join");
    let output = driver
        .exec(
            &handle,
            &[
                "/bin/sh".to_string(),
                "-c".to_string(),
                "echo $SECRET_WORD; exit 4".to_string(),
            ],
            PATIENCE,
        )
        .await
        .expect("exec");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "swordfish\n");
    assert_eq!(output.exit_code, 4);
    let stats = driver.stats(&handle).await.expect("stats");
    assert!(stats.pids >= 1);
    driver.destroy(&handle, true).await.expect("destroy");
    assert!(!group_has_members(pid_of(&handle)));
}

#[tokio::test]
async fn fingerprint_reports_the_driver_attribute() {
    let driver = RawExecDriver::new();
    let info = driver.fingerprint().await;
    assert!(info.detected && info.healthy);
    assert_eq!(info.attributes.get("driver.raw_exec").map(String::as_str), Some("1"));
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rfind(')').map(|at| stat[at + 1..].trim_start().starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

fn cgroup_dirs(handle: &TaskHandle) -> Vec<PathBuf> {
    handle.state["cgroup"]["dirs"]
        .as_object()
        .expect("the task has a cgroup")
        .values()
        .map(|dir| PathBuf::from(dir.as_str().expect("path")))
        .collect()
}

#[tokio::test]
async fn a_double_forked_daemon_dies_with_the_task_and_the_cgroup_goes() {
    let fixture = Fixture::new();
    let (fifo, ready) = ready_fifo(&fixture.root);
    let driver = RawExecDriver::new();
    // `setsid` takes the daemon out of the task's process group and
    // session: only the cgroup still holds it.
    let script = format!(
        "setsid sh -c 'echo $$ > {}/daemon.pid; exec sleep 300' & \
         while [ ! -s {}/daemon.pid ]; do sleep 0.01; done; echo ready > {}; exec sleep 300",
        fixture.root.display(),
        fixture.root.display(),
        fifo.display()
    );
    let handle = driver.start(fixture.task(shell(&script))).await.expect("start");
    tokio::time::timeout(PATIENCE, ready)
        .await
        .expect("task ready")
        .expect("join");
    let daemon: i32 = std::fs::read_to_string(fixture.root.join("daemon.pid"))
        .expect("daemon pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(alive(daemon));
    let stats = driver.stats(&handle).await.expect("stats");
    assert!(stats.pids >= 2, "the cgroup holds the task and its daemon: {stats:?}");
    assert!(stats.rss_bytes > 0, "{stats:?}");

    driver
        .stop(&handle, Duration::from_secs(5), "SIGTERM")
        .await
        .expect("stop");
    assert!(!alive(daemon), "the double-forked daemon {daemon} survived the stop");
    let dirs = cgroup_dirs(&handle);
    assert!(dirs.iter().all(|dir| dir.exists()));
    driver.destroy(&handle, true).await.expect("destroy");
    for dir in dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[tokio::test]
async fn a_daemon_left_by_an_exited_task_is_killed_by_destroy() {
    let fixture = Fixture::new();
    let driver = RawExecDriver::new();
    let script = format!(
        "setsid sh -c 'echo $$ > {}/daemon.pid; exec sleep 300' & \
         while [ ! -s {}/daemon.pid ]; do sleep 0.01; done",
        fixture.root.display(),
        fixture.root.display(),
    );
    let handle = driver.start(fixture.task(shell(&script))).await.expect("start");
    let exit = tokio::time::timeout(PATIENCE, driver.wait(&handle))
        .await
        .expect("leader exits")
        .expect("wait");
    assert!(exit.successful(), "{exit:?}");
    let daemon: i32 = std::fs::read_to_string(fixture.root.join("daemon.pid"))
        .expect("daemon pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(alive(daemon));
    driver.destroy(&handle, false).await.expect("destroy");
    assert!(!alive(daemon), "the daemon outlived its task");
}

#[tokio::test]
async fn the_memory_limit_oom_kills_and_is_reported() {
    let fixture = Fixture::new();
    let driver = RawExecDriver::new();
    let mut task = fixture.task(shell("exec tail /dev/zero"));
    task.resources.memory_mb = 32;
    let handle = driver.start(task).await.expect("start");
    let exit = tokio::time::timeout(PATIENCE, driver.wait(&handle))
        .await
        .expect("killed at the limit")
        .expect("wait");
    assert_eq!(exit.signal, 9, "{exit:?}");
    assert!(exit.oom_killed, "{exit:?}");
    driver.destroy(&handle, false).await.expect("destroy");
}

#[tokio::test]
async fn a_missing_cgroup_override_fails_the_start() {
    let fixture = Fixture::new();
    let driver = RawExecDriver::new();
    let config = serde_json::json!({
        "command": "/bin/true",
        "cgroup_v1_override": {"memory": "/no/such/group"},
        "cgroup_v2_override": "/no/such/group",
    });
    let error = driver.start(fixture.task(config)).await.expect_err("refused");
    assert!(matches!(error, StartTaskError::InvalidConfig { .. }), "{error}");
    assert!(error.to_string().contains("/no/such/group"), "{error}");
}
