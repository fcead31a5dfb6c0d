//! The task runner's restart, kill and reattach behaviour, under paused
//! time with a scripted in-memory driver: delays are checked to the
//! millisecond and no test sleeps.

use async_trait::async_trait;
use client::task_runner::{TaskRunnerSpec, TaskUpdate, run_task};
use driver_api::{
    Capabilities, DestroyTaskError, Driver, ExitResult, RecoverTaskError, SignalTaskError, StartTaskError,
    StopTaskError, TaskConfig, TaskHandle, WaitTaskError,
};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use types::{DriverInfo, JobType, RestartMode, RestartPolicy, TaskState, TaskStateKind, task_event};

/// One scripted run: how long it lasts and how it ends.
#[derive(Clone, Copy)]
struct Run {
    lasts: Duration,
    exit_code: i32,
}

/// A driver whose tasks "run" for a scripted time under tokio's clock.
#[derive(Default)]
struct ScriptedDriver {
    script: Mutex<VecDeque<Run>>,
    /// When each start happened.
    starts: Mutex<Vec<Instant>>,
    /// Kill timeouts passed to stop.
    stops: Mutex<Vec<Duration>>,
    /// Live tasks and how they ended, once they have.
    live: Mutex<HashMap<String, watch::Sender<Option<ExitResult>>>>,
    recoverable: bool,
}

impl ScriptedDriver {
    fn new(runs: &[Run]) -> Arc<ScriptedDriver> {
        Arc::new(ScriptedDriver {
            script: Mutex::new(runs.iter().copied().collect()),
            ..ScriptedDriver::default()
        })
    }

    fn starts(&self) -> Vec<Instant> {
        self.starts.lock().expect("lock").clone()
    }

    fn receiver(&self, key: &str) -> Option<watch::Receiver<Option<ExitResult>>> {
        self.live.lock().expect("lock").get(key).map(watch::Sender::subscribe)
    }
}

#[async_trait]
impl Driver for ScriptedDriver {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn fingerprint(&self) -> DriverInfo {
        DriverInfo {
            detected: true,
            healthy: true,
            ..DriverInfo::default()
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    async fn start(&self, config: TaskConfig) -> Result<TaskHandle, StartTaskError> {
        let run = self
            .script
            .lock()
            .expect("lock")
            .pop_front()
            .ok_or(StartTaskError::Spawn {
                task: config.task_name.clone(),
                reason: "script exhausted".into(),
            })?;
        self.starts.lock().expect("lock").push(Instant::now());
        let handle = TaskHandle {
            driver: "scripted".into(),
            alloc_id: config.alloc_id,
            task_name: config.task_name,
            ..TaskHandle::default()
        };
        let (sender, _) = watch::channel(None);
        let ends = Instant::now() + run.lasts;
        let finisher = sender.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(ends).await;
            finisher.send_if_modified(|exit| {
                if exit.is_none() {
                    *exit = Some(ExitResult {
                        exit_code: run.exit_code,
                        ..ExitResult::default()
                    });
                    true
                } else {
                    false
                }
            });
        });
        self.live.lock().expect("lock").insert(handle.key(), sender);
        Ok(handle)
    }

    async fn wait(&self, handle: &TaskHandle) -> Result<ExitResult, WaitTaskError> {
        let mut exit = self
            .receiver(&handle.key())
            .ok_or_else(|| WaitTaskError::UnknownTask(handle.key()))?;
        let result = exit.wait_for(Option::is_some).await.map_err(|_| WaitTaskError::Wait {
            task: handle.key(),
            reason: "gone".into(),
        })?;
        Ok(result.clone().unwrap_or_default())
    }

    async fn stop(&self, handle: &TaskHandle, timeout: Duration, _signal: &str) -> Result<(), StopTaskError> {
        self.stops.lock().expect("lock").push(timeout);
        if let Some(sender) = self.live.lock().expect("lock").get(&handle.key()) {
            sender.send_if_modified(|exit| {
                if exit.is_none() {
                    *exit = Some(ExitResult {
                        signal: 15,
                        ..ExitResult::default()
                    });
                    true
                } else {
                    false
                }
            });
        }
        Ok(())
    }

    async fn destroy(&self, handle: &TaskHandle, _force: bool) -> Result<(), DestroyTaskError> {
        self.live.lock().expect("lock").remove(&handle.key());
        Ok(())
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<(), RecoverTaskError> {
        if !self.recoverable {
            return Err(RecoverTaskError::Gone {
                task: handle.key(),
                pid: 1234,
            });
        }
        let (sender, _) = watch::channel(None);
        self.live.lock().expect("lock").insert(handle.key(), sender);
        Ok(())
    }

    async fn signal(&self, handle: &TaskHandle, _signal: &str) -> Result<(), SignalTaskError> {
        Err(SignalTaskError::NotSupported(handle.key()))
    }
}

fn spec(driver: Arc<ScriptedDriver>, job_type: JobType, policy: RestartPolicy) -> TaskRunnerSpec {
    TaskRunnerSpec {
        task_name: "t".into(),
        job_type,
        restart_policy: policy,
        driver,
        driver_config: TaskConfig {
            alloc_id: "a1".into(),
            task_name: "t".into(),
            // The scripted driver writes no output: no collector needed.
            logs: driver_api::LogPaths {
                config: types::LogConfig {
                    disabled: true,
                    ..types::LogConfig::default()
                },
                ..driver_api::LogPaths::default()
            },
            ..TaskConfig::default()
        },
        kill_timeout: Duration::from_secs(7),
        max_kill_timeout: Duration::from_secs(30),
        kill_signal: String::new(),
        shutdown_delay: Duration::ZERO,
        templates: Vec::new(),
        alloc_dir_root: std::path::PathBuf::new(),
        template_poll: Duration::from_secs(1),
        artifacts: Vec::new(),
        artifact_fetcher: None,
        services: None,
        log_launcher: logmon::Launcher::InProcess,
    }
}

fn policy(attempts: u32, interval: Duration, delay: Duration, mode: RestartMode) -> RestartPolicy {
    RestartPolicy {
        attempts,
        interval,
        delay,
        mode,
        render_templates: false,
    }
}

fn event_types(state: &TaskState) -> Vec<&str> {
    state.events.iter().map(|event| event.event_type.as_str()).collect()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn batch_failure_restarts_once_after_the_delay_then_fails() {
    let driver = ScriptedDriver::new(&[
        Run {
            lasts: secs(2),
            exit_code: 3,
        },
        Run {
            lasts: secs(2),
            exit_code: 3,
        },
    ]);
    let (updates, _updates_rx) = mpsc::unbounded_channel();
    let (_kill, kill_rx) = watch::channel(None);
    let began = Instant::now();
    let state = run_task(
        spec(
            Arc::clone(&driver),
            JobType::Batch,
            policy(1, secs(86400), secs(10), RestartMode::Fail),
        ),
        TaskState::default(),
        None,
        updates,
        kill_rx,
    )
    .await;
    assert_eq!(state.state, TaskStateKind::Dead);
    assert!(state.failed);
    assert_eq!(state.restarts, 1);
    // First run 2s, restart delay 10s, second run 2s.
    let starts = driver.starts();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0] - began, Duration::ZERO);
    assert_eq!(starts[1] - began, secs(12));
    assert_eq!(Instant::now() - began, secs(14));
    assert_eq!(
        event_types(&state),
        vec![
            task_event::SETUP,
            task_event::STARTED,
            task_event::TERMINATED,
            task_event::RESTARTING,
            task_event::STARTED,
            task_event::TERMINATED,
            task_event::NOT_RESTARTING,
        ]
    );
    let terminated = &state.events[2];
    assert_eq!(terminated.exit_code, 3);
    assert_eq!(terminated.display_message, "Exit Code: 3");
    assert_eq!(state.events[3].start_delay, secs(10).as_nanos() as i64);
    let not_restarting = state.events.last().expect("event");
    assert!(not_restarting.fails_task);
    assert_eq!(
        not_restarting.display_message,
        "Exceeded allowed attempts 1 in interval 24h0m0s and mode is \"fail\""
    );
}

#[tokio::test(start_paused = true)]
async fn batch_success_completes_at_once() {
    let driver = ScriptedDriver::new(&[Run {
        lasts: secs(1),
        exit_code: 0,
    }]);
    let (updates, mut updates_rx) = mpsc::unbounded_channel::<TaskUpdate>();
    let (_kill, kill_rx) = watch::channel(None);
    let state = run_task(
        spec(driver, JobType::Batch, RestartPolicy::default_for(JobType::Batch)),
        TaskState::default(),
        None,
        updates,
        kill_rx,
    )
    .await;
    assert!(!state.failed);
    assert_eq!(state.state, TaskStateKind::Dead);
    assert_eq!(state.restarts, 0);
    // The runner reported pending (setup), running with a handle, then dead.
    let mut seen = Vec::new();
    while let Ok(update) = updates_rx.try_recv() {
        seen.push((update.state.state, update.handle.is_some()));
    }
    assert_eq!(
        seen,
        vec![
            (TaskStateKind::Pending, false),
            (TaskStateKind::Running, true),
            (TaskStateKind::Dead, false),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn delay_mode_waits_out_the_interval() {
    let quick_failure = Run {
        lasts: secs(1),
        exit_code: 1,
    };
    let driver = ScriptedDriver::new(&[quick_failure; 4]);
    let (updates, mut updates_rx) = mpsc::unbounded_channel::<TaskUpdate>();
    let (kill, kill_rx) = watch::channel(None);
    let began = Instant::now();
    let runner = tokio::spawn(run_task(
        spec(
            Arc::clone(&driver),
            JobType::Service,
            policy(1, secs(60), secs(5), RestartMode::Delay),
        ),
        TaskState::default(),
        None,
        updates,
        kill_rx,
    ));
    // Starts at 0; fails at 1 → restart after 5s (6); fails at 7 → attempts
    // used up, wait for the interval (started at 1) to end at 61; fails at
    // 62 → restart after 5s at 67.
    while driver.starts().len() < 4 {
        updates_rx.recv().await.expect("the runner reports every start");
    }
    let offsets: Vec<Duration> = driver.starts().iter().map(|start| *start - began).collect();
    assert_eq!(offsets, vec![secs(0), secs(6), secs(61), secs(67)]);
    kill.send_replace(Some("test is done".into()));
    let state = runner.await.expect("join");
    assert!(!state.failed);
    assert_eq!(state.restarts, 3);
    assert!(
        state
            .events
            .iter()
            .any(|event| event.restart_reason.contains("mode is \"delay\""))
    );
}

#[tokio::test(start_paused = true)]
async fn kill_while_running_stops_with_the_kill_timeout() {
    let driver = ScriptedDriver::new(&[Run {
        lasts: secs(3600),
        exit_code: 0,
    }]);
    let (updates, mut updates_rx) = mpsc::unbounded_channel::<TaskUpdate>();
    let (kill, kill_rx) = watch::channel(None);
    let runner = tokio::spawn(run_task(
        spec(Arc::clone(&driver), JobType::Service, RestartPolicy::default()),
        TaskState::default(),
        None,
        updates,
        kill_rx,
    ));
    // Wait for the running report, then kill.
    loop {
        let update = updates_rx.recv().await.expect("update");
        if update.state.state == TaskStateKind::Running {
            break;
        }
    }
    kill.send_replace(Some("allocation is being stopped".into()));
    let state = tokio::time::timeout(secs(60), runner)
        .await
        .expect("stops")
        .expect("join");
    assert!(!state.failed);
    assert_eq!(*driver.stops.lock().expect("lock"), vec![secs(7)]);
    let types = event_types(&state);
    assert_eq!(
        &types[types.len() - 3..],
        &[task_event::KILLING, task_event::TERMINATED, task_event::KILLED]
    );
    let killing = &state.events[types.len() - 3];
    assert_eq!(killing.kill_timeout, secs(7).as_nanos() as i64);
    assert_eq!(killing.details["kill_reason"], "allocation is being stopped");
    assert_eq!(driver.starts().len(), 1);
}

/// A `kill_timeout` of 292 years is capped by the client's
/// `max_kill_timeout`: the driver is told to wait 30 s, and the Killing
/// event says so.
#[tokio::test(start_paused = true)]
async fn kill_timeout_is_capped_by_max_kill_timeout() {
    let driver = ScriptedDriver::new(&[Run {
        lasts: secs(3600),
        exit_code: 0,
    }]);
    let mut task = spec(Arc::clone(&driver), JobType::Service, RestartPolicy::default());
    task.kill_timeout = Duration::from_nanos(i64::MAX as u64);
    task.max_kill_timeout = secs(30);
    let (updates, mut updates_rx) = mpsc::unbounded_channel::<TaskUpdate>();
    let (kill, kill_rx) = watch::channel(None);
    let runner = tokio::spawn(run_task(task, TaskState::default(), None, updates, kill_rx));
    loop {
        let update = updates_rx.recv().await.expect("update");
        if update.state.state == TaskStateKind::Running {
            break;
        }
    }
    kill.send_replace(Some("stop".into()));
    let state = tokio::time::timeout(secs(60), runner)
        .await
        .expect("the stop ends within the cap")
        .expect("join");
    assert_eq!(*driver.stops.lock().expect("lock"), vec![secs(30)]);
    let killing = state
        .events
        .iter()
        .find(|event| event.event_type == task_event::KILLING)
        .expect("a killing event");
    assert_eq!(killing.kill_timeout, secs(30).as_nanos() as i64);
    assert!(killing.display_message.contains("30s"), "{killing:?}");
}

#[tokio::test(start_paused = true)]
async fn kill_during_a_restart_delay_ends_the_task_without_another_start() {
    let driver = ScriptedDriver::new(&[
        Run {
            lasts: secs(1),
            exit_code: 2,
        },
        Run {
            lasts: secs(1),
            exit_code: 2,
        },
    ]);
    let (updates, mut updates_rx) = mpsc::unbounded_channel::<TaskUpdate>();
    let (kill, kill_rx) = watch::channel(None);
    let runner = tokio::spawn(run_task(
        spec(
            Arc::clone(&driver),
            JobType::Service,
            policy(3, secs(600), secs(30), RestartMode::Fail),
        ),
        TaskState::default(),
        None,
        updates,
        kill_rx,
    ));
    loop {
        let update = updates_rx.recv().await.expect("update");
        if update.state.restarts == 1 {
            break;
        }
    }
    let killed_at = Instant::now();
    kill.send_replace(Some("stop".into()));
    let state = runner.await.expect("join");
    assert_eq!(Instant::now(), killed_at, "the kill waited for the restart delay");
    assert_eq!(driver.starts().len(), 1);
    assert_eq!(
        state.events.last().map(|event| event.event_type.as_str()),
        Some(task_event::KILLED)
    );
    assert!(!state.failed);
}

#[tokio::test(start_paused = true)]
async fn a_restored_handle_is_reattached_not_restarted() {
    let driver = Arc::new(ScriptedDriver {
        recoverable: true,
        ..ScriptedDriver::default()
    });
    let (updates, _updates_rx) = mpsc::unbounded_channel();
    let (kill, kill_rx) = watch::channel(None);
    let restored_state = TaskState {
        state: TaskStateKind::Running,
        started_at: 1,
        ..TaskState::default()
    };
    let handle = TaskHandle {
        driver: "scripted".into(),
        alloc_id: "a1".into(),
        task_name: "t".into(),
        ..TaskHandle::default()
    };
    let runner = tokio::spawn(run_task(
        spec(Arc::clone(&driver), JobType::Service, RestartPolicy::default()),
        restored_state,
        Some(handle),
        updates,
        kill_rx,
    ));
    tokio::time::sleep(secs(3600)).await;
    assert!(driver.starts().is_empty(), "a reattached task was started again");
    kill.send_replace(Some("done".into()));
    let state = runner.await.expect("join");
    assert_eq!(state.restarts, 0);
    assert!(!event_types(&state).contains(&task_event::STARTED));
}

#[tokio::test(start_paused = true)]
async fn a_task_gone_while_the_agent_was_down_is_restarted_by_policy() {
    let driver = ScriptedDriver::new(&[Run {
        lasts: secs(1),
        exit_code: 0,
    }]);
    let (updates, _updates_rx) = mpsc::unbounded_channel();
    let (_kill, kill_rx) = watch::channel(None);
    let handle = TaskHandle {
        driver: "scripted".into(),
        alloc_id: "a1".into(),
        task_name: "t".into(),
        ..TaskHandle::default()
    };
    let began = Instant::now();
    let state = run_task(
        spec(
            Arc::clone(&driver),
            JobType::Batch,
            policy(1, secs(600), secs(4), RestartMode::Fail),
        ),
        TaskState {
            state: TaskStateKind::Running,
            started_at: 1,
            ..TaskState::default()
        },
        Some(handle),
        updates,
        kill_rx,
    )
    .await;
    assert_eq!(
        driver.starts().iter().map(|s| *s - began).collect::<Vec<_>>(),
        vec![secs(4)]
    );
    assert!(!state.failed);
    assert_eq!(state.restarts, 1);
    assert!(state.events[0].display_message.contains("while the agent was down"));
}

#[tokio::test(start_paused = true)]
async fn a_stop_waits_out_the_shutdown_delay_first() {
    let driver = ScriptedDriver::new(&[Run {
        lasts: secs(3600),
        exit_code: 0,
    }]);
    let (updates, mut updates_rx) = mpsc::unbounded_channel::<TaskUpdate>();
    let (kill, kill_rx) = watch::channel(None);
    let mut task = spec(Arc::clone(&driver), JobType::Service, RestartPolicy::default());
    task.shutdown_delay = secs(5);
    let runner = tokio::spawn(run_task(task, TaskState::default(), None, updates, kill_rx));
    loop {
        let update = updates_rx.recv().await.expect("update");
        if update.state.state == TaskStateKind::Running {
            break;
        }
    }
    let asked = tokio::time::Instant::now();
    kill.send_replace(Some("allocation is being stopped".into()));
    // The delay comes first: no stop yet, and an event says why.
    loop {
        let update = updates_rx.recv().await.expect("update");
        if let Some(last) = update.state.events.last()
            && last.event_type == task_event::WAITING_SHUTDOWN_DELAY
        {
            assert!(last.display_message.contains("5s"), "{}", last.display_message);
            break;
        }
    }
    assert!(driver.stops.lock().expect("lock").is_empty());
    let state = tokio::time::timeout(secs(60), runner)
        .await
        .expect("stops")
        .expect("join");
    assert!(asked.elapsed() >= secs(5), "stopped after {:?}", asked.elapsed());
    assert_eq!(driver.stops.lock().expect("lock").len(), 1);
    let types = event_types(&state);
    assert_eq!(
        &types[types.len() - 4..],
        &[
            task_event::WAITING_SHUTDOWN_DELAY,
            task_event::KILLING,
            task_event::TERMINATED,
            task_event::KILLED
        ]
    );
}
