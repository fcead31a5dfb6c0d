//! Job validation. Every problem is collected (not only the first) and names
//! its field path, so the jobspec layer can attach a line:column to it.

use crate::job::{Job, JobType, RestartMode, Task, TaskGroup};
use crate::limits;
use crate::resources::NetworkResource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Where a problem is in the source text, 1-based, when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePos {
    pub line: u32,
    pub column: u32,
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Path segments from the job down, e.g. `["job \"web\"", "group \"api\"",
    /// "task \"server\"", "resources.memory"]`.
    pub path: Vec<String>,
    pub message: String,
    pub pos: Option<SourcePos>,
}

impl ValidationError {
    /// The path as printed: segments joined with " → ".
    pub fn path_text(&self) -> String {
        self.path.join(" → ")
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(pos) = self.pos {
            write!(f, "{}:{}: ", pos.line, pos.column)?;
        }
        write!(f, "{}: {}", self.path_text(), self.message)
    }
}

/// All the problems found in a job.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        write!(f, "{count} error(s) occurred:")?;
        for error in &self.0 {
            write!(f, "\n* {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// A name as it appears in an error's path: cut short when it is over the
/// limit, so that a hostile name does not make every message huge.
pub fn shorten(name: &str) -> &str {
    if name.len() <= limits::MAX_JOB_ID_LEN {
        return name;
    }
    let mut end = limits::MAX_JOB_ID_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

pub(crate) struct Collector {
    pub(crate) errors: Vec<ValidationError>,
}

impl Collector {
    pub(crate) fn push(&mut self, path: &[String], field: &str, message: impl Into<String>) {
        let mut full = path.to_vec();
        if !field.is_empty() {
            full.push(field.to_string());
        }
        self.errors.push(ValidationError {
            path: full,
            message: message.into(),
            pos: None,
        });
    }
}

/// Operators a constraint may use.
pub const CONSTRAINT_OPERATORS: &[&str] = &[
    "=",
    "==",
    "is",
    "!=",
    "not",
    "<",
    "<=",
    ">",
    ">=",
    "regexp",
    "set_contains",
    "set_contains_any",
    "set_contains_all",
    "version",
    "semver",
    "is_set",
    "is_not_set",
    "distinct_hosts",
    "distinct_property",
];

impl Job {
    /// Checks the job for every problem Nomad would reject it for. Call it
    /// after [`Job::canonicalize`].
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut collector = Collector { errors: Vec::new() };
        let job_path = vec![format!("job {:?}", shorten(&self.id))];
        if self.id.is_empty() {
            collector.push(&job_path, "id", "missing job ID");
        } else if self.id.len() > limits::MAX_JOB_ID_LEN {
            collector.push(
                &job_path,
                "id",
                format!(
                    "job ID is {} bytes long, more than Drover's limit of {}",
                    self.id.len(),
                    limits::MAX_JOB_ID_LEN
                ),
            );
        } else if self.id.contains(' ') {
            collector.push(&job_path, "id", "job ID contains a space");
        } else if self.id.contains('\0') {
            collector.push(&job_path, "id", "job ID contains a null character");
        }
        if self.name.is_empty() {
            collector.push(&job_path, "name", "missing job name");
        } else if self.name.len() > limits::MAX_JOB_ID_LEN {
            collector.push(
                &job_path,
                "name",
                format!(
                    "job name is {} bytes long, more than Drover's limit of {}",
                    self.name.len(),
                    limits::MAX_JOB_ID_LEN
                ),
            );
        }
        if self.namespace.len() > limits::MAX_NAME_LEN {
            collector.push(
                &job_path,
                "namespace",
                format!(
                    "namespace is {} bytes long, more than Drover's limit of {}",
                    self.namespace.len(),
                    limits::MAX_NAME_LEN
                ),
            );
        }
        if !(1..=100).contains(&self.priority) {
            collector.push(&job_path, "priority", "job priority must be between 1 and 100");
        }
        if self.datacenters.is_empty() || self.datacenters.iter().any(String::is_empty) {
            collector.push(
                &job_path,
                "datacenters",
                "job must name at least one datacenter, and none empty",
            );
        }
        if self.task_groups.is_empty() {
            collector.push(&job_path, "group", "job has no task groups");
        }
        for (idx, constraint) in self.constraints.iter().enumerate() {
            check_constraint(&mut collector, &job_path, idx, constraint);
        }
        if let Some(periodic) = &self.periodic {
            if periodic.enabled && !matches!(self.job_type, JobType::Batch | JobType::Sysbatch) {
                collector.push(
                    &job_path,
                    "periodic",
                    format!(
                        "periodic can only be used with batch or sysbatch jobs, not {:?}",
                        self.job_type.as_str()
                    ),
                );
            }
            if periodic.enabled && periodic.specs.is_empty() {
                collector.push(&job_path, "periodic.cron", "periodic job needs a cron expression");
            }
        }
        if let Some(parameterized) = &self.parameterized {
            if self.periodic.as_ref().is_some_and(|periodic| periodic.enabled) {
                collector.push(&job_path, "periodic", "a parameterized job cannot also be periodic");
            }
            if !matches!(self.job_type, JobType::Batch | JobType::Sysbatch) {
                collector.push(
                    &job_path,
                    "parameterized",
                    "parameterized jobs must be batch or sysbatch",
                );
            }
            if !matches!(parameterized.payload.as_str(), "optional" | "required" | "forbidden") {
                collector.push(
                    &job_path,
                    "parameterized.payload",
                    format!(
                        "payload must be \"optional\", \"required\" or \"forbidden\", not {:?}",
                        parameterized.payload
                    ),
                );
            }
            if parameterized.payload == "forbidden" {
                for group in &self.task_groups {
                    for task in &group.tasks {
                        if task.dispatch_payload.is_some() {
                            collector.push(
                                &[
                                    job_path[0].clone(),
                                    format!("group {:?}", group.name),
                                    format!("task {:?}", task.name),
                                ],
                                "dispatch_payload",
                                "dispatch_payload is set but the job's parameterized payload is forbidden",
                            );
                        }
                    }
                }
            }
        }
        let mut group_names = BTreeSet::new();
        for group in &self.task_groups {
            if !group_names.insert(group.name.as_str()) {
                collector.push(
                    &job_path,
                    &format!("group {:?}", shorten(&group.name)),
                    "duplicate group name",
                );
            }
            validate_group(&mut collector, self, group, &job_path);
        }
        if collector.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(collector.errors))
        }
    }
}

fn check_constraint(collector: &mut Collector, path: &[String], idx: usize, constraint: &crate::Constraint) {
    let field = format!("constraint[{idx}]");
    let operand = if constraint.operand.is_empty() {
        "="
    } else {
        constraint.operand.as_str()
    };
    if !CONSTRAINT_OPERATORS.contains(&operand) {
        collector.push(path, &field, format!("unknown constraint operator {operand:?}"));
        return;
    }
    match operand {
        "distinct_hosts" => {}
        "distinct_property" | "is_set" | "is_not_set" => {
            if constraint.ltarget.is_empty() {
                collector.push(path, &field, format!("operator {operand:?} needs an attribute"));
            }
        }
        _ => {
            if constraint.ltarget.is_empty() && constraint.rtarget.is_empty() {
                collector.push(
                    path,
                    &field,
                    format!("operator {operand:?} needs an attribute and a value"),
                );
            } else if constraint.rtarget.is_empty() {
                collector.push(path, &field, format!("operator {operand:?} needs a value"));
            }
        }
    }
    if operand == "regexp" && !constraint.rtarget.is_empty() && constraint.rtarget.contains("(?<") {
        collector.push(path, &field, "regexp uses an unsupported named-group syntax");
    }
}

fn validate_group(collector: &mut Collector, job: &Job, group: &TaskGroup, job_path: &[String]) {
    let mut path = job_path.to_vec();
    path.push(format!("group {:?}", shorten(&group.name)));
    if group.name.is_empty() {
        collector.push(job_path, "group", "task group has no name");
    } else if let Err(problem) = limits::check_path_name(&group.name) {
        collector.push(&path, "name", format!("invalid group name: {problem}"));
    }
    if group.tasks.is_empty() {
        collector.push(&path, "task", "group has no tasks");
    }
    if group.count > crate::limits::MAX_GROUP_COUNT {
        collector.push(
            &path,
            "count",
            format!(
                "count {} is more than Drover's limit of {} allocations per group",
                group.count,
                crate::limits::MAX_GROUP_COUNT
            ),
        );
    }
    if let Some(scaling) = &group.scaling {
        if u64::from(group.count) > scaling.max {
            collector.push(
                &path,
                "count",
                format!("count {} is greater than scaling.max {}", group.count, scaling.max),
            );
        }
        if let Some(min) = scaling.min {
            if u64::from(group.count) < min {
                collector.push(
                    &path,
                    "count",
                    format!("count {} is less than scaling.min {min}", group.count),
                );
            }
            if min > scaling.max {
                collector.push(&path, "scaling.min", "scaling.min is greater than scaling.max");
            }
        }
    }
    if let Some(restart) = &group.restart_policy
        && restart.mode == RestartMode::Delay
        && restart.interval < restart.delay * restart.attempts
    {
        collector.push(
            &path,
            "restart.interval",
            "restart interval is shorter than attempts × delay, so delay mode can never restart",
        );
    }
    if let Some(reschedule) = &group.reschedule_policy {
        if !matches!(
            reschedule.delay_function.as_str(),
            "constant" | "exponential" | "fibonacci" | ""
        ) {
            collector.push(
                &path,
                "reschedule.delay_function",
                format!("unknown delay function {:?}", reschedule.delay_function),
            );
        }
        if reschedule.unlimited
            && reschedule.attempts > 0
            && job.job_type == JobType::Batch
            && reschedule.interval.is_zero()
        {
            collector.push(
                &path,
                "reschedule.interval",
                "batch reschedule with attempts needs an interval",
            );
        }
    }
    // Servers do not yet mark a silent client `disconnected` (it goes
    // straight to down and its allocations are replaced), and clients do
    // not stop their work when they lose the servers: these settings would
    // be stored and ignored, so they are refused until that is built.
    let disconnect_fields = [
        ("disconnect", group.disconnect.is_some()),
        ("max_client_disconnect", group.max_client_disconnect.is_some()),
        (
            "stop_after_client_disconnect",
            group.stop_after_client_disconnect.is_some(),
        ),
    ];
    for (field, set) in disconnect_fields {
        if set {
            collector.push(
                &path,
                field,
                format!(
                    "{field} is not supported by Drover yet: a client that stops heartbeating is marked down \
                     and its allocations are replaced"
                ),
            );
        }
    }
    for (idx, constraint) in group.constraints.iter().enumerate() {
        check_constraint(collector, &path, idx, constraint);
    }
    if group.ephemeral_disk.size_mb < 0 {
        collector.push(&path, "ephemeral_disk.size", "size may not be negative");
    }
    check_at_most(
        collector,
        &path,
        "ephemeral_disk.size",
        group.ephemeral_disk.size_mb,
        limits::MAX_DISK_MB,
        "MB",
    );
    check_networks(collector, &path, "network", &group.networks);
    // Static ports must not collide within a group.
    let mut static_ports = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for network in &group.networks {
        for port in network.reserved_ports.iter().chain(network.dynamic_ports.iter()) {
            if !labels.insert(port.label.as_str()) {
                collector.push(&path, &format!("network.port {:?}", port.label), "duplicate port label");
            }
        }
        for port in &network.reserved_ports {
            if !static_ports.insert(port.value) {
                collector.push(
                    &path,
                    &format!("network.port {:?}", port.label),
                    format!(
                        "static port {} is already reserved by another port in this group",
                        port.value
                    ),
                );
            }
        }
    }
    let mut task_names = BTreeSet::new();
    let mut leaders = 0;
    for task in &group.tasks {
        if !task_names.insert(task.name.as_str()) {
            collector.push(&path, &format!("task {:?}", shorten(&task.name)), "duplicate task name");
        }
        if task.leader {
            leaders += 1;
        }
        validate_task(collector, task, &path);
    }
    if leaders > 1 {
        collector.push(&path, "task", "only one task may be marked as leader");
    }
}

/// A resource amount above Drover's limit (the sum of such amounts could
/// overflow).
fn check_at_most(collector: &mut Collector, path: &[String], field: &str, value: i64, limit: i64, unit: &str) {
    if value > limit {
        collector.push(
            path,
            field,
            format!("{value} {unit} is more than Drover's limit of {limit} {unit}"),
        );
    }
}

/// Bandwidth, port lists and `to` ports in range.
fn check_networks(collector: &mut Collector, path: &[String], field: &str, networks: &[NetworkResource]) {
    if networks.len() > limits::MAX_LIST_LEN {
        collector.push(
            path,
            field,
            format!("more than Drover's limit of {} networks", limits::MAX_LIST_LEN),
        );
    }
    for network in networks {
        if network.mbits < 0 {
            collector.push(path, &format!("{field}.mbits"), "mbits may not be negative");
        }
        check_at_most(
            collector,
            path,
            &format!("{field}.mbits"),
            network.mbits,
            limits::MAX_MBITS,
            "Mbit/s",
        );
        if network.reserved_ports.len() + network.dynamic_ports.len() > limits::MAX_LIST_LEN {
            collector.push(
                path,
                &format!("{field}.port"),
                format!("more than Drover's limit of {} ports", limits::MAX_LIST_LEN),
            );
        }
        for port in network.reserved_ports.iter().chain(network.dynamic_ports.iter()) {
            // `to = -1` asks for the host port's own number, as in Nomad.
            if !(-1..=65535).contains(&port.to) {
                collector.push(
                    path,
                    &format!("{field}.port {:?}.to", port.label),
                    format!("to must be a port number (0 to 65535) or -1, not {}", port.to),
                );
            }
        }
    }
}

fn validate_task(collector: &mut Collector, task: &Task, group_path: &[String]) {
    let mut path = group_path.to_vec();
    path.push(format!("task {:?}", shorten(&task.name)));
    if task.name.is_empty() {
        collector.push(group_path, "task", "task has no name");
    } else if let Err(problem) = limits::check_path_name(&task.name) {
        // Task names are directory names under the allocation's directory.
        collector.push(&path, "name", format!("invalid task name: {problem}"));
    }
    if task.driver.is_empty() {
        collector.push(&path, "driver", "missing task driver");
    }
    if task.resources.cpu < 0 {
        collector.push(&path, "resources.cpu", "cpu may not be negative");
    }
    check_at_most(
        collector,
        &path,
        "resources.cpu",
        task.resources.cpu,
        limits::MAX_CPU_MHZ,
        "MHz",
    );
    if task.resources.cores < 0 {
        collector.push(&path, "resources.cores", "cores may not be negative");
    }
    check_at_most(
        collector,
        &path,
        "resources.cores",
        task.resources.cores,
        limits::MAX_CORES,
        "cores",
    );
    if task.resources.memory_mb < 10 {
        collector.push(
            &path,
            "resources.memory",
            format!("memory must be at least 10 MB, not {}", task.resources.memory_mb),
        );
    }
    check_at_most(
        collector,
        &path,
        "resources.memory",
        task.resources.memory_mb,
        limits::MAX_MEMORY_MB,
        "MB",
    );
    if task.resources.memory_max_mb < 0 {
        collector.push(&path, "resources.memory_max", "memory_max may not be negative");
    }
    if task.resources.memory_max_mb != 0 && task.resources.memory_max_mb < task.resources.memory_mb {
        collector.push(&path, "resources.memory_max", "memory_max must not be less than memory");
    }
    check_at_most(
        collector,
        &path,
        "resources.memory_max",
        task.resources.memory_max_mb,
        limits::MAX_MEMORY_MB,
        "MB",
    );
    check_networks(collector, &path, "resources.network", &task.resources.networks);
    if task.resources.devices.len() > limits::MAX_LIST_LEN {
        collector.push(
            &path,
            "resources.device",
            format!("more than Drover's limit of {} device requests", limits::MAX_LIST_LEN),
        );
    }
    for device in &task.resources.devices {
        if device.count > limits::MAX_DEVICE_COUNT {
            collector.push(
                &path,
                &format!("resources.device {:?}.count", device.name),
                format!(
                    "count {} is more than Drover's limit of {}",
                    device.count,
                    limits::MAX_DEVICE_COUNT
                ),
            );
        }
    }
    if task.resources.cores > 0 && task.resources.cpu > 0 && task.resources.cpu != crate::DEFAULT_CPU_MHZ {
        collector.push(&path, "resources.cores", "cores and cpu may not both be set");
    }
    if let Some(lifecycle) = &task.lifecycle
        && !matches!(lifecycle.hook.as_str(), "prestart" | "poststart" | "poststop")
    {
        collector.push(
            &path,
            "lifecycle.hook",
            format!("unknown lifecycle hook {:?}", lifecycle.hook),
        );
    }
    for (idx, constraint) in task.constraints.iter().enumerate() {
        check_constraint(collector, &path, idx, constraint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Constraint, NetworkResource, Port, Resources};

    fn job() -> Job {
        let mut job = Job {
            id: "web".into(),
            task_groups: vec![TaskGroup {
                name: "api".into(),
                tasks: vec![Task {
                    name: "server".into(),
                    driver: "raw_exec".into(),
                    ..Task::default()
                }],
                ..TaskGroup::default()
            }],
            ..Job::default()
        };
        job.canonicalize();
        job
    }

    #[test]
    fn valid_job_passes() {
        assert_eq!(job().validate(), Ok(()));
    }

    #[test]
    fn collects_every_error_with_its_path() {
        let mut job = job();
        job.task_groups[0].tasks[0].resources = Resources {
            memory_mb: 1,
            ..Resources::default()
        };
        job.task_groups[0].tasks[0].driver.clear();
        job.constraints.push(Constraint {
            ltarget: "${attr.kernel.name}".into(),
            operand: "=".into(),
            rtarget: String::new(),
        });
        job.task_groups[0].networks.push(NetworkResource {
            reserved_ports: vec![
                Port {
                    label: "a".into(),
                    value: 80,
                    ..Port::default()
                },
                Port {
                    label: "b".into(),
                    value: 80,
                    ..Port::default()
                },
            ],
            ..NetworkResource::default()
        });
        let errors = job.validate().expect_err("job is invalid").0;
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            vec![
                "job \"web\" → constraint[0]: operator \"=\" needs a value",
                "job \"web\" → group \"api\" → network.port \"b\": static port 80 is already reserved by another port in this group",
                "job \"web\" → group \"api\" → task \"server\" → driver: missing task driver",
                "job \"web\" → group \"api\" → task \"server\" → resources.memory: memory must be at least 10 MB, not 1",
            ]
        );
    }

    /// Nothing in these settings is carried out yet, so each is refused
    /// with its field rather than stored and ignored.
    #[test]
    fn client_disconnect_settings_are_refused_until_built() {
        let mut job = job();
        job.task_groups[0].max_client_disconnect = Some(std::time::Duration::from_secs(60));
        job.task_groups[0].stop_after_client_disconnect = Some(std::time::Duration::from_secs(30));
        job.task_groups[0].disconnect = Some(crate::DisconnectStrategy {
            lost_after: Some(std::time::Duration::from_secs(60)),
            ..crate::DisconnectStrategy::default()
        });
        let errors = job.validate().expect_err("refused").0;
        let paths: Vec<String> = errors.iter().map(|error| error.path_text()).collect();
        assert_eq!(
            paths,
            vec![
                "job \"web\" → group \"api\" → disconnect",
                "job \"web\" → group \"api\" → max_client_disconnect",
                "job \"web\" → group \"api\" → stop_after_client_disconnect",
            ]
        );
        assert!(
            errors[0].message.contains("not supported by Drover yet"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn count_above_the_limit_is_rejected_with_its_field() {
        let mut job = job();
        job.task_groups[0].count = crate::limits::MAX_GROUP_COUNT;
        assert_eq!(job.validate(), Ok(()));
        job.task_groups[0].count = 1_000_000_000;
        let errors = job.validate().expect_err("a billion allocations is too many").0;
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path_text(), "job \"web\" → group \"api\" → count");
        assert!(errors[0].message.contains("limit of 100000"), "{}", errors[0].message);
    }

    /// Values whose sums used to wrap: each is refused with its field.
    #[test]
    fn resource_amounts_have_sane_ranges() {
        let mut job = job();
        let base = job.task_groups[0].tasks[0].clone();
        let mut second = base.clone();
        second.name = "second".into();
        job.task_groups[0].tasks.push(second);
        for task in &mut job.task_groups[0].tasks {
            task.resources.memory_mb = 4611686018427387904;
        }
        job.task_groups[0].tasks[1].resources.cpu = i64::MAX;
        job.task_groups[0].tasks[0].resources.cores = -1;
        job.task_groups[0].ephemeral_disk.size_mb = i64::MAX;
        job.task_groups[0].tasks[0]
            .resources
            .devices
            .push(crate::RequestedDevice {
                name: "gpu".into(),
                count: u64::MAX,
                ..Default::default()
            });
        job.task_groups[0].networks.push(NetworkResource {
            mbits: -5,
            dynamic_ports: vec![Port {
                label: "http".into(),
                to: 70000,
                ..Port::default()
            }],
            ..NetworkResource::default()
        });
        let errors = job.validate().expect_err("job is invalid").0;
        let fields: Vec<String> = errors.iter().map(|error| error.path.join(" → ")).collect();
        let group = "job \"web\" → group \"api\"";
        for expected in [
            format!("{group} → ephemeral_disk.size"),
            format!("{group} → network.mbits"),
            format!("{group} → network.port \"http\".to"),
            format!("{group} → task \"server\" → resources.cores"),
            format!("{group} → task \"server\" → resources.memory"),
            format!("{group} → task \"server\" → resources.device \"gpu\".count"),
            format!("{group} → task \"second\" → resources.cpu"),
            format!("{group} → task \"second\" → resources.memory"),
        ] {
            assert!(fields.contains(&expected), "no error for {expected}: {fields:#?}");
        }
        // The limits themselves are accepted.
        let mut job = self::job();
        let task = &mut job.task_groups[0].tasks[0];
        task.resources.cpu = limits::MAX_CPU_MHZ;
        task.resources.memory_mb = limits::MAX_MEMORY_MB;
        task.resources.memory_max_mb = limits::MAX_MEMORY_MB;
        assert_eq!(job.validate(), Ok(()));
    }

    /// A task named `..` escaped its allocation directory; a 70,000-byte
    /// job ID was stored and could then not be read or deleted over HTTP.
    #[test]
    fn names_and_ids_are_bounded_and_cannot_leave_a_directory() {
        let mut job = job();
        job.task_groups[0].tasks[0].name = "..".into();
        let errors = job.validate().expect_err("a task named .. is invalid").0;
        assert_eq!(
            errors[0].path_text(),
            "job \"web\" → group \"api\" → task \"..\" → name"
        );
        for name in [".", "a/b", "a\0b"] {
            let mut job = self::job();
            job.task_groups[0].name = name.into();
            assert!(job.validate().is_err(), "group {name:?} was accepted");
        }
        let mut job = self::job();
        job.id = "j".repeat(70_000);
        job.name = job.id.clone();
        let errors = job.validate().expect_err("a long ID is invalid").0;
        let fields: Vec<&str> = errors.iter().map(|error| error.path[1].as_str()).collect();
        assert_eq!(fields, vec!["id", "name"]);
        assert!(errors[0].message.contains("limit of 256"), "{}", errors[0].message);
        assert!(errors[0].path[0].len() < 300, "the path quotes a shortened ID");
        let mut job = self::job();
        job.id = "j".repeat(limits::MAX_JOB_ID_LEN);
        assert_eq!(job.validate(), Ok(()));
    }

    #[test]
    fn periodic_service_is_rejected() {
        let mut job = job();
        job.periodic = Some(crate::PeriodicConfig {
            specs: vec!["* * * * *".into()],
            ..Default::default()
        });
        let errors = job.validate().expect_err("periodic service is invalid");
        assert!(errors.0[0].message.contains("periodic can only be used with batch"));
    }
}
