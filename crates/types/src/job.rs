//! Jobs, task groups and tasks, with the blocks that hang off them and the
//! defaults Nomad applies when a job file leaves them out.

use crate::duration::{nanos, opt_nanos};
use crate::resources::{EphemeralDisk, NetworkResource, Resources};
use crate::{DEFAULT_NAMESPACE, DEFAULT_NODE_POOL, DEFAULT_REGION, Index, UnixNanos};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Default job priority, as in Nomad.
pub const DEFAULT_JOB_PRIORITY: i32 = 50;

/// Which scheduler places the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    Service,
    Batch,
    System,
    Sysbatch,
}

impl JobType {
    /// Nomad's lowercase name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Service => "service",
            JobType::Batch => "batch",
            JobType::System => "system",
            JobType::Sysbatch => "sysbatch",
        }
    }

    /// Parses Nomad's lowercase name.
    pub fn parse(text: &str) -> Option<JobType> {
        match text {
            "service" => Some(JobType::Service),
            "batch" => Some(JobType::Batch),
            "system" => Some(JobType::System),
            "sysbatch" => Some(JobType::Sysbatch),
            _ => None,
        }
    }
}

/// A job's status, derived from its allocations and evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    #[default]
    Pending,
    Running,
    Dead,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Dead => "dead",
        }
    }
}

/// A job: the unit users submit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Job {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub region: String,
    pub job_type: JobType,
    pub priority: i32,
    pub all_at_once: bool,
    pub datacenters: Vec<String>,
    pub node_pool: String,
    pub constraints: Vec<Constraint>,
    pub affinities: Vec<Affinity>,
    pub spreads: Vec<Spread>,
    pub task_groups: Vec<TaskGroup>,
    pub update: Option<UpdateStrategy>,
    pub periodic: Option<PeriodicConfig>,
    pub parameterized: Option<ParameterizedConfig>,
    pub meta: BTreeMap<String, String>,
    pub ui: Option<serde_json::Value>,
    pub parent_id: String,
    pub dispatched: bool,
    pub payload: Vec<u8>,
    /// The `IdempotencyToken` of the dispatch that made this child.
    pub dispatch_idempotency_token: String,
    /// Opaque blocks kept for later capabilities (vault, consul, …).
    pub extra: BTreeMap<String, serde_json::Value>,

    pub stop: bool,
    pub status: JobStatus,
    pub status_description: String,
    pub stable: bool,
    pub version: u64,
    pub submit_time: UnixNanos,
    pub create_index: Index,
    pub modify_index: Index,
    pub job_modify_index: Index,
}

impl Default for Job {
    fn default() -> Self {
        Job {
            id: String::new(),
            name: String::new(),
            namespace: DEFAULT_NAMESPACE.to_string(),
            region: DEFAULT_REGION.to_string(),
            job_type: JobType::Service,
            priority: DEFAULT_JOB_PRIORITY,
            all_at_once: false,
            datacenters: vec!["*".to_string()],
            node_pool: DEFAULT_NODE_POOL.to_string(),
            constraints: Vec::new(),
            affinities: Vec::new(),
            spreads: Vec::new(),
            task_groups: Vec::new(),
            update: None,
            periodic: None,
            parameterized: None,
            meta: BTreeMap::new(),
            ui: None,
            parent_id: String::new(),
            dispatched: false,
            payload: Vec::new(),
            dispatch_idempotency_token: String::new(),
            extra: BTreeMap::new(),
            stop: false,
            status: JobStatus::Pending,
            status_description: String::new(),
            stable: false,
            version: 0,
            submit_time: 0,
            create_index: 0,
            modify_index: 0,
            job_modify_index: 0,
        }
    }
}

impl Job {
    /// Fills in what Nomad's `Canonicalize` fills in: the name from the ID,
    /// default namespace/region/datacenters, the job-level update block copied
    /// into groups, and per-type restart and reschedule defaults.
    pub fn canonicalize(&mut self) {
        if self.name.is_empty() {
            self.name = self.id.clone();
        }
        if self.namespace.is_empty() {
            self.namespace = DEFAULT_NAMESPACE.to_string();
        }
        if self.region.is_empty() {
            self.region = DEFAULT_REGION.to_string();
        }
        if self.node_pool.is_empty() {
            self.node_pool = DEFAULT_NODE_POOL.to_string();
        }
        if self.datacenters.is_empty() {
            self.datacenters = vec!["*".to_string()];
        }
        if self.priority == 0 {
            self.priority = DEFAULT_JOB_PRIORITY;
        }
        let job_type = self.job_type;
        let job_update = self.update.clone();
        for group in &mut self.task_groups {
            group.canonicalize(job_type, job_update.as_ref());
        }
        // Nomad only keeps an update strategy for service and system jobs.
        if !matches!(job_type, JobType::Service | JobType::System) {
            self.update = None;
        }
    }

    /// Looks a task group up by name.
    pub fn group(&self, name: &str) -> Option<&TaskGroup> {
        self.task_groups.iter().find(|group| group.name == name)
    }

    /// Whether the job is periodic or parameterized: a template that is never
    /// placed itself, only its children are.
    ///
    /// A periodic job with `enabled = false` is still a template (as in
    /// Nomad): it launches nothing, and never runs itself.
    pub fn is_template(&self) -> bool {
        self.periodic.is_some() || self.parameterized.is_some()
    }

    /// The concurrency cap of this job's children (Drover's
    /// `max_concurrent` extension); 0 means no cap.
    pub fn child_cap(&self) -> u32 {
        if let Some(parameterized) = &self.parameterized {
            return parameterized.max_concurrent;
        }
        self.periodic.as_ref().map_or(0, |periodic| periodic.max_concurrent)
    }

    /// The sum of `count` over all groups.
    pub fn total_count(&self) -> u64 {
        self.task_groups.iter().map(|group| group.count as u64).sum()
    }

    /// Whether two job versions differ only in ways that do not need new
    /// allocations (meta, priority…): used to decide in-place updates.
    pub fn tasks_differ(&self, other: &Job, group: &str) -> bool {
        match (self.group(group), other.group(group)) {
            (Some(mine), Some(theirs)) => {
                mine.tasks != theirs.tasks
                    || mine.networks != theirs.networks
                    || mine.ephemeral_disk != theirs.ephemeral_disk
            }
            _ => true,
        }
    }
}

/// A set of tasks placed together on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskGroup {
    pub name: String,
    pub count: u32,
    pub constraints: Vec<Constraint>,
    pub affinities: Vec<Affinity>,
    pub spreads: Vec<Spread>,
    pub tasks: Vec<Task>,
    /// Filled by `canonicalize` with the job type's default when absent.
    pub restart_policy: Option<RestartPolicy>,
    pub reschedule_policy: Option<ReschedulePolicy>,
    pub update: Option<UpdateStrategy>,
    pub migrate: Option<MigrateStrategy>,
    pub ephemeral_disk: EphemeralDisk,
    pub networks: Vec<NetworkResource>,
    pub services: Vec<Service>,
    pub volumes: BTreeMap<String, VolumeRequest>,
    pub scaling: Option<ScalingPolicy>,
    pub meta: BTreeMap<String, String>,
    #[serde(with = "opt_nanos")]
    pub shutdown_delay: Option<Duration>,
    #[serde(with = "opt_nanos")]
    pub stop_after_client_disconnect: Option<Duration>,
    #[serde(with = "opt_nanos")]
    pub max_client_disconnect: Option<Duration>,
    pub disconnect: Option<DisconnectStrategy>,
    /// Opaque blocks kept for later capabilities (consul, …).
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Default for TaskGroup {
    fn default() -> Self {
        TaskGroup {
            name: String::new(),
            count: 1,
            constraints: Vec::new(),
            affinities: Vec::new(),
            spreads: Vec::new(),
            tasks: Vec::new(),
            restart_policy: None,
            reschedule_policy: None,
            update: None,
            migrate: None,
            ephemeral_disk: EphemeralDisk::default(),
            networks: Vec::new(),
            services: Vec::new(),
            volumes: BTreeMap::new(),
            scaling: None,
            meta: BTreeMap::new(),
            shutdown_delay: None,
            stop_after_client_disconnect: None,
            max_client_disconnect: None,
            disconnect: None,
            extra: BTreeMap::new(),
        }
    }
}

impl TaskGroup {
    fn canonicalize(&mut self, job_type: JobType, job_update: Option<&UpdateStrategy>) {
        if self.restart_policy.is_none() {
            self.restart_policy = Some(RestartPolicy::default_for(job_type));
        }
        if self.reschedule_policy.is_none() {
            self.reschedule_policy = ReschedulePolicy::default_for(job_type);
        }
        if matches!(job_type, JobType::Service | JobType::System) {
            let merged = match (job_update, self.update.take()) {
                (_, Some(group_update)) => Some(group_update),
                (Some(job_update), None) => Some(job_update.clone()),
                (None, None) if job_type == JobType::Service => Some(UpdateStrategy::default()),
                (None, None) => None,
            };
            self.update = merged;
            if job_type == JobType::Service && self.migrate.is_none() {
                self.migrate = Some(MigrateStrategy::default());
            }
        } else {
            self.update = None;
        }
        for task in &mut self.tasks {
            task.canonicalize();
        }
    }

    /// Looks a task up by name.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.iter().find(|task| task.name == name)
    }

    /// The group's total ask, in comparable form.
    pub fn comparable_resources(&self) -> crate::ComparableResources {
        let mut total = crate::ComparableResources {
            disk_mb: self.ephemeral_disk.size_mb,
            ..Default::default()
        };
        for task in &self.tasks {
            total.cpu_mhz += task.resources.cpu;
            total.cores += task.resources.cores;
            total.memory_mb += task.resources.memory_mb;
            total.memory_max_mb += task.resources.memory_max_mb.max(task.resources.memory_mb);
        }
        total
    }
}

/// One process, container or VM run by a driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Task {
    pub name: String,
    pub driver: String,
    pub user: String,
    /// Driver configuration as a typed value tree, decoded by the driver.
    pub config: serde_json::Value,
    pub env: BTreeMap<String, String>,
    pub resources: Resources,
    pub constraints: Vec<Constraint>,
    pub affinities: Vec<Affinity>,
    pub services: Vec<Service>,
    pub meta: BTreeMap<String, String>,
    #[serde(with = "nanos")]
    pub kill_timeout: Duration,
    pub kill_signal: String,
    #[serde(with = "opt_nanos")]
    pub shutdown_delay: Option<Duration>,
    pub log_config: LogConfig,
    pub lifecycle: Option<Lifecycle>,
    pub leader: bool,
    pub artifacts: Vec<Artifact>,
    pub templates: Vec<Template>,
    pub volume_mounts: Vec<VolumeMount>,
    pub dispatch_payload: Option<DispatchPayload>,
    pub restart_policy: Option<RestartPolicy>,
    /// Opaque blocks kept for later capabilities (vault, identity, consul…).
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Default time a task gets between its kill signal and SIGKILL.
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for Task {
    fn default() -> Self {
        Task {
            name: String::new(),
            driver: String::new(),
            user: String::new(),
            config: serde_json::Value::Object(serde_json::Map::new()),
            env: BTreeMap::new(),
            resources: Resources::default(),
            constraints: Vec::new(),
            affinities: Vec::new(),
            services: Vec::new(),
            meta: BTreeMap::new(),
            kill_timeout: DEFAULT_KILL_TIMEOUT,
            kill_signal: String::new(),
            shutdown_delay: None,
            log_config: LogConfig::default(),
            lifecycle: None,
            leader: false,
            artifacts: Vec::new(),
            templates: Vec::new(),
            volume_mounts: Vec::new(),
            dispatch_payload: None,
            restart_policy: None,
            extra: BTreeMap::new(),
        }
    }
}

impl Task {
    fn canonicalize(&mut self) {
        if self.resources.cpu == 0 && self.resources.cores == 0 {
            self.resources.cpu = crate::DEFAULT_CPU_MHZ;
        }
        if self.resources.memory_mb == 0 {
            self.resources.memory_mb = crate::DEFAULT_MEMORY_MB;
        }
    }
}

/// Where the driver's stdout/stderr rotation stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub max_files: u32,
    pub max_file_size_mb: u32,
    pub disabled: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_files: 10,
            max_file_size_mb: 10,
            disabled: false,
        }
    }
}

/// A hard placement rule: `ltarget operand rtarget`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Constraint {
    pub ltarget: String,
    pub rtarget: String,
    pub operand: String,
}

impl Constraint {
    /// Nomad's default operand when a constraint names none.
    pub const DEFAULT_OPERAND: &'static str = "=";
}

/// A soft placement preference with a weight in -100..=100.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Affinity {
    pub ltarget: String,
    pub rtarget: String,
    pub operand: String,
    pub weight: i8,
}

/// Spread allocations over the values of an attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Spread {
    pub attribute: String,
    pub weight: i8,
    pub targets: Vec<SpreadTarget>,
}

/// A wanted share (percent) of allocations for one attribute value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SpreadTarget {
    pub value: String,
    pub percent: u8,
}

/// What the client does once restart attempts in an interval are used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RestartMode {
    /// Wait until the interval has passed, then restart again.
    Delay,
    /// Give up: the task and the allocation fail.
    #[default]
    Fail,
}

/// How the client restarts a task that exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    pub attempts: u32,
    #[serde(with = "nanos")]
    pub interval: Duration,
    #[serde(with = "nanos")]
    pub delay: Duration,
    pub mode: RestartMode,
    pub render_templates: bool,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy::default_for(JobType::Service)
    }
}

impl RestartPolicy {
    /// Nomad's defaults: service/system 2 attempts in 30m, batch 3 in 24h,
    /// both with a 15s delay and mode "fail".
    pub fn default_for(job_type: JobType) -> RestartPolicy {
        match job_type {
            JobType::Service | JobType::System => RestartPolicy {
                attempts: 2,
                interval: Duration::from_secs(30 * 60),
                delay: Duration::from_secs(15),
                mode: RestartMode::Fail,
                render_templates: false,
            },
            JobType::Batch | JobType::Sysbatch => RestartPolicy {
                attempts: 3,
                interval: Duration::from_secs(24 * 3600),
                delay: Duration::from_secs(15),
                mode: RestartMode::Fail,
                render_templates: false,
            },
        }
    }
}

/// How the server replaces failed allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ReschedulePolicy {
    pub attempts: u32,
    #[serde(with = "nanos")]
    pub interval: Duration,
    #[serde(with = "nanos")]
    pub delay: Duration,
    /// "constant", "exponential" or "fibonacci".
    pub delay_function: String,
    #[serde(with = "nanos")]
    pub max_delay: Duration,
    pub unlimited: bool,
}

impl ReschedulePolicy {
    /// Nomad's defaults: service reschedules unlimited with exponential
    /// back-off from 30s to 1h; batch once a day with a 5s constant delay;
    /// system and sysbatch jobs never reschedule.
    pub fn default_for(job_type: JobType) -> Option<ReschedulePolicy> {
        match job_type {
            JobType::Service => Some(ReschedulePolicy {
                attempts: 0,
                interval: Duration::ZERO,
                delay: Duration::from_secs(30),
                delay_function: "exponential".to_string(),
                max_delay: Duration::from_secs(3600),
                unlimited: true,
            }),
            JobType::Batch => Some(ReschedulePolicy {
                attempts: 1,
                interval: Duration::from_secs(24 * 3600),
                delay: Duration::from_secs(5),
                delay_function: "constant".to_string(),
                max_delay: Duration::ZERO,
                unlimited: false,
            }),
            JobType::System | JobType::Sysbatch => None,
        }
    }
}

/// Rolling-update settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateStrategy {
    #[serde(with = "nanos")]
    pub stagger: Duration,
    pub max_parallel: u32,
    /// "checks", "task_states" or "manual".
    pub health_check: String,
    #[serde(with = "nanos")]
    pub min_healthy_time: Duration,
    #[serde(with = "nanos")]
    pub healthy_deadline: Duration,
    #[serde(with = "nanos")]
    pub progress_deadline: Duration,
    pub auto_revert: bool,
    pub auto_promote: bool,
    pub canary: u32,
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        UpdateStrategy {
            stagger: Duration::from_secs(30),
            max_parallel: 1,
            health_check: "checks".to_string(),
            min_healthy_time: Duration::from_secs(10),
            healthy_deadline: Duration::from_secs(5 * 60),
            progress_deadline: Duration::from_secs(10 * 60),
            auto_revert: false,
            auto_promote: false,
            canary: 0,
        }
    }
}

/// How allocations move off a draining node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MigrateStrategy {
    pub max_parallel: u32,
    pub health_check: String,
    #[serde(with = "nanos")]
    pub min_healthy_time: Duration,
    #[serde(with = "nanos")]
    pub healthy_deadline: Duration,
}

impl Default for MigrateStrategy {
    fn default() -> Self {
        MigrateStrategy {
            max_parallel: 1,
            health_check: "checks".to_string(),
            min_healthy_time: Duration::from_secs(10),
            healthy_deadline: Duration::from_secs(5 * 60),
        }
    }
}

/// What happens to allocations on a client that loses its servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DisconnectStrategy {
    #[serde(with = "opt_nanos")]
    pub lost_after: Option<Duration>,
    #[serde(with = "opt_nanos")]
    pub stop_on_client_after: Option<Duration>,
    pub replace: Option<bool>,
    pub reconcile: String,
}

/// A cron-driven job template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeriodicConfig {
    pub enabled: bool,
    pub specs: Vec<String>,
    pub spec_type: String,
    pub prohibit_overlap: bool,
    pub time_zone: String,
    /// Drover extension: at most this many children run at once; later
    /// launches wait in a queue and start in order as slots free. 0: no cap.
    pub max_concurrent: u32,
}

impl Default for PeriodicConfig {
    fn default() -> Self {
        PeriodicConfig {
            enabled: true,
            specs: Vec::new(),
            spec_type: "cron".to_string(),
            prohibit_overlap: false,
            time_zone: "UTC".to_string(),
            max_concurrent: 0,
        }
    }
}

/// A job template instantiated by `job dispatch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ParameterizedConfig {
    /// "optional", "required" or "forbidden".
    pub payload: String,
    pub meta_required: Vec<String>,
    pub meta_optional: Vec<String>,
    /// Drover extension: at most this many dispatched children run at
    /// once; later dispatches wait in a queue and start in order as slots
    /// free. 0: no cap.
    pub max_concurrent: u32,
}

impl Default for ParameterizedConfig {
    fn default() -> Self {
        ParameterizedConfig {
            payload: "optional".to_string(),
            meta_required: Vec::new(),
            meta_optional: Vec::new(),
            max_concurrent: 0,
        }
    }
}

/// Where a dispatched payload is written inside the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DispatchPayload {
    pub file: String,
}

/// Ordering of a task among its group's tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Lifecycle {
    /// "prestart", "poststart" or "poststop".
    pub hook: String,
    pub sidecar: bool,
}

/// A file or archive fetched into the task directory before start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Artifact {
    pub source: String,
    pub destination: String,
    pub mode: String,
    pub options: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
}

/// A rendered configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Template {
    pub source_path: String,
    pub dest_path: String,
    pub embedded_tmpl: String,
    pub change_mode: String,
    pub change_signal: String,
    #[serde(with = "nanos")]
    pub splay: Duration,
    pub perms: String,
    pub left_delim: String,
    pub right_delim: String,
    pub env: bool,
}

/// A service registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Service {
    pub name: String,
    pub port_label: String,
    pub provider: String,
    pub tags: Vec<String>,
    pub canary_tags: Vec<String>,
    pub address_mode: String,
    pub address: String,
    pub task_name: String,
    pub meta: BTreeMap<String, String>,
    pub checks: Vec<ServiceCheck>,
    /// Opaque fields kept for later capabilities (connect, check_restart, …).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A health check attached to a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ServiceCheck {
    pub name: String,
    pub check_type: String,
    pub command: String,
    pub args: Vec<String>,
    pub path: String,
    pub protocol: String,
    pub port_label: String,
    pub method: String,
    #[serde(with = "nanos")]
    pub interval: Duration,
    #[serde(with = "nanos")]
    pub timeout: Duration,
    pub initial_status: String,
    /// Opaque fields kept for later capabilities (header, grpc_service, …).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A volume a group asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct VolumeRequest {
    pub name: String,
    pub volume_type: String,
    pub source: String,
    pub read_only: bool,
    pub access_mode: String,
    pub attachment_mode: String,
    pub per_alloc: bool,
}

/// Where a group volume is mounted inside a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct VolumeMount {
    pub volume: String,
    pub destination: String,
    pub read_only: bool,
    pub propagation_mode: String,
}

/// Horizontal scaling bounds for a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ScalingPolicy {
    pub min: Option<u64>,
    pub max: u64,
    pub enabled: bool,
    pub policy: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalize_applies_type_defaults() {
        let mut job = Job {
            id: "web".into(),
            job_type: JobType::Batch,
            datacenters: Vec::new(),
            update: Some(UpdateStrategy::default()),
            task_groups: vec![TaskGroup {
                name: "g".into(),
                tasks: vec![Task {
                    name: "t".into(),
                    resources: Resources {
                        cpu: 0,
                        memory_mb: 0,
                        ..Resources::default()
                    },
                    ..Task::default()
                }],
                ..TaskGroup::default()
            }],
            ..Job::default()
        };
        job.canonicalize();
        assert_eq!(job.name, "web");
        assert_eq!(job.datacenters, vec!["*".to_string()]);
        assert_eq!(job.update, None);
        let group = &job.task_groups[0];
        assert_eq!(group.update, None);
        assert_eq!(group.reschedule_policy, ReschedulePolicy::default_for(JobType::Batch));
        assert_eq!(group.restart_policy, Some(RestartPolicy::default_for(JobType::Batch)));
        assert_eq!(group.tasks[0].resources.cpu, 100);
        assert_eq!(group.tasks[0].resources.memory_mb, 300);
    }

    #[test]
    fn canonicalize_copies_job_update_into_groups() {
        let update = UpdateStrategy {
            max_parallel: 3,
            ..UpdateStrategy::default()
        };
        let mut job = Job {
            id: "web".into(),
            update: Some(update.clone()),
            task_groups: vec![TaskGroup {
                name: "g".into(),
                ..TaskGroup::default()
            }],
            ..Job::default()
        };
        job.canonicalize();
        assert_eq!(job.task_groups[0].update, Some(update));
        assert!(job.task_groups[0].migrate.is_some());
    }
}
