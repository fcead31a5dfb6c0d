//! Nomad's `JobDiff`: a structured diff of two jobs in their API JSON form,
//! as `/v1/job/:id/plan` and `/v1/job/:id/versions?diffs=true` return it.
//!
//! The diff walks the JSON: scalar fields become `Fields`, nested objects
//! `Objects`, task groups and tasks are matched by name, maps of user
//! values (`Env`, `Meta`, a driver's `Config`) are flattened into fields
//! named `Env[KEY]` or `args[0]`, and lists of scalars are compared as
//! sets. Fields the servers own (indexes, status, version) are left out.
//! Only what changed is listed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

pub const ADDED: &str = "Added";
pub const DELETED: &str = "Deleted";
pub const EDITED: &str = "Edited";
pub const NONE: &str = "None";

/// One scalar that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct FieldDiff {
    #[serde(rename = "Type")]
    pub diff_type: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Old")]
    pub old: String,
    #[serde(rename = "New")]
    pub new: String,
    #[serde(rename = "Annotations")]
    pub annotations: Option<Vec<String>>,
}

/// A nested object that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ObjectDiff {
    #[serde(rename = "Type")]
    pub diff_type: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Fields")]
    pub fields: Vec<FieldDiff>,
    #[serde(rename = "Objects")]
    pub objects: Vec<ObjectDiff>,
}

/// A task that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskDiff {
    #[serde(rename = "Type")]
    pub diff_type: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Fields")]
    pub fields: Vec<FieldDiff>,
    #[serde(rename = "Objects")]
    pub objects: Vec<ObjectDiff>,
    #[serde(rename = "Annotations")]
    pub annotations: Vec<String>,
}

/// A task group that changed, with the scheduler's counts (`Updates`)
/// when a plan produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskGroupDiff {
    #[serde(rename = "Type")]
    pub diff_type: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Fields")]
    pub fields: Vec<FieldDiff>,
    #[serde(rename = "Objects")]
    pub objects: Vec<ObjectDiff>,
    #[serde(rename = "Tasks")]
    pub tasks: Vec<TaskDiff>,
    #[serde(rename = "Updates")]
    pub updates: BTreeMap<String, u64>,
}

/// The diff of two versions of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobDiff {
    #[serde(rename = "Type")]
    pub diff_type: String,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Fields")]
    pub fields: Vec<FieldDiff>,
    #[serde(rename = "Objects")]
    pub objects: Vec<ObjectDiff>,
    #[serde(rename = "TaskGroups")]
    pub task_groups: Vec<TaskGroupDiff>,
}

/// Fields the servers set, never part of a diff.
const SERVER_OWNED: &[&str] = &[
    "Version",
    "Stable",
    "Status",
    "StatusDescription",
    "SubmitTime",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "Stop",
    "Dispatched",
];

/// Objects whose keys are the user's, flattened into `Name[KEY]` fields.
const FLATTENED_MAPS: &[&str] = &["Env", "Meta"];

fn diff_type(old: bool, new: bool) -> &'static str {
    match (old, new) {
        (false, true) => ADDED,
        (true, false) => DELETED,
        _ => EDITED,
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|value| !value.is_null())
}

fn field(name: String, old: Option<&Value>, new: Option<&Value>) -> Option<FieldDiff> {
    let (old, new) = (present(old), present(new));
    if old == new {
        return None;
    }
    Some(FieldDiff {
        diff_type: diff_type(old.is_some(), new.is_some()).to_string(),
        name,
        old: old.map(scalar).unwrap_or_default(),
        new: new.map(scalar).unwrap_or_default(),
        annotations: None,
    })
}

/// Flattens nested user values into `prefix[key]` / `prefix[0]` names.
fn flatten(prefix: &str, value: &Value, into: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}[{key}]")
                };
                flatten(&name, inner, into);
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{index}]"), inner, into);
            }
        }
        Value::Null => {}
        scalar => {
            into.insert(prefix.to_string(), scalar.clone());
        }
    }
}

fn flat_fields(prefix: &str, old: Option<&Value>, new: Option<&Value>) -> Vec<FieldDiff> {
    let mut old_flat = BTreeMap::new();
    let mut new_flat = BTreeMap::new();
    if let Some(old) = old {
        flatten(prefix, old, &mut old_flat);
    }
    if let Some(new) = new {
        flatten(prefix, new, &mut new_flat);
    }
    let names: BTreeSet<&String> = old_flat.keys().chain(new_flat.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| field(name.clone(), old_flat.get(name), new_flat.get(name)))
        .collect()
}

/// The fields and objects that differ between two JSON objects.
fn diff_maps(
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    skip: &[&str],
) -> (Vec<FieldDiff>, Vec<ObjectDiff>) {
    let empty = Map::new();
    let (old_map, new_map) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let keys: BTreeSet<&String> = old_map.keys().chain(new_map.keys()).collect();
    let mut fields = Vec::new();
    let mut objects = Vec::new();
    for key in keys {
        if skip.contains(&key.as_str()) || SERVER_OWNED.contains(&key.as_str()) {
            continue;
        }
        let (a, b) = (present(old_map.get(key)), present(new_map.get(key)));
        if a == b {
            continue;
        }
        let is_object = |value: Option<&Value>| matches!(value, Some(Value::Object(_)));
        let is_array = |value: Option<&Value>| matches!(value, Some(Value::Array(_)));
        if FLATTENED_MAPS.contains(&key.as_str()) {
            let named = |value: Option<&Value>| value.map(|value| serde_json::json!({ key.as_str(): value }));
            fields.extend(flat_fields("", named(a).as_ref(), named(b).as_ref()));
        } else if key == "Config" {
            let config_fields = flat_fields("", a, b);
            if !config_fields.is_empty() {
                objects.push(ObjectDiff {
                    diff_type: diff_type(a.is_some(), b.is_some()).to_string(),
                    name: key.clone(),
                    fields: config_fields,
                    objects: Vec::new(),
                });
            }
        } else if is_object(a) || is_object(b) {
            let (inner_fields, inner_objects) =
                diff_maps(a.and_then(Value::as_object), b.and_then(Value::as_object), &[]);
            if !inner_fields.is_empty() || !inner_objects.is_empty() {
                objects.push(ObjectDiff {
                    diff_type: diff_type(a.is_some(), b.is_some()).to_string(),
                    name: key.clone(),
                    fields: inner_fields,
                    objects: inner_objects,
                });
            }
        } else if is_array(a) || is_array(b) {
            objects.extend(diff_arrays(key, a, b));
        } else if let Some(changed) = field(key.clone(), a, b) {
            fields.push(changed);
        }
    }
    (fields, objects)
}

/// Lists: scalars as a set (one field per element added or removed), and
/// objects by position.
fn diff_arrays(name: &str, old: Option<&Value>, new: Option<&Value>) -> Vec<ObjectDiff> {
    let empty = Vec::new();
    let old_items = old.and_then(Value::as_array).unwrap_or(&empty);
    let new_items = new.and_then(Value::as_array).unwrap_or(&empty);
    let kind = diff_type(!old_items.is_empty(), !new_items.is_empty()).to_string();
    if old_items.iter().chain(new_items.iter()).all(|item| !item.is_object()) {
        let old_set: BTreeSet<String> = old_items.iter().map(scalar).collect();
        let new_set: BTreeSet<String> = new_items.iter().map(scalar).collect();
        let mut fields = Vec::new();
        for removed in old_set.difference(&new_set) {
            fields.push(FieldDiff {
                diff_type: DELETED.to_string(),
                name: name.to_string(),
                old: removed.clone(),
                new: String::new(),
                annotations: None,
            });
        }
        for added in new_set.difference(&old_set) {
            fields.push(FieldDiff {
                diff_type: ADDED.to_string(),
                name: name.to_string(),
                old: String::new(),
                new: added.clone(),
                annotations: None,
            });
        }
        if fields.is_empty() {
            // Same elements, another order.
            return Vec::new();
        }
        return vec![ObjectDiff {
            diff_type: kind,
            name: name.to_string(),
            fields,
            objects: Vec::new(),
        }];
    }
    let mut objects = Vec::new();
    for index in 0..old_items.len().max(new_items.len()) {
        let (a, b) = (old_items.get(index), new_items.get(index));
        let (fields, inner) = diff_maps(a.and_then(Value::as_object), b.and_then(Value::as_object), &[]);
        if fields.is_empty() && inner.is_empty() {
            continue;
        }
        objects.push(ObjectDiff {
            diff_type: diff_type(a.is_some(), b.is_some()).to_string(),
            name: name.to_string(),
            fields,
            objects: inner,
        });
    }
    objects
}

fn by_name(value: Option<&Value>, key: &str) -> BTreeMap<String, Value> {
    value
        .and_then(|value| value.get(key))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| Some((item.get("Name")?.as_str()?.to_string(), item.clone())))
        .collect()
}

fn diff_task(name: &str, old: Option<&Value>, new: Option<&Value>) -> Option<TaskDiff> {
    let (fields, objects) = diff_maps(
        old.and_then(Value::as_object),
        new.and_then(Value::as_object),
        &["Name"],
    );
    if fields.is_empty() && objects.is_empty() && old.is_some() == new.is_some() {
        return None;
    }
    Some(TaskDiff {
        diff_type: diff_type(old.is_some(), new.is_some()).to_string(),
        name: name.to_string(),
        fields,
        objects,
        annotations: Vec::new(),
    })
}

fn diff_group(name: &str, old: Option<&Value>, new: Option<&Value>) -> Option<TaskGroupDiff> {
    let (fields, objects) = diff_maps(
        old.and_then(Value::as_object),
        new.and_then(Value::as_object),
        &["Name", "Tasks"],
    );
    let old_tasks = by_name(old, "Tasks");
    let new_tasks = by_name(new, "Tasks");
    let names: BTreeSet<&String> = old_tasks.keys().chain(new_tasks.keys()).collect();
    let tasks: Vec<TaskDiff> = names
        .into_iter()
        .filter_map(|task| diff_task(task, old_tasks.get(task), new_tasks.get(task)))
        .collect();
    if fields.is_empty() && objects.is_empty() && tasks.is_empty() && old.is_some() == new.is_some() {
        return None;
    }
    Some(TaskGroupDiff {
        diff_type: diff_type(old.is_some(), new.is_some()).to_string(),
        name: name.to_string(),
        fields,
        objects,
        tasks,
        updates: BTreeMap::new(),
    })
}

/// The diff from `old` (None: the job is new) to `new`, both jobs in
/// Nomad's API JSON. Task groups with no change are listed with type
/// `None` so that a plan can attach its counts to them.
pub fn job_diff(old: Option<&Value>, new: &Value) -> JobDiff {
    let id = new.get("ID").map(scalar).unwrap_or_default();
    let (fields, objects) = diff_maps(old.and_then(Value::as_object), new.as_object(), &["ID", "TaskGroups"]);
    let old_groups = by_name(old, "TaskGroups");
    let new_groups = by_name(Some(new), "TaskGroups");
    let names: BTreeSet<&String> = old_groups.keys().chain(new_groups.keys()).collect();
    let task_groups: Vec<TaskGroupDiff> = names
        .into_iter()
        .map(|group| {
            diff_group(group, old_groups.get(group), new_groups.get(group)).unwrap_or_else(|| TaskGroupDiff {
                diff_type: NONE.to_string(),
                name: group.clone(),
                ..TaskGroupDiff::default()
            })
        })
        .collect();
    let changed = !fields.is_empty() || !objects.is_empty() || task_groups.iter().any(|group| group.diff_type != NONE);
    JobDiff {
        diff_type: match old {
            None => ADDED,
            Some(_) if changed => EDITED,
            Some(_) => NONE,
        }
        .to_string(),
        id,
        fields,
        objects,
        task_groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(marker: &str, count: u64, datacenters: &[&str]) -> Value {
        json!({
            "ID": "web", "Name": "web", "Priority": 50, "Datacenters": datacenters, "Version": 3,
            "TaskGroups": [{
                "Name": "api", "Count": count,
                "Tasks": [{
                    "Name": "server", "Driver": "raw_exec",
                    "Config": {"command": "/bin/sh", "args": ["-c", marker]},
                    "Env": {"MARKER": marker},
                    "Resources": {"CPU": 100, "MemoryMB": 64}
                }]
            }]
        })
    }

    #[test]
    fn edited_fields_objects_and_groups() {
        let old = job("a", 2, &["dc1"]);
        let mut new = job("b", 3, &["dc1", "dc2"]);
        new["Version"] = json!(4);
        let diff = job_diff(Some(&old), &new);
        assert_eq!(diff.diff_type, EDITED);
        assert!(diff.fields.is_empty(), "the version is the servers': {:?}", diff.fields);
        assert_eq!(diff.objects.len(), 1);
        assert_eq!(diff.objects[0].name, "Datacenters");
        assert_eq!(diff.objects[0].fields[0].diff_type, ADDED);
        assert_eq!(diff.objects[0].fields[0].new, "dc2");
        let group = &diff.task_groups[0];
        assert_eq!((group.diff_type.as_str(), group.name.as_str()), (EDITED, "api"));
        assert_eq!(group.fields[0].name, "Count");
        assert_eq!((group.fields[0].old.as_str(), group.fields[0].new.as_str()), ("2", "3"));
        let task = &group.tasks[0];
        assert_eq!(task.fields[0].name, "Env[MARKER]");
        assert_eq!((task.fields[0].old.as_str(), task.fields[0].new.as_str()), ("a", "b"));
        assert_eq!(task.objects[0].name, "Config");
        assert_eq!(task.objects[0].fields[0].name, "args[1]");
        // Nothing changed: type None, the group still listed.
        let same = job_diff(Some(&old), &old);
        assert_eq!(same.diff_type, NONE);
        assert_eq!(same.task_groups[0].diff_type, NONE);
        // A new job.
        assert_eq!(job_diff(None, &old).diff_type, ADDED);
        assert_eq!(job_diff(None, &old).task_groups[0].diff_type, ADDED);
    }
}
