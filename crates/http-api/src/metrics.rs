//! `GET /v1/metrics`: the agent's metrics as go-metrics JSON (Nomad's
//! default) or, with `?format=prometheus`, as Prometheus text exposition
//! (version 0.0.4), so Prometheus scrapes it without configuration.
//!
//! Three sources: the server's registry (`server::metrics`: counters and
//! timings its loops record), gauges read from the state, the broker and
//! the event buffer when scraped, and the local client's allocations.
//! Names are Nomad's where the same thing is measured
//! (`nomad.nomad.broker.total_ready`, `nomad.client.allocations.running`,
//! `nomad.nomad.plan.apply`…) and `drover.*` for Drover's own. For
//! Prometheus, dots and dashes become underscores; counters are
//! `counter`s and timings `summary`s with `_sum` and `_count`.
//!
//! Job-summary gauges are bounded: at most [`MAX_JOB_SERIES`] jobs are
//! reported (the first by namespace and ID), so a scrape stays small in a
//! cluster with many jobs; `drover.metrics.jobs_omitted` says how many
//! were left out.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use server::metrics::{Labels, Summary};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

/// Jobs whose summaries become gauges, at most.
pub(crate) const MAX_JOB_SERIES: usize = 500;

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct MetricsQuery {
    format: Option<String>,
}

/// Everything one scrape reports.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub gauges: Vec<(String, Labels, f64)>,
    pub counters: Vec<(String, Labels, Summary)>,
    pub samples: Vec<(String, Labels, Summary)>,
    pub uptime_secs: f64,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut labels: Labels = pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    labels.sort();
    labels
}

/// A counter of `value` increments of one.
fn count_of(value: u64) -> Summary {
    let mut summary = Summary::default();
    if value > 0 {
        summary.count = value;
        summary.sum = value as f64;
        summary.sum_sq = value as f64;
        summary.min = 1.0;
        summary.max = 1.0;
    }
    summary
}

pub(crate) fn collect(state: &AppState) -> Snapshot {
    let server = &state.server;
    let snapshot = server.state();
    let registry = server.metrics();
    let mut gauges = Vec::new();
    let mut gauge = |name: &str, pairs: &[(&str, &str)], value: f64| {
        gauges.push((name.to_string(), labels(pairs), value));
    };

    let (ready, unacked) = server.broker_stats();
    gauge("nomad.nomad.broker.total_ready", &[], ready as f64);
    gauge("nomad.nomad.broker.total_unacked", &[], unacked as f64);
    gauge(
        "nomad.nomad.blocked_evals.total_blocked",
        &[],
        snapshot.blocked_evals().count() as f64,
    );
    gauge("nomad.nomad.heartbeat.active", &[], server.heartbeats_active() as f64);
    gauge("nomad.raft.appliedIndex", &[], snapshot.index() as f64);
    gauge(
        "nomad.nomad.leader.is_leader",
        &[],
        if server.is_leader() { 1.0 } else { 0.0 },
    );
    let (frames, events) = server.events().len();
    gauge("drover.events.buffer_frames", &[], frames as f64);
    gauge("drover.events.buffer_events", &[], events as f64);

    // Jobs by status, and each job's summary (bounded).
    let jobs = snapshot.jobs(None);
    let mut by_status: BTreeMap<&str, usize> = [("pending", 0), ("running", 0), ("dead", 0)].into();
    for job in &jobs {
        *by_status.entry(job.status.as_str()).or_default() += 1;
    }
    for (status, n_jobs) in by_status {
        gauge(&format!("nomad.nomad.job_status.{status}"), &[], n_jobs as f64);
    }
    for job in jobs.iter().take(MAX_JOB_SERIES) {
        let Some(summary) = snapshot.job_summary(&job.namespace, &job.id) else {
            continue;
        };
        for (group, counts) in &summary.summary {
            let pairs = [
                ("job", job.id.as_str()),
                ("task_group", group.as_str()),
                ("namespace", job.namespace.as_str()),
            ];
            for (name, value) in [
                ("queued", counts.queued),
                ("complete", counts.complete),
                ("failed", counts.failed),
                ("running", counts.running),
                ("starting", counts.starting),
                ("lost", counts.lost),
                ("unknown", counts.unknown),
            ] {
                gauge(&format!("nomad.nomad.job_summary.{name}"), &pairs, value as f64);
            }
        }
    }
    gauge(
        "drover.metrics.jobs_omitted",
        &[],
        jobs.len().saturating_sub(MAX_JOB_SERIES) as f64,
    );

    // The local client's allocations, as its own agent reports them.
    if let Some(node_id) = &state.agent.client_node_id {
        let node = snapshot.node_ref(node_id);
        let datacenter = node.map(|node| node.datacenter.clone()).unwrap_or_default();
        let node_class = node.map(|node| node.node_class.clone()).unwrap_or_default();
        let pool = node.map(|node| node.node_pool.clone()).unwrap_or_default();
        let (mut running, mut pending, mut terminal) = (0, 0, 0);
        for alloc in snapshot.allocs_by_node_ref(node_id) {
            match alloc.client_status {
                types::AllocClientStatus::Running => running += 1,
                types::AllocClientStatus::Pending => pending += 1,
                status if status.is_terminal() => terminal += 1,
                _ => {}
            }
        }
        let pairs = [
            ("node_id", node_id.as_str()),
            ("datacenter", datacenter.as_str()),
            ("node_class", node_class.as_str()),
            ("node_pool", pool.as_str()),
        ];
        gauge("nomad.client.allocations.running", &pairs, running as f64);
        gauge("nomad.client.allocations.pending", &pairs, pending as f64);
        gauge("nomad.client.allocations.terminal", &pairs, terminal as f64);
    }

    let mut counters = registry.counters();
    let plans = server.plan_stats();
    counters.push((
        "drover.plan.applied".to_string(),
        Labels::new(),
        count_of(plans.applied),
    ));
    counters.push((
        "drover.plan.conflicts".to_string(),
        Labels::new(),
        count_of(plans.rejected),
    ));
    let apply = server.raft().apply_stats();
    counters.push((
        "drover.raft.fsm.apply".to_string(),
        Labels::new(),
        count_of(apply.count.load(Relaxed)),
    ));
    let mut apply_time = Summary {
        count: 1,
        ..Summary::default()
    };
    apply_time.sum = apply.total_nanos.load(Relaxed) as f64 / 1e6;
    apply_time.min = apply_time.sum;
    apply_time.max = apply_time.sum;
    counters.push(("drover.raft.fsm.apply_time_ms".to_string(), Labels::new(), apply_time));
    gauges.push((
        "drover.raft.fsm.apply_time_max_ms".to_string(),
        Labels::new(),
        apply.max_nanos.load(Relaxed) as f64 / 1e6,
    ));

    Snapshot {
        gauges,
        counters,
        samples: registry.samples(),
        uptime_secs: registry.uptime().as_secs_f64().max(1.0),
    }
}

/// go-metrics' timestamp format (`2006-01-02 15:04:05 +0000 UTC`).
fn timestamp(unix_secs: u64) -> String {
    let (year, month, day, hour, minute, second) = civil_time(unix_secs);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} +0000 UTC")
}

/// (year, month, day, hour, minute, second) in UTC of a Unix time.
pub(crate) fn civil_time(unix_secs: u64) -> (i64, i64, i64, u64, u64, u64) {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs / 3600, secs / 60 % 60, secs % 60)
}

fn labels_json(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect(),
    )
}

fn summary_json(name: &str, labels: &Labels, summary: &Summary, uptime_secs: f64) -> Value {
    json!({
        "Name": name,
        "Count": summary.count,
        "Rate": summary.sum / uptime_secs,
        "Sum": summary.sum,
        "Min": summary.min,
        "Max": summary.max,
        "Mean": summary.mean(),
        "Stddev": summary.stddev(),
        "Labels": labels_json(labels),
    })
}

/// The go-metrics JSON document.
pub(crate) fn to_json(metrics: &Snapshot, unix_secs: u64) -> Value {
    json!({
        "Timestamp": timestamp(unix_secs),
        "Gauges": metrics.gauges.iter().map(|(name, labels, value)| json!({
            "Name": name, "Value": value, "Labels": labels_json(labels),
        })).collect::<Vec<_>>(),
        "Points": [],
        "Counters": metrics.counters.iter()
            .map(|(name, labels, summary)| summary_json(name, labels, summary, metrics.uptime_secs))
            .collect::<Vec<_>>(),
        "Samples": metrics.samples.iter()
            .map(|(name, labels, summary)| summary_json(name, labels, summary, metrics.uptime_secs))
            .collect::<Vec<_>>(),
    })
}

/// A Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn prometheus_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn prometheus_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let body: Vec<String> = labels
        .iter()
        .map(|(name, value)| {
            let value = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            format!("{}=\"{value}\"", prometheus_name(name))
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{value}")
    }
}

/// The Prometheus text exposition: one family per name, its series
/// together, as the format requires.
pub(crate) fn to_prometheus(metrics: &Snapshot) -> String {
    let mut families: BTreeMap<String, (&str, Vec<String>)> = BTreeMap::new();
    for (name, labels, value) in &metrics.gauges {
        let name = prometheus_name(name);
        let line = format!("{name}{} {}", prometheus_labels(labels), number(*value));
        families.entry(name).or_insert(("gauge", Vec::new())).1.push(line);
    }
    for (name, labels, summary) in &metrics.counters {
        let name = prometheus_name(name);
        let line = format!("{name}{} {}", prometheus_labels(labels), number(summary.sum));
        families.entry(name).or_insert(("counter", Vec::new())).1.push(line);
    }
    for (name, labels, summary) in &metrics.samples {
        let name = prometheus_name(name);
        let rendered = prometheus_labels(labels);
        let lines = families.entry(name.clone()).or_insert(("summary", Vec::new()));
        lines.1.push(format!("{name}_sum{rendered} {}", number(summary.sum)));
        lines.1.push(format!("{name}_count{rendered} {}", summary.count));
    }
    let mut out = String::new();
    for (name, (kind, lines)) in families {
        let _ = writeln!(out, "# HELP {name} {name}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// `GET /v1/metrics`.
pub async fn metrics(State(state): State<AppState>, Query(query): Query<MetricsQuery>) -> Result<Response, ApiError> {
    let metrics = collect(&state);
    match query.format.as_deref() {
        None | Some("") | Some("json") => {
            let unix_secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs())
                .unwrap_or(0);
            Ok(axum::Json(to_json(&metrics, unix_secs)).into_response())
        }
        Some("prometheus") => Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            to_prometheus(&metrics),
        )
            .into_response()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "unsupported metrics format {other:?} (json or prometheus)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_go_metrics_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(timestamp(1_709_251_199), "2024-02-29 23:59:59 +0000 UTC");
    }

    #[test]
    fn prometheus_text_groups_families_and_escapes() {
        let mut summary = Summary::default();
        summary.add(2.5);
        let metrics = Snapshot {
            gauges: vec![
                ("nomad.a-b".to_string(), labels(&[("job", "we\"b")]), 1.0),
                ("nomad.a-b".to_string(), labels(&[("job", "x")]), 2.0),
            ],
            counters: vec![("c.d".to_string(), Labels::new(), count_of(3))],
            samples: vec![("t.e".to_string(), Labels::new(), summary)],
            uptime_secs: 1.0,
        };
        let text = to_prometheus(&metrics);
        assert_eq!(
            text,
            "# HELP c_d c_d\n# TYPE c_d counter\nc_d 3\n\
             # HELP nomad_a_b nomad_a_b\n# TYPE nomad_a_b gauge\nnomad_a_b{job=\"we\\\"b\"} 1\nnomad_a_b{job=\"x\"} 2\n\
             # HELP t_e t_e\n# TYPE t_e summary\nt_e_sum 2.5\nt_e_count 1\n"
        );
    }
}
