//! Pure rendering of API responses into the text the CLI prints. Every
//! function takes values and a `now` and returns a `String`, so the output
//! is snapshot-tested without an agent.

use api_types::{AllocListStub, Allocation, Evaluation, JobListStub, JobSummary, Namespace, Node, NodeListStub};
use serde_json::Value;
use std::fmt::Write as _;

/// Lays out rows as left-aligned columns separated by two spaces.
pub fn columns(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; width];
    for row in rows {
        for (idx, cell) in row.iter().enumerate() {
            widths[idx] = widths[idx].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (idx, cell) in row.iter().enumerate() {
            if idx + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[idx] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Key = value lines aligned on the `=`.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let line = format!("{key:<width$} = {value}");
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// Whether IDs print in full (`-verbose`); set once, before any output.
static FULL_IDS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints IDs in full from now on (the CLI's `-verbose`).
pub fn show_full_ids() {
    FULL_IDS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// An ID as the CLI shows it: its first eight characters, or all of it
/// with `-verbose`.
pub fn short_id(id: &str) -> String {
    if FULL_IDS.load(std::sync::atomic::Ordering::Relaxed) {
        id.to_string()
    } else {
        types::short_id(id).to_string()
    }
}

fn short(id: &str) -> String {
    short_id(id)
}

/// "3m2s ago"-style age of a Unix-nanosecond time relative to `now`.
pub fn age(then: i64, now: i64) -> String {
    if then <= 0 {
        return "never".to_string();
    }
    let secs = (now - then).max(0) / 1_000_000_000;
    let text = if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h{}m", secs / 3600, (secs % 3600) / 60)
    } else {
        format!("{}d{}h", secs / 86_400, (secs % 86_400) / 3600)
    };
    format!("{text} ago")
}

/// `job status` with no ID: the job list.
pub fn job_list(jobs: &[JobListStub]) -> String {
    if jobs.is_empty() {
        return "No running jobs\n".to_string();
    }
    let mut rows = vec![vec![
        "ID".to_string(),
        "Type".to_string(),
        "Priority".to_string(),
        "Status".to_string(),
        "Submit Date".to_string(),
    ]];
    for job in jobs {
        rows.push(vec![
            job.id.clone(),
            job.job_type.clone(),
            job.priority.to_string(),
            job.status.clone(),
            api_types::format_rfc3339(job.submit_time),
        ]);
    }
    columns(&rows)
}

fn value_str(job: &Value, key: &str) -> String {
    match job.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Allocation rows as `job status` and `node status` show them.
/// `alloc fs` on a directory: mode, size, modification time and name, as
/// Nomad prints them.
pub fn fs_listing(entries: &[Value]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
            let size = entry.get("Size").and_then(Value::as_u64).unwrap_or(0);
            let is_dir = entry.get("IsDir").and_then(Value::as_bool).unwrap_or(false);
            let name = if is_dir {
                format!("{}/", text("Name"))
            } else {
                text("Name")
            };
            vec![text("FileMode"), format!("{size} B"), text("ModTime"), name]
        })
        .collect();
    let headers = ["Mode", "Size", "Modified Time", "Name"];
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in &rows {
        for (idx, cell) in row.iter().enumerate() {
            widths[idx] = widths[idx].max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(idx, cell)| {
                if idx + 1 == cells.len() {
                    cell.clone()
                } else {
                    format!("{cell:<width$}", width = widths[idx])
                }
            })
            .collect();
        format!("{}\n", padded.join("  "))
    };
    let mut out = line(headers.iter().map(|header| header.to_string()).collect());
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

pub fn alloc_table(allocs: &[AllocListStub], now: i64) -> String {
    if allocs.is_empty() {
        return "No allocations placed\n".to_string();
    }
    let mut sorted: Vec<&AllocListStub> = allocs.iter().collect();
    sorted.sort_by(|a, b| b.create_index.cmp(&a.create_index).then_with(|| a.id.cmp(&b.id)));
    let mut rows = vec![vec![
        "ID".to_string(),
        "Node ID".to_string(),
        "Task Group".to_string(),
        "Version".to_string(),
        "Desired".to_string(),
        "Status".to_string(),
        "Created".to_string(),
        "Modified".to_string(),
    ]];
    for alloc in sorted {
        rows.push(vec![
            short(&alloc.id),
            short(&alloc.node_id),
            alloc.task_group.clone(),
            alloc.job_version.to_string(),
            alloc.desired_status.clone(),
            alloc.client_status.clone(),
            age(alloc.create_time, now),
            age(alloc.modify_time, now),
        ]);
    }
    columns(&rows)
}

/// `job status ID`.
pub fn job_status(job: &Value, summary: Option<&JobSummary>, allocs: &[AllocListStub], now: i64) -> String {
    let mut out = String::new();
    let datacenters = job
        .get("Datacenters")
        .and_then(Value::as_array)
        .map(|dcs| dcs.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let periodic = job.get("Periodic").is_some_and(|periodic| !periodic.is_null());
    let parameterized = job.get("ParameterizedJob").is_some_and(|param| !param.is_null());
    out.push_str(&key_values(&[
        ("ID", value_str(job, "ID")),
        ("Name", value_str(job, "Name")),
        (
            "Submit Date",
            api_types::format_rfc3339(job.get("SubmitTime").and_then(Value::as_i64).unwrap_or(0)),
        ),
        ("Type", value_str(job, "Type")),
        ("Priority", value_str(job, "Priority")),
        ("Datacenters", datacenters),
        ("Namespace", value_str(job, "Namespace")),
        ("Node Pool", value_str(job, "NodePool")),
        ("Status", value_str(job, "Status")),
        ("Periodic", periodic.to_string()),
        ("Parameterized", parameterized.to_string()),
    ]));
    if let Some(summary) = summary {
        out.push_str("\nSummary\n");
        let mut rows = vec![vec![
            "Task Group".to_string(),
            "Queued".to_string(),
            "Starting".to_string(),
            "Running".to_string(),
            "Failed".to_string(),
            "Complete".to_string(),
            "Lost".to_string(),
            "Unknown".to_string(),
        ]];
        for (group, counts) in &summary.summary {
            rows.push(vec![
                group.clone(),
                counts.queued.to_string(),
                counts.starting.to_string(),
                counts.running.to_string(),
                counts.failed.to_string(),
                counts.complete.to_string(),
                counts.lost.to_string(),
                counts.unknown.to_string(),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    out.push_str("\nAllocations\n");
    out.push_str(&alloc_table(allocs, now));
    out
}

/// `alloc status ID`.
pub fn alloc_status(alloc: &Allocation, now: i64) -> String {
    let mut out = key_values(&[
        ("ID", alloc.id.clone()),
        ("Eval ID", short(&alloc.eval_id)),
        ("Name", alloc.name.clone()),
        ("Node ID", short(&alloc.node_id)),
        ("Node Name", alloc.node_name.clone()),
        ("Job ID", alloc.job_id.clone()),
        ("Job Version", alloc.job_version.to_string()),
        ("Client Status", alloc.client_status.clone()),
        ("Client Description", alloc.client_description.clone()),
        ("Desired Status", alloc.desired_status.clone()),
        ("Desired Description", alloc.desired_description.clone()),
        ("Created", age(alloc.create_time, now)),
        ("Modified", age(alloc.modify_time, now)),
    ]);
    for (task, state) in &alloc.task_states {
        let _ = writeln!(out, "\nTask \"{task}\" is \"{}\"", state.state);
        out.push_str(&key_values(&[
            ("Restarts", state.restarts.to_string()),
            ("Failed", state.failed.to_string()),
            ("Started At", state.started_at.clone()),
            ("Finished At", state.finished_at.clone()),
        ]));
        out.push_str("\nRecent Events:\n");
        let mut rows = vec![vec!["Time".to_string(), "Type".to_string(), "Description".to_string()]];
        for event in state.events.iter().rev() {
            let description = if event.display_message.is_empty() {
                event.message.clone()
            } else {
                event.display_message.clone()
            };
            rows.push(vec![
                api_types::format_rfc3339(event.time),
                event.event_type.clone(),
                description,
            ]);
        }
        out.push_str(&columns(&rows));
    }
    if alloc.task_states.is_empty() {
        out.push_str("\nNo task states reported yet\n");
    }
    out
}

/// `namespace list`, as Nomad prints it.
pub fn namespace_list(namespaces: &[Namespace]) -> String {
    if namespaces.is_empty() {
        return "No namespaces found\n".to_string();
    }
    let mut rows = vec![vec!["Name".to_string(), "Description".to_string()]];
    for namespace in namespaces {
        rows.push(vec![namespace.name.clone(), namespace.description.clone()]);
    }
    columns(&rows)
}

/// `service list`: one row per service (and namespace with `*`).
pub fn service_list(list: &[api_types::ServiceListEntry], with_namespace: bool) -> String {
    let mut rows = Vec::new();
    for entry in list {
        for service in &entry.services {
            let mut row = vec![service.service_name.clone(), format!("[{}]", service.tags.join(","))];
            if with_namespace {
                row.insert(1, entry.namespace.clone());
            }
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return "No services found\n".to_string();
    }
    let mut header = vec!["Service Name".to_string(), "Tags".to_string()];
    if with_namespace {
        header.insert(1, "Namespace".to_string());
    }
    rows.insert(0, header);
    columns(&rows)
}

/// `service info NAME`: one row per instance, with its health.
pub fn service_info(instances: &[api_types::ServiceRegistration]) -> String {
    let mut rows = vec![vec![
        "Job ID".to_string(),
        "Address".to_string(),
        "Tags".to_string(),
        "Health".to_string(),
        "Node ID".to_string(),
        "Alloc ID".to_string(),
    ]];
    for instance in instances {
        let health = if instance.checks.is_empty() {
            "no checks".to_string()
        } else if instance
            .checks
            .iter()
            .all(|check| matches!(check.status.as_str(), "passing" | "warning"))
        {
            "healthy".to_string()
        } else {
            "unhealthy".to_string()
        };
        rows.push(vec![
            instance.job_id.clone(),
            format!("{}:{}", instance.address, instance.port),
            format!("[{}]", instance.tags.join(",")),
            health,
            short(&instance.node_id),
            short(&instance.alloc_id),
        ]);
    }
    columns(&rows)
}

/// `namespace status NAME`.
pub fn namespace_status(namespace: &Namespace) -> String {
    let mut out = key_values(&[
        ("Name", namespace.name.clone()),
        ("Description", namespace.description.clone()),
    ]);
    if let Some(meta) = namespace.meta.as_ref().filter(|meta| !meta.is_empty()) {
        out.push_str("\nMetadata\n");
        let pairs: Vec<(&str, String)> = meta.iter().map(|(key, value)| (key.as_str(), value.clone())).collect();
        out.push_str(&key_values(&pairs));
    }
    out
}

/// `node status` with no ID.
pub fn node_list(nodes: &[NodeListStub]) -> String {
    if nodes.is_empty() {
        return "No nodes registered\n".to_string();
    }
    let mut rows = vec![vec![
        "ID".to_string(),
        "Node Pool".to_string(),
        "DC".to_string(),
        "Name".to_string(),
        "Class".to_string(),
        "Drain".to_string(),
        "Eligibility".to_string(),
        "Status".to_string(),
    ]];
    for node in nodes {
        rows.push(vec![
            short(&node.id),
            node.node_pool.clone(),
            node.datacenter.clone(),
            node.name.clone(),
            if node.node_class.is_empty() {
                "<none>".to_string()
            } else {
                node.node_class.clone()
            },
            node.drain.to_string(),
            node.scheduling_eligibility.clone(),
            node.status.clone(),
        ]);
    }
    columns(&rows)
}

/// `node status ID`.
pub fn node_status(node: &Node, allocs: &[AllocListStub], now: i64) -> String {
    let drivers: Vec<String> = node
        .drivers
        .iter()
        .filter(|(_, driver)| driver.detected)
        .map(|(name, driver)| {
            if driver.healthy {
                name.clone()
            } else {
                format!("{name} (unhealthy)")
            }
        })
        .collect();
    let cpu = node
        .node_resources
        .pointer("/Cpu/CpuShares")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let memory = node
        .node_resources
        .pointer("/Memory/MemoryMB")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let disk = node
        .node_resources
        .pointer("/Disk/DiskMB")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut out = key_values(&[
        ("ID", node.id.clone()),
        ("Name", node.name.clone()),
        ("Node Pool", node.node_pool.clone()),
        (
            "Class",
            if node.node_class.is_empty() {
                "<none>".to_string()
            } else {
                node.node_class.clone()
            },
        ),
        ("DC", node.datacenter.clone()),
        ("Drain", node.drain.to_string()),
        ("Eligibility", node.scheduling_eligibility.clone()),
        ("Status", node.status.clone()),
        ("CPU", format!("{cpu} MHz")),
        ("Memory", format!("{memory} MiB")),
        ("Disk", format!("{disk} MiB")),
        ("Drivers", drivers.join(",")),
    ]);
    out.push_str("\nAllocations\n");
    out.push_str(&alloc_table(allocs, now));
    out
}

/// One line per evaluation while `job run` monitors it.
pub fn eval_line(eval: &Evaluation) -> String {
    format!(
        "Evaluation {:?} status {:?} (triggered by {:?})",
        short(&eval.id),
        eval.status,
        eval.triggered_by
    )
}

/// The placement failures of an evaluation, as `job run` prints them.
pub fn placement_failures(eval: &Evaluation) -> String {
    let Some(failed) = &eval.failed_tg_allocs else {
        return String::new();
    };
    let mut out = String::new();
    for (group, metric) in failed {
        let _ = writeln!(
            out,
            "Task Group {group:?} (failed to place {} allocation(s)):",
            metric.coalesced_failures + 1
        );
        for (constraint, count) in &metric.constraint_filtered {
            let _ = writeln!(out, "  * Constraint {constraint:?}: {count} nodes excluded by filter");
        }
        for (class, count) in &metric.class_filtered {
            let _ = writeln!(out, "  * Class {class:?}: {count} nodes excluded by filter");
        }
        for (dimension, count) in &metric.dimension_exhausted {
            let _ = writeln!(out, "  * Resources exhausted on {count} nodes");
            let _ = writeln!(out, "  * Dimension {dimension:?} exhausted on {count} nodes");
        }
        if metric.nodes_evaluated == 0 {
            let _ = writeln!(out, "  * No nodes were eligible for evaluation");
        }
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `drover server members`: Nomad's table of servers.
pub fn server_members(members: &Value) -> String {
    let mut rows = vec![
        [
            "Name",
            "Address",
            "Port",
            "Status",
            "Leader",
            "Raft Version",
            "Build",
            "Datacenter",
            "Region",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let leader_id = members["LeaderID"].as_str().unwrap_or_default();
    for member in members["Members"].as_array().into_iter().flatten() {
        let tags = &member["Tags"];
        rows.push(vec![
            text(&member["Name"]),
            text(&member["Addr"]),
            text(&member["Port"]),
            text(&member["Status"]),
            (text(&tags["id"]) == leader_id && !leader_id.is_empty()).to_string(),
            text(&tags["raft_vsn"]),
            text(&tags["build"]),
            text(&tags["dc"]),
            text(&tags["region"]),
        ]);
    }
    columns(&rows)
}

/// `drover operator raft list-peers`: Nomad's table of Raft peers.
pub fn raft_peers(configuration: &Value) -> String {
    let mut rows = vec![
        ["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
            .map(String::from)
            .to_vec(),
    ];
    for server in configuration["Servers"].as_array().into_iter().flatten() {
        let state = if server["Leader"].as_bool().unwrap_or(false) {
            "leader"
        } else {
            "follower"
        };
        rows.push(vec![
            text(&server["Node"]),
            text(&server["ID"]),
            text(&server["Address"]),
            state.to_string(),
            text(&server["Voter"]),
            text(&server["RaftProtocol"]),
        ]);
    }
    columns(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::{TaskEvent, TaskGroupSummary, TaskState};
    use expect_test::expect;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_795_305_300_000_000_000;
    const MINUTE: i64 = 60_000_000_000;

    fn alloc_stub(id: &str, status: &str, minutes_ago: i64) -> AllocListStub {
        AllocListStub {
            id: id.to_string(),
            node_id: "f00dfeed-0000-4000-8000-000000000000".into(),
            task_group: "web".into(),
            desired_status: "run".into(),
            client_status: status.into(),
            create_index: 10 + minutes_ago as u64,
            create_time: NOW - minutes_ago * MINUTE,
            modify_time: NOW - minutes_ago * MINUTE / 2,
            ..AllocListStub::default()
        }
    }

    #[test]
    fn fs_listing_renders_like_nomad() {
        let entries = vec![
            serde_json::json!({"Name": "logs", "IsDir": true, "Size": 0, "FileMode": "drwxr-xr-x", "ModTime": "2026-12-05T10:00:00Z"}),
            serde_json::json!({"Name": "app.conf", "IsDir": false, "Size": 1234, "FileMode": "-rw-r--r--", "ModTime": "2026-12-05T10:01:00Z"}),
        ];
        expect![[r#"
            Mode        Size    Modified Time         Name
            drwxr-xr-x  0 B     2026-12-05T10:00:00Z  logs/
            -rw-r--r--  1234 B  2026-12-05T10:01:00Z  app.conf
        "#]]
        .assert_eq(&fs_listing(&entries));
    }

    #[test]
    fn job_status_renders_summary_and_allocations() {
        let job = serde_json::json!({
            "ID": "hello", "Name": "hello", "Type": "service", "Priority": 50,
            "Datacenters": ["dc1"], "Namespace": "default", "NodePool": "default",
            "Status": "running", "SubmitTime": NOW - 5 * MINUTE, "Periodic": null,
        });
        let summary = JobSummary {
            job_id: "hello".into(),
            summary: BTreeMap::from([(
                "web".to_string(),
                TaskGroupSummary {
                    running: 1,
                    failed: 1,
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        let allocs = vec![
            alloc_stub("11111111-aaaa-4000-8000-000000000000", "failed", 4),
            alloc_stub("22222222-bbbb-4000-8000-000000000000", "running", 2),
        ];
        expect![[r#"
            ID            = hello
            Name          = hello
            Submit Date   = 2026-11-21T23:50:00Z
            Type          = service
            Priority      = 50
            Datacenters   = dc1
            Namespace     = default
            Node Pool     = default
            Status        = running
            Periodic      = false
            Parameterized = false

            Summary
            Task Group  Queued  Starting  Running  Failed  Complete  Lost  Unknown
            web         0       0         1        1       0         0     0

            Allocations
            ID        Node ID   Task Group  Version  Desired  Status   Created   Modified
            11111111  f00dfeed  web         0        run      failed   4m0s ago  2m0s ago
            22222222  f00dfeed  web         0        run      running  2m0s ago  1m0s ago
        "#]]
        .assert_eq(&job_status(&job, Some(&summary), &allocs, NOW));
    }

    #[test]
    fn alloc_status_lists_events_newest_first() {
        let mut alloc = Allocation {
            id: "33333333-cccc-4000-8000-000000000000".into(),
            eval_id: "44444444-dddd-4000-8000-000000000000".into(),
            name: "batch.work[0]".into(),
            node_id: "f00dfeed-0000-4000-8000-000000000000".into(),
            node_name: "dev".into(),
            job_id: "batch".into(),
            client_status: "failed".into(),
            desired_status: "run".into(),
            create_time: NOW - 3 * MINUTE,
            modify_time: NOW - MINUTE,
            ..Allocation::default()
        };
        alloc.task_states.insert(
            "work".into(),
            TaskState {
                state: "dead".into(),
                failed: true,
                restarts: 1,
                started_at: api_types::format_rfc3339(NOW - 3 * MINUTE),
                finished_at: api_types::format_rfc3339(NOW - MINUTE),
                events: vec![
                    TaskEvent {
                        event_type: "Terminated".into(),
                        time: NOW - 2 * MINUTE,
                        display_message: "Exit Code: 3".into(),
                        ..TaskEvent::default()
                    },
                    TaskEvent {
                        event_type: "Not Restarting".into(),
                        time: NOW - MINUTE,
                        display_message: "Exceeded allowed attempts 1 in interval 24h0m0s and mode is \"fail\"".into(),
                        ..TaskEvent::default()
                    },
                ],
                ..TaskState::default()
            },
        );
        expect![[r#"
            ID                  = 33333333-cccc-4000-8000-000000000000
            Eval ID             = 44444444
            Name                = batch.work[0]
            Node ID             = f00dfeed
            Node Name           = dev
            Job ID              = batch
            Job Version         = 0
            Client Status       = failed
            Client Description  =
            Desired Status      = run
            Desired Description =
            Created             = 3m0s ago
            Modified            = 1m0s ago

            Task "work" is "dead"
            Restarts    = 1
            Failed      = true
            Started At  = 2026-11-21T23:52:00Z
            Finished At = 2026-11-21T23:54:00Z

            Recent Events:
            Time                  Type            Description
            2026-11-21T23:54:00Z  Not Restarting  Exceeded allowed attempts 1 in interval 24h0m0s and mode is "fail"
            2026-11-21T23:53:00Z  Terminated      Exit Code: 3
        "#]]
        .assert_eq(&alloc_status(&alloc, NOW));
    }

    #[test]
    fn node_list_and_empty_states() {
        let nodes = vec![NodeListStub {
            id: "f00dfeed-0000-4000-8000-000000000000".into(),
            name: "dev".into(),
            datacenter: "dc1".into(),
            node_pool: "default".into(),
            scheduling_eligibility: "eligible".into(),
            status: "ready".into(),
            ..NodeListStub::default()
        }];
        expect![[r#"
            ID        Node Pool  DC   Name  Class   Drain  Eligibility  Status
            f00dfeed  default    dc1  dev   <none>  false  eligible     ready
        "#]]
        .assert_eq(&node_list(&nodes));
        assert_eq!(node_list(&[]), "No nodes registered\n");
        assert_eq!(job_list(&[]), "No running jobs\n");
        assert_eq!(alloc_table(&[], NOW), "No allocations placed\n");
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(0, NOW), "never");
        assert_eq!(age(NOW - 5_000_000_000, NOW), "5s ago");
        assert_eq!(age(NOW - 90 * MINUTE, NOW), "1h30m ago");
        assert_eq!(age(NOW - 49 * 60 * MINUTE, NOW), "2d1h ago");
    }

    #[test]
    fn server_members_and_raft_peers_render_as_tables() {
        let members = serde_json::json!({
            "LeaderID": "7",
            "Members": [
                {"Name": "s1.global", "Addr": "127.0.0.1", "Port": 4647, "Status": "alive",
                 "Tags": {"id": "7", "raft_vsn": "3", "build": "0.1.0", "dc": "dc1", "region": "global"}},
                {"Name": "s2.global", "Addr": "127.0.0.1", "Port": 5647, "Status": "failed",
                 "Tags": {"id": "9", "raft_vsn": "3", "build": "0.1.0", "dc": "dc1", "region": "global"}},
            ],
        });
        expect![[r#"
            Name       Address    Port  Status  Leader  Raft Version  Build  Datacenter  Region
            s1.global  127.0.0.1  4647  alive   true    3             0.1.0  dc1         global
            s2.global  127.0.0.1  5647  failed  false   3             0.1.0  dc1         global
        "#]]
        .assert_eq(&server_members(&members));
        let configuration = serde_json::json!({"Servers": [
            {"Node": "s1.global", "ID": "7", "Address": "127.0.0.1:4647", "Leader": true, "Voter": true, "RaftProtocol": "3"},
            {"Node": "s2.global", "ID": "9", "Address": "127.0.0.1:5647", "Leader": false, "Voter": true, "RaftProtocol": "3"},
        ]});
        expect![[r#"
            Node       ID  Address         State     Voter  RaftProtocol
            s1.global  7   127.0.0.1:4647  leader    true   3
            s2.global  9   127.0.0.1:5647  follower  true   3
        "#]]
        .assert_eq(&raft_peers(&configuration));
    }

    #[test]
    fn services_render_with_tags_and_health() {
        let list = vec![api_types::ServiceListEntry {
            namespace: "default".into(),
            services: vec![api_types::ServiceStub {
                service_name: "web".into(),
                tags: vec!["v1".into(), "v2".into()],
            }],
        }];
        expect![[r#"
            Service Name  Tags
            web           [v1,v2]
        "#]]
        .assert_eq(&service_list(&list, false));
        expect![[r#"
            Service Name  Namespace  Tags
            web           default    [v1,v2]
        "#]]
        .assert_eq(&service_list(&list, true));
        assert_eq!(service_list(&[], false), "No services found\n");
        let instance = |alloc: &str, port: u16, status: Option<&str>| api_types::ServiceRegistration {
            job_id: "web".into(),
            address: "127.0.0.1".into(),
            port,
            tags: vec!["v1".into()],
            node_id: "0123456789abcdef".into(),
            alloc_id: alloc.into(),
            checks: status
                .map(|status| {
                    vec![api_types::ServiceCheckResult {
                        status: status.into(),
                        ..api_types::ServiceCheckResult::default()
                    }]
                })
                .unwrap_or_default(),
            ..api_types::ServiceRegistration::default()
        };
        expect![[r#"
            Job ID  Address         Tags  Health     Node ID   Alloc ID
            web     127.0.0.1:8001  [v1]  healthy    01234567  aaaaaaaa
            web     127.0.0.1:8002  [v1]  unhealthy  01234567  bbbbbbbb
            web     127.0.0.1:8003  [v1]  no checks  01234567  cccccccc
        "#]]
        .assert_eq(&service_info(&[
            instance("aaaaaaaa-1111", 8001, Some("passing")),
            instance("bbbbbbbb-2222", 8002, Some("critical")),
            instance("cccccccc-3333", 8003, None),
        ]));
    }

    #[test]
    fn namespaces_render_as_nomad_prints_them() {
        let namespaces = vec![
            Namespace {
                name: "default".into(),
                description: "Default shared namespace".into(),
                ..Namespace::default()
            },
            Namespace {
                name: "prod".into(),
                description: "production".into(),
                meta: Some(BTreeMap::from([
                    ("owner".to_string(), "ops".to_string()),
                    ("team".to_string(), "a".to_string()),
                ])),
                ..Namespace::default()
            },
        ];
        expect![[r#"
            Name     Description
            default  Default shared namespace
            prod     production
        "#]]
        .assert_eq(&namespace_list(&namespaces));
        expect![[r#"
            Name        = prod
            Description = production

            Metadata
            owner = ops
            team  = a
        "#]]
        .assert_eq(&namespace_status(&namespaces[1]));
        expect![[r#"
            Name        = default
            Description = Default shared namespace
        "#]]
        .assert_eq(&namespace_status(&namespaces[0]));
        assert_eq!(namespace_list(&[]), "No namespaces found\n");
    }
}
