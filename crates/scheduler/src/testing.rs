//! A tiny text fixture format for scheduler tests and a plan renderer for
//! snapshot tests, over [`MemCluster`] (the in-memory view, in
//! `mem_cluster.rs`, re-exported here).
//!
//! Fixture format, one item per line (`#` starts a comment):
//!
//! ```text
//! now 1000s
//! node n1 dc=dc1 cpu=4000 mem=8192 cores=4 class=web status=ready attr.kernel.name=linux meta.rack=r1
//! job web type=service priority=50 dcs=dc1,dc2 version=1
//! constraint ${attr.kernel.name} = linux          # before any group: job level
//! group api count=3 cpu=500 mem=256 static=http:8080 dynamic=db canary=1 max_parallel=1
//! spread ${node.datacenter} weight=100 dc1=70 dc2=30
//! affinity ${meta.rack} = r1 weight=50
//! alloc a1 web.api[0] node=n1 status=running version=0
//! deployment web version=1 promoted=api
//! eval trigger=job-register job=web
//! config algorithm=spread preempt_service=false
//! ```
//!
//! Node keys: `dc pool class cpu mem disk cores status (ready|down|initializing|disconnected)
//! eligible=false drain=true drain_ignore_system=true drivers=a,b bad_drivers=c attr.X meta.X
//! ports=LOW-HIGH reserved_ports=22,80 device=vendor/type/model:count`.
//! Job keys: `type priority dcs pool version stop all_at_once deregistered`.
//! Group keys: `count cpu mem mem_max disk cores driver static=label:port dynamic=label canary max_parallel
//! reschedule=function:delay[:max_delay] attempts interval unlimited device=name:count`.
//! Alloc keys: `node status desired version ports=p1,p2 failed_at=DUR reschedules=DUR,DUR followup=ID
//! created=DUR deployment=ID healthy=true|false migrate=true force_reschedule=true`. Deployment keys: `version promoted=g1,g2 healthy=a1,a2
//! active tracked failed paused` (its ID is `deploy-<job>`). Durations are Go strings; times are offsets from the Unix epoch.

use crate::{ClusterView, DeploymentInfo};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;
use types::{
    AllocClientStatus, AllocDesiredStatus, AllocatedResources, AllocatedTaskResources, Allocation, DrainStrategy,
    DriverInfo, EphemeralDisk, EvalStatus, Evaluation, Job, JobType, NetworkResource, Node, NodeDevice, NodeStatus,
    Plan, Port, RequestedDevice, RescheduleEvent, ReschedulePolicy, RescheduleTracker, Resources,
    SchedulingEligibility, Spread, SpreadTarget, Task, TaskGroup, TaskState, TaskStateKind, UnixNanos, UpdateStrategy,
};

use crate::mem_cluster::DEREGISTERED;
pub use crate::mem_cluster::{ApplyOutcome, MemCluster};

/// A parsed fixture: the cluster, the evaluation to run and the time.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub cluster: MemCluster,
    pub eval: Evaluation,
    pub now: UnixNanos,
}

fn parse_duration_nanos(text: &str) -> Result<i64, String> {
    let negative = text.starts_with('-');
    let duration = types::duration::parse_duration(text.trim_start_matches('-'))?;
    let nanos = i64::try_from(duration.as_nanos()).map_err(|_| format!("duration {text} too large"))?;
    Ok(if negative { -nanos } else { nanos })
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("bad number for {key}: {value:?}"))
}

fn split_kv(token: &str) -> Result<(&str, &str), String> {
    token
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {token:?}"))
}

struct PendingAlloc {
    line: usize,
    tokens: Vec<String>,
}

/// Parses a fixture (see the module docs for the format).
pub fn parse_fixture(text: &str) -> Result<Fixture, String> {
    let mut cluster = MemCluster::new();
    let mut now: UnixNanos = 1_000 * 1_000_000_000;
    let mut jobs: Vec<Job> = Vec::new();
    let mut in_group = false;
    let mut pending_allocs: Vec<PendingAlloc> = Vec::new();
    let mut eval_tokens: Option<Vec<String>> = None;
    let mut deployments: Vec<Vec<String>> = Vec::new();
    for (line_number, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let tokens: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let context = |error: String| format!("line {}: {error}", line_number + 1);
        match tokens[0].as_str() {
            "now" => {
                now = parse_duration_nanos(tokens.get(1).map(String::as_str).unwrap_or("0")).map_err(context)?;
            }
            "node" => {
                let node = parse_node(&tokens).map_err(context)?;
                cluster.upsert_node(node);
            }
            "job" => {
                jobs.push(parse_job(&tokens).map_err(context)?);
                in_group = false;
            }
            "group" => {
                let job = jobs.last_mut().ok_or_else(|| context("group before any job".into()))?;
                job.task_groups
                    .push(parse_group(job.job_type, &tokens).map_err(context)?);
                in_group = true;
            }
            "constraint" | "affinity" | "spread" => {
                let job = jobs.last_mut().ok_or_else(|| context("rule before any job".into()))?;
                apply_rule(job, in_group, &tokens).map_err(context)?;
            }
            "alloc" => pending_allocs.push(PendingAlloc {
                line: line_number + 1,
                tokens,
            }),
            "deployment" => deployments.push(tokens),
            "config" => {
                for token in &tokens[1..] {
                    let (key, value) = split_kv(token).map_err(context)?;
                    let flag = |value: &str| value == "true";
                    match key {
                        "algorithm" => {
                            cluster.config.algorithm = match value {
                                "binpack" => crate::SchedulerAlgorithm::Binpack,
                                "spread" => crate::SchedulerAlgorithm::Spread,
                                other => return Err(context(format!("unknown algorithm {other:?}"))),
                            }
                        }
                        "preempt_service" => cluster.config.preempt_service = flag(value),
                        "preempt_batch" => cluster.config.preempt_batch = flag(value),
                        "preempt_system" => cluster.config.preempt_system = flag(value),
                        "preempt_sysbatch" => cluster.config.preempt_sysbatch = flag(value),
                        other => return Err(context(format!("unknown config key {other:?}"))),
                    }
                }
            }
            "eval" => eval_tokens = Some(tokens),
            other => return Err(context(format!("unknown item {other:?}"))),
        }
    }
    for mut job in jobs {
        let update = job
            .task_groups
            .iter()
            .map(|group| group.update.clone())
            .collect::<Vec<_>>();
        job.canonicalize();
        for (group, update) in job.task_groups.iter_mut().zip(update) {
            if let Some(mut update) = update {
                update.min_healthy_time = Duration::from_secs(10);
                group.update = Some(update);
            }
        }
        let older = cluster
            .job(&job.namespace, &job.id)
            .is_some_and(|current| current.version > job.version);
        if job.meta.contains_key(DEREGISTERED) || older {
            cluster.add_job_version(job);
        } else {
            cluster.upsert_job(job);
        }
    }
    for pending in pending_allocs {
        let alloc =
            parse_alloc(&cluster, &pending.tokens, now).map_err(|error| format!("line {}: {error}", pending.line))?;
        cluster.upsert_alloc(alloc);
    }
    for tokens in deployments {
        let job_id = tokens.get(1).cloned().ok_or("deployment needs a job")?;
        let mut deployment = DeploymentInfo {
            id: format!("deploy-{job_id}"),
            active: true,
            ..DeploymentInfo::default()
        };
        for token in &tokens[2..] {
            let (key, value) = split_kv(token)?;
            match key {
                "version" => deployment.job_version = parse_num(key, value)?,
                "promoted" => deployment.promoted_groups = value.split(',').map(str::to_string).collect(),
                "healthy" => deployment.healthy_allocs = value.split(',').map(str::to_string).collect(),
                "active" => deployment.active = value == "true",
                "tracked" => deployment.tracks_health = value == "true",
                "failed" => {
                    deployment.failed = value == "true";
                    deployment.active &= !deployment.failed;
                }
                "paused" => deployment.paused = value == "true",
                _ => return Err(format!("unknown deployment key {key}")),
            }
        }
        cluster.set_deployment(types::DEFAULT_NAMESPACE, &job_id, deployment);
    }
    let mut eval = Evaluation {
        id: "eval-0".to_string(),
        namespace: types::DEFAULT_NAMESPACE.to_string(),
        triggered_by: types::trigger::JOB_REGISTER.to_string(),
        status: EvalStatus::Pending,
        ..Evaluation::default()
    };
    for token in eval_tokens.iter().flatten().skip(1) {
        let (key, value) = split_kv(token)?;
        match key {
            "trigger" => eval.triggered_by = value.to_string(),
            "job" => eval.job_id = value.to_string(),
            "node" => eval.node_id = value.to_string(),
            "id" => eval.id = value.to_string(),
            "status" => {
                eval.status = match value {
                    "blocked" => EvalStatus::Blocked,
                    _ => EvalStatus::Pending,
                }
            }
            _ => return Err(format!("unknown eval key {key}")),
        }
    }
    if eval.job_id.is_empty()
        && let Some(job) = cluster
            .jobs
            .values()
            .flat_map(|jobs| jobs.values())
            .min_by(|a, b| a.id.cmp(&b.id))
    {
        eval.job_id = job.id.clone();
    }
    if let Some(job) = cluster.job(&eval.namespace, &eval.job_id) {
        eval.priority = job.priority;
        eval.job_type = Some(job.job_type);
    }
    Ok(Fixture { cluster, eval, now })
}

fn parse_node(tokens: &[String]) -> Result<Node, String> {
    let id = tokens.get(1).ok_or("node needs a name")?.clone();
    let mut node = Node {
        id: id.clone(),
        name: id.clone(),
        status: NodeStatus::Ready,
        ..Node::default()
    };
    node.resources.cpu_mhz = 4000;
    node.resources.cores = 4;
    node.resources.memory_mb = 8192;
    node.resources.disk_mb = 100_000;
    node.resources.min_dynamic_port = 20000;
    node.resources.max_dynamic_port = 32000;
    node.attributes.insert("kernel.name".into(), "linux".into());
    node.attributes.insert("unique.hostname".into(), id.clone());
    let healthy = DriverInfo {
        detected: true,
        healthy: true,
        ..DriverInfo::default()
    };
    node.drivers.insert("exec".into(), healthy.clone());
    for token in &tokens[2..] {
        let (key, value) = split_kv(token)?;
        if let Some(attribute) = key.strip_prefix("attr.") {
            node.attributes.insert(attribute.to_string(), value.to_string());
            continue;
        }
        if let Some(meta) = key.strip_prefix("meta.") {
            node.meta.insert(meta.to_string(), value.to_string());
            continue;
        }
        match key {
            "dc" => node.datacenter = value.to_string(),
            "pool" => node.node_pool = value.to_string(),
            "class" => node.node_class = value.to_string(),
            "cpu" => node.resources.cpu_mhz = parse_num(key, value)?,
            "mem" => node.resources.memory_mb = parse_num(key, value)?,
            "disk" => node.resources.disk_mb = parse_num(key, value)?,
            "cores" => node.resources.cores = parse_num(key, value)?,
            "status" => {
                node.status = match value {
                    "ready" => NodeStatus::Ready,
                    "down" => NodeStatus::Down,
                    "initializing" => NodeStatus::Initializing,
                    "disconnected" => NodeStatus::Disconnected,
                    _ => return Err(format!("unknown node status {value}")),
                }
            }
            "eligible" => {
                if value == "false" {
                    node.scheduling_eligibility = SchedulingEligibility::Ineligible;
                }
            }
            "drain" | "drain_ignore_system" => {
                if value == "true" {
                    node.drain = Some(DrainStrategy {
                        ignore_system_jobs: key == "drain_ignore_system",
                        ..DrainStrategy::default()
                    });
                }
            }
            "drivers" => {
                node.drivers.clear();
                for driver in value.split(',').filter(|driver| !driver.is_empty()) {
                    node.drivers.insert(driver.to_string(), healthy.clone());
                }
            }
            "bad_drivers" => {
                for driver in value.split(',') {
                    node.drivers.insert(
                        driver.to_string(),
                        DriverInfo {
                            detected: true,
                            healthy: false,
                            ..DriverInfo::default()
                        },
                    );
                }
            }
            "ports" => {
                let (low, high) = value.split_once('-').ok_or("ports=LOW-HIGH")?;
                node.resources.min_dynamic_port = parse_num(key, low)?;
                node.resources.max_dynamic_port = parse_num(key, high)?;
            }
            "reserved_ports" => {
                for port in value.split(',') {
                    node.reserved_ports.push(parse_num(key, port)?);
                }
            }
            "device" => {
                let (name, count) = value.split_once(':').ok_or("device=vendor/type/model:count")?;
                let parts: Vec<&str> = name.split('/').collect();
                let [vendor, device_type, model] = parts.as_slice() else {
                    return Err("device=vendor/type/model:count".into());
                };
                let count: usize = parse_num(key, count)?;
                node.resources.devices.push(NodeDevice {
                    vendor: vendor.to_string(),
                    device_type: device_type.to_string(),
                    name: model.to_string(),
                    instance_ids: (0..count).map(|index| format!("{id}-{model}-{index}")).collect(),
                    attributes: BTreeMap::new(),
                });
            }
            _ => return Err(format!("unknown node key {key}")),
        }
    }
    node.compute_class();
    Ok(node)
}

fn parse_job(tokens: &[String]) -> Result<Job, String> {
    let id = tokens.get(1).ok_or("job needs an id")?.clone();
    let mut job = Job {
        id: id.clone(),
        name: id,
        ..Job::default()
    };
    for token in &tokens[2..] {
        let (key, value) = split_kv(token)?;
        match key {
            "type" => job.job_type = JobType::parse(value).ok_or(format!("unknown job type {value}"))?,
            "priority" => job.priority = parse_num(key, value)?,
            "dcs" => job.datacenters = value.split(',').map(str::to_string).collect(),
            "pool" => job.node_pool = value.to_string(),
            "version" => job.version = parse_num(key, value)?,
            "stop" => job.stop = value == "true",
            "all_at_once" => job.all_at_once = value == "true",
            "deregistered" => {
                if value == "true" {
                    job.meta.insert(DEREGISTERED.to_string(), "true".to_string());
                }
            }
            _ => return Err(format!("unknown job key {key}")),
        }
    }
    Ok(job)
}

fn parse_group(job_type: JobType, tokens: &[String]) -> Result<TaskGroup, String> {
    let name = tokens.get(1).ok_or("group needs a name")?.clone();
    let mut task = Task {
        name: name.clone(),
        driver: "exec".into(),
        resources: Resources {
            cpu: 100,
            memory_mb: 256,
            ..Resources::default()
        },
        ..Task::default()
    };
    let mut group = TaskGroup {
        name,
        ephemeral_disk: EphemeralDisk {
            size_mb: 0,
            ..EphemeralDisk::default()
        },
        ..TaskGroup::default()
    };
    let mut network = NetworkResource::default();
    let mut update: Option<UpdateStrategy> = None;
    let mut reschedule: Option<ReschedulePolicy> = None;
    for token in &tokens[2..] {
        let (key, value) = split_kv(token)?;
        match key {
            "count" => group.count = parse_num(key, value)?,
            "cpu" => task.resources.cpu = parse_num(key, value)?,
            "mem" => task.resources.memory_mb = parse_num(key, value)?,
            "mem_max" => task.resources.memory_max_mb = parse_num(key, value)?,
            "disk" => group.ephemeral_disk.size_mb = parse_num(key, value)?,
            "cores" => task.resources.cores = parse_num(key, value)?,
            "driver" => task.driver = value.to_string(),
            "static" => {
                let (label, port) = value.split_once(':').ok_or("static=label:port")?;
                network.reserved_ports.push(Port {
                    label: label.to_string(),
                    value: parse_num(key, port)?,
                    ..Port::default()
                });
            }
            "dynamic" => network.dynamic_ports.push(Port {
                label: value.to_string(),
                ..Port::default()
            }),
            "canary" => update.get_or_insert_with(UpdateStrategy::default).canary = parse_num(key, value)?,
            "max_parallel" => update.get_or_insert_with(UpdateStrategy::default).max_parallel = parse_num(key, value)?,
            "reschedule" => {
                let parts: Vec<&str> = value.split(':').collect();
                let policy = reschedule.get_or_insert_with(|| {
                    ReschedulePolicy::default_for(job_type).unwrap_or_else(|| ReschedulePolicy {
                        attempts: 1,
                        ..ReschedulePolicy::default()
                    })
                });
                policy.delay_function = parts.first().copied().unwrap_or("constant").to_string();
                if let Some(delay) = parts.get(1) {
                    policy.delay = types::duration::parse_duration(delay)?;
                }
                policy.max_delay = match parts.get(2) {
                    Some(max) => types::duration::parse_duration(max)?,
                    None => Duration::ZERO,
                };
            }
            "attempts" | "interval" | "unlimited" => {
                let policy =
                    reschedule.get_or_insert_with(|| ReschedulePolicy::default_for(job_type).unwrap_or_default());
                match key {
                    "attempts" => policy.attempts = parse_num(key, value)?,
                    "interval" => policy.interval = types::duration::parse_duration(value)?,
                    _ => policy.unlimited = value == "true",
                }
            }
            "device" => {
                let (device, count) = value.split_once(':').ok_or("device=name:count")?;
                task.resources.devices.push(RequestedDevice {
                    name: device.to_string(),
                    count: parse_num(key, count)?,
                    ..RequestedDevice::default()
                });
            }
            _ => return Err(format!("unknown group key {key}")),
        }
    }
    if !network.reserved_ports.is_empty() || !network.dynamic_ports.is_empty() {
        group.networks.push(network);
    }
    group.tasks.push(task);
    group.update = update;
    group.reschedule_policy = reschedule;
    Ok(group)
}

fn apply_rule(job: &mut Job, in_group: bool, tokens: &[String]) -> Result<(), String> {
    match tokens[0].as_str() {
        "constraint" => {
            let ltarget = tokens.get(1).ok_or("constraint needs a target")?.clone();
            let operand = tokens.get(2).cloned().unwrap_or_default();
            let rtarget = tokens.get(3..).map(|rest| rest.join(" ")).unwrap_or_default();
            let constraint = types::Constraint {
                ltarget,
                rtarget,
                operand,
            };
            match (in_group, job.task_groups.last_mut()) {
                (true, Some(group)) => group.constraints.push(constraint),
                _ => job.constraints.push(constraint),
            }
        }
        "affinity" => {
            let mut rest: Vec<String> = tokens[1..].to_vec();
            let weight = match rest.last().and_then(|token| token.strip_prefix("weight=")) {
                Some(weight) => {
                    let weight = parse_num("weight", weight)?;
                    rest.pop();
                    weight
                }
                None => 50,
            };
            let affinity = types::Affinity {
                ltarget: rest.first().cloned().ok_or("affinity needs a target")?,
                operand: rest.get(1).cloned().unwrap_or_default(),
                rtarget: rest.get(2..).map(|rest| rest.join(" ")).unwrap_or_default(),
                weight,
            };
            match (in_group, job.task_groups.last_mut()) {
                (true, Some(group)) => group.affinities.push(affinity),
                _ => job.affinities.push(affinity),
            }
        }
        _ => {
            let mut spread = Spread {
                attribute: tokens.get(1).cloned().ok_or("spread needs an attribute")?,
                weight: 50,
                targets: Vec::new(),
            };
            for token in &tokens[2..] {
                let (key, value) = split_kv(token)?;
                if key == "weight" {
                    spread.weight = parse_num(key, value)?;
                } else {
                    spread.targets.push(SpreadTarget {
                        value: key.to_string(),
                        percent: parse_num(key, value)?,
                    });
                }
            }
            match (in_group, job.task_groups.last_mut()) {
                (true, Some(group)) => group.spreads.push(spread),
                _ => job.spreads.push(spread),
            }
        }
    }
    Ok(())
}

fn parse_alloc(cluster: &MemCluster, tokens: &[String], now: UnixNanos) -> Result<Allocation, String> {
    let id = tokens.get(1).ok_or("alloc needs an id")?.clone();
    let name = tokens.get(2).ok_or("alloc needs a name like job.group[0]")?.clone();
    let (job_id, rest) = name.split_once('.').ok_or("alloc name must be job.group[index]")?;
    let group_name = rest.split('[').next().unwrap_or(rest);
    let mut alloc = Allocation {
        id,
        namespace: types::DEFAULT_NAMESPACE.to_string(),
        eval_id: "eval-old".to_string(),
        name: name.clone(),
        job_id: job_id.to_string(),
        task_group: group_name.to_string(),
        desired_status: AllocDesiredStatus::Run,
        client_status: AllocClientStatus::Running,
        create_time: now - 3600 * 1_000_000_000,
        modify_time: now - 3600 * 1_000_000_000,
        ..Allocation::default()
    };
    let mut ports: Vec<u16> = Vec::new();
    let mut failed_at: Option<i64> = None;
    for token in &tokens[3..] {
        let (key, value) = split_kv(token)?;
        match key {
            "node" => alloc.node_id = value.to_string(),
            "status" => {
                alloc.client_status = match value {
                    "pending" => AllocClientStatus::Pending,
                    "running" => AllocClientStatus::Running,
                    "complete" => AllocClientStatus::Complete,
                    "failed" => AllocClientStatus::Failed,
                    "lost" => AllocClientStatus::Lost,
                    "unknown" => AllocClientStatus::Unknown,
                    _ => return Err(format!("unknown alloc status {value}")),
                }
            }
            "desired" => {
                alloc.desired_status = match value {
                    "run" => AllocDesiredStatus::Run,
                    "stop" => AllocDesiredStatus::Stop,
                    "evict" => AllocDesiredStatus::Evict,
                    _ => return Err(format!("unknown desired status {value}")),
                }
            }
            "version" => alloc.job_version = parse_num(key, value)?,
            "ports" => {
                for port in value.split(',') {
                    ports.push(parse_num(key, port)?);
                }
            }
            "failed_at" => failed_at = Some(parse_duration_nanos(value)?),
            "created" => alloc.create_time = parse_duration_nanos(value)?,
            "reschedules" => {
                let mut events = Vec::new();
                for (index, delay) in value.split(',').enumerate() {
                    events.push(RescheduleEvent {
                        reschedule_time: now - 1800 * 1_000_000_000 + index as i64,
                        prev_alloc_id: format!("{}-prev{index}", alloc.id),
                        prev_node_id: "gone".to_string(),
                        delay: parse_duration_nanos(delay)?,
                    });
                }
                alloc.reschedule_tracker = Some(RescheduleTracker { events });
            }
            "followup" => alloc.followup_eval_id = value.to_string(),
            "migrate" => alloc.desired_transition.migrate = value == "true",
            "force_reschedule" => alloc.desired_transition.force_reschedule = value == "true",
            "deployment" => alloc.deployment_id = value.to_string(),
            "healthy" => {
                alloc.deployment_status = Some(types::AllocDeploymentStatus {
                    healthy: Some(value == "true"),
                    ..types::AllocDeploymentStatus::default()
                })
            }
            _ => return Err(format!("unknown alloc key {key}")),
        }
    }
    let job = cluster
        .job_version(types::DEFAULT_NAMESPACE, job_id, alloc.job_version)
        .or_else(|| cluster.job(types::DEFAULT_NAMESPACE, job_id))
        .ok_or_else(|| format!("alloc {name} names unknown job {job_id}"))?;
    let group = job
        .group(group_name)
        .ok_or_else(|| format!("alloc {name} names unknown group {group_name}"))?;
    if let Some(node) = cluster.node(&alloc.node_id) {
        alloc.node_name = node.name.clone();
    }
    let mut tasks = types::TaskResources::new();
    for task in &group.tasks {
        tasks.insert(
            task.name.clone(),
            AllocatedTaskResources {
                cpu_mhz: task.resources.cpu,
                memory_mb: task.resources.memory_mb,
                ..AllocatedTaskResources::default()
            },
        );
    }
    let networks = if ports.is_empty() {
        Vec::new()
    } else {
        vec![NetworkResource {
            reserved_ports: ports
                .iter()
                .map(|port| Port {
                    label: format!("p{port}"),
                    value: *port,
                    ..Port::default()
                })
                .collect(),
            ..NetworkResource::default()
        }]
    };
    alloc.allocated_resources = AllocatedResources {
        tasks,
        disk_mb: group.ephemeral_disk.size_mb,
        networks,
    };
    if let Some(failed_at) = failed_at {
        alloc.client_status = AllocClientStatus::Failed;
        for task in &group.tasks {
            alloc.task_states.insert(
                task.name.clone(),
                TaskState {
                    state: TaskStateKind::Dead,
                    failed: true,
                    finished_at: failed_at,
                    ..TaskState::default()
                },
            );
        }
        alloc.modify_time = failed_at;
    }
    Ok(alloc)
}

fn show_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "+" };
    format!(
        "{sign}{}",
        types::duration::format_duration(Duration::from_nanos(nanos.unsigned_abs()))
    )
}

fn describe_alloc(alloc: &Allocation) -> String {
    let mut text = format!("{} ({})", alloc.name, alloc.id);
    let resources = &alloc.allocated_resources;
    let cpu: i64 = resources.tasks.values().map(|task| task.cpu_mhz).sum();
    let mem: i64 = resources.tasks.values().map(|task| task.memory_mb).sum();
    let _ = write!(text, " v{} cpu={cpu} mem={mem}", alloc.job_version);
    let mem_max: i64 = resources.tasks.values().map(|task| task.memory_max_mb).sum();
    if mem_max > 0 {
        let _ = write!(text, " mem_max={mem_max}");
    }
    let ports: Vec<String> = resources
        .networks
        .iter()
        .flat_map(|network| network.reserved_ports.iter().chain(network.dynamic_ports.iter()))
        .map(|port| format!("{}:{}", port.label, port.value))
        .collect();
    if !ports.is_empty() {
        let _ = write!(text, " ports={}", ports.join(","));
    }
    let cores: Vec<String> = resources
        .tasks
        .values()
        .flat_map(|task| task.reserved_cores.iter().map(u16::to_string))
        .collect();
    if !cores.is_empty() {
        let _ = write!(text, " cores={}", cores.join(","));
    }
    let devices: Vec<String> = resources
        .tasks
        .values()
        .flat_map(|task| task.devices.values().flatten().cloned())
        .collect();
    if !devices.is_empty() {
        let _ = write!(text, " devices={}", devices.join(","));
    }
    text
}

/// Renders a plan as stable text for snapshot tests. `cluster` tells new
/// allocations from updates; times are shown relative to `now`.
pub fn render_plan(plan: &Plan, cluster: &MemCluster, now: UnixNanos) -> String {
    let mut out = String::new();
    if let Some(eval) = &plan.eval_update {
        let queued: Vec<String> = eval
            .queued_allocations
            .iter()
            .map(|(group, count)| format!("{group}={count}"))
            .collect();
        let _ = writeln!(out, "eval {} queued: {}", eval.status.as_str(), queued.join(" "));
    }
    for (node_id, allocs) in &plan.node_update {
        let mut allocs: Vec<&Allocation> = allocs.iter().collect();
        allocs.sort_by(|left, right| left.name.cmp(&right.name).then(left.id.cmp(&right.id)));
        for alloc in allocs {
            let lost = if alloc.client_status == AllocClientStatus::Lost {
                " [lost]"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "stop {node_id} {} ({}): {}{lost}",
                alloc.name, alloc.id, alloc.desired_description
            );
        }
    }
    for (node_id, allocs) in &plan.node_allocation {
        let mut allocs: Vec<&Allocation> = allocs.iter().collect();
        allocs.sort_by(|left, right| left.name.cmp(&right.name).then(left.id.cmp(&right.id)));
        for alloc in allocs {
            let verb = if cluster.alloc(&alloc.id).is_some() {
                "update"
            } else {
                "place"
            };
            let mut line = format!("{verb} {node_id} {}", describe_alloc(alloc));
            if verb == "place" {
                if !alloc.previous_allocation.is_empty() {
                    let _ = write!(line, " prev={}", alloc.previous_allocation);
                }
                if let Some(event) = alloc
                    .reschedule_tracker
                    .as_ref()
                    .and_then(|tracker| tracker.events.last())
                {
                    let _ = write!(
                        line,
                        " reschedule#{} delay={}",
                        alloc
                            .reschedule_tracker
                            .as_ref()
                            .map(|tracker| tracker.events.len())
                            .unwrap_or(0),
                        types::duration::format_duration(Duration::from_nanos(event.delay.max(0) as u64))
                    );
                }
                if !alloc.preempted_allocations.is_empty() {
                    let _ = write!(line, " preempting={}", alloc.preempted_allocations.join(","));
                }
                if !alloc.deployment_id.is_empty() {
                    let _ = write!(line, " deployment={}", alloc.deployment_id);
                }
            } else if !alloc.followup_eval_id.is_empty() {
                let _ = write!(line, " followup={}", alloc.followup_eval_id);
            }
            let _ = writeln!(out, "{line}");
        }
    }
    if let Some(deployment) = &plan.deployment {
        let groups: Vec<String> = deployment
            .task_groups
            .iter()
            .map(|(group, state)| format!("{group}:{}/canary={}", state.desired_total, state.desired_canaries))
            .collect();
        let _ = writeln!(
            out,
            "deployment {} job={} v{} {}",
            deployment.id,
            deployment.job_id,
            deployment.job_version,
            groups.join(",")
        );
    }
    for update in &plan.deployment_updates {
        let _ = writeln!(
            out,
            "deployment {} -> {} ({})",
            update.deployment_id,
            update.status.as_str(),
            update.status_description
        );
    }
    for (node_id, allocs) in &plan.node_preemptions {
        for alloc in allocs {
            let _ = writeln!(
                out,
                "preempt {node_id} {} ({}) by {}",
                alloc.name, alloc.id, alloc.preempted_by_allocation
            );
        }
    }
    for eval in &plan.created_evals {
        let mut line = format!(
            "created {} {} job={} trigger={}",
            eval.id,
            eval.status.as_str(),
            eval.job_id,
            eval.triggered_by
        );
        if eval.wait_until != 0 {
            let _ = write!(line, " wait_until={}", show_duration(eval.wait_until - now));
        }
        if eval.status == EvalStatus::Blocked {
            let feasible = eval.class_eligibility.values().filter(|ok| **ok).count();
            let infeasible = eval.class_eligibility.len() - feasible;
            let _ = write!(
                line,
                " classes={feasible}ok/{infeasible}no escaped={}",
                eval.escaped_computed_class
            );
        }
        let _ = writeln!(out, "{line}");
    }
    if let Some(eval) = &plan.eval_update {
        for (group, metric) in &eval.failed_tg_allocs {
            let _ = writeln!(
                out,
                "failed {group}: evaluated={} filtered={} exhausted={} coalesced={}",
                metric.nodes_evaluated, metric.nodes_filtered, metric.nodes_exhausted, metric.coalesced_failures
            );
            for (constraint, count) in &metric.constraint_filtered {
                let _ = writeln!(out, "  filtered {constraint}: {count}");
            }
            for (dimension, count) in &metric.dimension_exhausted {
                let _ = writeln!(out, "  exhausted {dimension}: {count}");
            }
        }
    }
    out
}

/// Schedules a fixture's evaluation with a fixed seed and sequential IDs
/// (`id-1`, `id-2`, …) and renders the plan.
pub fn run_fixture(fixture: &Fixture, seed: u64) -> Result<(Plan, String), crate::ScheduleError> {
    use rand::SeedableRng;
    let mut counter = 0u64;
    let mut ids = || {
        counter += 1;
        format!("id-{counter}")
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let plan = crate::schedule(&fixture.cluster, &fixture.eval, fixture.now, &mut ids, &mut rng)?;
    let text = render_plan(&plan, &fixture.cluster, fixture.now);
    Ok((plan, text))
}
