//! The alloc runner: builds an allocation's directory, starts its tasks in
//! lifecycle order (prestart, main, poststart, poststop), stops them when
//! the servers say so or when the group is finished, derives the
//! allocation's client status from its tasks, and reports and persists
//! every change.
//!
//! The ordering rules are a pure function, [`plan_steps`], of the tasks'
//! states; the runner loop only executes what it returns.

use crate::alloc_dir::AllocDir;
use crate::clock::unix_nanos;
use crate::env::{EnvInputs, TaskEnv};
use crate::local_state::{LocalAllocState, LocalStore};
use crate::task_runner::{TaskRunnerSpec, TaskUpdate, run_task_with_commands};
use crate::updater::UpdateSender;
use driver_api::{Driver, LogPaths, TaskConfig, TaskHandle};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use types::{
    AllocClientStatus, AllocClientUpdate, Allocation, Job, Node, RestartPolicy, Task, TaskEvent, TaskGroup, TaskState,
    TaskStateKind, task_event,
};

/// The event type when the allocation directory cannot be built.
const SETUP_FAILURE: &str = "Setup Failure";

/// Where a task sits in its group's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// Runs before the main tasks: to completion, or alongside as a sidecar.
    Prestart { sidecar: bool },
    /// A main task (no lifecycle block).
    Main,
    /// Starts once the main tasks run.
    Poststart { sidecar: bool },
    /// Runs after every other task is dead.
    Poststop,
}

impl TaskKind {
    /// The kind of `task`, from its `lifecycle` block.
    pub fn of(task: &Task) -> TaskKind {
        match &task.lifecycle {
            Some(lifecycle) => match lifecycle.hook.as_str() {
                "prestart" => TaskKind::Prestart {
                    sidecar: lifecycle.sidecar,
                },
                "poststart" => TaskKind::Poststart {
                    sidecar: lifecycle.sidecar,
                },
                "poststop" => TaskKind::Poststop,
                _ => TaskKind::Main,
            },
            None => TaskKind::Main,
        }
    }
}

/// One task of the group, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSlot {
    /// The task's name.
    pub name: String,
    /// Its lifecycle position.
    pub kind: TaskKind,
    /// Whether its death ends the group.
    pub leader: bool,
}

/// What the runner should do next.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Steps {
    /// Tasks to start now.
    pub start: Vec<String>,
    /// Tasks to kill now, with the reason.
    pub kill: Vec<(String, String)>,
    /// Every task that will ever run has run: the allocation is finished.
    pub done: bool,
}

/// Decides which tasks to start and kill, from the tasks' states, which
/// runners exist (`spawned`) and were told to stop (`kill_sent`), and
/// whether the servers want the allocation stopped.
pub fn plan_steps(
    slots: &[TaskSlot],
    states: &BTreeMap<String, TaskState>,
    spawned: &BTreeSet<String>,
    kill_sent: &BTreeSet<String>,
    stopping: bool,
) -> Steps {
    let state = |name: &str| states.get(name);
    let dead = |name: &str| state(name).is_some_and(|s| s.state == TaskStateKind::Dead);
    let failed = |name: &str| state(name).is_some_and(|s| s.failed);
    let running = |name: &str| state(name).is_some_and(|s| s.state == TaskStateKind::Running);
    let has_started = |name: &str| state(name).is_some_and(|s| s.started_at != 0);
    let is_spawned = |name: &str| spawned.contains(name);

    let non_poststop: Vec<&TaskSlot> = slots.iter().filter(|s| s.kind != TaskKind::Poststop).collect();
    let poststop: Vec<&TaskSlot> = slots.iter().filter(|s| s.kind == TaskKind::Poststop).collect();
    let explicit_mains: Vec<&TaskSlot> = slots.iter().filter(|s| s.kind == TaskKind::Main).collect();
    // A group of hook tasks only: treat them all as its main tasks.
    let mains = if explicit_mains.is_empty() {
        non_poststop.clone()
    } else {
        explicit_mains
    };

    let any_failed = non_poststop.iter().any(|s| failed(&s.name));
    let leader_dead = slots.iter().any(|s| s.leader && dead(&s.name));
    let mains_dead = mains.iter().all(|s| dead(&s.name));
    let mut steps = Steps::default();

    let reason = if stopping {
        Some("allocation is being stopped")
    } else if any_failed {
        Some("a sibling task failed")
    } else if leader_dead {
        Some("the leader task is dead")
    } else if mains_dead {
        Some("the main tasks are finished")
    } else {
        None
    };

    if let Some(reason) = reason {
        for slot in &non_poststop {
            if is_spawned(&slot.name) && !dead(&slot.name) && !kill_sent.contains(&slot.name) {
                steps.kill.push((slot.name.clone(), reason.to_string()));
            }
        }
        let others_finished = non_poststop.iter().all(|s| !is_spawned(&s.name) || dead(&s.name));
        if others_finished {
            for slot in &poststop {
                if !is_spawned(&slot.name) {
                    steps.start.push(slot.name.clone());
                }
            }
            steps.done = steps.start.is_empty() && poststop.iter().all(|s| dead(&s.name));
        }
        return steps;
    }

    let prestart: Vec<&TaskSlot> = slots
        .iter()
        .filter(|s| matches!(s.kind, TaskKind::Prestart { .. }) && mains.iter().all(|m| m.name != s.name))
        .collect();
    for slot in &prestart {
        if !is_spawned(&slot.name) {
            steps.start.push(slot.name.clone());
        }
    }
    let prestart_ready = prestart.iter().all(|s| match s.kind {
        TaskKind::Prestart { sidecar: true } => running(&s.name),
        _ => dead(&s.name),
    });
    if !prestart_ready {
        return steps;
    }
    for slot in &mains {
        if !is_spawned(&slot.name) {
            steps.start.push(slot.name.clone());
        }
    }
    if mains.iter().all(|s| has_started(&s.name)) {
        for slot in slots {
            if matches!(slot.kind, TaskKind::Poststart { .. })
                && !is_spawned(&slot.name)
                && mains.iter().all(|m| m.name != slot.name)
            {
                steps.start.push(slot.name.clone());
            }
        }
    }
    steps
}

/// The allocation's client status derived from its tasks.
pub fn client_status(states: &BTreeMap<String, TaskState>, done: bool) -> (AllocClientStatus, &'static str) {
    if done {
        if states.values().any(|s| s.failed) {
            (AllocClientStatus::Failed, "Failed tasks")
        } else {
            (AllocClientStatus::Complete, "All tasks have completed")
        }
    } else if states.values().any(|s| s.state == TaskStateKind::Running) {
        (AllocClientStatus::Running, "Tasks are running")
    } else {
        (AllocClientStatus::Pending, "No tasks have started")
    }
}

/// What every alloc runner of one client shares.
pub struct AllocContext {
    /// The fingerprinted node (for `${node.*}` and `${attr.*}`).
    pub node: Arc<Node>,
    /// The region, for `NOMAD_REGION`.
    pub region: String,
    /// The drivers by name.
    pub drivers: BTreeMap<String, Arc<dyn Driver>>,
    /// `<data_dir>/alloc`.
    pub alloc_root: PathBuf,
    /// Where allocation state is persisted.
    pub store: LocalStore,
    /// Where status updates for the servers go.
    pub updates: UpdateSender,
    /// The agent's environment, for drivers without isolation.
    pub host_env: BTreeMap<String, String>,
    /// The cap on every task's kill timeout.
    pub max_kill_timeout: std::time::Duration,
    /// How log collectors are run.
    pub log_launcher: logmon::Launcher,
    /// Sets up group networks (`bridge`, `none`).
    pub network: network::NetworkManager,
    /// How often running tasks' templates are rendered again.
    pub template_poll: std::time::Duration,
    /// Fetches artifacts through the node's cache.
    pub artifacts: Arc<crate::artifact::ArtifactFetcher>,
    /// Where running tasks take operators' commands.
    pub controls: crate::handle::TaskControls,
    /// Where service registration changes go.
    pub services: crate::services::ServiceSender,
    /// The latest check results, for the checks endpoint.
    pub alloc_checks: crate::services::AllocChecks,
    /// The node's copy of every service registration (templates).
    pub catalog: crate::services::ServiceCatalog,
}

/// The client's grip on one running alloc runner.
pub struct AllocRunner {
    alloc_id: String,
    stop: watch::Sender<bool>,
    join: JoinHandle<()>,
    finished_at: Arc<std::sync::OnceLock<i64>>,
}

impl AllocRunner {
    /// Starts running `alloc`, or resumes from `restored` local state.
    pub fn spawn(
        context: Arc<AllocContext>,
        alloc: Allocation,
        job: Job,
        restored: Option<LocalAllocState>,
    ) -> AllocRunner {
        let alloc_id = alloc.id.clone();
        let (stop, stop_rx) = watch::channel(false);
        let finished_at = Arc::new(std::sync::OnceLock::new());
        let finished = Arc::clone(&finished_at);
        let join = tokio::spawn(async move {
            run_alloc(context, alloc, job, restored, stop_rx).await;
            let _ = finished.set(unix_nanos());
        });
        AllocRunner {
            alloc_id,
            stop,
            join,
            finished_at,
        }
    }

    /// When every task of the allocation was dead (Unix nanoseconds), once
    /// it is.
    pub fn finished_at(&self) -> Option<i64> {
        self.finished_at.get().copied()
    }

    /// The allocation this runner runs.
    pub fn alloc_id(&self) -> &str {
        &self.alloc_id
    }

    /// Asks the runner to stop every task (idempotent).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Whether the runner has finished (every task is dead).
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// Stops every task and waits until they are dead.
    pub async fn stop_and_wait(self) {
        self.stop();
        let _ = self.join.await;
    }

    /// Drops the runner without touching its tasks: they keep running and
    /// are reattached from local state on the next start.
    pub fn detach(self) {
        self.join.abort();
    }
}

/// The restart policy of `task`: its own, its group's, or the job type's.
fn restart_policy(job: &Job, group: &TaskGroup, task: &Task) -> RestartPolicy {
    task.restart_policy
        .clone()
        .or_else(|| group.restart_policy.clone())
        .unwrap_or_else(|| RestartPolicy::default_for(job.job_type))
}

struct AllocLoop {
    context: Arc<AllocContext>,
    local: LocalAllocState,
    last_report: Option<(AllocClientStatus, BTreeMap<String, TaskState>)>,
}

impl AllocLoop {
    /// Sends the status to the servers and saves it locally, when changed.
    fn report(&mut self, done: bool) {
        let (status, description) = client_status(&self.local.task_states, done);
        let current = (status, self.local.task_states.clone());
        if self.last_report.as_ref() == Some(&current) {
            return;
        }
        self.last_report = Some(current);
        self.local.client_status = status;
        self.local.client_description = description.to_string();
        if let Err(error) = self.context.store.save(&self.local) {
            tracing::warn!(alloc_id = %self.local.alloc.id, %error, "could not save local state");
        }
        let _ = self.context.updates.send(AllocClientUpdate {
            alloc_id: self.local.alloc.id.clone(),
            client_status: status,
            client_description: description.to_string(),
            task_states: self.local.task_states.clone(),
            modify_time: unix_nanos(),
        });
    }

    fn fail_all(&mut self, event_type: &str, message: &str) {
        for state in self.local.task_states.values_mut() {
            let mut failure = TaskEvent::new(event_type, unix_nanos(), message);
            failure.fails_task = true;
            state.events.push(failure);
            state.state = TaskStateKind::Dead;
            state.failed = true;
            state.finished_at = unix_nanos();
        }
        self.report(true);
    }
}

fn task_spec(setup: &TaskSetup<'_>, task: &Task) -> Result<TaskRunnerSpec, String> {
    let TaskSetup {
        context,
        alloc,
        job,
        group,
        alloc_dir,
        ..
    } = *setup;
    let netns_path = setup.netns_path.clone();
    let driver_join = setup.driver_join.as_ref();
    let driver = context
        .drivers
        .get(&task.driver)
        .cloned()
        .ok_or_else(|| format!("driver {:?} is not available on this node", task.driver))?;
    let mut network = crate::env::group_network(&context.node, alloc);
    network.netns_path = netns_path;
    network.join = driver_join
        .filter(|(driver, _)| *driver == task.driver)
        .map(|(_, join)| join.clone());
    let no_isolation = driver.capabilities().fs_isolation == "none";
    let mounts = volume_mounts(&context.node, group, task)?;
    write_dispatch_payload(job, task, alloc_dir)?;
    let empty = BTreeMap::new();
    let env = TaskEnv::build(EnvInputs {
        node: &context.node,
        region: &context.region,
        alloc,
        job,
        group,
        task,
        alloc_dir,
        host_env: if no_isolation { &context.host_env } else { &empty },
        isolated_fs: !no_isolation,
    });
    let resources = alloc
        .allocated_resources
        .tasks
        .get(&task.name)
        .cloned()
        .unwrap_or_else(|| types::AllocatedTaskResources {
            cpu_mhz: task.resources.cpu,
            memory_mb: task.resources.memory_mb,
            memory_max_mb: task.resources.memory_max_mb,
            ..Default::default()
        });
    Ok(TaskRunnerSpec {
        task_name: task.name.clone(),
        job_type: job.job_type,
        restart_policy: restart_policy(job, group, task),
        driver,
        driver_config: TaskConfig {
            alloc_id: alloc.id.clone(),
            task_name: task.name.clone(),
            config: env.interpolate_json(&task.config),
            env: env.vars().clone(),
            alloc_dir: alloc_dir.shared_dir(),
            task_dir: alloc_dir.task_dir(&task.name),
            logs: LogPaths::for_task(alloc_dir.logs_dir(), &task.name, task.log_config.clone()),
            // Filled in by the task runner once the log collector runs.
            stdout_path: PathBuf::new(),
            stderr_path: PathBuf::new(),
            user: task.user.clone(),
            network,
            resources,
            mounts,
        },
        log_launcher: context.log_launcher.clone(),
        kill_timeout: task.kill_timeout,
        max_kill_timeout: context.max_kill_timeout,
        kill_signal: task.kill_signal.clone(),
        shutdown_delay: task.shutdown_delay.or(group.shutdown_delay).unwrap_or_default(),
        templates: task
            .templates
            .iter()
            .map(|template| types::Template {
                source_path: env.interpolate(&template.source_path),
                dest_path: env.interpolate(&template.dest_path),
                change_signal: env.interpolate(&template.change_signal),
                ..template.clone()
            })
            .collect(),
        alloc_dir_root: alloc_dir.root().to_path_buf(),
        template_poll: context.template_poll,
        artifacts: task
            .artifacts
            .iter()
            .map(|artifact| types::Artifact {
                source: env.interpolate(&artifact.source),
                destination: env.interpolate(&artifact.destination),
                mode: artifact.mode.clone(),
                options: artifact
                    .options
                    .iter()
                    .map(|(key, value)| (key.clone(), env.interpolate(value)))
                    .collect(),
                headers: artifact
                    .headers
                    .iter()
                    .map(|(key, value)| (key.clone(), env.interpolate(value)))
                    .collect(),
            })
            .collect(),
        artifact_fetcher: Some(Arc::clone(&context.artifacts)),
        services: Some((context.catalog.clone(), alloc.namespace.clone())),
    })
}

/// Writes a dispatched job's payload where the task's `dispatch_payload`
/// says, inside its `local/` directory.
fn write_dispatch_payload(job: &Job, task: &Task, alloc_dir: &AllocDir) -> Result<(), String> {
    let Some(payload) = &task.dispatch_payload else {
        return Ok(());
    };
    if payload.file.is_empty() {
        return Ok(());
    }
    let local = alloc_dir.local_dir(&task.name);
    let target = crate::sandbox::confine(alloc_dir.root(), &local, &payload.file)
        .map_err(|error| format!("dispatch_payload file: {error}"))?;
    if !target.starts_with(&local) {
        return Err(format!(
            "dispatch_payload file {:?} leaves the task's local directory",
            payload.file
        ));
    }
    if let Some(parent) = target.parent() {
        crate::sandbox::create_dir_inside(alloc_dir.root(), parent)?;
    }
    // Replace, never follow, whatever the task left there.
    let _ = std::fs::remove_file(&target);
    let temporary = target.with_extension("drover-payload");
    let _ = std::fs::remove_file(&temporary);
    std::fs::write(&temporary, &job.payload)
        .and_then(|()| std::fs::rename(&temporary, &target))
        .map_err(|error| format!("write the dispatch payload {}: {error}", target.display()))
}

/// The host directories `task` mounts: each `volume_mount` names a group
/// `volume` of type host, which names one of the node's host volumes. A
/// read-only volume (on the node, in the group or in the mount) is mounted
/// read-only. Only the exec driver mounts.
fn volume_mounts(node: &Node, group: &TaskGroup, task: &Task) -> Result<Vec<driver_api::Mount>, String> {
    let mut mounts = Vec::new();
    for mount in &task.volume_mounts {
        if task.driver != "exec" {
            return Err(format!(
                "volume_mount is not supported by the {} driver in Drover yet",
                task.driver
            ));
        }
        let request = group.volumes.get(&mount.volume).ok_or_else(|| {
            format!(
                "volume_mount names volume {:?}, which the group does not have",
                mount.volume
            )
        })?;
        if request.volume_type != "host" {
            return Err(format!(
                "volume {:?} is of type {:?}; only host volumes can be mounted",
                mount.volume, request.volume_type
            ));
        }
        let host = node
            .host_volumes
            .get(&request.source)
            .ok_or_else(|| format!("host volume {:?} is not on this node", request.source))?;
        let destination = mount.destination.trim_start_matches('/');
        if destination.is_empty() || destination.split('/').any(|part| part == "..") {
            return Err(format!(
                "volume_mount destination {:?} is not a path inside the task",
                mount.destination
            ));
        }
        mounts.push(driver_api::Mount {
            host_path: PathBuf::from(&host.path),
            task_path: PathBuf::from("/").join(destination),
            read_only: host.read_only || request.read_only || mount.read_only,
        });
    }
    Ok(mounts)
}

async fn run_alloc(
    context: Arc<AllocContext>,
    alloc: Allocation,
    job: Job,
    restored: Option<LocalAllocState>,
    mut stop: watch::Receiver<bool>,
) {
    let alloc_id = alloc.id.clone();
    let group = job.group(&alloc.task_group).cloned();
    let mut task_states = BTreeMap::new();
    let mut handles: BTreeMap<String, TaskHandle> = BTreeMap::new();
    let mut restored_terminal = false;
    if let Some(restored) = restored {
        task_states = restored.task_states;
        handles = restored.handles;
        restored_terminal = restored.client_status.is_terminal();
    }
    if let Some(group) = &group {
        for task in &group.tasks {
            task_states.entry(task.name.clone()).or_insert_with(|| TaskState {
                events: vec![TaskEvent::new(
                    task_event::RECEIVED,
                    unix_nanos(),
                    "Task received by client",
                )],
                ..TaskState::default()
            });
        }
    }
    let mut state = AllocLoop {
        context: Arc::clone(&context),
        local: LocalAllocState {
            alloc: alloc.clone(),
            job: job.clone(),
            client_status: AllocClientStatus::Pending,
            client_description: String::new(),
            task_states,
            handles: handles.clone(),
        },
        last_report: None,
    };
    if restored_terminal {
        // Finished before the restart: report again in case the servers
        // never heard, and run nothing.
        state.report(true);
        return;
    }
    let Some(group) = group else {
        tracing::warn!(%alloc_id, group = %alloc.task_group, "task group missing from the job");
        state.local.task_states.clear();
        state.report(true);
        return;
    };
    let alloc_dir = AllocDir::new(&context.alloc_root, &alloc_id);
    if let Err(error) = alloc_dir.build(group.tasks.iter().map(|task| task.name.as_str())) {
        tracing::warn!(%alloc_id, %error, "allocation directory setup failed");
        state.fail_all(SETUP_FAILURE, &error.to_string());
        return;
    }
    let network = crate::env::group_network(&context.node, &alloc);
    // (driver, how its tasks join) when a driver made the namespace.
    let mut driver_join: Option<(String, String)> = None;
    let netns_path = match network.mode() {
        "host" => None,
        mode => {
            let mut setup: Result<Option<u32>, String> = Ok(None);
            if mode == "bridge" {
                // A driver whose tasks cannot join a namespace the client
                // makes (docker) makes it, and the client wires it up.
                let mut names: Vec<&str> = group.tasks.iter().map(|task| task.driver.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                for name in names {
                    let Some(driver) = context.drivers.get(name) else {
                        continue;
                    };
                    match driver.create_network(&alloc_id).await {
                        Ok(Some(isolation)) => {
                            setup = Ok(Some(isolation.pid));
                            driver_join = Some((name.to_string(), isolation.join));
                            break;
                        }
                        Ok(None) => {}
                        Err(error) => {
                            setup = Err(error.to_string());
                            break;
                        }
                    }
                }
            }
            let manager = context.network.clone();
            let mode = mode.to_string();
            let id = alloc_id.clone();
            let setup = match setup {
                Ok(existing_pid) => tokio::task::spawn_blocking(move || {
                    manager.setup(&id, &mode, &network.ports, &network.host_ip, existing_pid)
                })
                .await
                .map_err(|error| error.to_string())
                .and_then(|result| result.map_err(|error| error.to_string())),
                Err(error) => Err(error),
            };
            match setup {
                Ok(network) => Some(network.netns_path),
                Err(error) => {
                    tracing::warn!(%alloc_id, %error, "allocation network setup failed");
                    if let Some((name, _)) = &driver_join
                        && let Some(driver) = context.drivers.get(name)
                        && let Err(error) = driver.destroy_network(&alloc_id).await
                    {
                        tracing::warn!(%alloc_id, %error, "could not remove the driver's network");
                    }
                    state.fail_all(SETUP_FAILURE, &format!("failed to set up the group network: {error}"));
                    return;
                }
            }
        }
    };

    // Services: registered while their tasks run, checked here.
    let (task_states_tx, task_states_rx) = watch::channel(state.local.task_states.clone());
    let services_loop = {
        // A namespaced group's ports are mapped on the host address too.
        let network = crate::env::group_network(&context.node, &alloc);
        let env_of = |task_name: Option<&str>| {
            let task = task_name
                .and_then(|name| group.task(name))
                .or_else(|| group.tasks.first());
            match task {
                Some(task) => TaskEnv::build(EnvInputs {
                    node: &context.node,
                    region: &context.region,
                    alloc: &alloc,
                    job: &job,
                    group: &group,
                    task,
                    alloc_dir: &alloc_dir,
                    host_env: &BTreeMap::new(),
                    isolated_fs: false,
                }),
                None => TaskEnv::from_vars(BTreeMap::new()),
            }
        };
        match crate::services::service_specs(&alloc, &job, &network, &context.node.datacenter, &env_of) {
            Ok(specs) if specs.is_empty() => None,
            Ok(specs) => Some(tokio::spawn(crate::services::run_alloc_services(
                crate::services::AllocServices {
                    specs,
                    alloc_id: alloc_id.clone(),
                    group: group.name.clone(),
                    sender: context.services.clone(),
                    controls: Arc::clone(&context.controls),
                    checks: Arc::clone(&context.alloc_checks),
                },
                task_states_rx,
            ))),
            Err(error) => {
                tracing::warn!(%alloc_id, %error, "service setup failed");
                state.fail_all(SETUP_FAILURE, &format!("failed to set up services: {error}"));
                return;
            }
        }
    };

    let slots: Vec<TaskSlot> = group
        .tasks
        .iter()
        .map(|task| TaskSlot {
            name: task.name.clone(),
            kind: TaskKind::of(task),
            leader: task.leader,
        })
        .collect();
    let (updates_tx, mut updates_rx) = mpsc::unbounded_channel::<TaskUpdate>();
    let mut tasks = TaskSet {
        runners: JoinSet::new(),
        kills: BTreeMap::new(),
        spawned: BTreeSet::new(),
        kill_sent: BTreeSet::new(),
        updates: updates_tx,
    };
    let setup = TaskSetup {
        context: &context,
        alloc: &alloc,
        job: &job,
        group: &group,
        alloc_dir: &alloc_dir,
        netns_path: netns_path.clone(),
        driver_join: driver_join.clone(),
    };

    // Reattach first: tasks with a stored handle, and remember the dead.
    for slot in &slots {
        let task_state = state.local.task_states.get(&slot.name).cloned().unwrap_or_default();
        if task_state.state == TaskStateKind::Dead {
            tasks.spawned.insert(slot.name.clone());
        } else if let Some(handle) = handles.remove(&slot.name) {
            tasks.spawn(&setup, &slot.name, Some(handle), &mut state);
        }
    }

    let mut stopping = *stop.borrow();
    loop {
        let steps = plan_steps(
            &slots,
            &state.local.task_states,
            &tasks.spawned,
            &tasks.kill_sent,
            stopping,
        );
        for (name, reason) in &steps.kill {
            if let Some(kill) = tasks.kills.get(name) {
                kill.send_replace(Some(reason.clone()));
            }
            tasks.kill_sent.insert(name.clone());
        }
        for name in &steps.start {
            tasks.spawn(&setup, name, None, &mut state);
        }
        if steps.done {
            break;
        }
        task_states_tx.send_if_modified(|shown| {
            let changed = *shown != state.local.task_states;
            if changed {
                shown.clone_from(&state.local.task_states);
            }
            changed
        });
        state.report(false);
        if !steps.start.is_empty() {
            // A task may have failed to get a driver: plan again at once.
            continue;
        }
        tokio::select! {
            update = updates_rx.recv() => {
                let Some(update) = update else { break };
                match update.handle {
                    Some(handle) => state.local.handles.insert(update.task_name.clone(), handle),
                    None => state.local.handles.remove(&update.task_name),
                };
                state.local.task_states.insert(update.task_name, update.state);
            }
            changed = stop.changed(), if !stopping => {
                stopping = changed.is_err() || *stop.borrow();
            }
            Some(_) = tasks.runners.join_next() => {}
        }
    }
    // Tasks that never ran are dead too.
    for slot in &slots {
        if let Some(task_state) = state.local.task_states.get_mut(&slot.name)
            && task_state.state != TaskStateKind::Dead
        {
            task_state.state = TaskStateKind::Dead;
            task_state.finished_at = unix_nanos();
        }
    }
    state.local.handles.clear();
    // The services loop deregisters everything once the states end.
    drop(task_states_tx);
    if let Some(services_loop) = services_loop {
        let _ = services_loop.await;
    }
    state.report(true);
    while tasks.runners.join_next().await.is_some() {}
    context.controls.lock().expect("task controls lock").remove(&alloc_id);
    if netns_path.is_some() {
        let manager = context.network.clone();
        let id = alloc_id.clone();
        let _ = tokio::task::spawn_blocking(move || manager.teardown(&id)).await;
        if let Some((name, _)) = &driver_join
            && let Some(driver) = context.drivers.get(name)
            && let Err(error) = driver.destroy_network(&alloc_id).await
        {
            tracing::warn!(%alloc_id, %error, "could not remove the driver's network");
        }
    }
}

/// What building a task runner needs from the allocation.
struct TaskSetup<'a> {
    context: &'a AllocContext,
    alloc: &'a Allocation,
    job: &'a Job,
    group: &'a TaskGroup,
    alloc_dir: &'a AllocDir,
    /// The allocation's network namespace (`bridge` and `none` modes).
    netns_path: Option<PathBuf>,
    /// The driver that made the namespace, and how its tasks join it.
    driver_join: Option<(String, String)>,
}

/// The task runners of one allocation.
struct TaskSet {
    runners: JoinSet<TaskState>,
    kills: BTreeMap<String, watch::Sender<Option<String>>>,
    spawned: BTreeSet<String>,
    kill_sent: BTreeSet<String>,
    updates: mpsc::UnboundedSender<TaskUpdate>,
}

impl TaskSet {
    /// Starts a runner for `name`, or marks the task failed when it cannot
    /// run here (no such driver).
    fn spawn(&mut self, setup: &TaskSetup<'_>, name: &str, restored: Option<TaskHandle>, state: &mut AllocLoop) {
        self.spawned.insert(name.to_string());
        let Some(task) = setup.group.task(name) else { return };
        match task_spec(setup, task) {
            Ok(spec) => {
                let (kill_tx, kill_rx) = watch::channel(None);
                self.kills.insert(name.to_string(), kill_tx);
                let (command_tx, command_rx) = mpsc::unbounded_channel();
                setup
                    .context
                    .controls
                    .lock()
                    .expect("task controls lock")
                    .entry(setup.alloc.id.clone())
                    .or_default()
                    .insert(name.to_string(), command_tx);
                let initial = state.local.task_states.get(name).cloned().unwrap_or_default();
                self.runners.spawn(run_task_with_commands(
                    spec,
                    initial,
                    restored,
                    self.updates.clone(),
                    kill_rx,
                    Some(command_rx),
                ));
            }
            Err(reason) => {
                if let Some(task_state) = state.local.task_states.get_mut(name) {
                    let mut failure = TaskEvent::new(task_event::DRIVER_FAILURE, unix_nanos(), reason.clone());
                    failure.driver_error = reason;
                    failure.fails_task = true;
                    task_state.events.push(failure);
                    task_state.state = TaskStateKind::Dead;
                    task_state.failed = true;
                    task_state.finished_at = unix_nanos();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str, kind: TaskKind) -> TaskSlot {
        TaskSlot {
            name: name.to_string(),
            kind,
            leader: false,
        }
    }

    fn with(states: &[(&str, TaskStateKind, bool)]) -> BTreeMap<String, TaskState> {
        states
            .iter()
            .map(|(name, kind, failed)| {
                (
                    name.to_string(),
                    TaskState {
                        state: *kind,
                        failed: *failed,
                        started_at: if *kind == TaskStateKind::Pending { 0 } else { 1 },
                        ..TaskState::default()
                    },
                )
            })
            .collect()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    use TaskStateKind::{Dead, Pending, Running};

    fn group() -> Vec<TaskSlot> {
        vec![
            slot("init", TaskKind::Prestart { sidecar: false }),
            slot("proxy", TaskKind::Prestart { sidecar: true }),
            slot("app", TaskKind::Main),
            slot("announce", TaskKind::Poststart { sidecar: false }),
            slot("cleanup", TaskKind::Poststop),
        ]
    }

    #[test]
    fn a_single_task_starts_then_finishes() {
        let slots = vec![slot("app", TaskKind::Main)];
        let steps = plan_steps(&slots, &with(&[("app", Pending, false)]), &set(&[]), &set(&[]), false);
        assert_eq!(steps.start, vec!["app".to_string()]);
        let steps = plan_steps(&slots, &with(&[("app", Dead, false)]), &set(&["app"]), &set(&[]), false);
        assert!(steps.done);
        assert!(steps.kill.is_empty());
    }

    #[test]
    fn lifecycle_hooks_run_in_order() {
        let slots = group();
        let states = with(&[
            ("init", Pending, false),
            ("proxy", Pending, false),
            ("app", Pending, false),
            ("announce", Pending, false),
            ("cleanup", Pending, false),
        ]);
        let steps = plan_steps(&slots, &states, &set(&[]), &set(&[]), false);
        assert_eq!(steps.start, vec!["init".to_string(), "proxy".to_string()]);

        // The main task waits for init to finish and the sidecar to run.
        let states = with(&[
            ("init", Running, false),
            ("proxy", Running, false),
            ("app", Pending, false),
            ("announce", Pending, false),
            ("cleanup", Pending, false),
        ]);
        let spawned = set(&["init", "proxy"]);
        assert!(plan_steps(&slots, &states, &spawned, &set(&[]), false).start.is_empty());
        let states = with(&[
            ("init", Dead, false),
            ("proxy", Running, false),
            ("app", Pending, false),
            ("announce", Pending, false),
            ("cleanup", Pending, false),
        ]);
        assert_eq!(
            plan_steps(&slots, &states, &spawned, &set(&[]), false).start,
            vec!["app".to_string()]
        );

        // Poststart once the main task runs.
        let states = with(&[
            ("init", Dead, false),
            ("proxy", Running, false),
            ("app", Running, false),
            ("announce", Pending, false),
            ("cleanup", Pending, false),
        ]);
        let spawned = set(&["init", "proxy", "app"]);
        assert_eq!(
            plan_steps(&slots, &states, &spawned, &set(&[]), false).start,
            vec!["announce".to_string()]
        );

        // The main task finishes: sidecars are killed, then poststop runs.
        let states = with(&[
            ("init", Dead, false),
            ("proxy", Running, false),
            ("app", Dead, false),
            ("announce", Dead, false),
            ("cleanup", Pending, false),
        ]);
        let spawned = set(&["init", "proxy", "app", "announce"]);
        let steps = plan_steps(&slots, &states, &spawned, &set(&[]), false);
        assert_eq!(
            steps.kill,
            vec![("proxy".to_string(), "the main tasks are finished".to_string())]
        );
        assert!(steps.start.is_empty() && !steps.done);
        let steps = plan_steps(&slots, &states, &spawned, &set(&["proxy"]), false);
        assert!(steps.kill.is_empty() && steps.start.is_empty() && !steps.done);
        let states = with(&[
            ("init", Dead, false),
            ("proxy", Dead, false),
            ("app", Dead, false),
            ("announce", Dead, false),
            ("cleanup", Pending, false),
        ]);
        let steps = plan_steps(&slots, &states, &spawned, &set(&["proxy"]), false);
        assert_eq!(steps.start, vec!["cleanup".to_string()]);
        let states = with(&[
            ("init", Dead, false),
            ("proxy", Dead, false),
            ("app", Dead, false),
            ("announce", Dead, false),
            ("cleanup", Dead, false),
        ]);
        let spawned = set(&["init", "proxy", "app", "announce", "cleanup"]);
        assert!(plan_steps(&slots, &states, &spawned, &set(&["proxy"]), false).done);
    }

    #[test]
    fn a_failed_prestart_task_fails_the_group_without_starting_main() {
        let slots = group();
        let states = with(&[
            ("init", Dead, true),
            ("proxy", Running, false),
            ("app", Pending, false),
            ("announce", Pending, false),
            ("cleanup", Pending, false),
        ]);
        let steps = plan_steps(&slots, &states, &set(&["init", "proxy"]), &set(&[]), false);
        assert_eq!(
            steps.kill,
            vec![("proxy".to_string(), "a sibling task failed".to_string())]
        );
        assert!(steps.start.is_empty());
        let (status, _) = client_status(&states, true);
        assert_eq!(status, AllocClientStatus::Failed);
    }

    #[test]
    fn stopping_kills_running_tasks_and_starts_nothing_new() {
        let slots = vec![slot("a", TaskKind::Main), slot("b", TaskKind::Main)];
        let states = with(&[("a", Running, false), ("b", Pending, false)]);
        let steps = plan_steps(&slots, &states, &set(&["a"]), &set(&[]), true);
        assert_eq!(
            steps.kill,
            vec![("a".to_string(), "allocation is being stopped".to_string())]
        );
        assert!(steps.start.is_empty());
        let states = with(&[("a", Dead, false), ("b", Pending, false)]);
        assert!(plan_steps(&slots, &states, &set(&["a"]), &set(&["a"]), true).done);
    }

    #[test]
    fn a_dead_leader_stops_the_others() {
        let mut slots = vec![slot("leader", TaskKind::Main), slot("follower", TaskKind::Main)];
        slots[0].leader = true;
        let states = with(&[("leader", Dead, false), ("follower", Running, false)]);
        let steps = plan_steps(&slots, &states, &set(&["leader", "follower"]), &set(&[]), false);
        assert_eq!(steps.kill.len(), 1);
        assert_eq!(steps.kill[0].0, "follower");
    }

    #[test]
    fn status_follows_the_tasks() {
        let states = with(&[("a", Pending, false)]);
        assert_eq!(client_status(&states, false).0, AllocClientStatus::Pending);
        let states = with(&[("a", Running, false), ("b", Dead, false)]);
        assert_eq!(client_status(&states, false).0, AllocClientStatus::Running);
        // A failure shows only once everything is dead.
        let states = with(&[("a", Running, false), ("b", Dead, true)]);
        assert_eq!(client_status(&states, false).0, AllocClientStatus::Running);
        assert_eq!(client_status(&states, true).0, AllocClientStatus::Failed);
        let states = with(&[("a", Dead, false)]);
        assert_eq!(client_status(&states, true).0, AllocClientStatus::Complete);
    }
}
