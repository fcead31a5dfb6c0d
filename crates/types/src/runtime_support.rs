//! What a client can carry out. A job file may hold blocks that Drover
//! parses and stores but whose runtime is not built (Vault, Consul, CSI
//! volumes…); such a job is refused at registration with the field path and
//! the reason, never accepted and then silently ignored. As a block's
//! runtime is built, its rejection here is lifted.

use crate::job::{Job, Task, TaskGroup};
use crate::validate::{Collector, ValidationErrors, shorten};

/// Opaque API fields of a job, a group or a task, with the block's name in
/// the job file and why it is refused.
const JOB_FIELDS: &[(&str, &str, &str)] = &[
    ("Vault", "vault", "Vault integration is not supported by Drover"),
    (
        "VaultToken",
        "vault_token",
        "Vault integration is not supported by Drover",
    ),
    ("Consul", "consul", "Consul integration is not supported by Drover"),
    (
        "ConsulToken",
        "consul_token",
        "Consul integration is not supported by Drover",
    ),
    (
        "Multiregion",
        "multiregion",
        "multiregion jobs are not supported by Drover",
    ),
];
const GROUP_FIELDS: &[(&str, &str, &str)] = &[("Consul", "consul", "Consul integration is not supported by Drover")];
const TASK_FIELDS: &[(&str, &str, &str)] = &[
    ("Vault", "vault", "Vault integration is not supported by Drover"),
    ("Consul", "consul", "Consul integration is not supported by Drover"),
    (
        "Identity",
        "identity",
        "workload identities are not supported by Drover yet",
    ),
    (
        "Identities",
        "identity",
        "workload identities are not supported by Drover yet",
    ),
    (
        "CSIPluginConfig",
        "csi_plugin",
        "CSI plugins are not supported by Drover",
    ),
    ("Actions", "action", "task actions are not supported by Drover yet"),
    ("Schedule", "schedule", "task schedules are not supported by Drover"),
    ("Kind", "kind", "Consul Connect task kinds are not supported by Drover"),
];

/// A value that says nothing: absent, null, empty or false.
fn is_empty(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(flag) => !flag,
        serde_json::Value::String(text) => text.is_empty(),
        serde_json::Value::Array(items) => items.is_empty(),
        serde_json::Value::Object(map) => map.is_empty(),
        serde_json::Value::Number(_) => false,
    }
}

fn check_extra(
    collector: &mut Collector,
    path: &[String],
    extra: &std::collections::BTreeMap<String, serde_json::Value>,
    fields: &[(&str, &str, &str)],
) {
    for (api_name, hcl_name, reason) in fields {
        if extra.get(*api_name).is_some_and(|value| !is_empty(value)) {
            collector.push(path, hcl_name, *reason);
        }
    }
}

impl Job {
    /// Checks that every block of the job is one a Drover client carries
    /// out. Call it after [`Job::validate`], before registering the job.
    pub fn check_supported(&self) -> Result<(), ValidationErrors> {
        let mut collector = Collector { errors: Vec::new() };
        let path = vec![format!("job {:?}", shorten(&self.id))];
        check_extra(&mut collector, &path, &self.extra, JOB_FIELDS);
        for group in &self.task_groups {
            check_group(&mut collector, &path, group);
        }
        if collector.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(collector.errors))
        }
    }
}

fn check_group(collector: &mut Collector, job_path: &[String], group: &TaskGroup) {
    let mut path = job_path.to_vec();
    path.push(format!("group {:?}", shorten(&group.name)));
    check_extra(collector, &path, &group.extra, GROUP_FIELDS);
    if group.ephemeral_disk.sticky {
        collector.push(
            &path,
            "ephemeral_disk.sticky",
            "sticky ephemeral disks are not supported by Drover yet",
        );
    }
    if group.ephemeral_disk.migrate {
        collector.push(
            &path,
            "ephemeral_disk.migrate",
            "migrating ephemeral disks is not supported by Drover yet",
        );
    }
    if group.shutdown_delay.is_some_and(|delay| !delay.is_zero()) {
        collector.push(&path, "shutdown_delay", "shutdown_delay is not supported by Drover yet");
    }
    for name in group.volumes.keys() {
        collector.push(
            &path,
            &format!("volume {:?}", shorten(name)),
            "volumes are not supported by Drover yet",
        );
    }
    for task in &group.tasks {
        check_task(collector, &path, task);
    }
}

fn check_task(collector: &mut Collector, group_path: &[String], task: &Task) {
    let mut path = group_path.to_vec();
    path.push(format!("task {:?}", shorten(&task.name)));
    check_extra(collector, &path, &task.extra, TASK_FIELDS);
    if task.shutdown_delay.is_some_and(|delay| !delay.is_zero()) {
        collector.push(&path, "shutdown_delay", "shutdown_delay is not supported by Drover yet");
    }
    if task
        .dispatch_payload
        .as_ref()
        .is_some_and(|payload| !payload.file.is_empty())
    {
        collector.push(
            &path,
            "dispatch_payload",
            "dispatch payloads are not supported by Drover yet",
        );
    }
    for idx in 0..task.templates.len() {
        collector.push(
            &path,
            &format!("template[{idx}]"),
            "templates are not supported by Drover yet",
        );
    }
    for idx in 0..task.artifacts.len() {
        collector.push(
            &path,
            &format!("artifact[{idx}]"),
            "artifacts are not supported by Drover yet",
        );
    }
    for idx in 0..task.volume_mounts.len() {
        collector.push(
            &path,
            &format!("volume_mount[{idx}]"),
            "volume mounts are not supported by Drover yet",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Template, VolumeRequest};

    fn job() -> Job {
        Job {
            id: "web".into(),
            task_groups: vec![TaskGroup {
                name: "g".into(),
                tasks: vec![Task {
                    name: "t".into(),
                    driver: "raw_exec".into(),
                    ..Task::default()
                }],
                ..TaskGroup::default()
            }],
            ..Job::default()
        }
    }

    fn messages(job: &Job) -> Vec<String> {
        match job.check_supported() {
            Ok(()) => Vec::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_plain_job_is_supported() {
        assert_eq!(messages(&job()), Vec::<String>::new());
    }

    #[test]
    fn vault_is_refused_with_its_path() {
        let mut job = job();
        job.task_groups[0].tasks[0]
            .extra
            .insert("Vault".into(), serde_json::json!({"Policies": ["read"]}));
        assert_eq!(
            messages(&job),
            vec![
                "job \"web\" → group \"g\" → task \"t\" → vault: Vault integration is not supported by Drover"
                    .to_string()
            ]
        );
        let mut job = self::job();
        job.extra.insert("Vault".into(), serde_json::json!({"Policies": ["x"]}));
        assert_eq!(messages(&job).len(), 1);
        // An empty block from the API says nothing and is let through.
        let mut job = self::job();
        job.extra.insert("Vault".into(), serde_json::Value::Null);
        assert!(messages(&job).is_empty());
    }

    #[test]
    fn every_unbuilt_runtime_block_is_named() {
        let mut job = job();
        job.task_groups[0].volumes.insert(
            "data".into(),
            VolumeRequest {
                name: "data".into(),
                volume_type: "host".into(),
                ..VolumeRequest::default()
            },
        );
        job.task_groups[0].ephemeral_disk.sticky = true;
        job.task_groups[0].tasks[0].templates.push(Template::default());
        let found = messages(&job);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().any(|m| m.contains("volume \"data\"")));
        assert!(found.iter().any(|m| m.contains("ephemeral_disk.sticky")));
        assert!(found.iter().any(|m| m.contains("template[0]")));
    }
}
