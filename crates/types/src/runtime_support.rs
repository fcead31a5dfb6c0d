//! What a client can carry out. A job file may hold blocks that Drover
//! parses and stores but whose runtime is not built (Vault, Consul, CSI
//! volumes…); such a job is refused at registration with the field path and
//! the reason, never accepted and then silently ignored. As a block's
//! runtime is built, its rejection here is lifted.

use crate::job::{Artifact, Job, Task, TaskGroup, Template};
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
    check_shutdown_delay(collector, &path, group.shutdown_delay);
    let task_names: Vec<&str> = group.tasks.iter().map(|task| task.name.as_str()).collect();
    check_services(collector, &path, &group.services, Some(&task_names));
    for (name, volume) in &group.volumes {
        let field = |part: &str| format!("volume {:?}.{part}", shorten(name));
        match volume.volume_type.as_str() {
            "" | "host" => {}
            "csi" => collector.push(&path, &field("type"), "CSI volumes are not supported by Drover"),
            other => collector.push(
                &path,
                &field("type"),
                format!("unknown volume type {other:?}: use host"),
            ),
        }
        if volume.source.is_empty() {
            collector.push(
                &path,
                &field("source"),
                "a host volume needs a source: the node's host_volume name",
            );
        }
        if volume.per_alloc {
            collector.push(&path, &field("per_alloc"), "per_alloc is not supported by Drover yet");
        }
        for (key, value) in [
            ("access_mode", &volume.access_mode),
            ("attachment_mode", &volume.attachment_mode),
        ] {
            if !value.is_empty() {
                collector.push(
                    &path,
                    &field(key),
                    format!("{key} is for CSI volumes, which Drover does not support"),
                );
            }
        }
    }
    for task in &group.tasks {
        for (idx, mount) in task.volume_mounts.iter().enumerate() {
            if !mount.volume.is_empty() && !group.volumes.contains_key(&mount.volume) {
                collector.push(
                    &path,
                    &format!("task {:?} → volume_mount[{idx}].volume", shorten(&task.name)),
                    format!("the group has no volume {:?}", mount.volume),
                );
            }
        }
    }
    for task in &group.tasks {
        check_task(collector, &path, task);
    }
}

/// Most services one group or task may declare.
pub const MAX_SERVICES: usize = 32;
/// Most checks one service may declare.
pub const MAX_CHECKS: usize = 16;
/// Shortest check interval the client runs.
pub const MIN_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Service options for Consul only (the `nomad` provider has none of them).
const SERVICE_CONSUL_ONLY: &[(&str, &str)] = &[
    ("Connect", "connect"),
    ("Weights", "weights"),
    ("TaggedAddresses", "tagged_addresses"),
    ("EnableTagOverride", "enable_tag_override"),
    ("Identity", "identity"),
    ("Cluster", "cluster"),
    ("Kind", "kind"),
];
/// Check options Drover's checks do not carry out.
const CHECK_UNSUPPORTED: &[(&str, &str, &str)] = &[
    (
        "Expose",
        "expose",
        "expose is for Consul Connect, which Drover does not support",
    ),
    ("Body", "body", "http check bodies are not supported by Drover yet"),
    (
        "GRPCService",
        "grpc_service",
        "grpc checks are not supported by Drover yet",
    ),
    (
        "GRPCUseTLS",
        "grpc_use_tls",
        "grpc checks are not supported by Drover yet",
    ),
    (
        "TLSSkipVerify",
        "tls_skip_verify",
        "https checks are not supported by Drover yet",
    ),
    (
        "TLSServerName",
        "tls_server_name",
        "https checks are not supported by Drover yet",
    ),
    (
        "FailuresBeforeWarning",
        "failures_before_warning",
        "failures_before_warning is not supported by Drover yet",
    ),
];

/// `service` blocks: Drover runs the `nomad` provider, with http and tcp
/// checks on the host address. `tasks` is the group's task names for group
/// services (a check's `task` must name one), `None` for task services.
fn check_services(
    collector: &mut Collector,
    owner_path: &[String],
    services: &[crate::Service],
    tasks: Option<&[&str]>,
) {
    if services.len() > MAX_SERVICES {
        collector.push(
            owner_path,
            "service",
            format!("more than Drover's limit of {MAX_SERVICES} services"),
        );
    }
    for (idx, service) in services.iter().enumerate() {
        let field = |name: &str| format!("service[{idx}].{name}");
        match service.provider.as_str() {
            "" | "nomad" => {}
            "consul" => collector.push(
                owner_path,
                &field("provider"),
                "the consul service provider is not supported by Drover (Consul is not built in): use provider = \"nomad\"",
            ),
            other => collector.push(
                owner_path,
                &field("provider"),
                format!("unknown service provider {other:?}: use nomad"),
            ),
        }
        match service.address_mode.as_str() {
            "" | "auto" | "host" => {}
            "alloc" | "driver" => collector.push(
                owner_path,
                &field("address_mode"),
                format!(
                    "address_mode {:?} is not supported by Drover yet: use auto or host",
                    service.address_mode
                ),
            ),
            other => collector.push(
                owner_path,
                &field("address_mode"),
                format!("unknown address_mode {other:?}: use auto or host"),
            ),
        }
        if !service.address.is_empty() && !matches!(service.address_mode.as_str(), "" | "auto") {
            collector.push(
                owner_path,
                &field("address"),
                "address can only be set with address_mode = \"auto\"",
            );
        }
        if tasks.is_none() && !service.task_name.is_empty() {
            collector.push(owner_path, &field("task"), "task is only for group services");
        }
        if let Some(tasks) = tasks
            && !service.task_name.is_empty()
            && !tasks.contains(&service.task_name.as_str())
        {
            collector.push(
                owner_path,
                &field("task"),
                format!("the group has no task {:?}", service.task_name),
            );
        }
        for (api_name, hcl_name) in SERVICE_CONSUL_ONLY {
            if service.extra.get(*api_name).is_some_and(|value| !is_empty(value)) {
                collector.push(
                    owner_path,
                    &field(hcl_name),
                    format!("{hcl_name} is for the consul provider, which Drover does not support"),
                );
            }
        }
        check_on_update(
            collector,
            owner_path,
            &field("on_update"),
            service.extra.get("OnUpdate"),
        );
        if let Some(meta) = service.extra.get("CanaryMeta").filter(|value| !is_empty(value))
            && !meta
                .as_object()
                .is_some_and(|object| object.values().all(serde_json::Value::is_string))
        {
            collector.push(
                owner_path,
                &field("canary_meta"),
                "canary_meta must map names to strings",
            );
        }
        if let Some(value) = service.extra.get("CheckRestart").filter(|value| !is_empty(value))
            && let Err(error) = crate::service::parse_check_restart(value)
        {
            collector.push(owner_path, &field("check_restart"), error);
        }
        if service.checks.len() > MAX_CHECKS {
            collector.push(
                owner_path,
                &field("check"),
                format!("more than Drover's limit of {MAX_CHECKS} checks"),
            );
        }
        for (check_idx, check) in service.checks.iter().enumerate() {
            let check_field = |name: &str| format!("service[{idx}].check[{check_idx}].{name}");
            match check.check_type.as_str() {
                "http" | "tcp" => {}
                other => collector.push(
                    owner_path,
                    &check_field("type"),
                    format!("{other} checks are not supported by Drover yet: use http or tcp"),
                ),
            }
            if !matches!(check.protocol.as_str(), "" | "http") {
                collector.push(
                    owner_path,
                    &check_field("protocol"),
                    format!("protocol {:?} is not supported by Drover yet: use http", check.protocol),
                );
            }
            if !check.interval.is_zero() && check.interval < MIN_CHECK_INTERVAL {
                collector.push(
                    owner_path,
                    &check_field("interval"),
                    format!(
                        "interval is shorter than Drover's limit of {}ms",
                        MIN_CHECK_INTERVAL.as_millis()
                    ),
                );
            }
            if !matches!(check.initial_status.as_str(), "" | "passing" | "warning" | "critical") {
                collector.push(
                    owner_path,
                    &check_field("initial_status"),
                    format!(
                        "unknown initial_status {:?}: use passing, warning or critical",
                        check.initial_status
                    ),
                );
            }
            if !check.method.is_empty() && !check.method.bytes().all(|byte| byte.is_ascii_uppercase()) {
                collector.push(
                    owner_path,
                    &check_field("method"),
                    format!("method {:?} is not an HTTP method", check.method),
                );
            }
            for (api_name, hcl_name, reason) in CHECK_UNSUPPORTED {
                if check.extra.get(*api_name).is_some_and(|value| !is_empty(value)) {
                    collector.push(owner_path, &check_field(hcl_name), *reason);
                }
            }
            match check.extra.get("AddressMode").and_then(serde_json::Value::as_str) {
                None | Some("" | "host") => {}
                Some(other) => collector.push(
                    owner_path,
                    &check_field("address_mode"),
                    format!("check address_mode {other:?} is not supported by Drover yet: use host"),
                ),
            }
            if let Some(task_name) = check.extra.get("TaskName").and_then(serde_json::Value::as_str)
                && !task_name.is_empty()
            {
                match tasks {
                    None => collector.push(owner_path, &check_field("task"), "task is only for group services"),
                    Some(tasks) if !tasks.contains(&task_name) => collector.push(
                        owner_path,
                        &check_field("task"),
                        format!("the group has no task {task_name:?}"),
                    ),
                    Some(_) => {}
                }
            }
            check_on_update(
                collector,
                owner_path,
                &check_field("on_update"),
                check.extra.get("OnUpdate"),
            );
            if let Some(value) = check.extra.get("CheckRestart").filter(|value| !is_empty(value))
                && let Err(error) = crate::service::parse_check_restart(value)
            {
                collector.push(owner_path, &check_field("check_restart"), error);
            }
            if let Err(error) = crate::service::check_headers(check) {
                collector.push(owner_path, &check_field("header"), error);
            }
            for (api_name, hcl_name) in [
                ("SuccessBeforePassing", "success_before_passing"),
                ("FailuresBeforeCritical", "failures_before_critical"),
            ] {
                if let Err(error) = crate::service::check_count(check, api_name) {
                    collector.push(owner_path, &check_field(hcl_name), error);
                }
            }
        }
    }
}

/// `on_update`: Drover judges deployment health from task states (a group
/// with `health_check = "checks"` and checks is refused), so checks never
/// gate an update and only the default, `require_healthy`, means what it
/// says; the others would be accepted and ignored.
fn check_on_update(collector: &mut Collector, path: &[String], field: &str, value: Option<&serde_json::Value>) {
    match value.and_then(serde_json::Value::as_str) {
        None | Some("" | "require_healthy") => {}
        Some(other @ ("ignore" | "ignore_warnings")) => collector.push(
            path,
            field,
            format!("on_update = {other:?} is not supported by Drover yet: checks do not gate deployments here"),
        ),
        Some(other) => collector.push(
            path,
            field,
            format!("unknown on_update {other:?}: use require_healthy, ignore_warnings or ignore"),
        ),
    }
}

/// Longest `shutdown_delay` Drover waits before stopping a task.
pub const MAX_SHUTDOWN_DELAY: std::time::Duration = std::time::Duration::from_secs(3600);

fn check_shutdown_delay(collector: &mut Collector, path: &[String], delay: Option<std::time::Duration>) {
    if delay.is_some_and(|delay| delay > MAX_SHUTDOWN_DELAY) {
        collector.push(
            path,
            "shutdown_delay",
            format!(
                "shutdown_delay is longer than Drover's limit of {}s",
                MAX_SHUTDOWN_DELAY.as_secs()
            ),
        );
    }
}

/// Most artifacts one task may have.
pub const MAX_ARTIFACTS: usize = 64;

fn check_artifact(collector: &mut Collector, path: &[String], idx: usize, artifact: &Artifact) {
    let field = |name: &str| format!("artifact[{idx}].{name}");
    let source = artifact.source.as_str();
    let lower = source.to_ascii_lowercase();
    if source.is_empty() {
        collector.push(path, &field("source"), "an artifact needs a source");
    } else if let Some((getter, _)) = source.split_once("::") {
        collector.push(
            path,
            &field("source"),
            format!("the {getter:?} getter is not supported by Drover yet: use an http:// or file:// source"),
        );
    } else if lower.starts_with("https://") {
        collector.push(
            path,
            &field("source"),
            "https sources are not supported by Drover yet: use an http:// source with a checksum",
        );
    } else if source.contains("://") && !lower.starts_with("http://") && !lower.starts_with("file://") {
        collector.push(
            path,
            &field("source"),
            format!("source {source:?} has a scheme Drover cannot fetch: use http:// or file://"),
        );
    }
    if !matches!(artifact.mode.as_str(), "" | "any" | "file" | "dir") {
        collector.push(
            path,
            &field("mode"),
            format!("unknown mode {:?}: use any, file or dir", artifact.mode),
        );
    }
    for (key, value) in &artifact.options {
        match key.as_str() {
            "checksum" => {
                let valid = value.split_once(':').is_some_and(|(algorithm, hex)| {
                    let length = match algorithm {
                        "md5" => 32,
                        "sha1" => 40,
                        "sha256" => 64,
                        "sha512" => 128,
                        _ => 0,
                    };
                    // An interpolation is checked on the client.
                    hex.contains("${") || (hex.len() == length && hex.bytes().all(|byte| byte.is_ascii_hexdigit()))
                });
                if !valid && !value.starts_with("${") {
                    collector.push(
                        path,
                        &field("options.checksum"),
                        format!(
                            "checksum {value:?} is not md5, sha1, sha256 or sha512 followed by ':' and its hex digits"
                        ),
                    );
                }
            }
            "archive" => {
                if !matches!(value.as_str(), "true" | "false") {
                    collector.push(path, &field("options.archive"), "archive must be true or false");
                }
            }
            other => collector.push(
                path,
                &field(&format!("options.{other}")),
                format!("artifact option {other:?} is not supported by Drover yet"),
            ),
        }
    }
}

/// Most templates one task may have.
pub const MAX_TEMPLATES: usize = 64;
/// Longest inline template (`data`), as the client renders it.
pub const MAX_TEMPLATE_BYTES: usize = 256 << 10;

fn check_template(collector: &mut Collector, path: &[String], idx: usize, template: &Template) {
    let field = |name: &str| format!("template[{idx}].{name}");
    if template.dest_path.is_empty() {
        collector.push(path, &field("destination"), "a template needs a destination");
    }
    match (template.source_path.is_empty(), template.embedded_tmpl.is_empty()) {
        (true, true) => collector.push(path, &field("data"), "a template needs data or a source"),
        (false, false) => collector.push(path, &field("data"), "a template takes data or a source, not both"),
        _ => {}
    }
    if template.embedded_tmpl.len() > MAX_TEMPLATE_BYTES {
        collector.push(
            path,
            &field("data"),
            format!(
                "template is {} bytes, more than Drover's limit of {MAX_TEMPLATE_BYTES}",
                template.embedded_tmpl.len()
            ),
        );
    }
    match template.change_mode.as_str() {
        "" | "restart" | "noop" => {}
        "signal" => {
            if template.change_signal.is_empty() {
                collector.push(
                    path,
                    &field("change_signal"),
                    "change_mode \"signal\" needs a change_signal",
                );
            }
        }
        "script" => collector.push(
            path,
            &field("change_mode"),
            "change_mode \"script\" is not supported by Drover yet",
        ),
        other => collector.push(
            path,
            &field("change_mode"),
            format!("unknown change_mode {other:?}: use restart, signal or noop"),
        ),
    }
    // The template engine has Go's delimiters only.
    for (name, value, default) in [
        ("left_delimiter", &template.left_delim, "{{"),
        ("right_delimiter", &template.right_delim, "}}"),
    ] {
        if !value.is_empty() && value != default {
            collector.push(
                path,
                &field(name),
                format!("delimiters other than {default:?} are not supported by Drover yet"),
            );
        }
    }
    if !template.perms.is_empty() && u32::from_str_radix(&template.perms, 8).map_or(true, |mode| mode > 0o7777) {
        collector.push(
            path,
            &field("perms"),
            format!("perms {:?} is not an octal file mode", template.perms),
        );
    }
}

fn check_task(collector: &mut Collector, group_path: &[String], task: &Task) {
    let mut path = group_path.to_vec();
    path.push(format!("task {:?}", shorten(&task.name)));
    check_extra(collector, &path, &task.extra, TASK_FIELDS);
    check_shutdown_delay(collector, &path, task.shutdown_delay);
    check_services(collector, &path, &task.services, None);
    if let Some(payload) = &task.dispatch_payload
        && (payload.file.starts_with('/') || payload.file.split('/').any(|part| part == ".."))
    {
        collector.push(
            &path,
            "dispatch_payload.file",
            "file must be a path inside the task's local directory",
        );
    }
    if task.templates.len() > MAX_TEMPLATES {
        collector.push(
            &path,
            "template",
            format!("more than Drover's limit of {MAX_TEMPLATES} templates per task"),
        );
    }
    for (idx, template) in task.templates.iter().enumerate() {
        check_template(collector, &path, idx, template);
    }
    if task.artifacts.len() > MAX_ARTIFACTS {
        collector.push(
            &path,
            "artifact",
            format!("more than Drover's limit of {MAX_ARTIFACTS} artifacts per task"),
        );
    }
    for (idx, artifact) in task.artifacts.iter().enumerate() {
        check_artifact(collector, &path, idx, artifact);
    }
    for (idx, mount) in task.volume_mounts.iter().enumerate() {
        let field = |part: &str| format!("volume_mount[{idx}].{part}");
        if task.driver != "exec" {
            collector.push(
                &path,
                &format!("volume_mount[{idx}]"),
                format!(
                    "volume_mount is not supported by the {:?} driver in Drover yet: only exec mounts host volumes",
                    task.driver
                ),
            );
        }
        if mount.volume.is_empty() {
            collector.push(&path, &field("volume"), "a volume_mount names a group volume");
        }
        let destination = mount.destination.trim_start_matches('/');
        if destination.is_empty() || destination.split('/').any(|part| part == "..") {
            collector.push(
                &path,
                &field("destination"),
                "destination must be a path inside the task",
            );
        }
        if !matches!(mount.propagation_mode.as_str(), "" | "private") {
            collector.push(
                &path,
                &field("propagation_mode"),
                "propagation modes other than private are not supported by Drover yet",
            );
        }
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
    fn services_are_checked_for_what_drover_runs() {
        use crate::{Service, ServiceCheck};
        let mut job = job();
        let check = |check_type: &str| ServiceCheck {
            check_type: check_type.into(),
            path: "/".into(),
            interval: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(1),
            ..ServiceCheck::default()
        };
        job.task_groups[0].services.push(Service {
            name: "web".into(),
            provider: "nomad".into(),
            port_label: "http".into(),
            checks: vec![check("http"), check("tcp")],
            ..Service::default()
        });
        assert_eq!(messages(&job), Vec::<String>::new());
        let mut consul = job.clone();
        consul.task_groups[0].services[0].provider = "consul".into();
        assert!(messages(&consul)[0].contains("service[0].provider: the consul service provider is not supported"));
        let mut script = job.clone();
        script.task_groups[0].services[0].checks.push(check("script"));
        script.task_groups[0].services[0].checks.push(check("grpc"));
        let found = messages(&script);
        assert!(
            found[0].contains("group \"g\" → service[0].check[2].type: script checks are not supported"),
            "{found:?}"
        );
        assert!(found[1].contains("service[0].check[3].type: grpc checks"), "{found:?}");
        let mut connect = job.clone();
        connect.task_groups[0].services[0]
            .extra
            .insert("Connect".into(), serde_json::json!({"SidecarService": {}}));
        connect.task_groups[0].services[0]
            .extra
            .insert("OnUpdate".into(), serde_json::json!("ignore"));
        connect.task_groups[0].services[0].checks[0]
            .extra
            .insert("CheckRestart".into(), serde_json::json!({"Limit": "x"}));
        let found = messages(&connect);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().any(|m| m.contains("service[0].connect")));
        assert!(found.iter().any(|m| m.contains("service[0].on_update")));
        assert!(found.iter().any(|m| m.contains("service[0].check[0].check_restart")));
        let mut task_service = job;
        let service = task_service.task_groups[0].services.remove(0);
        task_service.task_groups[0].tasks[0].services.push(Service {
            address_mode: "driver".into(),
            ..service
        });
        assert!(messages(&task_service)[0].contains("task \"t\" → service[0].address_mode"));
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
        let found = messages(&job);
        // A host volume needs its source; sticky disks are not built.
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().any(|m| m.contains("volume \"data\".source")));
        assert!(found.iter().any(|m| m.contains("ephemeral_disk.sticky")));
    }

    #[test]
    fn host_volumes_and_mounts_are_checked() {
        use crate::VolumeMount;
        let mut job = job();
        job.task_groups[0].volumes.insert(
            "data".into(),
            VolumeRequest {
                name: "data".into(),
                volume_type: "host".into(),
                source: "shared".into(),
                read_only: true,
                ..VolumeRequest::default()
            },
        );
        job.task_groups[0].tasks[0].driver = "exec".into();
        job.task_groups[0].tasks[0].volume_mounts.push(VolumeMount {
            volume: "data".into(),
            destination: "/srv".into(),
            ..VolumeMount::default()
        });
        assert_eq!(messages(&job), Vec::<String>::new());
        let mut raw = job.clone();
        raw.task_groups[0].tasks[0].driver = "raw_exec".into();
        assert!(messages(&raw)[0].contains("not supported by the \"raw_exec\" driver"));
        let mut csi = job.clone();
        if let Some(volume) = csi.task_groups[0].volumes.get_mut("data") {
            volume.volume_type = "csi".into();
        }
        assert!(messages(&csi)[0].contains("CSI volumes are not supported"));
        let mut unknown = job.clone();
        unknown.task_groups[0].tasks[0].volume_mounts[0].volume = "nope".into();
        assert!(messages(&unknown)[0].contains("the group has no volume \"nope\""));
        let mut climbing = job;
        climbing.task_groups[0].tasks[0].volume_mounts[0].destination = "../../etc".into();
        assert!(messages(&climbing)[0].contains("volume_mount[0].destination"));
    }

    #[test]
    fn artifacts_are_checked_field_by_field() {
        let good = Artifact {
            source: "http://example.com/app.tar.gz".into(),
            options: [("checksum".to_string(), format!("sha256:{}", "a".repeat(64)))].into(),
            ..Artifact::default()
        };
        let mut job = job();
        job.task_groups[0].tasks[0].artifacts.push(good.clone());
        job.task_groups[0].tasks[0].artifacts.push(Artifact {
            source: "../alloc/data.zip".into(),
            mode: "dir".into(),
            ..Artifact::default()
        });
        assert_eq!(messages(&job), Vec::<String>::new());
        let bad = [
            (
                Artifact {
                    source: "git::https://example.com/repo".into(),
                    ..good.clone()
                },
                "\"git\" getter",
            ),
            (
                Artifact {
                    source: "https://example.com/x".into(),
                    ..good.clone()
                },
                "https sources",
            ),
            (
                Artifact {
                    source: "s3://bucket/x".into(),
                    ..good.clone()
                },
                "scheme Drover cannot fetch",
            ),
            (
                Artifact {
                    source: String::new(),
                    ..good.clone()
                },
                "needs a source",
            ),
            (
                Artifact {
                    mode: "tree".into(),
                    ..good.clone()
                },
                "artifact[0].mode",
            ),
            (
                Artifact {
                    options: [("checksum".to_string(), "sha256:xyz".to_string())].into(),
                    ..good.clone()
                },
                "artifact[0].options.checksum",
            ),
            (
                Artifact {
                    options: [("depth".to_string(), "1".to_string())].into(),
                    ..good.clone()
                },
                "artifact[0].options.depth",
            ),
        ];
        for (artifact, expected) in bad {
            let mut job = self::job();
            job.task_groups[0].tasks[0].artifacts.push(artifact);
            let found = messages(&job);
            assert!(found.len() == 1 && found[0].contains(expected), "{expected}: {found:?}");
        }
    }

    #[test]
    fn templates_are_checked_field_by_field() {
        let good = Template {
            embedded_tmpl: "x={{ env \"A\" }}".into(),
            dest_path: "local/x".into(),
            change_mode: "signal".into(),
            change_signal: "SIGHUP".into(),
            perms: "0640".into(),
            ..Template::default()
        };
        let mut job = job();
        job.task_groups[0].tasks[0].templates.push(good.clone());
        assert_eq!(messages(&job), Vec::<String>::new());
        let bad = [
            (
                Template {
                    change_mode: "script".into(),
                    ..good.clone()
                },
                "template[0].change_mode: change_mode \"script\" is not supported",
            ),
            (
                Template {
                    change_mode: "reload".into(),
                    ..good.clone()
                },
                "unknown change_mode",
            ),
            (
                Template {
                    change_signal: String::new(),
                    ..good.clone()
                },
                "template[0].change_signal",
            ),
            (
                Template {
                    left_delim: "[[".into(),
                    ..good.clone()
                },
                "template[0].left_delimiter",
            ),
            (
                Template {
                    dest_path: String::new(),
                    ..good.clone()
                },
                "template[0].destination",
            ),
            (
                Template {
                    source_path: "local/x.tpl".into(),
                    ..good.clone()
                },
                "not both",
            ),
            (
                Template {
                    embedded_tmpl: String::new(),
                    ..good.clone()
                },
                "needs data or a source",
            ),
            (
                Template {
                    perms: "rw".into(),
                    ..good.clone()
                },
                "template[0].perms",
            ),
            (
                Template {
                    embedded_tmpl: "x".repeat(MAX_TEMPLATE_BYTES + 1),
                    ..good.clone()
                },
                "more than Drover's limit",
            ),
        ];
        for (template, expected) in bad {
            let mut job = self::job();
            job.task_groups[0].tasks[0].templates.push(template);
            let found = messages(&job);
            assert!(found.len() == 1 && found[0].contains(expected), "{expected}: {found:?}");
        }
        let mut job = self::job();
        job.task_groups[0].tasks[0].templates = vec![good; MAX_TEMPLATES + 1];
        assert!(messages(&job)[0].contains("templates per task"));
    }
}
