//! Native services on the client: an allocation's `service` blocks become
//! registrations while their tasks run, their `http` and `tcp` checks run
//! here on their `interval` with their `timeout`, results travel with the
//! registration, and `check_restart` restarts a task after `limit`
//! consecutive failures (through the task's command channel, the same path
//! as `alloc restart`).
//!
//! Three parts: [`service_specs`] (pure: what to register for an
//! allocation), [`run_alloc_services`] (one per allocation: follows its
//! task states, runs checks, sends changes) and [`run_service_updater`]
//! (batches the node's changes to the servers). [`ServiceCatalog`] is the
//! node's copy of every registration, kept by a blocking watch, which
//! templates (`nomadService`) and the agent's DNS read.

use crate::env::TaskEnv;
use crate::handle::TaskControls;
use crate::task_runner::TaskCommand;
use rpc::{RpcClient, RpcError, ServiceUpdateRequest, ServiceWatchRequest};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use types::service::{
    CheckAction, CheckRestart, CheckState, MAX_CHECK_OUTPUT_BYTES, MAX_REGISTRATIONS_PER_REQUEST, Outcome, check_count,
    check_headers, check_name, effective_check_restart, registration_id,
};
use types::{Allocation, CheckResult, Job, Service, ServiceRegistration, TaskState, TaskStateKind};

/// A change to one of the node's registrations.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceChange {
    Upsert(Box<ServiceRegistration>),
    Delete(String),
}

/// Where allocations put their registration changes.
pub type ServiceSender = mpsc::UnboundedSender<ServiceChange>;

/// The latest check results of each allocation on this node, for
/// `/v1/client/allocation/:id/checks`: alloc → check ID → result.
pub type AllocChecks = Arc<Mutex<HashMap<String, BTreeMap<String, CheckReport>>>>;

/// One check's latest result as the checks endpoint shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckReport {
    #[serde(rename = "ID")]
    pub id: String,
    pub check: String,
    pub group: String,
    pub mode: String,
    pub output: String,
    pub service: String,
    pub status: String,
    pub status_code: u16,
    pub task: String,
    pub timestamp: i64,
}

/// How one check probes.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Http {
        url: String,
        method: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        addr: String,
    },
}

/// One check of a service instance.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    pub name: String,
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub initial_status: String,
    pub success_before_passing: u32,
    pub failures_before_critical: u32,
    pub restart: Option<CheckRestart>,
    /// The tasks `check_restart` restarts.
    pub restart_tasks: Vec<String>,
}

/// One service instance of an allocation.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The registration, checks not yet run.
    pub registration: ServiceRegistration,
    /// The task whose running makes the instance live (`None`: any task
    /// of the group).
    pub gate_task: Option<String>,
    pub checks: Vec<CheckSpec>,
    /// The owning task for task services, empty for group services.
    pub task: String,
}

/// The address and port a service (or check) points at: the group
/// network's port label on the host address, a number as written.
fn resolve_port(network: &driver_api::TaskNetwork, label: &str) -> Result<u16, String> {
    if label.is_empty() {
        return Ok(0);
    }
    if let Some(port) = network.ports.iter().find(|port| port.label == label) {
        return Ok(port.host_port);
    }
    label
        .parse::<u16>()
        .map_err(|_| format!("port label {label:?} is not in the allocation's network"))
}

/// What to register for an allocation: every service of its group and of
/// its tasks with the `nomad` provider. Pure: the environment of each
/// owner interpolates names, tags and meta.
pub fn service_specs(
    alloc: &Allocation,
    job: &Job,
    network: &driver_api::TaskNetwork,
    datacenter: &str,
    env_of: &dyn Fn(Option<&str>) -> TaskEnv,
) -> Result<Vec<ServiceSpec>, String> {
    let Some(group) = job.group(&alloc.task_group) else {
        return Ok(Vec::new());
    };
    let canary = alloc.deployment_status.as_ref().is_some_and(|status| status.canary);
    let mut owners: Vec<(Option<&str>, &Service)> = group.services.iter().map(|service| (None, service)).collect();
    for task in &group.tasks {
        owners.extend(task.services.iter().map(|service| (Some(task.name.as_str()), service)));
    }
    let all_tasks: Vec<String> = group.tasks.iter().map(|task| task.name.clone()).collect();
    let mut specs = Vec::new();
    for (task_name, service) in owners {
        if !matches!(service.provider.as_str(), "" | "nomad") {
            continue;
        }
        let env = env_of(task_name.or(Some(service.task_name.as_str()).filter(|name| !name.is_empty())));
        let name = env.interpolate(&service.name);
        let port = resolve_port(network, &service.port_label)?;
        let address = if service.address.is_empty() {
            network.host_ip.clone()
        } else {
            env.interpolate(&service.address)
        };
        let tags = if canary && !service.canary_tags.is_empty() {
            &service.canary_tags
        } else {
            &service.tags
        };
        let canary_meta: Option<BTreeMap<String, String>> = service
            .extra
            .get("CanaryMeta")
            .and_then(|value| serde_json::from_value(value.clone()).ok())
            .filter(|meta: &BTreeMap<String, String>| !meta.is_empty());
        let meta = match (canary, canary_meta) {
            (true, Some(meta)) => meta,
            _ => service.meta.clone(),
        };
        let owner = task_name.unwrap_or(group.name.as_str());
        let registration = ServiceRegistration {
            id: registration_id(&alloc.id, owner, &name, &service.port_label),
            service_name: name.clone(),
            namespace: alloc.namespace.clone(),
            node_id: alloc.node_id.clone(),
            datacenter: datacenter.to_string(),
            job_id: alloc.job_id.clone(),
            alloc_id: alloc.id.clone(),
            tags: tags.iter().map(|tag| env.interpolate(tag)).collect(),
            address: address.clone(),
            port,
            meta: meta
                .iter()
                .map(|(key, value)| (key.clone(), env.interpolate(value)))
                .collect(),
            ..ServiceRegistration::default()
        };
        let gate_task = task_name
            .map(str::to_string)
            .or_else(|| Some(service.task_name.clone()).filter(|name| !name.is_empty()));
        let mut checks = Vec::new();
        for check in &service.checks {
            let check_port = if check.port_label.is_empty() {
                port
            } else {
                resolve_port(network, &check.port_label)?
            };
            let target = format!("{address}:{check_port}");
            let probe = match check.check_type.as_str() {
                "http" => {
                    let path = env.interpolate(&check.path);
                    let path = if path.starts_with('/') {
                        path
                    } else {
                        format!("/{path}")
                    };
                    Probe::Http {
                        url: format!("http://{target}{path}"),
                        method: if check.method.is_empty() {
                            "GET".to_string()
                        } else {
                            check.method.clone()
                        },
                        headers: check_headers(check)?,
                    }
                }
                "tcp" => Probe::Tcp { addr: target },
                other => return Err(format!("{other} checks are not supported by Drover")),
            };
            let check_task = check
                .extra
                .get("TaskName")
                .and_then(serde_json::Value::as_str)
                .filter(|name| !name.is_empty())
                .map(str::to_string);
            let restart_tasks = match check_task.or_else(|| gate_task.clone()) {
                Some(task) => vec![task],
                None => all_tasks.clone(),
            };
            checks.push(CheckSpec {
                name: check_name(service, check),
                probe,
                interval: check.interval.max(types::runtime_support::MIN_CHECK_INTERVAL),
                timeout: check.timeout.max(Duration::from_millis(10)),
                initial_status: check.initial_status.clone(),
                success_before_passing: check_count(check, "SuccessBeforePassing")?,
                failures_before_critical: check_count(check, "FailuresBeforeCritical")?,
                restart: effective_check_restart(service, check)?,
                restart_tasks,
            });
        }
        specs.push(ServiceSpec {
            registration,
            gate_task,
            checks,
            task: task_name.unwrap_or_default().to_string(),
        });
    }
    Ok(specs)
}

/// Whether a spec's instance should be registered given the task states.
fn is_live(spec: &ServiceSpec, states: &BTreeMap<String, TaskState>) -> bool {
    match &spec.gate_task {
        Some(task) => states
            .get(task)
            .is_some_and(|state| state.state == TaskStateKind::Running),
        None => states.values().any(|state| state.state == TaskStateKind::Running),
    }
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_CHECK_OUTPUT_BYTES {
        let mut end = MAX_CHECK_OUTPUT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Runs one probe within its timeout: (outcome, output, HTTP status).
async fn probe(http: &reqwest::Client, probe: &Probe, timeout: Duration) -> (Outcome, String, u16) {
    match probe {
        Probe::Tcp { addr } => match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => (Outcome::Passing, format!("TCP connect {addr}: Success"), 0),
            Ok(Err(error)) => (Outcome::Critical, format!("dial tcp {addr}: {error}"), 0),
            Err(_) => (
                Outcome::Critical,
                format!("dial tcp {addr}: timeout after {timeout:?}"),
                0,
            ),
        },
        Probe::Http { url, method, headers } => {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
            let mut request = http.request(method.clone(), url).timeout(timeout);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    // As Consul: 2xx passes, 429 warns, anything else fails.
                    let outcome = if status.is_success() {
                        Outcome::Passing
                    } else if status.as_u16() == 429 {
                        Outcome::Warning
                    } else {
                        Outcome::Critical
                    };
                    (outcome, format!("HTTP {method} {url}: {status}"), status.as_u16())
                }
                Err(error) if error.is_timeout() => (
                    Outcome::Critical,
                    format!("HTTP {method} {url}: timeout after {timeout:?}"),
                    0,
                ),
                Err(error) => (Outcome::Critical, format!("HTTP {method} {url}: {error}"), 0),
            }
        }
    }
}

/// What an allocation's services loop needs.
pub struct AllocServices {
    pub specs: Vec<ServiceSpec>,
    pub alloc_id: String,
    pub group: String,
    pub sender: ServiceSender,
    pub controls: TaskControls,
    pub checks: AllocChecks,
}

/// A check result from a probe loop: (spec index, check index, outcome,
/// output, HTTP status).
type ProbeResult = (usize, usize, Outcome, String, u16);

struct Live {
    checks: Vec<CheckState>,
    results: Vec<CheckResult>,
    probes: tokio::task::JoinSet<()>,
    /// The gate task's restart count, to notice restarts.
    restarts: u64,
}

/// Follows an allocation's task states until the sender is dropped (the
/// allocation is done): registers live instances, runs their checks,
/// restarts tasks on `check_restart`, and deregisters everything at the end.
pub async fn run_alloc_services(services: AllocServices, mut states: watch::Receiver<BTreeMap<String, TaskState>>) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .unwrap_or_default();
    let origin = tokio::time::Instant::now();
    let (results_tx, mut results_rx) = mpsc::unbounded_channel::<ProbeResult>();
    let mut live: BTreeMap<usize, Live> = BTreeMap::new();
    loop {
        let current = states.borrow_and_update().clone();
        let now = origin.elapsed();
        for (idx, spec) in services.specs.iter().enumerate() {
            let should = is_live(spec, &current);
            let restarts = spec
                .gate_task
                .as_ref()
                .and_then(|task| current.get(task))
                .map_or(0, |state| state.restarts);
            match (should, live.contains_key(&idx)) {
                (true, false) => {
                    let mut probes = tokio::task::JoinSet::new();
                    for (check_idx, check) in spec.checks.iter().enumerate() {
                        let http = http.clone();
                        let check = check.clone();
                        let results = results_tx.clone();
                        probes.spawn(async move {
                            loop {
                                let (outcome, output, code) = probe(&http, &check.probe, check.timeout).await;
                                if results.send((idx, check_idx, outcome, output, code)).is_err() {
                                    return;
                                }
                                tokio::time::sleep(check.interval).await;
                            }
                        });
                    }
                    let checks: Vec<CheckState> = spec
                        .checks
                        .iter()
                        .map(|check| {
                            CheckState::new(
                                &check.initial_status,
                                check.success_before_passing,
                                check.failures_before_critical,
                                check.restart,
                                now,
                            )
                        })
                        .collect();
                    let results = spec
                        .checks
                        .iter()
                        .zip(&checks)
                        .map(|(check, state)| CheckResult {
                            name: check.name.clone(),
                            status: state.status.clone(),
                            ..CheckResult::default()
                        })
                        .collect();
                    let entry = Live {
                        checks,
                        results,
                        probes,
                        restarts,
                    };
                    send_upsert(&services, spec, &entry);
                    live.insert(idx, entry);
                }
                (false, true) => {
                    if let Some(mut gone) = live.remove(&idx) {
                        gone.probes.abort_all();
                    }
                    let _ = services
                        .sender
                        .send(ServiceChange::Delete(spec.registration.id.clone()));
                    forget_checks(&services, spec);
                }
                (true, true) => {
                    if let Some(entry) = live.get_mut(&idx)
                        && entry.restarts != restarts
                    {
                        entry.restarts = restarts;
                        for check in &mut entry.checks {
                            check.task_restarted(now);
                        }
                    }
                }
                (false, false) => {}
            }
        }
        tokio::select! {
            changed = states.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some((idx, check_idx, outcome, output, code)) = results_rx.recv() => {
                let now = origin.elapsed();
                let Some(spec) = services.specs.get(idx) else { continue };
                let Some(entry) = live.get_mut(&idx) else { continue };
                let (Some(state), Some(result)) = (entry.checks.get_mut(check_idx), entry.results.get_mut(check_idx)) else {
                    continue;
                };
                let before = (state.status.clone(), result.output.clone());
                let action = state.observe(outcome, now);
                result.status = state.status.clone();
                result.output = truncate(output);
                result.timestamp = crate::clock::unix_nanos();
                record_check(&services, spec, check_idx, result, code);
                if before != (result.status.clone(), result.output.clone()) {
                    send_upsert(&services, spec, entry);
                }
                if action == CheckAction::RestartTask
                    && let Some(check) = spec.checks.get(check_idx)
                {
                    tracing::info!(alloc_id = %services.alloc_id, check = %check.name, "check_restart: restarting after consecutive failures");
                    restart_tasks(&services, &check.restart_tasks, &check.name);
                    for check in &mut entry.checks {
                        check.task_restarted(now);
                    }
                }
            }
        }
    }
    for (idx, mut entry) in live {
        entry.probes.abort_all();
        if let Some(spec) = services.specs.get(idx) {
            let _ = services
                .sender
                .send(ServiceChange::Delete(spec.registration.id.clone()));
        }
    }
    services
        .checks
        .lock()
        .expect("alloc checks lock")
        .remove(&services.alloc_id);
}

fn send_upsert(services: &AllocServices, spec: &ServiceSpec, entry: &Live) {
    let mut registration = spec.registration.clone();
    registration.checks = entry.results.clone();
    let _ = services.sender.send(ServiceChange::Upsert(Box::new(registration)));
}

fn check_id(spec: &ServiceSpec, check_idx: usize) -> String {
    format!("{}-check-{check_idx}", spec.registration.id)
}

fn record_check(services: &AllocServices, spec: &ServiceSpec, check_idx: usize, result: &CheckResult, code: u16) {
    let id = check_id(spec, check_idx);
    let report = CheckReport {
        id: id.clone(),
        check: result.name.clone(),
        group: format!("{}.{}", spec.registration.job_id, services.group),
        mode: "healthiness".to_string(),
        output: result.output.clone(),
        service: spec.registration.service_name.clone(),
        status: result.status.clone(),
        status_code: code,
        task: spec.task.clone(),
        timestamp: result.timestamp / 1_000_000_000,
    };
    services
        .checks
        .lock()
        .expect("alloc checks lock")
        .entry(services.alloc_id.clone())
        .or_default()
        .insert(id, report);
}

fn forget_checks(services: &AllocServices, spec: &ServiceSpec) {
    if let Some(checks) = services
        .checks
        .lock()
        .expect("alloc checks lock")
        .get_mut(&services.alloc_id)
    {
        for idx in 0..spec.checks.len() {
            checks.remove(&check_id(spec, idx));
        }
    }
}

fn restart_tasks(services: &AllocServices, tasks: &[String], check: &str) {
    let senders: Vec<mpsc::UnboundedSender<TaskCommand>> = {
        let controls = services.controls.lock().expect("task controls lock");
        let Some(alloc) = controls.get(&services.alloc_id) else {
            return;
        };
        tasks.iter().filter_map(|task| alloc.get(task).cloned()).collect()
    };
    for sender in senders {
        let (reply, _) = tokio::sync::oneshot::channel();
        let _ = sender.send(TaskCommand::Restart {
            reason: format!("healthcheck: check {check:?} unhealthy"),
            reply,
        });
    }
}

/// Sends the node's registration changes to the servers in batches; a
/// newer change for an ID replaces an older one still waiting. Failed
/// batches are retried with back-off; refused ones are dropped (logged).
pub async fn run_service_updater(
    mut changes: mpsc::UnboundedReceiver<ServiceChange>,
    rpc: Arc<RpcClient>,
    node_id: String,
    secret_id: String,
    batch_window: Duration,
    max_backoff: Duration,
) {
    let mut pending: BTreeMap<String, ServiceChange> = BTreeMap::new();
    let mut backoff = Duration::from_millis(100);
    let mut open = true;
    loop {
        if pending.is_empty() {
            if !open {
                return;
            }
            match changes.recv().await {
                Some(change) => insert_change(&mut pending, change),
                None => return,
            }
        }
        let window = tokio::time::sleep(batch_window);
        tokio::pin!(window);
        while open {
            tokio::select! {
                _ = &mut window => break,
                change = changes.recv() => match change {
                    Some(change) => insert_change(&mut pending, change),
                    None => open = false,
                },
            }
        }
        let batch: Vec<(String, ServiceChange)> = pending
            .iter()
            .take(MAX_REGISTRATIONS_PER_REQUEST)
            .map(|(id, change)| (id.clone(), change.clone()))
            .collect();
        let mut request = ServiceUpdateRequest {
            node_id: node_id.clone(),
            secret_id: secret_id.clone(),
            upserts: Vec::new(),
            deletes: Vec::new(),
        };
        for (_, change) in &batch {
            match change {
                ServiceChange::Upsert(registration) => request.upserts.push((**registration).clone()),
                ServiceChange::Delete(id) => request.deletes.push(id.clone()),
            }
        }
        match rpc.service_update(request).await {
            Ok(_) => {
                backoff = Duration::from_millis(100);
                for (id, sent) in batch {
                    if pending.get(&id) == Some(&sent) {
                        pending.remove(&id);
                    }
                }
            }
            Err(error @ (RpcError::BadRequest(_) | RpcError::NotFound(_) | RpcError::PermissionDenied(_))) => {
                tracing::warn!(%error, "servers refused service registrations; dropping them");
                for (id, _) in batch {
                    pending.remove(&id);
                }
            }
            Err(error) => {
                tracing::debug!(%error, "sending service registrations failed; retrying");
                if !open {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

fn insert_change(pending: &mut BTreeMap<String, ServiceChange>, change: ServiceChange) {
    let id = match &change {
        ServiceChange::Upsert(registration) => registration.id.clone(),
        ServiceChange::Delete(id) => id.clone(),
    };
    pending.insert(id, change);
}

/// The node's copy of every service registration, kept current by
/// [`run_service_watch`]. Cheap to clone; readers see one consistent list.
#[derive(Clone, Debug)]
pub struct ServiceCatalog {
    current: watch::Sender<Arc<Vec<ServiceRegistration>>>,
}

impl Default for ServiceCatalog {
    fn default() -> ServiceCatalog {
        ServiceCatalog {
            current: watch::Sender::new(Arc::new(Vec::new())),
        }
    }
}

impl ServiceCatalog {
    /// Every registration, as last seen.
    pub fn all(&self) -> Arc<Vec<ServiceRegistration>> {
        Arc::clone(&self.current.borrow())
    }

    /// Replaces the list (the watch loop, or a server's own state).
    pub fn set(&self, registrations: Vec<ServiceRegistration>) {
        self.current.send_replace(Arc::new(registrations));
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<ServiceRegistration>>> {
        self.current.subscribe()
    }
}

/// Keeps `catalog` current with blocking `ServiceWatch` queries.
pub async fn run_service_watch(
    rpc: Arc<RpcClient>,
    node_id: String,
    secret_id: String,
    catalog: ServiceCatalog,
    max_backoff: Duration,
) {
    let mut index = 0;
    let mut backoff = Duration::from_millis(100);
    loop {
        let answer = rpc
            .service_watch(ServiceWatchRequest {
                node_id: node_id.clone(),
                secret_id: secret_id.clone(),
                min_index: index,
                // Short waits: a missed wake-up costs at most this long.
                max_wait_ms: 5_000,
            })
            .await;
        match answer {
            Ok(answer) => {
                backoff = Duration::from_millis(100);
                if answer.index != index || index == 0 {
                    catalog.set(answer.registrations);
                }
                // An index that went back (a restored cluster) starts over.
                index = if answer.index < index { 0 } else { answer.index };
            }
            Err(error) => {
                tracing::debug!(%error, "watching service registrations failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::{AllocDeploymentStatus, ServiceCheck, Task, TaskGroup};

    fn job() -> Job {
        let check = ServiceCheck {
            check_type: "http".into(),
            path: "health".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            extra: [(
                "CheckRestart".to_string(),
                serde_json::json!({"Limit": 2, "Grace": "1s"}),
            )]
            .into(),
            ..ServiceCheck::default()
        };
        Job {
            id: "web".into(),
            task_groups: vec![TaskGroup {
                name: "g".into(),
                services: vec![Service {
                    name: "web-${NOMAD_ALLOC_INDEX}".into(),
                    port_label: "http".into(),
                    provider: "nomad".into(),
                    tags: vec!["a".into()],
                    canary_tags: vec!["canary".into()],
                    meta: [("k".to_string(), "v".to_string())].into(),
                    checks: vec![check],
                    extra: [("CanaryMeta".to_string(), serde_json::json!({"k": "c"}))].into(),
                    ..Service::default()
                }],
                tasks: vec![Task {
                    name: "t".into(),
                    services: vec![Service {
                        name: "admin".into(),
                        port_label: "9000".into(),
                        provider: "nomad".into(),
                        address: "10.0.0.9".into(),
                        checks: vec![ServiceCheck {
                            check_type: "tcp".into(),
                            interval: Duration::from_secs(1),
                            timeout: Duration::from_secs(1),
                            ..ServiceCheck::default()
                        }],
                        ..Service::default()
                    }],
                    ..Task::default()
                }],
                ..TaskGroup::default()
            }],
            ..Job::default()
        }
    }

    fn network() -> driver_api::TaskNetwork {
        driver_api::TaskNetwork {
            host_ip: "127.0.0.1".into(),
            ports: vec![driver_api::PortMapping {
                label: "http".into(),
                host_port: 23456,
                task_port: 23456,
            }],
            ..driver_api::TaskNetwork::default()
        }
    }

    fn env(_: Option<&str>) -> TaskEnv {
        TaskEnv::from_vars([("NOMAD_ALLOC_INDEX".to_string(), "2".to_string())].into())
    }

    #[test]
    fn specs_map_ports_tags_checks_and_canaries() {
        let alloc = Allocation {
            id: "a1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            task_group: "g".into(),
            node_id: "n1".into(),
            ..Allocation::default()
        };
        let specs = service_specs(&alloc, &job(), &network(), "dc1", &env).expect("specs");
        assert_eq!(specs.len(), 2);
        let web = &specs[0];
        assert_eq!(web.registration.id, "_nomad-task-a1-g-web-2-http");
        assert_eq!(web.registration.service_name, "web-2");
        assert_eq!(
            (web.registration.address.as_str(), web.registration.port),
            ("127.0.0.1", 23456)
        );
        assert_eq!(web.registration.tags, ["a"]);
        assert_eq!(web.registration.meta.get("k").map(String::as_str), Some("v"));
        assert_eq!(web.gate_task, None);
        assert_eq!(
            web.checks[0].probe,
            Probe::Http {
                url: "http://127.0.0.1:23456/health".into(),
                method: "GET".into(),
                headers: Vec::new()
            }
        );
        assert_eq!(web.checks[0].restart.map(|restart| restart.limit), Some(2));
        assert_eq!(web.checks[0].restart_tasks, ["t"]);
        let admin = &specs[1];
        assert_eq!(admin.gate_task.as_deref(), Some("t"));
        assert_eq!(
            (admin.registration.address.as_str(), admin.registration.port),
            ("10.0.0.9", 9000)
        );
        assert_eq!(
            admin.checks[0].probe,
            Probe::Tcp {
                addr: "10.0.0.9:9000".into()
            }
        );

        let canary = Allocation {
            deployment_status: Some(AllocDeploymentStatus {
                canary: true,
                ..AllocDeploymentStatus::default()
            }),
            ..alloc
        };
        let specs = service_specs(&canary, &job(), &network(), "dc1", &env).expect("specs");
        assert_eq!(specs[0].registration.tags, ["canary"]);
        assert_eq!(specs[0].registration.meta.get("k").map(String::as_str), Some("c"));
    }

    #[test]
    fn a_missing_port_label_is_an_error() {
        let alloc = Allocation {
            task_group: "g".into(),
            ..Allocation::default()
        };
        let mut network = network();
        network.ports.clear();
        let error = service_specs(&alloc, &job(), &network, "dc1", &env).expect_err("no port");
        assert!(error.contains("\"http\""), "{error}");
    }

    #[test]
    fn liveness_follows_the_gate_task() {
        let specs = service_specs(
            &Allocation {
                task_group: "g".into(),
                ..Allocation::default()
            },
            &job(),
            &network(),
            "dc1",
            &env,
        )
        .expect("specs");
        let mut states = BTreeMap::new();
        assert!(!is_live(&specs[0], &states));
        states.insert(
            "t".to_string(),
            TaskState {
                state: TaskStateKind::Running,
                ..TaskState::default()
            },
        );
        assert!(is_live(&specs[0], &states));
        assert!(is_live(&specs[1], &states));
    }
}
