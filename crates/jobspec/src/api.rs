//! Nomad's API JSON job (PascalCase fields, durations as nanoseconds) to and
//! from `types::Job`. Both the JSON route and the HCL route end here, so the
//! same job gives the same value whichever way it was written. Defaults that
//! Nomad's API applies to a partly filled block (an `update` with only
//! `max_parallel`, a `restart` with only `attempts`) are applied here, and
//! only to fields that are absent.
//!
//! Problems name their field with the HCL spelling (`group "api" → count`)
//! so one span map serves both routes.

use crate::json_locate::{self, Locator};
use base64::Engine;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use types::{
    Affinity, Artifact, Constraint, DisconnectStrategy, DispatchPayload, DnsConfig, EphemeralDisk, Job, JobStatus,
    JobType, Lifecycle, LogConfig, MigrateStrategy, NetworkResource, ParameterizedConfig, PeriodicConfig, Port,
    RequestedDevice, ReschedulePolicy, Resources, RestartMode, RestartPolicy, ScalingPolicy, Service, ServiceCheck,
    Spread, SpreadTarget, Task, TaskGroup, Template, UpdateStrategy, VolumeMount, VolumeRequest,
};

/// A problem found while reading API JSON: a field path and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub path: String,
    pub message: String,
}

/// One JSON object being read, with its path for messages and, on the JSON
/// route, its JSON pointer and the locator that turns paths into spans.
struct Obj<'v> {
    map: &'v Map<String, Value>,
    seg: String,
    dotted: String,
    ptr: String,
    loc: Option<&'v Locator>,
}

impl<'v> Obj<'v> {
    fn field(&self, name: &str) -> String {
        if self.dotted.is_empty() {
            format!("{} → {name}", self.seg)
        } else {
            format!("{} → {}.{name}", self.seg, self.dotted)
        }
    }

    /// The path of this object itself.
    fn here(&self) -> String {
        if self.dotted.is_empty() {
            self.seg.clone()
        } else {
            format!("{} → {}", self.seg, self.dotted)
        }
    }

    /// The key as written: exactly, else case-insensitively as Go's decoder does.
    fn actual_key(&self, key: &str) -> Option<&'v str> {
        if let Some((found, _)) = self.map.get_key_value(key) {
            return Some(found.as_str());
        }
        self.map
            .keys()
            .find(|candidate| candidate.eq_ignore_ascii_case(key))
            .map(String::as_str)
    }

    /// The JSON pointer of a key of this object.
    fn pointer(&self, key: &str) -> String {
        json_locate::child(&self.ptr, self.actual_key(key).unwrap_or(key))
    }

    /// Looks a key up exactly, then case-insensitively as Go's decoder does.
    /// A JSON null counts as absent.
    fn get(&self, key: &str) -> Option<&'v Value> {
        let value = self.map.get(self.actual_key(key)?)?;
        if value.is_null() { None } else { Some(value) }
    }

    /// Like [`Obj::get`], and records where the field `name` is written,
    /// or, when it is absent, this object (where a missing field belongs).
    fn get_named(&self, key: &str, name: &str) -> Option<&'v Value> {
        if let Some(loc) = self.loc {
            let pointer = if self.actual_key(key).is_some() {
                self.pointer(key)
            } else {
                self.ptr.clone()
            };
            loc.record(&self.field(name), &pointer);
        }
        self.get(key)
    }

    /// Records where this object itself is written.
    fn mark_here(&self) {
        if let Some(loc) = self.loc {
            loc.record(&self.here(), &self.ptr);
        }
    }

    /// A new labelled segment (`group "api"`) over the same JSON object.
    fn segment(&self, seg: String) -> Obj<'v> {
        let obj = Obj {
            map: self.map,
            seg,
            dotted: String::new(),
            ptr: self.ptr.clone(),
            loc: self.loc,
        };
        obj.mark_here();
        obj
    }

    fn problem(&self, out: &mut Vec<Problem>, name: &str, message: String) {
        out.push(Problem {
            path: self.field(name),
            message,
        });
    }

    fn string(&self, out: &mut Vec<Problem>, key: &str, name: &str) -> Option<String> {
        match self.get_named(key, name)? {
            Value::String(text) => Some(text.clone()),
            other => {
                self.problem(out, name, format!("{name} must be a string, not {}", json_type(other)));
                None
            }
        }
    }

    fn int(&self, out: &mut Vec<Problem>, key: &str, name: &str, min: i64, max: i64) -> Option<i64> {
        let value = self.get_named(key, name)?;
        let number = match value {
            Value::Number(number) => number.as_i64().or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                    .map(|f| f as i64)
            }),
            _ => None,
        };
        match number {
            Some(number) if (min..=max).contains(&number) => Some(number),
            Some(number) => {
                self.problem(
                    out,
                    name,
                    format!("{name} must be between {min} and {max}, not {number}"),
                );
                None
            }
            None => {
                self.problem(
                    out,
                    name,
                    format!("{name} must be a whole number, not {}", json_type(value)),
                );
                None
            }
        }
    }

    fn u32(&self, out: &mut Vec<Problem>, key: &str, name: &str) -> Option<u32> {
        self.int(out, key, name, 0, i64::from(u32::MAX))
            .map(|number| number as u32)
    }

    fn bool(&self, out: &mut Vec<Problem>, key: &str, name: &str) -> Option<bool> {
        match self.get_named(key, name)? {
            Value::Bool(flag) => Some(*flag),
            other => {
                self.problem(out, name, format!("{name} must be a bool, not {}", json_type(other)));
                None
            }
        }
    }

    /// Nanoseconds; negative values are rejected.
    fn duration(&self, out: &mut Vec<Problem>, key: &str, name: &str) -> Option<Duration> {
        self.int(out, key, name, 0, i64::MAX)
            .map(|nanos| Duration::from_nanos(nanos as u64))
    }

    fn strings(&self, out: &mut Vec<Problem>, key: &str, name: &str) -> Option<Vec<String>> {
        match self.get_named(key, name)? {
            Value::Array(items) => {
                let mut list = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(text) => list.push(text.clone()),
                        other => {
                            self.problem(out, name, format!("{name} must hold strings, not {}", json_type(other)));
                            return None;
                        }
                    }
                }
                Some(list)
            }
            other => {
                self.problem(
                    out,
                    name,
                    format!("{name} must be a list of strings, not {}", json_type(other)),
                );
                None
            }
        }
    }

    fn string_map(&self, out: &mut Vec<Problem>, key: &str, name: &str) -> Option<BTreeMap<String, String>> {
        match self.get_named(key, name)? {
            Value::Object(map) => {
                let mut result = BTreeMap::new();
                for (map_key, item) in map {
                    match item {
                        Value::String(text) => {
                            result.insert(map_key.clone(), text.clone());
                        }
                        other => {
                            self.problem(
                                out,
                                name,
                                format!("{name}.{map_key} must be a string, not {}", json_type(other)),
                            );
                        }
                    }
                }
                Some(result)
            }
            other => {
                self.problem(
                    out,
                    name,
                    format!("{name} must be a map of strings, not {}", json_type(other)),
                );
                None
            }
        }
    }

    fn object(&self, out: &mut Vec<Problem>, key: &str, name: &str) -> Option<Obj<'v>> {
        match self.get_named(key, name)? {
            Value::Object(map) => Some(Obj {
                map,
                seg: self.seg.clone(),
                dotted: if self.dotted.is_empty() {
                    name.to_string()
                } else {
                    format!("{}.{name}", self.dotted)
                },
                ptr: self.pointer(key),
                loc: self.loc,
            }),
            other => {
                self.problem(out, name, format!("{name} must be an object, not {}", json_type(other)));
                None
            }
        }
    }

    /// A list of objects; each element is named by `element(idx, obj)`.
    fn list(
        &self,
        out: &mut Vec<Problem>,
        key: &str,
        name: &str,
        element: &dyn Fn(usize, &Map<String, Value>) -> String,
    ) -> Vec<Obj<'v>> {
        let Some(value) = self.get_named(key, name) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            self.problem(out, name, format!("{name} must be a list, not {}", json_type(value)));
            return Vec::new();
        };
        let mut objects = Vec::new();
        for (idx, item) in items.iter().enumerate() {
            match item {
                Value::Object(map) => {
                    let label = element(idx, map);
                    let obj = Obj {
                        map,
                        seg: self.seg.clone(),
                        dotted: if self.dotted.is_empty() {
                            label
                        } else {
                            format!("{}.{label}", self.dotted)
                        },
                        ptr: json_locate::child(&self.pointer(key), &idx.to_string()),
                        loc: self.loc,
                    };
                    obj.mark_here();
                    objects.push(obj);
                }
                other => {
                    if let Some(loc) = self.loc {
                        let pointer = json_locate::child(&self.pointer(key), &idx.to_string());
                        loc.record(&self.field(&format!("{name}[{idx}]")), &pointer);
                    }
                    self.problem(
                        out,
                        &format!("{name}[{idx}]"),
                        format!("{name} must hold objects, not {}", json_type(other)),
                    )
                }
            }
        }
        objects
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn indexed(name: &'static str) -> impl Fn(usize, &Map<String, Value>) -> String {
    move |idx, _| format!("{name}[{idx}]")
}

fn name_of(map: &Map<String, Value>, key: &str) -> String {
    map.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Reads an API job (`{"Job": {…}}` or the bare job) into a `types::Job`.
/// The result is not canonicalized. Problems come with the job decoded as
/// far as it could be, so validation can still report what else is wrong.
pub(crate) fn job_from_api(value: &Value) -> (Job, Vec<Problem>) {
    job_from_api_located(value, None)
}

/// [`job_from_api`] that also records, through `loc`, where in the JSON text
/// each field it reads is written.
pub(crate) fn job_from_api_located(value: &Value, loc: Option<&Locator>) -> (Job, Vec<Problem>) {
    let mut problems = Vec::new();
    if let Some(loc) = loc {
        loc.record("", "");
    }
    let Value::Object(outer) = value else {
        let problem = Problem {
            path: String::new(),
            message: format!("a job must be a JSON object, not {}", json_type(value)),
        };
        return (Job::default(), vec![problem]);
    };
    let (map, root) = match outer.get("Job") {
        Some(Value::Object(inner)) => (inner, "/Job"),
        Some(other) => {
            if let Some(loc) = loc {
                loc.record("Job", "/Job");
            }
            let problem = Problem {
                path: "Job".into(),
                message: format!("Job must be an object, not {}", json_type(other)),
            };
            return (Job::default(), vec![problem]);
        }
        None => (outer, ""),
    };
    let id = map
        .get("ID")
        .or_else(|| map.get("Id"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let o = Obj {
        map,
        seg: format!("job {id:?}"),
        dotted: String::new(),
        ptr: root.to_string(),
        loc,
    };
    o.mark_here();
    o.get_named("ID", "id");
    let p = &mut problems;
    let mut job = Job {
        id: id.clone(),
        ..Job::default()
    };
    if let Some(text) = o.string(p, "Type", "type") {
        match JobType::parse(&text) {
            Some(job_type) => job.job_type = job_type,
            None => o.problem(
                p,
                "type",
                format!("unknown job type {text:?}; use service, batch, system or sysbatch"),
            ),
        }
    }
    let job_type = job.job_type;
    if let Some(name) = o.string(p, "Name", "name") {
        job.name = name;
    }
    if let Some(namespace) = o.string(p, "Namespace", "namespace") {
        job.namespace = namespace;
    }
    if let Some(region) = o.string(p, "Region", "region") {
        job.region = region;
    }
    if let Some(pool) = o.string(p, "NodePool", "node_pool") {
        job.node_pool = pool;
    }
    if let Some(datacenters) = o.strings(p, "Datacenters", "datacenters") {
        job.datacenters = datacenters;
    }
    if let Some(priority) = o.int(p, "Priority", "priority", i64::from(i32::MIN), i64::from(i32::MAX)) {
        job.priority = priority as i32;
    }
    job.all_at_once = o.bool(p, "AllAtOnce", "all_at_once").unwrap_or(false);
    job.constraints = constraints(&o, p);
    job.affinities = affinities(&o, p);
    job.spreads = spreads(&o, p);
    job.meta = o.string_map(p, "Meta", "meta").unwrap_or_default();
    job.update = o
        .object(p, "Update", "update")
        .map(|u| update(&u, p, UpdateStrategy::default()));
    let job_reschedule = o
        .object(p, "Reschedule", "reschedule")
        .map(|r| reschedule(&r, p, ReschedulePolicy::default_for(job_type).unwrap_or_default()));
    let job_migrate = o
        .object(p, "Migrate", "migrate")
        .map(|m| migrate(&m, p, MigrateStrategy::default()));
    job.periodic = o.object(p, "Periodic", "periodic").map(|periodic_obj| {
        let mut periodic = PeriodicConfig::default();
        if let Some(enabled) = periodic_obj.bool(p, "Enabled", "enabled") {
            periodic.enabled = enabled;
        }
        match periodic_obj.strings(p, "Specs", "crons") {
            Some(specs) => periodic.specs = specs,
            None => {
                if let Some(spec) = periodic_obj.string(p, "Spec", "cron")
                    && !spec.is_empty()
                {
                    periodic.specs = vec![spec];
                }
            }
        }
        if let Some(spec_type) = periodic_obj.string(p, "SpecType", "spec_type") {
            periodic.spec_type = spec_type;
        }
        if let Some(flag) = periodic_obj.bool(p, "ProhibitOverlap", "prohibit_overlap") {
            periodic.prohibit_overlap = flag;
        }
        if let Some(zone) = periodic_obj.string(p, "TimeZone", "time_zone") {
            periodic.time_zone = zone;
        }
        if let Some(cap) = periodic_obj.u32(p, "MaxConcurrent", "max_concurrent") {
            periodic.max_concurrent = cap;
        }
        periodic
    });
    job.parameterized = o.object(p, "ParameterizedJob", "parameterized").map(|param_obj| {
        let mut param = ParameterizedConfig::default();
        if let Some(payload) = param_obj.string(p, "Payload", "payload") {
            param.payload = payload;
        }
        param.meta_required = param_obj
            .strings(p, "MetaRequired", "meta_required")
            .unwrap_or_default();
        param.meta_optional = param_obj
            .strings(p, "MetaOptional", "meta_optional")
            .unwrap_or_default();
        if let Some(cap) = param_obj.u32(p, "MaxConcurrent", "max_concurrent") {
            param.max_concurrent = cap;
        }
        param
    });
    job.ui = o.get("UI").cloned();
    job.parent_id = o.string(p, "ParentID", "parent_id").unwrap_or_default();
    job.dispatched = o.bool(p, "Dispatched", "dispatched").unwrap_or(false);
    if let Some(payload) = o.string(p, "Payload", "payload") {
        match base64::engine::general_purpose::STANDARD.decode(payload.as_bytes()) {
            Ok(bytes) => job.payload = bytes,
            Err(err) => o.problem(p, "payload", format!("payload must be base64: {err}")),
        }
    }
    job.stop = o.bool(p, "Stop", "stop").unwrap_or(false);
    if let Some(status) = o.string(p, "Status", "status") {
        job.status = match status.as_str() {
            "running" => JobStatus::Running,
            "dead" => JobStatus::Dead,
            _ => JobStatus::Pending,
        };
    }
    job.status_description = o
        .string(p, "StatusDescription", "status_description")
        .unwrap_or_default();
    job.stable = o.bool(p, "Stable", "stable").unwrap_or(false);
    job.version = o.int(p, "Version", "version", 0, i64::MAX).unwrap_or(0) as u64;
    job.submit_time = o.int(p, "SubmitTime", "submit_time", i64::MIN, i64::MAX).unwrap_or(0);
    job.create_index = o.int(p, "CreateIndex", "create_index", 0, i64::MAX).unwrap_or(0) as u64;
    job.modify_index = o.int(p, "ModifyIndex", "modify_index", 0, i64::MAX).unwrap_or(0) as u64;
    job.job_modify_index = o.int(p, "JobModifyIndex", "job_modify_index", 0, i64::MAX).unwrap_or(0) as u64;
    for key in JOB_EXTRA {
        if let Some(value) = o.get(key) {
            job.extra.insert((*key).to_string(), value.clone());
        }
    }
    let defaults = GroupDefaults {
        job_type,
        update: job.update.clone(),
        reschedule: job_reschedule,
        migrate: job_migrate,
    };
    if let Some(Value::Array(_)) = o.get_named("TaskGroups", "group") {
        for group_obj in o.list(p, "TaskGroups", "group", &|idx, _| format!("group[{idx}]")) {
            let name = name_of(group_obj.map, "Name");
            let group_obj = group_obj.segment(format!("{} → group {name:?}", o.seg));
            group_obj.get_named("Name", "name");
            job.task_groups.push(task_group(&group_obj, p, &defaults, name));
        }
    } else if let Some(other) = o.get("TaskGroups") {
        o.problem(
            p,
            "group",
            format!("TaskGroups must be a list, not {}", json_type(other)),
        );
    }
    (job, problems)
}

/// API fields kept opaque in `Job::extra`.
const JOB_EXTRA: &[&str] = &["Vault", "Consul", "Multiregion", "VaultToken", "ConsulToken"];
/// API fields kept opaque in `TaskGroup::extra`.
const GROUP_EXTRA: &[&str] = &["Consul", "PreventRescheduleOnLost"];
/// API fields kept opaque in `Task::extra`.
const TASK_EXTRA: &[&str] = &[
    "Vault",
    "Consul",
    "Identity",
    "Identities",
    "CSIPluginConfig",
    "ScalingPolicies",
    "Actions",
    "Schedule",
    "Kind",
];

struct GroupDefaults {
    job_type: JobType,
    update: Option<UpdateStrategy>,
    reschedule: Option<ReschedulePolicy>,
    migrate: Option<MigrateStrategy>,
}

fn constraints(o: &Obj, p: &mut Vec<Problem>) -> Vec<Constraint> {
    o.list(p, "Constraints", "constraint", &indexed("constraint"))
        .into_iter()
        .map(|c| Constraint {
            ltarget: c.string(p, "LTarget", "attribute").unwrap_or_default(),
            rtarget: c.string(p, "RTarget", "value").unwrap_or_default(),
            operand: c
                .string(p, "Operand", "operator")
                .unwrap_or_else(|| Constraint::DEFAULT_OPERAND.to_string()),
        })
        .collect()
}

fn affinities(o: &Obj, p: &mut Vec<Problem>) -> Vec<Affinity> {
    o.list(p, "Affinities", "affinity", &indexed("affinity"))
        .into_iter()
        .map(|a| Affinity {
            ltarget: a.string(p, "LTarget", "attribute").unwrap_or_default(),
            rtarget: a.string(p, "RTarget", "value").unwrap_or_default(),
            operand: a
                .string(p, "Operand", "operator")
                .unwrap_or_else(|| Constraint::DEFAULT_OPERAND.to_string()),
            weight: a.int(p, "Weight", "weight", -100, 100).unwrap_or(50) as i8,
        })
        .collect()
}

fn spreads(o: &Obj, p: &mut Vec<Problem>) -> Vec<Spread> {
    o.list(p, "Spreads", "spread", &indexed("spread"))
        .into_iter()
        .map(|s| Spread {
            attribute: s.string(p, "Attribute", "attribute").unwrap_or_default(),
            weight: s.int(p, "Weight", "weight", -100, 100).unwrap_or(0) as i8,
            targets: s
                .list(p, "SpreadTarget", "target", &|_, map| {
                    format!("target {:?}", name_of(map, "Value"))
                })
                .into_iter()
                .map(|t| SpreadTarget {
                    value: t.string(p, "Value", "value").unwrap_or_default(),
                    percent: t.int(p, "Percent", "percent", 0, 100).unwrap_or(0) as u8,
                })
                .collect(),
        })
        .collect()
}

fn update(u: &Obj, p: &mut Vec<Problem>, base: UpdateStrategy) -> UpdateStrategy {
    UpdateStrategy {
        stagger: u.duration(p, "Stagger", "stagger").unwrap_or(base.stagger),
        max_parallel: u.u32(p, "MaxParallel", "max_parallel").unwrap_or(base.max_parallel),
        health_check: u.string(p, "HealthCheck", "health_check").unwrap_or(base.health_check),
        min_healthy_time: u
            .duration(p, "MinHealthyTime", "min_healthy_time")
            .unwrap_or(base.min_healthy_time),
        healthy_deadline: u
            .duration(p, "HealthyDeadline", "healthy_deadline")
            .unwrap_or(base.healthy_deadline),
        progress_deadline: u
            .duration(p, "ProgressDeadline", "progress_deadline")
            .unwrap_or(base.progress_deadline),
        auto_revert: u.bool(p, "AutoRevert", "auto_revert").unwrap_or(base.auto_revert),
        auto_promote: u.bool(p, "AutoPromote", "auto_promote").unwrap_or(base.auto_promote),
        canary: u.u32(p, "Canary", "canary").unwrap_or(base.canary),
    }
}

fn migrate(m: &Obj, p: &mut Vec<Problem>, base: MigrateStrategy) -> MigrateStrategy {
    MigrateStrategy {
        max_parallel: m.u32(p, "MaxParallel", "max_parallel").unwrap_or(base.max_parallel),
        health_check: m.string(p, "HealthCheck", "health_check").unwrap_or(base.health_check),
        min_healthy_time: m
            .duration(p, "MinHealthyTime", "min_healthy_time")
            .unwrap_or(base.min_healthy_time),
        healthy_deadline: m
            .duration(p, "HealthyDeadline", "healthy_deadline")
            .unwrap_or(base.healthy_deadline),
    }
}

fn restart(r: &Obj, p: &mut Vec<Problem>, base: RestartPolicy) -> RestartPolicy {
    let mode = match r.string(p, "Mode", "mode") {
        None => base.mode,
        Some(text) => match text.as_str() {
            "delay" => RestartMode::Delay,
            "fail" => RestartMode::Fail,
            other => {
                r.problem(
                    p,
                    "mode",
                    format!("restart mode must be \"delay\" or \"fail\", not {other:?}"),
                );
                base.mode
            }
        },
    };
    RestartPolicy {
        attempts: r.u32(p, "Attempts", "attempts").unwrap_or(base.attempts),
        interval: r.duration(p, "Interval", "interval").unwrap_or(base.interval),
        delay: r.duration(p, "Delay", "delay").unwrap_or(base.delay),
        mode,
        render_templates: r
            .bool(p, "RenderTemplates", "render_templates")
            .unwrap_or(base.render_templates),
    }
}

fn reschedule(r: &Obj, p: &mut Vec<Problem>, base: ReschedulePolicy) -> ReschedulePolicy {
    ReschedulePolicy {
        attempts: r.u32(p, "Attempts", "attempts").unwrap_or(base.attempts),
        interval: r.duration(p, "Interval", "interval").unwrap_or(base.interval),
        delay: r.duration(p, "Delay", "delay").unwrap_or(base.delay),
        delay_function: r
            .string(p, "DelayFunction", "delay_function")
            .unwrap_or(base.delay_function),
        max_delay: r.duration(p, "MaxDelay", "max_delay").unwrap_or(base.max_delay),
        unlimited: r.bool(p, "Unlimited", "unlimited").unwrap_or(base.unlimited),
    }
}

fn networks(o: &Obj, p: &mut Vec<Problem>) -> Vec<NetworkResource> {
    o.list(p, "Networks", "network", &|_, _| "network".to_string())
        .into_iter()
        .map(|n| {
            let ports = |key: &str, p: &mut Vec<Problem>| -> Vec<Port> {
                n.list(p, key, "port", &|_, map| format!("port {:?}", name_of(map, "Label")))
                    .into_iter()
                    .map(|port| Port {
                        label: port.string(p, "Label", "label").unwrap_or_default(),
                        value: port.int(p, "Value", "static", 0, 65535).unwrap_or(0) as u16,
                        to: port
                            .int(p, "To", "to", i64::from(i32::MIN), i64::from(i32::MAX))
                            .unwrap_or(0) as i32,
                        host_network: port.string(p, "HostNetwork", "host_network").unwrap_or_default(),
                    })
                    .collect()
            };
            NetworkResource {
                mode: n.string(p, "Mode", "mode").unwrap_or_default(),
                device: n.string(p, "Device", "device").unwrap_or_default(),
                ip: n.string(p, "IP", "ip").unwrap_or_default(),
                hostname: n.string(p, "Hostname", "hostname").unwrap_or_default(),
                mbits: n.int(p, "MBits", "mbits", 0, i64::MAX).unwrap_or(0),
                dns: n.object(p, "DNS", "dns").map(|dns| DnsConfig {
                    servers: dns.strings(p, "Servers", "servers").unwrap_or_default(),
                    searches: dns.strings(p, "Searches", "searches").unwrap_or_default(),
                    options: dns.strings(p, "Options", "options").unwrap_or_default(),
                }),
                reserved_ports: ports("ReservedPorts", p),
                dynamic_ports: ports("DynamicPorts", p),
            }
        })
        .collect()
}

fn services(o: &Obj, p: &mut Vec<Problem>) -> Vec<Service> {
    o.list(p, "Services", "service", &indexed("service"))
        .into_iter()
        .map(|s| Service {
            name: s.string(p, "Name", "name").unwrap_or_default(),
            port_label: s.string(p, "PortLabel", "port").unwrap_or_default(),
            provider: s
                .string(p, "Provider", "provider")
                .unwrap_or_else(|| "nomad".to_string()),
            tags: s.strings(p, "Tags", "tags").unwrap_or_default(),
            canary_tags: s.strings(p, "CanaryTags", "canary_tags").unwrap_or_default(),
            address_mode: s
                .string(p, "AddressMode", "address_mode")
                .unwrap_or_else(|| "auto".to_string()),
            address: s.string(p, "Address", "address").unwrap_or_default(),
            task_name: s.string(p, "TaskName", "task").unwrap_or_default(),
            meta: s.string_map(p, "Meta", "meta").unwrap_or_default(),
            checks: s
                .list(p, "Checks", "check", &indexed("check"))
                .into_iter()
                .map(|c| ServiceCheck {
                    name: c.string(p, "Name", "name").unwrap_or_default(),
                    check_type: c.string(p, "Type", "type").unwrap_or_default(),
                    command: c.string(p, "Command", "command").unwrap_or_default(),
                    args: c.strings(p, "Args", "args").unwrap_or_default(),
                    path: c.string(p, "Path", "path").unwrap_or_default(),
                    protocol: c.string(p, "Protocol", "protocol").unwrap_or_default(),
                    port_label: c.string(p, "PortLabel", "port").unwrap_or_default(),
                    method: c.string(p, "Method", "method").unwrap_or_default(),
                    interval: c.duration(p, "Interval", "interval").unwrap_or_default(),
                    timeout: c.duration(p, "Timeout", "timeout").unwrap_or_default(),
                    initial_status: c.string(p, "InitialStatus", "initial_status").unwrap_or_default(),
                    extra: extras(&c, CHECK_EXTRA),
                })
                .collect(),
            extra: extras(&s, SERVICE_EXTRA),
        })
        .collect()
}

/// API fields kept opaque in `Service::extra`.
const SERVICE_EXTRA: &[&str] = &[
    "Connect",
    "CheckRestart",
    "Weights",
    "TaggedAddresses",
    "EnableTagOverride",
    "OnUpdate",
    "CanaryMeta",
    "Identity",
    "Cluster",
    "Kind",
];
/// API fields kept opaque in `ServiceCheck::extra`.
const CHECK_EXTRA: &[&str] = &[
    "AddressMode",
    "TaskName",
    "Header",
    "Body",
    "Notes",
    "Expose",
    "GRPCService",
    "GRPCUseTLS",
    "TLSSkipVerify",
    "TLSServerName",
    "SuccessBeforePassing",
    "FailuresBeforeCritical",
    "FailuresBeforeWarning",
    "CheckRestart",
    "OnUpdate",
];

fn extras(o: &Obj, keys: &[&str]) -> BTreeMap<String, Value> {
    keys.iter()
        .filter_map(|key| o.get(key).map(|value| ((*key).to_string(), value.clone())))
        .collect()
}

fn task_group(o: &Obj, p: &mut Vec<Problem>, defaults: &GroupDefaults, name: String) -> TaskGroup {
    let mut group = TaskGroup {
        name,
        ..TaskGroup::default()
    };
    let restart_base = RestartPolicy::default_for(defaults.job_type);
    group.restart_policy = o
        .object(p, "RestartPolicy", "restart")
        .map(|r| restart(&r, p, restart_base.clone()));
    let reschedule_base = defaults
        .reschedule
        .clone()
        .or_else(|| ReschedulePolicy::default_for(defaults.job_type))
        .unwrap_or_default();
    group.reschedule_policy = match o.object(p, "ReschedulePolicy", "reschedule") {
        Some(r) => Some(reschedule(&r, p, reschedule_base)),
        None => defaults.reschedule.clone(),
    };
    let update_base = defaults.update.clone().unwrap_or_default();
    group.update = match o.object(p, "Update", "update") {
        Some(u) => Some(update(&u, p, update_base)),
        None => defaults.update.clone(),
    };
    group.migrate = match o.object(p, "Migrate", "migrate") {
        Some(m) => Some(migrate(&m, p, defaults.migrate.clone().unwrap_or_default())),
        None => defaults.migrate.clone(),
    };
    group.constraints = constraints(o, p);
    group.affinities = affinities(o, p);
    group.spreads = spreads(o, p);
    if let Some(disk) = o.object(p, "EphemeralDisk", "ephemeral_disk") {
        let base = EphemeralDisk::default();
        group.ephemeral_disk = EphemeralDisk {
            sticky: disk.bool(p, "Sticky", "sticky").unwrap_or(base.sticky),
            migrate: disk.bool(p, "Migrate", "migrate").unwrap_or(base.migrate),
            size_mb: disk.int(p, "SizeMB", "size", 0, i64::MAX).unwrap_or(base.size_mb),
        };
    }
    group.networks = networks(o, p);
    group.services = services(o, p);
    if let Some(volumes) = o.get_named("Volumes", "volume") {
        match volumes {
            Value::Object(map) => {
                for (name, volume) in map {
                    let Value::Object(volume_map) = volume else {
                        o.problem(p, &format!("volume {name:?}"), "a volume must be an object".to_string());
                        continue;
                    };
                    let v = Obj {
                        map: volume_map,
                        seg: o.seg.clone(),
                        dotted: format!("volume {name:?}"),
                        ptr: json_locate::child(&o.pointer("Volumes"), name),
                        loc: o.loc,
                    };
                    v.mark_here();
                    group.volumes.insert(
                        name.clone(),
                        VolumeRequest {
                            name: v.string(p, "Name", "name").unwrap_or_else(|| name.clone()),
                            volume_type: v.string(p, "Type", "type").unwrap_or_default(),
                            source: v.string(p, "Source", "source").unwrap_or_default(),
                            read_only: v.bool(p, "ReadOnly", "read_only").unwrap_or(false),
                            access_mode: v.string(p, "AccessMode", "access_mode").unwrap_or_default(),
                            attachment_mode: v.string(p, "AttachmentMode", "attachment_mode").unwrap_or_default(),
                            per_alloc: v.bool(p, "PerAlloc", "per_alloc").unwrap_or(false),
                        },
                    );
                }
            }
            other => o.problem(
                p,
                "volume",
                format!("Volumes must be an object, not {}", json_type(other)),
            ),
        }
    }
    group.scaling = o.object(p, "Scaling", "scaling").map(|s| ScalingPolicy {
        min: s.int(p, "Min", "min", 0, i64::MAX).map(|min| min as u64),
        max: s.int(p, "Max", "max", 0, i64::MAX).unwrap_or(0) as u64,
        enabled: s.bool(p, "Enabled", "enabled").unwrap_or(true),
        policy: s.get("Policy").cloned().unwrap_or(Value::Null),
    });
    group.count = match o.u32(p, "Count", "count") {
        Some(count) => count,
        None => group
            .scaling
            .as_ref()
            .and_then(|scaling| scaling.min)
            .map(|min| u32::try_from(min).unwrap_or(u32::MAX))
            .unwrap_or(1),
    };
    group.meta = o.string_map(p, "Meta", "meta").unwrap_or_default();
    group.shutdown_delay = o.duration(p, "ShutdownDelay", "shutdown_delay");
    group.stop_after_client_disconnect = o.duration(p, "StopAfterClientDisconnect", "stop_after_client_disconnect");
    group.max_client_disconnect = o.duration(p, "MaxClientDisconnect", "max_client_disconnect");
    group.disconnect = o.object(p, "Disconnect", "disconnect").map(|dc| DisconnectStrategy {
        lost_after: dc.duration(p, "LostAfter", "lost_after"),
        stop_on_client_after: dc.duration(p, "StopOnClientAfter", "stop_on_client_after"),
        replace: Some(dc.bool(p, "Replace", "replace").unwrap_or(true)),
        reconcile: dc
            .string(p, "Reconcile", "reconcile")
            .unwrap_or_else(|| "best_score".to_string()),
    });
    for key in GROUP_EXTRA {
        if let Some(value) = o.get(key) {
            group.extra.insert((*key).to_string(), value.clone());
        }
    }
    let effective_restart = group.restart_policy.clone().unwrap_or(restart_base);
    for task_obj in o.list(p, "Tasks", "task", &|idx, _| format!("task[{idx}]")) {
        let name = name_of(task_obj.map, "Name");
        let task_obj = task_obj.segment(format!("{} → task {name:?}", o.seg));
        task_obj.get_named("Name", "name");
        group.tasks.push(task(&task_obj, p, &effective_restart, name));
    }
    group
}

fn task(o: &Obj, p: &mut Vec<Problem>, group_restart: &RestartPolicy, name: String) -> Task {
    let mut task = Task {
        name,
        ..Task::default()
    };
    task.driver = o.string(p, "Driver", "driver").unwrap_or_default();
    task.user = o.string(p, "User", "user").unwrap_or_default();
    match o.get_named("Config", "config") {
        Some(config @ Value::Object(_)) => {
            if let Some(loc) = o.loc {
                loc.record_tree(&o.field("config"), &o.pointer("Config"), config);
            }
            task.config = config.clone();
        }
        Some(other) => o.problem(
            p,
            "config",
            format!("config must be an object, not {}", json_type(other)),
        ),
        None => {}
    }
    task.env = o.string_map(p, "Env", "env").unwrap_or_default();
    task.meta = o.string_map(p, "Meta", "meta").unwrap_or_default();
    if let Some(r) = o.object(p, "Resources", "resources") {
        let base = Resources::default();
        task.resources = Resources {
            cpu: r.int(p, "CPU", "cpu", 0, i64::MAX).unwrap_or(base.cpu),
            cores: r.int(p, "Cores", "cores", 0, i64::MAX).unwrap_or(base.cores),
            memory_mb: r.int(p, "MemoryMB", "memory", 0, i64::MAX).unwrap_or(base.memory_mb),
            memory_max_mb: r.int(p, "MemoryMaxMB", "memory_max", 0, i64::MAX).unwrap_or(0),
            networks: networks(&r, p),
            devices: r
                .list(p, "Devices", "device", &|_, map| {
                    format!("device {:?}", name_of(map, "Name"))
                })
                .into_iter()
                .map(|dev| RequestedDevice {
                    name: dev.string(p, "Name", "name").unwrap_or_default(),
                    count: dev.int(p, "Count", "count", 0, i64::MAX).unwrap_or(1) as u64,
                    constraints: constraints(&dev, p),
                    affinities: affinities(&dev, p),
                })
                .collect(),
        };
    }
    task.constraints = constraints(o, p);
    task.affinities = affinities(o, p);
    task.services = services(o, p);
    if let Some(timeout) = o.duration(p, "KillTimeout", "kill_timeout") {
        task.kill_timeout = timeout;
    }
    task.kill_signal = o.string(p, "KillSignal", "kill_signal").unwrap_or_default();
    task.shutdown_delay = o.duration(p, "ShutdownDelay", "shutdown_delay");
    if let Some(logs) = o.object(p, "LogConfig", "logs") {
        let base = LogConfig::default();
        task.log_config = LogConfig {
            max_files: logs.u32(p, "MaxFiles", "max_files").unwrap_or(base.max_files),
            max_file_size_mb: logs
                .u32(p, "MaxFileSizeMB", "max_file_size")
                .unwrap_or(base.max_file_size_mb),
            disabled: logs.bool(p, "Disabled", "disabled").unwrap_or(base.disabled),
        };
    }
    task.lifecycle = o.object(p, "Lifecycle", "lifecycle").map(|l| Lifecycle {
        hook: l.string(p, "Hook", "hook").unwrap_or_default(),
        sidecar: l.bool(p, "Sidecar", "sidecar").unwrap_or(false),
    });
    task.leader = o.bool(p, "Leader", "leader").unwrap_or(false);
    task.artifacts = o
        .list(p, "Artifacts", "artifact", &indexed("artifact"))
        .into_iter()
        .map(|a| Artifact {
            source: a.string(p, "GetterSource", "source").unwrap_or_default(),
            destination: a
                .string(p, "RelativeDest", "destination")
                .unwrap_or_else(|| "local/".to_string()),
            mode: a.string(p, "GetterMode", "mode").unwrap_or_else(|| "any".to_string()),
            options: a.string_map(p, "GetterOptions", "options").unwrap_or_default(),
            headers: a.string_map(p, "GetterHeaders", "headers").unwrap_or_default(),
        })
        .collect();
    task.templates = o
        .list(p, "Templates", "template", &indexed("template"))
        .into_iter()
        .map(|t| Template {
            source_path: t.string(p, "SourcePath", "source").unwrap_or_default(),
            dest_path: t.string(p, "DestPath", "destination").unwrap_or_default(),
            embedded_tmpl: t.string(p, "EmbeddedTmpl", "data").unwrap_or_default(),
            change_mode: t
                .string(p, "ChangeMode", "change_mode")
                .unwrap_or_else(|| "restart".to_string()),
            change_signal: t.string(p, "ChangeSignal", "change_signal").unwrap_or_default(),
            splay: t.duration(p, "Splay", "splay").unwrap_or(Duration::from_secs(5)),
            perms: t.string(p, "Perms", "perms").unwrap_or_else(|| "0644".to_string()),
            left_delim: t
                .string(p, "LeftDelim", "left_delimiter")
                .unwrap_or_else(|| "{{".to_string()),
            right_delim: t
                .string(p, "RightDelim", "right_delimiter")
                .unwrap_or_else(|| "}}".to_string()),
            env: t.bool(p, "Envvars", "env").unwrap_or(false),
        })
        .collect();
    task.volume_mounts = o
        .list(p, "VolumeMounts", "volume_mount", &indexed("volume_mount"))
        .into_iter()
        .map(|m| VolumeMount {
            volume: m.string(p, "Volume", "volume").unwrap_or_default(),
            destination: m.string(p, "Destination", "destination").unwrap_or_default(),
            read_only: m.bool(p, "ReadOnly", "read_only").unwrap_or(false),
            propagation_mode: m
                .string(p, "PropagationMode", "propagation_mode")
                .unwrap_or_else(|| "private".to_string()),
        })
        .collect();
    task.dispatch_payload = o
        .object(p, "DispatchPayload", "dispatch_payload")
        .map(|d| DispatchPayload {
            file: d.string(p, "File", "file").unwrap_or_default(),
        });
    task.restart_policy = o
        .object(p, "RestartPolicy", "restart")
        .map(|r| restart(&r, p, group_restart.clone()));
    for key in TASK_EXTRA {
        if let Some(value) = o.get(key) {
            task.extra.insert((*key).to_string(), value.clone());
        }
    }
    task
}

fn nanos(duration: Duration) -> Value {
    Value::from(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX))
}

fn opt_nanos(duration: Option<Duration>) -> Value {
    duration.map(nanos).unwrap_or(Value::Null)
}

fn strings_value(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

fn map_value(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect(),
    )
}

fn object(entries: Vec<(&str, Value)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

fn constraints_value(items: &[Constraint]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|c| {
                object(vec![
                    ("LTarget", c.ltarget.clone().into()),
                    ("RTarget", c.rtarget.clone().into()),
                    ("Operand", c.operand.clone().into()),
                ])
            })
            .collect(),
    )
}

fn affinities_value(items: &[Affinity]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|a| {
                object(vec![
                    ("LTarget", a.ltarget.clone().into()),
                    ("RTarget", a.rtarget.clone().into()),
                    ("Operand", a.operand.clone().into()),
                    ("Weight", a.weight.into()),
                ])
            })
            .collect(),
    )
}

fn spreads_value(items: &[Spread]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|s| {
                object(vec![
                    ("Attribute", s.attribute.clone().into()),
                    ("Weight", s.weight.into()),
                    (
                        "SpreadTarget",
                        Value::Array(
                            s.targets
                                .iter()
                                .map(|t| object(vec![("Value", t.value.clone().into()), ("Percent", t.percent.into())]))
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect(),
    )
}

fn update_value(u: &UpdateStrategy) -> Value {
    object(vec![
        ("Stagger", nanos(u.stagger)),
        ("MaxParallel", u.max_parallel.into()),
        ("HealthCheck", u.health_check.clone().into()),
        ("MinHealthyTime", nanos(u.min_healthy_time)),
        ("HealthyDeadline", nanos(u.healthy_deadline)),
        ("ProgressDeadline", nanos(u.progress_deadline)),
        ("AutoRevert", u.auto_revert.into()),
        ("AutoPromote", u.auto_promote.into()),
        ("Canary", u.canary.into()),
    ])
}

fn restart_value(r: &RestartPolicy) -> Value {
    object(vec![
        ("Attempts", r.attempts.into()),
        ("Interval", nanos(r.interval)),
        ("Delay", nanos(r.delay)),
        (
            "Mode",
            match r.mode {
                RestartMode::Delay => "delay",
                RestartMode::Fail => "fail",
            }
            .into(),
        ),
        ("RenderTemplates", r.render_templates.into()),
    ])
}

fn networks_value(items: &[NetworkResource]) -> Value {
    let ports = |ports: &[Port]| {
        Value::Array(
            ports
                .iter()
                .map(|port| {
                    object(vec![
                        ("Label", port.label.clone().into()),
                        ("Value", port.value.into()),
                        ("To", port.to.into()),
                        ("HostNetwork", port.host_network.clone().into()),
                    ])
                })
                .collect(),
        )
    };
    Value::Array(
        items
            .iter()
            .map(|n| {
                object(vec![
                    ("Mode", n.mode.clone().into()),
                    ("Device", n.device.clone().into()),
                    ("IP", n.ip.clone().into()),
                    ("Hostname", n.hostname.clone().into()),
                    ("MBits", n.mbits.into()),
                    (
                        "DNS",
                        n.dns
                            .as_ref()
                            .map(|dns| {
                                object(vec![
                                    ("Servers", strings_value(&dns.servers)),
                                    ("Searches", strings_value(&dns.searches)),
                                    ("Options", strings_value(&dns.options)),
                                ])
                            })
                            .unwrap_or(Value::Null),
                    ),
                    ("ReservedPorts", ports(&n.reserved_ports)),
                    ("DynamicPorts", ports(&n.dynamic_ports)),
                ])
            })
            .collect(),
    )
}

fn services_value(items: &[Service]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|s| {
                let value = object(vec![
                    ("Name", s.name.clone().into()),
                    ("PortLabel", s.port_label.clone().into()),
                    ("Provider", s.provider.clone().into()),
                    ("Tags", strings_value(&s.tags)),
                    ("CanaryTags", strings_value(&s.canary_tags)),
                    ("AddressMode", s.address_mode.clone().into()),
                    ("Address", s.address.clone().into()),
                    ("TaskName", s.task_name.clone().into()),
                    ("Meta", map_value(&s.meta)),
                    (
                        "Checks",
                        Value::Array(
                            s.checks
                                .iter()
                                .map(|c| {
                                    let value = object(vec![
                                        ("Name", c.name.clone().into()),
                                        ("Type", c.check_type.clone().into()),
                                        ("Command", c.command.clone().into()),
                                        ("Args", strings_value(&c.args)),
                                        ("Path", c.path.clone().into()),
                                        ("Protocol", c.protocol.clone().into()),
                                        ("PortLabel", c.port_label.clone().into()),
                                        ("Method", c.method.clone().into()),
                                        ("Interval", nanos(c.interval)),
                                        ("Timeout", nanos(c.timeout)),
                                        ("InitialStatus", c.initial_status.clone().into()),
                                    ]);
                                    with_extra(value, &c.extra)
                                })
                                .collect(),
                        ),
                    ),
                ]);
                with_extra(value, &s.extra)
            })
            .collect(),
    )
}

fn with_extra(mut value: Value, extra: &BTreeMap<String, Value>) -> Value {
    if let Value::Object(map) = &mut value {
        for (key, item) in extra {
            map.insert(key.clone(), item.clone());
        }
    }
    value
}

/// Renders a job as Nomad's API JSON (the bare job, not wrapped in `{"Job": …}`),
/// every field present. [`job_from_api`] reads it back to the same job.
pub fn job_to_api(job: &Job) -> Value {
    let groups: Vec<Value> = job.task_groups.iter().map(group_value).collect();
    let periodic = job.periodic.as_ref().map(|periodic| {
        object(vec![
            ("Enabled", periodic.enabled.into()),
            ("Spec", periodic.specs.first().cloned().unwrap_or_default().into()),
            ("Specs", strings_value(&periodic.specs)),
            ("SpecType", periodic.spec_type.clone().into()),
            ("ProhibitOverlap", periodic.prohibit_overlap.into()),
            ("TimeZone", periodic.time_zone.clone().into()),
            ("MaxConcurrent", periodic.max_concurrent.into()),
        ])
    });
    let parameterized = job.parameterized.as_ref().map(|param| {
        object(vec![
            ("Payload", param.payload.clone().into()),
            ("MetaRequired", strings_value(&param.meta_required)),
            ("MetaOptional", strings_value(&param.meta_optional)),
            ("MaxConcurrent", param.max_concurrent.into()),
        ])
    });
    let value = object(vec![
        ("ID", job.id.clone().into()),
        ("Name", job.name.clone().into()),
        ("Namespace", job.namespace.clone().into()),
        ("Region", job.region.clone().into()),
        ("Type", job.job_type.as_str().into()),
        ("Priority", job.priority.into()),
        ("AllAtOnce", job.all_at_once.into()),
        ("Datacenters", strings_value(&job.datacenters)),
        ("NodePool", job.node_pool.clone().into()),
        ("Constraints", constraints_value(&job.constraints)),
        ("Affinities", affinities_value(&job.affinities)),
        ("Spreads", spreads_value(&job.spreads)),
        ("TaskGroups", Value::Array(groups)),
        ("Update", job.update.as_ref().map(update_value).unwrap_or(Value::Null)),
        ("Periodic", periodic.unwrap_or(Value::Null)),
        ("ParameterizedJob", parameterized.unwrap_or(Value::Null)),
        ("Meta", map_value(&job.meta)),
        ("UI", job.ui.clone().unwrap_or(Value::Null)),
        ("ParentID", job.parent_id.clone().into()),
        ("Dispatched", job.dispatched.into()),
        (
            "Payload",
            base64::engine::general_purpose::STANDARD.encode(&job.payload).into(),
        ),
        ("Stop", job.stop.into()),
        ("Status", job.status.as_str().into()),
        ("StatusDescription", job.status_description.clone().into()),
        ("Stable", job.stable.into()),
        ("Version", job.version.into()),
        ("SubmitTime", job.submit_time.into()),
        ("CreateIndex", job.create_index.into()),
        ("ModifyIndex", job.modify_index.into()),
        ("JobModifyIndex", job.job_modify_index.into()),
    ]);
    with_extra(value, &job.extra)
}

fn group_value(group: &TaskGroup) -> Value {
    let value = object(vec![
        ("Name", group.name.clone().into()),
        ("Count", group.count.into()),
        ("Constraints", constraints_value(&group.constraints)),
        ("Affinities", affinities_value(&group.affinities)),
        ("Spreads", spreads_value(&group.spreads)),
        ("Tasks", Value::Array(group.tasks.iter().map(task_value).collect())),
        (
            "RestartPolicy",
            group.restart_policy.as_ref().map(restart_value).unwrap_or(Value::Null),
        ),
        (
            "ReschedulePolicy",
            group
                .reschedule_policy
                .as_ref()
                .map(|r| {
                    object(vec![
                        ("Attempts", r.attempts.into()),
                        ("Interval", nanos(r.interval)),
                        ("Delay", nanos(r.delay)),
                        ("DelayFunction", r.delay_function.clone().into()),
                        ("MaxDelay", nanos(r.max_delay)),
                        ("Unlimited", r.unlimited.into()),
                    ])
                })
                .unwrap_or(Value::Null),
        ),
        ("Update", group.update.as_ref().map(update_value).unwrap_or(Value::Null)),
        (
            "Migrate",
            group
                .migrate
                .as_ref()
                .map(|m| {
                    object(vec![
                        ("MaxParallel", m.max_parallel.into()),
                        ("HealthCheck", m.health_check.clone().into()),
                        ("MinHealthyTime", nanos(m.min_healthy_time)),
                        ("HealthyDeadline", nanos(m.healthy_deadline)),
                    ])
                })
                .unwrap_or(Value::Null),
        ),
        (
            "EphemeralDisk",
            object(vec![
                ("Sticky", group.ephemeral_disk.sticky.into()),
                ("Migrate", group.ephemeral_disk.migrate.into()),
                ("SizeMB", group.ephemeral_disk.size_mb.into()),
            ]),
        ),
        ("Networks", networks_value(&group.networks)),
        ("Services", services_value(&group.services)),
        (
            "Volumes",
            Value::Object(
                group
                    .volumes
                    .iter()
                    .map(|(name, v)| {
                        (
                            name.clone(),
                            object(vec![
                                ("Name", v.name.clone().into()),
                                ("Type", v.volume_type.clone().into()),
                                ("Source", v.source.clone().into()),
                                ("ReadOnly", v.read_only.into()),
                                ("AccessMode", v.access_mode.clone().into()),
                                ("AttachmentMode", v.attachment_mode.clone().into()),
                                ("PerAlloc", v.per_alloc.into()),
                            ]),
                        )
                    })
                    .collect(),
            ),
        ),
        (
            "Scaling",
            group
                .scaling
                .as_ref()
                .map(|s| {
                    object(vec![
                        ("Min", s.min.map(Value::from).unwrap_or(Value::Null)),
                        ("Max", s.max.into()),
                        ("Enabled", s.enabled.into()),
                        ("Policy", s.policy.clone()),
                    ])
                })
                .unwrap_or(Value::Null),
        ),
        ("Meta", map_value(&group.meta)),
        ("ShutdownDelay", opt_nanos(group.shutdown_delay)),
        (
            "StopAfterClientDisconnect",
            opt_nanos(group.stop_after_client_disconnect),
        ),
        ("MaxClientDisconnect", opt_nanos(group.max_client_disconnect)),
        (
            "Disconnect",
            group
                .disconnect
                .as_ref()
                .map(|dc| {
                    object(vec![
                        ("LostAfter", opt_nanos(dc.lost_after)),
                        ("StopOnClientAfter", opt_nanos(dc.stop_on_client_after)),
                        ("Replace", dc.replace.map(Value::Bool).unwrap_or(Value::Null)),
                        ("Reconcile", dc.reconcile.clone().into()),
                    ])
                })
                .unwrap_or(Value::Null),
        ),
    ]);
    with_extra(value, &group.extra)
}

fn task_value(task: &Task) -> Value {
    let resources = &task.resources;
    let value = object(vec![
        ("Name", task.name.clone().into()),
        ("Driver", task.driver.clone().into()),
        ("User", task.user.clone().into()),
        ("Config", task.config.clone()),
        ("Env", map_value(&task.env)),
        (
            "Resources",
            object(vec![
                ("CPU", resources.cpu.into()),
                ("Cores", resources.cores.into()),
                ("MemoryMB", resources.memory_mb.into()),
                ("MemoryMaxMB", resources.memory_max_mb.into()),
                ("Networks", networks_value(&resources.networks)),
                (
                    "Devices",
                    Value::Array(
                        resources
                            .devices
                            .iter()
                            .map(|dev| {
                                object(vec![
                                    ("Name", dev.name.clone().into()),
                                    ("Count", dev.count.into()),
                                    ("Constraints", constraints_value(&dev.constraints)),
                                    ("Affinities", affinities_value(&dev.affinities)),
                                ])
                            })
                            .collect(),
                    ),
                ),
            ]),
        ),
        ("Constraints", constraints_value(&task.constraints)),
        ("Affinities", affinities_value(&task.affinities)),
        ("Services", services_value(&task.services)),
        ("Meta", map_value(&task.meta)),
        ("KillTimeout", nanos(task.kill_timeout)),
        ("KillSignal", task.kill_signal.clone().into()),
        ("ShutdownDelay", opt_nanos(task.shutdown_delay)),
        (
            "LogConfig",
            object(vec![
                ("MaxFiles", task.log_config.max_files.into()),
                ("MaxFileSizeMB", task.log_config.max_file_size_mb.into()),
                ("Disabled", task.log_config.disabled.into()),
            ]),
        ),
        (
            "Lifecycle",
            task.lifecycle
                .as_ref()
                .map(|l| object(vec![("Hook", l.hook.clone().into()), ("Sidecar", l.sidecar.into())]))
                .unwrap_or(Value::Null),
        ),
        ("Leader", task.leader.into()),
        (
            "Artifacts",
            Value::Array(
                task.artifacts
                    .iter()
                    .map(|a| {
                        object(vec![
                            ("GetterSource", a.source.clone().into()),
                            ("RelativeDest", a.destination.clone().into()),
                            ("GetterMode", a.mode.clone().into()),
                            ("GetterOptions", map_value(&a.options)),
                            ("GetterHeaders", map_value(&a.headers)),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "Templates",
            Value::Array(
                task.templates
                    .iter()
                    .map(|t| {
                        object(vec![
                            ("SourcePath", t.source_path.clone().into()),
                            ("DestPath", t.dest_path.clone().into()),
                            ("EmbeddedTmpl", t.embedded_tmpl.clone().into()),
                            ("ChangeMode", t.change_mode.clone().into()),
                            ("ChangeSignal", t.change_signal.clone().into()),
                            ("Splay", nanos(t.splay)),
                            ("Perms", t.perms.clone().into()),
                            ("LeftDelim", t.left_delim.clone().into()),
                            ("RightDelim", t.right_delim.clone().into()),
                            ("Envvars", t.env.into()),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "VolumeMounts",
            Value::Array(
                task.volume_mounts
                    .iter()
                    .map(|m| {
                        object(vec![
                            ("Volume", m.volume.clone().into()),
                            ("Destination", m.destination.clone().into()),
                            ("ReadOnly", m.read_only.into()),
                            ("PropagationMode", m.propagation_mode.clone().into()),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "DispatchPayload",
            task.dispatch_payload
                .as_ref()
                .map(|d| object(vec![("File", d.file.clone().into())]))
                .unwrap_or(Value::Null),
        ),
        (
            "RestartPolicy",
            task.restart_policy.as_ref().map(restart_value).unwrap_or(Value::Null),
        ),
    ]);
    with_extra(value, &task.extra)
}
