//! A node simulator: thousands of client nodes in one process, speaking the
//! real client RPC to a real cluster.
//!
//! Each simulated node does what a client agent does on the wire, without
//! running anything:
//! - registers its [`Node`] (`NodeRegister`), retrying with back-off;
//! - heartbeats at about half the TTL the servers hand back, registering
//!   again when they forgot it;
//! - watches its allocations with the blocking `NodeGetAllocs` query in its
//!   delta form, keeping only each allocation's status (never its job);
//! - reports each new allocation `running` after a configurable delay, and
//!   `complete` once the servers ask for it to stop, in batched
//!   `AllocUpdate` calls.
//!
//! On demand a node fails its tasks ([`Simulator::fail_alloc`],
//! [`Simulator::fail_node_tasks`]) or goes silent, as a crashed machine does
//! ([`Simulator::silence_node`]), and comes back ([`Simulator::revive_node`]).
//!
//! The nodes come from `workload::nodes`: mixed shapes, datacenters, node
//! classes and attributes, the same for a given seed as the benchmarks'.
//! Connections stay bounded: nodes share one [`RpcClient`] per
//! `nodes_per_client` nodes (each holds one multiplexed connection per
//! server it talks to), and the clients start on different servers so the
//! blocking queries spread over the cluster.
//!
//! Used by `drover-bench` only; never a dependency of a server or a client.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rpc::{
    AllocUpdateRequest, ClientOptions, NodeGetAllocsRequest, NodeGetAllocsResponse, NodeHeartbeatRequest,
    NodeRegisterRequest, RpcClient, RpcError,
};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use types::{
    AllocClientStatus, AllocClientUpdate, AllocDesiredStatus, Allocation, Node, NodeStatus, TaskState, TaskStateKind,
};

/// The first pause after a failed call; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The TTL assumed when the servers answer with none.
const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// The most simulated nodes one process runs (each is three futures and a
/// few hundred bytes plus its allocations' IDs).
pub const MAX_NODES: usize = 200_000;
/// The most nodes that may share one [`RpcClient`]: the servers take at
/// most 512 requests in flight per connection, and every node keeps one
/// blocking query open.
pub const MAX_NODES_PER_CLIENT: usize = 256;

/// How a simulation runs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The servers' RPC addresses (`host:port`).
    pub servers: Vec<String>,
    /// The nodes to simulate (see [`SimConfig::new`]).
    pub nodes: Vec<Node>,
    /// Nodes sharing one RPC client (and its connections).
    pub nodes_per_client: usize,
    /// How long an allocation takes from being seen to being reported
    /// running.
    pub run_delay: Duration,
    /// How long a blocking allocation query waits for a change.
    pub alloc_query_wait: Duration,
    /// How long a node gathers status updates before sending them.
    pub update_batch_window: Duration,
    /// Registrations in flight at once (each is a Raft write).
    pub register_concurrency: usize,
    /// Seeds the heartbeat jitter.
    pub seed: u64,
}

impl SimConfig {
    /// `count` heterogeneous nodes from `workload::nodes(count, seed)`
    /// against `servers`, with defaults for the rest.
    pub fn new(servers: Vec<String>, count: usize, seed: u64) -> SimConfig {
        SimConfig {
            servers,
            nodes: workload::nodes(count, seed),
            nodes_per_client: 128,
            run_delay: Duration::from_millis(200),
            alloc_query_wait: Duration::from_secs(60),
            update_batch_window: Duration::from_millis(50),
            register_concurrency: 64,
            seed,
        }
    }
}

/// Why a simulation cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    NoServers,
    TooManyNodes { nodes: usize, max: usize },
    BadNodesPerClient { nodes_per_client: usize, max: usize },
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::NoServers => write!(f, "no server address given"),
            SimError::TooManyNodes { nodes, max } => write!(f, "{nodes} nodes asked for, at most {max} supported"),
            SimError::BadNodesPerClient { nodes_per_client, max } => {
                write!(f, "nodes_per_client must be 1..={max}, got {nodes_per_client}")
            }
        }
    }
}

impl std::error::Error for SimError {}

/// Counters of a running simulation.
#[derive(Debug, Default)]
struct Counters {
    registered: AtomicU64,
    registrations: AtomicU64,
    heartbeats: AtomicU64,
    placed: AtomicU64,
    running: AtomicU64,
    live: AtomicU64,
    failed: AtomicU64,
    completed: AtomicU64,
    lost: AtomicU64,
    update_calls: AtomicU64,
    queries: AtomicU64,
    errors: AtomicU64,
}

/// What a simulation has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimStats {
    /// Nodes registered at least once.
    pub registered: u64,
    /// Registration calls that succeeded (re-registrations included).
    pub registrations: u64,
    pub heartbeats: u64,
    /// Distinct allocations the nodes were given to run.
    pub placed: u64,
    /// Allocations whose `running` report the servers accepted.
    pub running: u64,
    /// Of those, the ones still running now (not failed, stopped or lost
    /// since).
    pub live: u64,
    /// Allocations reported `failed` (on demand) and accepted.
    pub failed: u64,
    /// Allocations reported `complete` after the servers stopped them.
    pub completed: u64,
    /// Allocations the servers marked lost while their node was silent.
    pub lost: u64,
    /// `AllocUpdate` calls that succeeded.
    pub update_calls: u64,
    /// Allocation queries answered.
    pub queries: u64,
    /// Calls that failed (and were retried).
    pub errors: u64,
}

impl Counters {
    fn snapshot(&self) -> SimStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        SimStats {
            registered: get(&self.registered),
            registrations: get(&self.registrations),
            heartbeats: get(&self.heartbeats),
            placed: get(&self.placed),
            running: get(&self.running),
            live: get(&self.live),
            failed: get(&self.failed),
            completed: get(&self.completed),
            lost: get(&self.lost),
            update_calls: get(&self.update_calls),
            queries: get(&self.queries),
            errors: get(&self.errors),
        }
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Moves an allocation out of its state, keeping the live gauge right.
fn leave(local: &mut Local, to: Local, counters: &Counters) {
    if *local == (Local::Running { acked: true }) {
        counters.live.fetch_sub(1, Ordering::Relaxed);
    }
    *local = to;
}

/// Where a simulated allocation is, as its node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Local {
    /// Seen, waiting out the run delay.
    Starting,
    /// Reported running; `acked` once the servers accepted the report.
    Running { acked: bool },
    /// Reported failed on demand.
    Failed,
    /// Stopped by the servers (or lost).
    Stopped,
}

/// Allocations to report running, with their task names.
type Starting = Vec<(String, Vec<String>)>;

/// A status report on its way to the servers.
#[derive(Debug)]
enum Report {
    /// Report these running once the instant passes (still starting then).
    RunAt(Instant, Starting),
    /// Report this now.
    Now(AllocClientUpdate),
}

/// One simulated node.
struct SimNode {
    node: Node,
    rpc: Arc<RpcClient>,
    /// `true` while the node is silent (a crashed machine).
    silent: watch::Sender<bool>,
    /// The node's allocations: status and task names.
    allocs: Mutex<HashMap<String, (Local, Vec<String>)>>,
    reports: mpsc::UnboundedSender<Report>,
    registered: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A client status update for `tasks`, all in `kind` (failed or not).
fn update(alloc_id: &str, status: AllocClientStatus, tasks: &[String], description: &str) -> AllocClientUpdate {
    let now = now_nanos();
    let (kind, failed) = match status {
        AllocClientStatus::Running => (TaskStateKind::Running, false),
        AllocClientStatus::Failed => (TaskStateKind::Dead, true),
        _ => (TaskStateKind::Dead, false),
    };
    let task_states: BTreeMap<String, TaskState> = tasks
        .iter()
        .map(|task| {
            (
                task.clone(),
                TaskState {
                    state: kind,
                    failed,
                    started_at: now,
                    finished_at: if kind == TaskStateKind::Dead { now } else { 0 },
                    ..TaskState::default()
                },
            )
        })
        .collect();
    AllocClientUpdate {
        alloc_id: alloc_id.to_string(),
        client_status: status,
        client_description: description.to_string(),
        task_states,
        modify_time: now,
    }
}

/// A running simulation. Dropping it stops every node (abruptly, as if
/// the machines vanished).
pub struct Simulator {
    nodes: Vec<Arc<SimNode>>,
    counters: Arc<Counters>,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("nodes", &self.nodes.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Simulator {
    /// Starts every node (they register in the background, at most
    /// `register_concurrency` at once). Must run inside a tokio runtime.
    pub fn start(config: SimConfig) -> Result<Simulator, SimError> {
        if config.servers.is_empty() {
            return Err(SimError::NoServers);
        }
        if config.nodes.len() > MAX_NODES {
            return Err(SimError::TooManyNodes {
                nodes: config.nodes.len(),
                max: MAX_NODES,
            });
        }
        if config.nodes_per_client == 0 || config.nodes_per_client > MAX_NODES_PER_CLIENT {
            return Err(SimError::BadNodesPerClient {
                nodes_per_client: config.nodes_per_client,
                max: MAX_NODES_PER_CLIENT,
            });
        }
        let counters = Arc::new(Counters::default());
        let registering = Arc::new(Semaphore::new(config.register_concurrency.max(1)));
        let timings = Arc::new(Timings {
            run_delay: config.run_delay,
            alloc_query_wait: config.alloc_query_wait,
            update_batch_window: config.update_batch_window,
        });
        let mut clients: Vec<Arc<RpcClient>> = Vec::new();
        let mut nodes = Vec::with_capacity(config.nodes.len());
        let mut tasks = JoinSet::new();
        for (index, mut node) in config.nodes.into_iter().enumerate() {
            let group = index / config.nodes_per_client;
            if group == clients.len() {
                // Each client starts on a different server.
                let mut servers = config.servers.clone();
                servers.rotate_left(group % config.servers.len());
                clients.push(Arc::new(RpcClient::with_servers(servers, ClientOptions::default())));
            }
            node.status = NodeStatus::Ready;
            let (reports_tx, reports_rx) = mpsc::unbounded_channel();
            let (silent, _) = watch::channel(false);
            let sim_node = Arc::new(SimNode {
                node,
                rpc: Arc::clone(&clients[group]),
                silent,
                allocs: Mutex::new(HashMap::new()),
                reports: reports_tx,
                registered: AtomicBool::new(false),
            });
            nodes.push(Arc::clone(&sim_node));
            let counters = Arc::clone(&counters);
            let registering = Arc::clone(&registering);
            let timings = Arc::clone(&timings);
            let seed = workload::mix64(config.seed, index as u64);
            tasks.spawn(run_node(sim_node, counters, registering, timings, reports_rx, seed));
        }
        Ok(Simulator { nodes, counters, tasks })
    }

    /// What the nodes have done so far.
    pub fn stats(&self) -> SimStats {
        self.counters.snapshot()
    }

    /// How many nodes run.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node runs.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The simulated node at `index`, as registered.
    pub fn node(&self, index: usize) -> Option<&Node> {
        self.nodes.get(index).map(|node| &node.node)
    }

    /// The index of the node with this ID.
    pub fn node_index(&self, node_id: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.node.id == node_id)
    }

    /// The IDs of the allocations node `index` reported running (and has
    /// not failed or stopped since).
    pub fn running_allocs(&self, index: usize) -> Vec<String> {
        let Some(node) = self.nodes.get(index) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = lock(&node.allocs)
            .iter()
            .filter(|(_, (local, _))| matches!(local, Local::Running { .. }))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Waits until every node registered once, or `within` passes; returns
    /// how many did.
    pub async fn wait_registered(&self, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            let registered = self.counters.registered.load(Ordering::Relaxed);
            if registered >= self.nodes.len() as u64 || Instant::now() >= deadline {
                return registered;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Node `index` goes silent, as a crashed machine: no heartbeats, no
    /// queries, no reports until [`revive_node`](Simulator::revive_node).
    /// Returns whether the node exists.
    pub fn silence_node(&self, index: usize) -> bool {
        self.nodes.get(index).is_some_and(|node| {
            node.silent.send_replace(true);
            true
        })
    }

    /// Node `index` comes back: it heartbeats at once (so the servers mark
    /// it ready again) and resumes its queries and reports.
    pub fn revive_node(&self, index: usize) -> bool {
        self.nodes.get(index).is_some_and(|node| {
            node.silent.send_replace(false);
            true
        })
    }

    /// The task(s) of allocation `alloc_id` fail: its node reports it
    /// failed. Returns whether a node ran it.
    pub fn fail_alloc(&self, alloc_id: &str) -> bool {
        self.nodes
            .iter()
            .any(|node| fail_on(node, &self.counters, Some(alloc_id)) > 0)
    }

    /// Every running or starting allocation of node `index` fails; returns
    /// how many.
    pub fn fail_node_tasks(&self, index: usize) -> usize {
        self.nodes
            .get(index)
            .map_or(0, |node| fail_on(node, &self.counters, None))
    }

    /// Stops every node at once.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Marks `only` (or every live allocation) of `node` failed and queues the
/// reports.
fn fail_on(node: &SimNode, counters: &Counters, only: Option<&str>) -> usize {
    let mut allocs = lock(&node.allocs);
    let mut failed = 0;
    for (id, (local, tasks)) in allocs.iter_mut() {
        if only.is_some_and(|only| only != id) || !matches!(local, Local::Starting | Local::Running { .. }) {
            continue;
        }
        leave(local, Local::Failed, counters);
        failed += 1;
        let _ = node.reports.send(Report::Now(update(
            id,
            AllocClientStatus::Failed,
            tasks,
            "simulated task failure",
        )));
    }
    failed
}

struct Timings {
    run_delay: Duration,
    alloc_query_wait: Duration,
    update_batch_window: Duration,
}

fn ttl_of(ttl_ms: u64) -> Duration {
    if ttl_ms == 0 {
        DEFAULT_TTL
    } else {
        Duration::from_millis(ttl_ms)
    }
}

/// Waits while the node is silent.
async fn while_silent(node: &SimNode) {
    let mut silent = node.silent.subscribe();
    // The sender lives as long as the node: an error cannot happen while
    // this future runs, and ending the wait is the right reaction anyway.
    let _ = silent.wait_for(|silent| !*silent).await;
}

async fn run_node(
    node: Arc<SimNode>,
    counters: Arc<Counters>,
    registering: Arc<Semaphore>,
    timings: Arc<Timings>,
    reports: mpsc::UnboundedReceiver<Report>,
    seed: u64,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let ttl = {
        // The semaphore is never closed.
        let _permit = registering.acquire().await;
        register(&node, &counters).await
    };
    // Spread the first heartbeats over the first half TTL.
    let first = ttl.mul_f64(rng.gen_range(0.05..0.5));
    tokio::join!(
        heartbeat_loop(&node, &counters, ttl, first, &mut rng),
        watch_loop(&node, &counters, &timings),
        report_loop(&node, &counters, &timings, reports),
    );
}

async fn register(node: &SimNode, counters: &Counters) -> Duration {
    let mut backoff = MIN_BACKOFF;
    loop {
        while_silent(node).await;
        match node
            .rpc
            .node_register(NodeRegisterRequest {
                node: node.node.clone(),
            })
            .await
        {
            Ok(answer) => {
                bump(&counters.registrations, 1);
                if !node.registered.swap(true, Ordering::Relaxed) {
                    bump(&counters.registered, 1);
                }
                return ttl_of(answer.heartbeat_ttl_ms);
            }
            Err(error) => {
                bump(&counters.errors, 1);
                tracing::debug!(node = %node.node.name, %error, "registration failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn heartbeat_loop(node: &SimNode, counters: &Counters, mut ttl: Duration, first: Duration, rng: &mut SmallRng) {
    let mut silent = node.silent.subscribe();
    let mut wait = first;
    loop {
        // Sleep out the wait, unless the node is revived meanwhile (then
        // it heartbeats at once, as a rebooted client registers at once).
        let was_silent = *silent.borrow_and_update();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = silent.changed(), if was_silent => {}
        }
        if *silent.borrow() {
            let _ = silent.wait_for(|silent| !*silent).await;
        }
        let mut backoff = MIN_BACKOFF;
        loop {
            let request = NodeHeartbeatRequest {
                node_id: node.node.id.clone(),
                secret_id: node.node.secret_id.clone(),
                status: NodeStatus::Ready,
            };
            match node.rpc.node_heartbeat(request).await {
                Ok(answer) => {
                    bump(&counters.heartbeats, 1);
                    ttl = ttl_of(answer.heartbeat_ttl_ms);
                    break;
                }
                Err(RpcError::NotFound(_)) => {
                    ttl = register(node, counters).await;
                    break;
                }
                Err(error) => {
                    bump(&counters.errors, 1);
                    tracing::debug!(node = %node.node.name, %error, "heartbeat failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF).min(ttl / 4).max(MIN_BACKOFF);
                }
            }
        }
        wait = ttl.mul_f64(rng.gen_range(0.4..0.5));
    }
}

async fn watch_loop(node: &SimNode, counters: &Counters, timings: &Timings) {
    let mut index = 0;
    let mut backoff = MIN_BACKOFF;
    let max_wait_ms = u64::try_from(timings.alloc_query_wait.as_millis()).unwrap_or(u64::MAX);
    loop {
        while_silent(node).await;
        let answer = node
            .rpc
            .node_get_allocs(NodeGetAllocsRequest {
                node_id: node.node.id.clone(),
                secret_id: node.node.secret_id.clone(),
                min_index: index,
                max_wait_ms,
                delta: true,
            })
            .await;
        if *node.silent.borrow() {
            // A crashed machine never saw the answer.
            continue;
        }
        match answer {
            Ok(answer) => {
                backoff = MIN_BACKOFF;
                bump(&counters.queries, 1);
                index = if answer.index < index { 0 } else { answer.index };
                absorb(node, counters, timings, answer);
            }
            Err(error) => {
                bump(&counters.errors, 1);
                tracing::debug!(node = %node.node.name, %error, "allocation query failed, retrying");
                if matches!(error, RpcError::NotFound(_)) {
                    index = 0;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Takes an answer into the node's view: new allocations start (reported
/// running after the run delay), stopped ones are reported complete, lost
/// ones are dropped, and collected ones are forgotten.
fn absorb(node: &SimNode, counters: &Counters, timings: &Timings, answer: NodeGetAllocsResponse) {
    let (listed, changed): (Option<HashSet<String>>, Vec<Allocation>) = match answer.delta {
        Some(delta) => (Some(delta.alloc_ids.into_iter().collect()), delta.changed),
        None => (None, answer.allocs.into_iter().map(|entry| entry.alloc).collect()),
    };
    let listed = listed.unwrap_or_else(|| changed.iter().map(|alloc| alloc.id.clone()).collect());
    let mut starting = Vec::new();
    let mut allocs = lock(&node.allocs);
    allocs.retain(|id, _| listed.contains(id));
    for alloc in changed {
        let tasks: Vec<String> = alloc.allocated_resources.tasks.keys().cloned().collect();
        let entry = allocs.get_mut(&alloc.id);
        if alloc.client_status == AllocClientStatus::Lost {
            if let Some((local, _)) = entry
                && *local != Local::Stopped
            {
                leave(local, Local::Stopped, counters);
                bump(&counters.lost, 1);
            }
            continue;
        }
        let should_run = alloc.desired_status == AllocDesiredStatus::Run;
        match entry {
            None if should_run && !alloc.client_status.is_terminal() => {
                bump(&counters.placed, 1);
                allocs.insert(alloc.id.clone(), (Local::Starting, tasks.clone()));
                starting.push((alloc.id, tasks));
            }
            Some((local, tasks)) if !should_run && matches!(local, Local::Starting | Local::Running { .. }) => {
                leave(local, Local::Stopped, counters);
                let _ = node.reports.send(Report::Now(update(
                    &alloc.id,
                    AllocClientStatus::Complete,
                    tasks,
                    "stopped by the servers",
                )));
            }
            _ => {}
        }
    }
    drop(allocs);
    if !starting.is_empty() {
        let _ = node
            .reports
            .send(Report::RunAt(Instant::now() + timings.run_delay, starting));
    }
}

/// Gathers the node's reports and sends them in batches; a failed batch is
/// kept (newer reports for the same allocation replace older ones) and
/// retried with back-off.
async fn report_loop(
    node: &SimNode,
    counters: &Counters,
    timings: &Timings,
    mut reports: mpsc::UnboundedReceiver<Report>,
) {
    let mut scheduled: VecDeque<(Instant, Starting)> = VecDeque::new();
    let mut pending: BTreeMap<String, AllocClientUpdate> = BTreeMap::new();
    let mut flush_at: Option<Instant> = None;
    let mut backoff = MIN_BACKOFF;
    loop {
        let next_due = scheduled.front().map(|(due, _)| *due);
        let wake = match (next_due, flush_at) {
            (Some(due), Some(flush)) => Some(due.min(flush)),
            (due, flush) => due.or(flush),
        };
        tokio::select! {
            report = reports.recv() => match report {
                Some(Report::RunAt(due, allocs)) => scheduled.push_back((due, allocs)),
                Some(Report::Now(update)) => {
                    pending.insert(update.alloc_id.clone(), update);
                }
                None => return,
            },
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
        }
        let now = Instant::now();
        while scheduled.front().is_some_and(|(due, _)| *due <= now) {
            let Some((_, allocs)) = scheduled.pop_front() else {
                break;
            };
            let mut local = lock(&node.allocs);
            for (id, tasks) in allocs {
                if let Some((state, _)) = local.get_mut(&id)
                    && *state == Local::Starting
                {
                    *state = Local::Running { acked: false };
                    pending.insert(id.clone(), update(&id, AllocClientStatus::Running, &tasks, ""));
                }
            }
        }
        if pending.is_empty() {
            flush_at = None;
            continue;
        }
        let flush = *flush_at.get_or_insert(now + timings.update_batch_window);
        if now < flush {
            continue;
        }
        if *node.silent.borrow() {
            // Held until the node comes back.
            while_silent(node).await;
        }
        let batch: Vec<AllocClientUpdate> = pending.values().cloned().collect();
        let request = AllocUpdateRequest {
            node_id: node.node.id.clone(),
            secret_id: node.node.secret_id.clone(),
            updates: batch.clone(),
        };
        match node.rpc.alloc_update(request).await {
            Ok(_) => {
                backoff = MIN_BACKOFF;
                flush_at = None;
                bump(&counters.update_calls, 1);
                let mut local = lock(&node.allocs);
                for sent in batch {
                    if sent.client_status == AllocClientStatus::Running
                        && let Some((state, _)) = local.get_mut(&sent.alloc_id)
                        && *state == (Local::Running { acked: false })
                    {
                        *state = Local::Running { acked: true };
                        bump(&counters.live, 1);
                    }
                    match sent.client_status {
                        AllocClientStatus::Running => bump(&counters.running, 1),
                        AllocClientStatus::Failed => bump(&counters.failed, 1),
                        AllocClientStatus::Complete => bump(&counters.completed, 1),
                        _ => {}
                    }
                    if pending.get(&sent.alloc_id) == Some(&sent) {
                        pending.remove(&sent.alloc_id);
                    }
                }
            }
            Err(error @ (RpcError::BadRequest(_) | RpcError::PermissionDenied(_) | RpcError::NotFound(_))) => {
                // Refused outright: retrying cannot help.
                bump(&counters.errors, 1);
                tracing::warn!(node = %node.node.name, %error, "allocation update refused, dropping it");
                pending.clear();
                flush_at = None;
            }
            Err(error) => {
                bump(&counters.errors, 1);
                tracing::debug!(node = %node.node.name, %error, "allocation update failed, retrying");
                flush_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_refuses_bad_settings() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut config = SimConfig::new(Vec::new(), 2, 1);
            assert_eq!(Simulator::start(config.clone()).err(), Some(SimError::NoServers));
            config.servers = vec!["127.0.0.1:1".into()];
            config.nodes_per_client = 0;
            assert!(matches!(
                Simulator::start(config.clone()),
                Err(SimError::BadNodesPerClient { .. })
            ));
            config.nodes_per_client = MAX_NODES_PER_CLIENT + 1;
            assert!(matches!(
                Simulator::start(config.clone()),
                Err(SimError::BadNodesPerClient { .. })
            ));
            config.nodes_per_client = 1;
            config.nodes = vec![Node::default(); MAX_NODES + 1];
            assert!(matches!(Simulator::start(config), Err(SimError::TooManyNodes { .. })));
        });
    }

    #[test]
    fn the_nodes_are_heterogeneous() {
        let config = SimConfig::new(vec!["127.0.0.1:1".into()], 500, 3);
        let classes: HashSet<&str> = config.nodes.iter().map(|node| node.node_class.as_str()).collect();
        let datacenters: HashSet<&str> = config.nodes.iter().map(|node| node.datacenter.as_str()).collect();
        let memory: HashSet<i64> = config.nodes.iter().map(|node| node.resources.memory_mb).collect();
        assert!(classes.len() >= 5, "{classes:?}");
        assert!(datacenters.len() >= 3, "{datacenters:?}");
        assert!(memory.len() >= 4, "{memory:?}");
    }

    #[test]
    fn an_update_carries_every_task() {
        let tasks = vec!["a".to_string(), "b".to_string()];
        let running = update("x", AllocClientStatus::Running, &tasks, "");
        assert_eq!(running.task_states.len(), 2);
        assert!(
            running
                .task_states
                .values()
                .all(|state| state.state == TaskStateKind::Running)
        );
        let failed = update("x", AllocClientStatus::Failed, &tasks, "boom");
        assert!(
            failed
                .task_states
                .values()
                .all(|state| state.failed && state.state == TaskStateKind::Dead)
        );
    }
}
