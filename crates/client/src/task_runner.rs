//! The task runner: drives one task through its driver from start to dead,
//! applying the restart policy, and reports every state change.
//!
//! States: pending → running → (pending while a restart waits) → dead.
//! Events tell why: Task Setup, Started, Terminated, Restarting,
//! Not Restarting, Killing, Killed, Driver Failure.

use crate::clock::unix_nanos;
use crate::restart::{RestartDecision, RestartTracker, RunOutcome};
use crate::template::{ChangeAction, RenderTemplateError, TaskTemplates};
use driver_api::{Driver, ExitResult, TaskConfig, TaskHandle};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use types::duration::format_duration;
use types::{JobType, RestartPolicy, TaskEvent, TaskState, TaskStateKind, task_event};

/// Everything a task runner needs, prepared by the alloc runner.
#[derive(Clone)]
pub struct TaskRunnerSpec {
    /// The task's name.
    pub task_name: String,
    /// Decides whether a clean exit completes the task (batch) or restarts it.
    pub job_type: JobType,
    /// The effective restart policy (task, group, or the job type's default).
    pub restart_policy: RestartPolicy,
    /// The driver that runs the task.
    pub driver: Arc<dyn Driver>,
    /// The config handed to the driver at every (re)start.
    pub driver_config: TaskConfig,
    /// Time between the kill signal and SIGKILL, as the job asks.
    pub kill_timeout: Duration,
    /// The client's cap on `kill_timeout` (`max_kill_timeout`): a stop
    /// never waits longer than this.
    pub max_kill_timeout: Duration,
    /// The kill signal (the driver's default, SIGTERM, when empty).
    pub kill_signal: String,
    /// How long a stop waits before it signals the task (the task's
    /// `shutdown_delay`, or its group's).
    pub shutdown_delay: Duration,
    /// How the task's log collector runs.
    pub log_launcher: logmon::Launcher,
    /// The task's templates, their fields interpolated: rendered before the
    /// task starts and watched while it runs.
    pub templates: Vec<types::Template>,
    /// The allocation's directory, which templates never leave.
    pub alloc_dir_root: PathBuf,
    /// How often templates are rendered again to notice changed inputs.
    pub template_poll: Duration,
    /// The task's artifacts, their fields interpolated.
    pub artifacts: Vec<types::Artifact>,
    /// The node's artifact fetcher and cache.
    pub artifact_fetcher: Option<Arc<crate::artifact::ArtifactFetcher>>,
    /// The node's service catalog and the job's namespace, for templates.
    pub services: Option<(crate::services::ServiceCatalog, String)>,
}

/// A task's new state, and its handle while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskUpdate {
    /// The task's name.
    pub task_name: String,
    /// Its whole state, events included.
    pub state: TaskState,
    /// Its driver handle while it runs (persisted for reattaching).
    pub handle: Option<TaskHandle>,
}

/// Sent to a task runner to stop its task; the text says why.
pub type KillReceiver = watch::Receiver<Option<String>>;

/// What an operator asks of a running task (`alloc signal`, `alloc
/// restart`, the stats endpoints). A task that is not running answers once
/// it runs again; callers bound their wait.
#[derive(Debug)]
pub enum TaskCommand {
    Signal {
        signal: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Restart {
        /// Why, for the task's events ("Restart requested by an operator").
        reason: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Stats {
        reply: oneshot::Sender<Result<driver_api::TaskStats, String>>,
    },
}

/// The receiving end of a task's commands.
pub type CommandReceiver = mpsc::UnboundedReceiver<TaskCommand>;

/// The next command, or never once every sender is gone.
async fn next_command(commands: &mut Option<CommandReceiver>) -> TaskCommand {
    if let Some(receiver) = commands.as_mut() {
        if let Some(command) = receiver.recv().await {
            return command;
        }
        *commands = None;
    }
    std::future::pending().await
}

/// Resolves when templates should render again: after `poll`, or as soon
/// as the service catalog changes.
async fn render_due(poll: Duration, catalog: &mut Option<watch::Receiver<Arc<Vec<types::ServiceRegistration>>>>) {
    match catalog.as_mut() {
        Some(changes) => {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        *catalog = None;
                    }
                }
            }
        }
        None => tokio::time::sleep(poll).await,
    }
}

/// Resolves once a kill is requested (never, if the sender is gone).
async fn kill_requested(kill: &mut KillReceiver) -> String {
    let reason = match kill.wait_for(Option::is_some).await {
        Ok(reason) => Some(reason.clone().unwrap_or_default()),
        Err(_) => None,
    };
    match reason {
        Some(reason) => reason,
        None => std::future::pending().await,
    }
}

fn event(event_type: &str, message: impl Into<String>) -> TaskEvent {
    TaskEvent::new(event_type, unix_nanos(), message)
}

fn terminated_event(exit: &ExitResult) -> TaskEvent {
    let mut message = format!("Exit Code: {}", exit.exit_code);
    if exit.signal != 0 {
        message.push_str(&format!(", Signal: {}", exit.signal));
    }
    if exit.oom_killed {
        message.push_str(", OOM Killed");
    }
    if let Some(error) = &exit.err {
        message.push_str(&format!(", Exit Message: {error:?}"));
    }
    let mut terminated = event(task_event::TERMINATED, message);
    terminated.exit_code = exit.exit_code;
    terminated.signal = exit.signal;
    if let Some(error) = &exit.err {
        terminated.message = error.clone();
    }
    terminated
}

struct Runner {
    spec: TaskRunnerSpec,
    state: TaskState,
    updates: mpsc::UnboundedSender<TaskUpdate>,
    tracker: RestartTracker,
}

impl Runner {
    fn emit(&self, handle: Option<&TaskHandle>) {
        let _ = self.updates.send(TaskUpdate {
            task_name: self.spec.task_name.clone(),
            state: self.state.clone(),
            handle: handle.cloned(),
        });
    }

    fn push(&mut self, event: TaskEvent) {
        self.state.events.push(event);
    }

    fn finish(mut self, failed: bool) -> TaskState {
        self.state.state = TaskStateKind::Dead;
        self.state.failed = failed;
        self.state.finished_at = unix_nanos();
        self.emit(None);
        self.state
    }

    /// The kill timeout every stop uses: the task's, capped by the client.
    fn kill_timeout(&self) -> Duration {
        self.spec.kill_timeout.min(self.spec.max_kill_timeout)
    }

    /// Stops a running task: Killing, then Killed once it is gone.
    async fn kill(mut self, handle: TaskHandle, reason: String) -> TaskState {
        let delay = self.spec.shutdown_delay;
        if !delay.is_zero() {
            self.push(event(
                task_event::WAITING_SHUTDOWN_DELAY,
                format!(
                    "Waiting for shutdown_delay of {} before killing the task.",
                    format_duration(delay)
                ),
            ));
            self.emit(Some(&handle));
            tokio::time::sleep(delay).await;
        }
        let kill_timeout = self.kill_timeout();
        let mut killing = event(
            task_event::KILLING,
            format!(
                "Sent interrupt. Waiting {} before force killing",
                format_duration(kill_timeout)
            ),
        );
        killing.kill_timeout = i64::try_from(kill_timeout.as_nanos()).unwrap_or(i64::MAX);
        if !reason.is_empty() {
            killing.details.insert("kill_reason".to_string(), reason);
        }
        self.push(killing);
        self.emit(Some(&handle));
        let driver = Arc::clone(&self.spec.driver);
        match driver.stop(&handle, kill_timeout, &self.spec.kill_signal).await {
            Ok(()) => {
                if let Ok(exit) = driver.wait(&handle).await {
                    self.push(terminated_event(&exit));
                }
            }
            Err(error) => {
                tracing::warn!(task = %handle.key(), %error, "stopping the task failed");
                let mut failure = event(task_event::DRIVER_FAILURE, error.to_string());
                failure.driver_error = error.to_string();
                self.push(failure);
            }
        }
        if let Err(error) = driver.destroy(&handle, true).await {
            tracing::warn!(task = %handle.key(), %error, "destroying the task failed");
        }
        self.push(event(task_event::KILLED, "Task successfully killed"));
        self.finish(false)
    }

    /// A task hook failed before the task could start: the task fails.
    fn hook_failed(mut self, message: String) -> TaskState {
        let mut failure = event(task_event::HOOK_FAILED, message.clone());
        failure.message = message;
        failure.fails_task = true;
        self.push(failure);
        self.finish(true)
    }

    /// Renders the templates until every input exists, then puts their
    /// environment variables into the task's. `None` when a kill came
    /// first.
    async fn prepare_templates(
        &mut self,
        templates: &mut TaskTemplates,
        base_env: &std::collections::BTreeMap<String, String>,
        kill: &mut KillReceiver,
    ) -> Option<Result<(), String>> {
        let mut reported = None;
        loop {
            match templates.render() {
                Ok(_) => break,
                Err(RenderTemplateError::Missing(path)) => {
                    if reported.as_ref() != Some(&path) {
                        self.push(event(task_event::TEMPLATE, format!("Missing: {}", path.display())));
                        self.emit(None);
                        reported = Some(path);
                    }
                    tokio::select! {
                        biased;
                        _ = kill_requested(kill) => return None,
                        _ = tokio::time::sleep(self.spec.template_poll) => {}
                    }
                }
                Err(error) => return Some(Err(format!("template failed: {error}"))),
            }
        }
        let mut env = base_env.clone();
        env.extend(templates.env_vars());
        self.spec.driver_config.env = env;
        Some(Ok(()))
    }

    /// Stops the running task so that it starts again at once, outside the
    /// restart policy (a template changed, or an operator asked).
    async fn stop_for_restart(&mut self, handle: &TaskHandle, why: &str) {
        let mut signaled = event(task_event::RESTART_SIGNAL, why);
        signaled.restart_reason = why.to_string();
        self.push(signaled);
        self.emit(Some(handle));
        let driver = Arc::clone(&self.spec.driver);
        let kill_timeout = self.kill_timeout();
        match driver.stop(handle, kill_timeout, &self.spec.kill_signal).await {
            Ok(()) => {
                if let Ok(exit) = driver.wait(handle).await {
                    self.push(terminated_event(&exit));
                }
            }
            Err(error) => tracing::warn!(task = %handle.key(), %error, "stopping the task for a restart failed"),
        }
        if let Err(error) = driver.destroy(handle, true).await {
            tracing::warn!(task = %handle.key(), %error, "destroying the task failed");
        }
        let mut restarting = event(task_event::RESTARTING, "Task restarting in 0s");
        restarting.restart_reason = why.to_string();
        self.push(restarting);
        self.state.state = TaskStateKind::Pending;
        self.state.restarts += 1;
        self.state.last_restart = unix_nanos();
        self.emit(None);
    }

    /// Sends `signal` to the running task, with an event saying why.
    async fn send_signal(&mut self, handle: &TaskHandle, signal: &str, why: &str) -> Result<(), String> {
        let mut signaling = event(task_event::SIGNALING, why);
        signaling.details.insert("signal".to_string(), signal.to_string());
        self.push(signaling);
        self.emit(Some(handle));
        self.spec
            .driver
            .signal(handle, signal)
            .await
            .map_err(|error| error.to_string())
    }

    /// Starts the task; on success `handle` holds it.
    async fn start_task(&mut self, handle: &mut Option<TaskHandle>) -> Option<RunOutcome> {
        match self.spec.driver.start(self.spec.driver_config.clone()).await {
            Ok(started) => {
                self.state.state = TaskStateKind::Running;
                self.state.started_at = unix_nanos();
                self.push(event(task_event::STARTED, "Task started by client"));
                self.emit(Some(&started));
                *handle = Some(started);
                None
            }
            Err(error) => {
                tracing::warn!(task = %self.spec.task_name, %error, "task failed to start");
                let mut failure = event(task_event::DRIVER_FAILURE, error.to_string());
                failure.driver_error = error.to_string();
                self.push(failure);
                Some(RunOutcome::StartFailure)
            }
        }
    }

    /// Fetches every artifact of the task, in order.
    async fn fetch_artifacts(&self) -> Result<(), String> {
        let Some(fetcher) = &self.spec.artifact_fetcher else {
            return if self.spec.artifacts.is_empty() {
                Ok(())
            } else {
                Err("this client cannot fetch artifacts".to_string())
            };
        };
        for artifact in &self.spec.artifacts {
            fetcher
                .fetch(artifact, &self.spec.alloc_dir_root, &self.spec.driver_config.task_dir)
                .await
                .map_err(|error| error.to_string())?;
        }
        Ok(())
    }

    fn killed_while_not_running(mut self) -> TaskState {
        if self.state.started_at != 0 {
            self.push(event(task_event::KILLED, "Task successfully killed"));
        }
        self.finish(false)
    }
}

/// Runs a task until it is dead. `handle` is a handle restored from local
/// state: the runner reattaches to it instead of starting the task.
///
/// The task's log collector is found (after an agent restart) or started
/// first, and stopped once the task is dead; when the runner is dropped
/// mid-way (the agent detaching from its tasks) the collector keeps running
/// with the task.
pub async fn run_task(
    spec: TaskRunnerSpec,
    initial: TaskState,
    restored: Option<TaskHandle>,
    updates: mpsc::UnboundedSender<TaskUpdate>,
    kill: KillReceiver,
) -> TaskState {
    run_task_with_commands(spec, initial, restored, updates, kill, None).await
}

/// [`run_task`], taking operators' [`TaskCommand`]s while the task runs.
pub async fn run_task_with_commands(
    mut spec: TaskRunnerSpec,
    mut initial: TaskState,
    restored: Option<TaskHandle>,
    updates: mpsc::UnboundedSender<TaskUpdate>,
    kill: KillReceiver,
    commands: Option<CommandReceiver>,
) -> TaskState {
    let logs = &spec.driver_config.logs;
    if spec.driver.capabilities().writes_log_files && !logs.config.disabled {
        return run_task_with_logs(spec, initial, restored, updates, kill, commands).await;
    }
    if logs.config.disabled {
        spec.driver_config.stdout_path = PathBuf::from("/dev/null");
        spec.driver_config.stderr_path = PathBuf::from("/dev/null");
        return run_task_with_logs(spec, initial, restored, updates, kill, commands).await;
    }
    match logmon::Collector::ensure(&spec.log_launcher, logs).await {
        Ok(collector) => {
            spec.driver_config.stdout_path = collector.stdout_fifo().to_path_buf();
            spec.driver_config.stderr_path = collector.stderr_fifo().to_path_buf();
            let state = run_task_with_logs(spec, initial, restored, updates, kill, commands).await;
            collector.stop().await;
            state
        }
        Err(error) => {
            tracing::warn!(task = %spec.task_name, %error, "log collector failed to start");
            let mut failure = event(
                task_event::DRIVER_FAILURE,
                format!("failed to start the log collector: {error}"),
            );
            failure.driver_error = error.to_string();
            failure.fails_task = true;
            initial.events.push(failure);
            initial.state = TaskStateKind::Dead;
            initial.failed = true;
            initial.finished_at = unix_nanos();
            let _ = updates.send(TaskUpdate {
                task_name: spec.task_name.clone(),
                state: initial.clone(),
                handle: None,
            });
            initial
        }
    }
}

async fn run_task_with_logs(
    spec: TaskRunnerSpec,
    initial: TaskState,
    restored: Option<TaskHandle>,
    updates: mpsc::UnboundedSender<TaskUpdate>,
    mut kill: KillReceiver,
    mut commands: Option<CommandReceiver>,
) -> TaskState {
    let tracker = RestartTracker::new(spec.restart_policy.clone(), spec.job_type);
    let mut runner = Runner {
        spec,
        state: initial,
        updates,
        tracker,
    };
    let driver = Arc::clone(&runner.spec.driver);
    let mut handle: Option<TaskHandle> = None;
    let base_env = runner.spec.driver_config.env.clone();
    // Artifacts are fetched once, before the first start (a reattached task
    // has them already).
    let mut artifacts_done = runner.spec.artifacts.is_empty() || restored.is_some();
    let mut templates = if runner.spec.templates.is_empty() {
        None
    } else {
        match TaskTemplates::new(
            &runner.spec.templates,
            &runner.spec.alloc_dir_root,
            &runner.spec.driver_config.task_dir,
            base_env.clone(),
        ) {
            Ok(templates) => Some(match runner.spec.services.clone() {
                Some((catalog, namespace)) => templates.with_services(catalog, namespace),
                None => templates,
            }),
            Err(error) => return runner.hook_failed(format!("template failed: {error}")),
        }
    };
    // An outcome waiting for a restart decision (set when a restored task
    // turned out to be gone).
    let mut pending_outcome: Option<RunOutcome> = None;

    if let Some(restored) = restored {
        match driver.recover(&restored).await {
            Ok(()) => {
                tracing::info!(task = %restored.key(), "reattached to running task");
                runner.state.state = TaskStateKind::Running;
                // What is on disk is what the task runs with: the next
                // render compares against it.
                if let Some(templates) = templates.as_mut()
                    && let Err(error) = templates.render()
                {
                    tracing::warn!(task = %restored.key(), %error, "templates could not be rendered after reattaching");
                }
                handle = Some(restored);
            }
            Err(error) => {
                tracing::warn!(task = %restored.key(), %error, "could not reattach to task");
                let mut gone = event(
                    task_event::TERMINATED,
                    format!("Exit Code: 0, Exit Message: \"task ended while the agent was down: {error}\""),
                );
                gone.message = error.to_string();
                runner.push(gone);
                pending_outcome = Some(RunOutcome::Failure);
            }
        }
    }

    loop {
        let outcome = if let Some(outcome) = pending_outcome.take() {
            outcome
        } else if let Some(running) = handle.take() {
            let watching = templates.is_some();
            let poll = runner.spec.template_poll;
            // Templates render again on the poll, and at once when the
            // service catalog changes (`nomadService`).
            let mut catalog_changes = runner
                .spec
                .services
                .as_ref()
                .filter(|_| watching)
                .map(|(catalog, _)| catalog.subscribe());
            let step = loop {
                tokio::select! {
                    biased;
                    reason = kill_requested(&mut kill) => return runner.kill(running, reason).await,
                    exit = driver.wait(&running) => {
                        let exit = exit.unwrap_or_else(|error| ExitResult {
                            err: Some(error.to_string()),
                            ..ExitResult::default()
                        });
                        if let Err(error) = driver.destroy(&running, false).await {
                            tracing::warn!(task = %running.key(), %error, "destroying the exited task failed");
                        }
                        runner.push(terminated_event(&exit));
                        break Some(if exit.successful() { RunOutcome::Success } else { RunOutcome::Failure });
                    }
                    command = next_command(&mut commands) => match command {
                        TaskCommand::Signal { signal, reply } => {
                            let sent = runner.send_signal(&running, &signal, "Signal requested by an operator").await;
                            let _ = reply.send(sent);
                        }
                        TaskCommand::Stats { reply } => {
                            let stats = driver.stats(&running).await.map_err(|error| error.to_string());
                            let _ = reply.send(stats);
                        }
                        TaskCommand::Restart { reason, reply } => {
                            runner.stop_for_restart(&running, &reason).await;
                            let _ = reply.send(Ok(()));
                            break None;
                        }
                    },
                    _ = render_due(poll, &mut catalog_changes), if watching => {
                        let Some(templates) = templates.as_mut() else { continue };
                        let rendered = match templates.render() {
                            Ok(rendered) if !rendered.changed.is_empty() => rendered,
                            Ok(_) => continue,
                            Err(error) => {
                                tracing::warn!(task = %runner.spec.task_name, %error, "re-rendering templates failed");
                                continue;
                            }
                        };
                        let splay = templates.splay(&rendered);
                        if !splay.is_zero() {
                            let nanos = u64::try_from(splay.as_nanos()).unwrap_or(u64::MAX).max(1);
                            let wait = Duration::from_nanos(unix_nanos().unsigned_abs() % nanos);
                            tokio::select! {
                                biased;
                                reason = kill_requested(&mut kill) => return runner.kill(running, reason).await,
                                _ = tokio::time::sleep(wait) => {}
                            }
                        }
                        match templates.action(&rendered) {
                            ChangeAction::Noop => {}
                            ChangeAction::Signal(signal) => {
                                if let Err(error) = runner.send_signal(&running, &signal, "Template re-rendered").await {
                                    tracing::warn!(task = %runner.spec.task_name, %error, "signalling the task failed");
                                }
                            }
                            ChangeAction::Restart => {
                                runner.stop_for_restart(&running, "Template with change_mode restart re-rendered").await;
                                break None;
                            }
                        }
                    }
                }
            };
            match step {
                Some(outcome) => outcome,
                // Restarted in place: start again, outside the policy.
                None => continue,
            }
        } else {
            if kill.borrow().is_some() {
                return runner.killed_while_not_running();
            }
            if runner.state.started_at == 0 && runner.state.restarts == 0 {
                runner.push(event(task_event::SETUP, "Building Task Directory"));
                runner.emit(None);
            }
            let fetched = if artifacts_done {
                Ok(())
            } else {
                runner.push(event(
                    task_event::DOWNLOADING_ARTIFACTS,
                    "Client is downloading artifacts",
                ));
                runner.emit(None);
                tokio::select! {
                    biased;
                    _ = kill_requested(&mut kill) => return runner.killed_while_not_running(),
                    fetched = runner.fetch_artifacts() => fetched,
                }
            };
            if let Err(error) = fetched {
                tracing::warn!(task = %runner.spec.task_name, %error, "artifact download failed");
                let mut failure = event(task_event::ARTIFACT_FAILED, error.clone());
                failure.message = error;
                runner.push(failure);
                RunOutcome::StartFailure
            } else {
                artifacts_done = true;
                if let Some(templates) = templates.as_mut() {
                    match runner.prepare_templates(templates, &base_env, &mut kill).await {
                        None => return runner.killed_while_not_running(),
                        Some(Err(message)) => return runner.hook_failed(message),
                        Some(Ok(())) => {}
                    }
                }
                match runner.start_task(&mut handle).await {
                    None => continue,
                    Some(outcome) => outcome,
                }
            }
        };

        match runner.tracker.next(outcome, tokio::time::Instant::now()) {
            RestartDecision::Complete => return runner.finish(false),
            RestartDecision::Fail { reason } => {
                let mut not_restarting = event(task_event::NOT_RESTARTING, reason.clone());
                not_restarting.restart_reason = reason;
                not_restarting.fails_task = true;
                runner.push(not_restarting);
                return runner.finish(true);
            }
            RestartDecision::Restart { delay, reason } => {
                let mut restarting = event(
                    task_event::RESTARTING,
                    format!("Task restarting in {}", format_duration(delay)),
                );
                restarting.restart_reason = reason;
                restarting.start_delay = i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX);
                runner.push(restarting);
                runner.state.state = TaskStateKind::Pending;
                runner.state.restarts += 1;
                runner.state.last_restart = unix_nanos();
                runner.emit(None);
                tokio::select! {
                    biased;
                    _ = kill_requested(&mut kill) => return runner.killed_while_not_running(),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
