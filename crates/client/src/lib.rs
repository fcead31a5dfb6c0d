//! The client agent: it fingerprints the machine into a node, registers it
//! with the servers and keeps it alive with heartbeats, learns the node's
//! allocations through a blocking query, and runs each allocation's tasks
//! through the drivers, reporting their states back.
//!
//! Map of the crate:
//! - [`fingerprint`]: the machine as a [`types::Node`].
//! - [`alloc_runner`]: one allocation: directory, lifecycle ordering, status.
//! - [`task_runner`]: one task: start, wait, restart policy, kill.
//! - [`restart`]: the pure restart decision.
//! - [`env`]: the `NOMAD_*` environment and `${...}` interpolation.
//! - [`alloc_dir`]: the on-disk layout of an allocation.
//! - [`local_state`]: what survives an agent restart, for reattaching.
//! - [`secure`]: owner-only modes for the data dir, the node secret and
//!   every task's `secrets/`.
//! - [`updater`]: batched status updates to the servers.
//! - [`services`]: native service registrations, their checks and the
//!   node's copy of the catalog.
//!
//! **Invariant:** the client talks to servers only through `rpc`; it never
//! depends on `server`, `state` or `scheduler`.
//! **Invariant:** every timer goes through `tokio::time`, so the restart
//! and back-off logic is testable under paused time.

pub mod alloc_dir;
pub mod alloc_runner;
pub mod artifact;
pub mod artifact_cache;
pub mod clock;
pub mod config;
pub mod env;
pub mod error;
pub mod fingerprint;
pub mod gc;
pub mod handle;
pub mod local_state;
pub mod restart;
pub mod sandbox;
pub mod secure;
pub mod services;
pub mod task_runner;
pub mod template;
pub mod updater;

pub use alloc_dir::AllocDir;
pub use config::ClientConfig;
pub use error::NewClientError;

use alloc_runner::{AllocContext, AllocRunner};
use driver_api::Driver;
use fingerprint::{NodeIdentity, fingerprint_node};
use local_state::LocalStore;
use rpc::{AllocWithJob, NodeGetAllocsRequest, NodeHeartbeatRequest, NodeRegisterRequest, RpcClient, RpcError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use types::{AllocClientStatus, AllocDesiredStatus, Node, NodeStatus};
use updater::{UpdaterTimings, run_updater};

/// The heartbeat TTL assumed when a server answers with none.
const DEFAULT_HEARTBEAT_TTL: Duration = Duration::from_secs(10);
/// The first pause before retrying a failed call.
const MIN_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Extra time a blocking query gets beyond its own wait before the client
/// gives up on the answer.
const QUERY_GRACE: Duration = Duration::from_secs(30);
/// How long a shutdown waits for the last status updates to go out.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// A client agent, ready to [`run`](Client::run).
pub struct Client {
    config: ClientConfig,
    node: Node,
    drivers: BTreeMap<String, Arc<dyn Driver>>,
    rpc: Arc<RpcClient>,
    artifacts: Arc<artifact::ArtifactFetcher>,
    controls: handle::TaskControls,
    commands: tokio::sync::mpsc::UnboundedSender<handle::ClientCommand>,
    command_receiver: tokio::sync::mpsc::UnboundedReceiver<handle::ClientCommand>,
    catalog: services::ServiceCatalog,
    alloc_checks: services::AllocChecks,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("node_id", &self.node.id)
            .field("drivers", &self.drivers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Reads the node's ID and secret from `<client_dir>/node-id` and
/// `secret-id`, creating them on the first start. Both are owner-only
/// files (0600), and an existing file with a looser mode is tightened.
fn load_or_create_identity(client_dir: &Path) -> Result<NodeIdentity, NewClientError> {
    let read_or_create = |name: &str| -> Result<String, NewClientError> {
        let path = client_dir.join(name);
        let identity_error = |source| NewClientError::Identity {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => {
                secure::tighten_file(&path).map_err(identity_error)?;
                Ok(text.trim().to_string())
            }
            Ok(_) | Err(_) => {
                let id = uuid::Uuid::new_v4().to_string();
                secure::write_private(&path, format!("{id}\n").as_bytes()).map_err(identity_error)?;
                Ok(id)
            }
        }
    };
    Ok(NodeIdentity {
        node_id: read_or_create("node-id")?,
        secret_id: read_or_create("secret-id")?,
    })
}

impl Client {
    /// Prepares a client: creates the data directory, loads (or makes) the
    /// node identity, fingerprints the machine and the drivers.
    pub async fn new(
        config: ClientConfig,
        drivers: Vec<Arc<dyn Driver>>,
        rpc: Arc<RpcClient>,
    ) -> Result<Client, NewClientError> {
        let client_dir = config.client_dir();
        // The data dir and the client dir are the owner's only; others may
        // pass through the allocation root but not list it.
        for (dir, mode) in [
            (&config.data_dir, secure::PRIVATE_DIR),
            (&client_dir, secure::PRIVATE_DIR),
            (&config.alloc_root(), secure::TRAVERSE_ONLY_DIR),
        ] {
            secure::ensure_dir_mode(dir, mode).map_err(|source| NewClientError::DataDir {
                path: dir.clone(),
                source,
            })?;
        }
        let identity = load_or_create_identity(&client_dir)?;
        let mut by_name = BTreeMap::new();
        let mut infos = BTreeMap::new();
        for driver in drivers {
            let name = driver.name().to_string();
            let mut info = driver.fingerprint().await;
            info.update_time = clock::unix_nanos();
            infos.insert(name.clone(), info);
            if by_name.insert(name.clone(), driver).is_some() {
                return Err(NewClientError::DuplicateDriver(name));
            }
        }
        let node = fingerprint_node(&config, &identity, &infos);
        let cache_dir = client_dir.join("artifacts");
        let artifacts =
            artifact::ArtifactFetcher::new(&cache_dir, config.artifact_cache_max_bytes, config.artifact_limits)
                .map_err(|source| NewClientError::ArtifactCache {
                    path: cache_dir,
                    source,
                })?;
        let (commands, command_receiver) = tokio::sync::mpsc::unbounded_channel();
        Ok(Client {
            config,
            node,
            drivers: by_name,
            rpc,
            artifacts: Arc::new(artifacts),
            controls: handle::TaskControls::default(),
            commands,
            command_receiver,
            catalog: services::ServiceCatalog::default(),
            alloc_checks: services::AllocChecks::default(),
        })
    }

    /// The node's copy of every service registration (templates, DNS).
    pub fn service_catalog(&self) -> services::ServiceCatalog {
        self.catalog.clone()
    }

    /// The fingerprinted node, as it will be registered.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// A handle for the HTTP API: signal, restart and stats of tasks, GC.
    pub fn handle(&self) -> handle::ClientHandle {
        handle::ClientHandle {
            controls: Arc::clone(&self.controls),
            commands: self.commands.clone(),
            artifacts: Arc::clone(&self.artifacts),
            data_dir: self.config.data_dir.clone(),
            alloc_checks: Arc::clone(&self.alloc_checks),
        }
    }

    /// The node's artifact fetcher and its cache.
    pub fn artifacts(&self) -> Arc<artifact::ArtifactFetcher> {
        Arc::clone(&self.artifacts)
    }

    /// The configuration the client runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The directory of one allocation (for reading its logs).
    pub fn alloc_dir(&self, alloc_id: &str) -> AllocDir {
        AllocDir::new(&self.config.alloc_root(), alloc_id)
    }

    /// Runs the agent until `shutdown` resolves: reattaches to tasks left by
    /// an earlier run, registers, heartbeats and runs the node's
    /// allocations. On shutdown tasks keep running (to be reattached next
    /// time) unless `stop_tasks_on_shutdown` is set.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let Client {
            config,
            mut node,
            drivers,
            rpc,
            artifacts,
            controls,
            commands: _,
            mut command_receiver,
            catalog,
            alloc_checks,
        } = self;
        node.status = NodeStatus::Ready;
        node.status_updated_at = clock::unix_nanos();
        let node = Arc::new(node);
        let (updates_tx, updates_rx) = tokio::sync::mpsc::unbounded_channel();
        let updater = tokio::spawn(run_updater(
            updates_rx,
            Arc::clone(&rpc),
            node.id.clone(),
            node.secret_id.clone(),
            UpdaterTimings {
                batch_window: config.update_batch_window,
                min_backoff: MIN_RETRY_BACKOFF,
                max_backoff: config.max_retry_backoff,
            },
        ));
        let (services_tx, services_rx) = tokio::sync::mpsc::unbounded_channel();
        let services_updater = tokio::spawn(services::run_service_updater(
            services_rx,
            Arc::clone(&rpc),
            node.id.clone(),
            node.secret_id.clone(),
            config.update_batch_window,
            config.max_retry_backoff,
        ));
        let denied: HashSet<&str> = config.env_denylist.iter().map(String::as_str).collect();
        let host_env = std::env::vars()
            .filter(|(name, _)| !denied.contains(name.as_str()))
            .collect();
        let store = LocalStore::new(&config.client_dir());
        let context = Arc::new(AllocContext {
            node: Arc::clone(&node),
            region: config.region.clone(),
            drivers,
            alloc_root: config.alloc_root(),
            store: store.clone(),
            updates: updates_tx,
            host_env,
            max_kill_timeout: config.max_kill_timeout,
            log_launcher: config.log_launcher.clone(),
            network: network::NetworkManager::new(config.client_dir().join("network"), config.bridge.clone()),
            template_poll: config.template_poll_interval,
            artifacts,
            controls,
            services: services_tx,
            alloc_checks,
            catalog: catalog.clone(),
        });

        let mut runners: HashMap<String, AllocRunner> = HashMap::new();
        for restored in store.load_all() {
            let alloc_id = restored.alloc.id.clone();
            tracing::info!(%alloc_id, "restoring allocation from local state");
            let runner = AllocRunner::spawn(
                Arc::clone(&context),
                restored.alloc.clone(),
                restored.job.clone(),
                Some(restored),
            );
            runners.insert(alloc_id, runner);
        }

        let mut collections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        let registered = tokio::select! {
            _ = &mut shutdown => None,
            ttl = register(&rpc, &node, config.max_retry_backoff) => Some(ttl),
        };
        let catalog_watch = tokio::spawn(services::run_service_watch(
            Arc::clone(&rpc),
            node.id.clone(),
            node.secret_id.clone(),
            catalog,
            config.max_retry_backoff,
        ));
        if let Some(ttl) = registered {
            let heartbeat = tokio::spawn(heartbeat_loop(
                Arc::clone(&rpc),
                Arc::clone(&node),
                ttl,
                config.max_retry_backoff,
            ));
            watch_allocs(
                &rpc,
                &node,
                &config,
                &context,
                &mut runners,
                &mut collections,
                &mut shutdown,
                &mut command_receiver,
            )
            .await;
            heartbeat.abort();
        }
        // Collections in flight finish: their tasks are being stopped anyway.
        while collections.join_next().await.is_some() {}

        if config.stop_tasks_on_shutdown {
            let stops: Vec<_> = runners.into_values().map(AllocRunner::stop_and_wait).collect();
            futures_join_all(stops).await;
        } else {
            for runner in runners.into_values() {
                runner.detach();
            }
        }
        catalog_watch.abort();
        drop(context);
        if tokio::time::timeout(SHUTDOWN_FLUSH, services_updater).await.is_err() {
            tracing::warn!("service registrations still pending at shutdown");
        }
        if tokio::time::timeout(SHUTDOWN_FLUSH, updater).await.is_err() {
            tracing::warn!("status updates still pending at shutdown; they are kept in local state");
        }
    }
}

/// Waits for every future (the crate has no `futures` dependency).
async fn futures_join_all<F: Future<Output = ()> + Send + 'static>(futures: Vec<F>) {
    let mut set = tokio::task::JoinSet::new();
    for future in futures {
        set.spawn(future);
    }
    while set.join_next().await.is_some() {}
}

fn ttl_of(ttl_ms: u64) -> Duration {
    if ttl_ms == 0 {
        DEFAULT_HEARTBEAT_TTL
    } else {
        Duration::from_millis(ttl_ms)
    }
}

/// Registers the node, retrying with back-off until a server accepts it.
/// Returns the heartbeat TTL.
async fn register(rpc: &RpcClient, node: &Node, max_backoff: Duration) -> Duration {
    let mut backoff = MIN_RETRY_BACKOFF;
    loop {
        match rpc.node_register(NodeRegisterRequest { node: node.clone() }).await {
            Ok(answer) => {
                tracing::info!(node_id = %node.id, name = %node.name, "node registered");
                return ttl_of(answer.heartbeat_ttl_ms);
            }
            Err(error) => {
                tracing::warn!(server = %rpc.addr(), %error, "node registration failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

/// Heartbeats at about half the TTL; retries faster when a heartbeat fails,
/// and registers again when the servers no longer know the node.
async fn heartbeat_loop(rpc: Arc<RpcClient>, node: Arc<Node>, mut ttl: Duration, max_backoff: Duration) {
    loop {
        tokio::time::sleep(ttl / 2).await;
        let mut backoff = MIN_RETRY_BACKOFF;
        loop {
            let request = NodeHeartbeatRequest {
                node_id: node.id.clone(),
                secret_id: node.secret_id.clone(),
                status: NodeStatus::Ready,
            };
            match rpc.node_heartbeat(request).await {
                Ok(answer) => {
                    ttl = ttl_of(answer.heartbeat_ttl_ms);
                    break;
                }
                Err(RpcError::NotFound(_)) => {
                    tracing::warn!(node_id = %node.id, "servers forgot the node, registering again");
                    ttl = register(&rpc, &node, max_backoff).await;
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "heartbeat failed, retrying");
                    tokio::time::sleep(backoff).await;
                    // Retry well within the TTL so one lost call does not
                    // get the node marked down.
                    backoff = (backoff * 2).min(max_backoff).min(ttl / 4).max(MIN_RETRY_BACKOFF);
                }
            }
        }
    }
}

/// The blocking-query loop: waits for the node's allocations to change,
/// then reconciles the runners with them. Returns on shutdown.
#[expect(
    clippy::too_many_arguments,
    reason = "the client loop's state, borrowed from run(); a struct would only rename it"
)]
async fn watch_allocs(
    rpc: &RpcClient,
    node: &Node,
    config: &ClientConfig,
    context: &Arc<AllocContext>,
    runners: &mut HashMap<String, AllocRunner>,
    collections: &mut tokio::task::JoinSet<()>,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    commands: &mut tokio::sync::mpsc::UnboundedReceiver<handle::ClientCommand>,
) {
    let mut index = 0;
    let mut backoff = MIN_RETRY_BACKOFF;
    let max_wait_ms = u64::try_from(config.alloc_query_wait.as_millis()).unwrap_or(u64::MAX);
    // The servers' view of the node's allocations, kept up to date from
    // the deltas they send.
    let mut view: HashMap<String, AllocWithJob> = HashMap::new();
    // Allocations collected here, which a stale server view must not start
    // again; forgotten once the servers stop listing them.
    let mut collected: HashSet<String> = HashSet::new();
    let mut gc_tick = tokio::time::interval(config.gc.interval);
    gc_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let query = rpc.node_get_allocs(NodeGetAllocsRequest {
            node_id: node.id.clone(),
            secret_id: node.secret_id.clone(),
            min_index: index,
            max_wait_ms,
            delta: true,
        });
        let query = tokio::time::timeout(config.alloc_query_wait + QUERY_GRACE, query);
        tokio::pin!(query);
        // The collector runs beside the blocking query, without cancelling it.
        let answer = loop {
            tokio::select! {
                _ = shutdown.as_mut() => return,
                answer = &mut query => break answer,
                _ = gc_tick.tick() => collect_garbage(context, &config.gc, runners, &mut collected).await,
                Some(command) = commands.recv() => match command {
                    handle::ClientCommand::Gc { alloc_id, reply } => {
                        let result = collect_on_request(context, runners, &mut collected, alloc_id).await;
                        let _ = reply.send(result);
                    }
                },
            }
        };
        match answer {
            Ok(Ok(answer)) => {
                backoff = MIN_RETRY_BACKOFF;
                while collections.try_join_next().is_some() {}
                match answer.delta {
                    Some(delta) => delta.apply_to(&mut view),
                    None => {
                        view = answer
                            .allocs
                            .into_iter()
                            .map(|entry| (entry.alloc.id.clone(), entry))
                            .collect();
                    }
                }
                collected.retain(|alloc_id| view.contains_key(alloc_id));
                let allocs = view
                    .values()
                    .filter(|entry| !collected.contains(&entry.alloc.id))
                    .cloned()
                    .collect();
                reconcile(context, runners, collections, allocs);
                // An index going backwards means the servers' state was
                // reset: start over so the next answer comes at once.
                index = if answer.index < index { 0 } else { answer.index };
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "allocation query failed, retrying");
                if matches!(error, RpcError::NotFound(_)) {
                    index = 0;
                }
                tokio::select! {
                    _ = shutdown.as_mut() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(config.max_retry_backoff);
            }
            Err(_) => {
                tracing::warn!("allocation query got no answer in time, retrying");
            }
        }
    }
}

/// Removes terminal allocations, oldest first, while the node is over its
/// limits (see [`gc::plan_gc`]); the disk is measured again after each.
async fn collect_garbage(
    context: &Arc<AllocContext>,
    config: &gc::GcConfig,
    runners: &mut HashMap<String, AllocRunner>,
    collected: &mut HashSet<String>,
) {
    loop {
        let candidates: Vec<gc::GcCandidate> = runners
            .values()
            .map(|runner| gc::GcCandidate {
                alloc_id: runner.alloc_id().to_string(),
                finished_at: runner.finished_at(),
            })
            .collect();
        let usage = gc::disk_usage(&context.alloc_root).unwrap_or_default();
        let plan = gc::plan_gc(&candidates, config, |_| usage);
        let Some(alloc_id) = plan.into_iter().next() else {
            return;
        };
        let Some(runner) = runners.remove(&alloc_id) else {
            return;
        };
        tracing::info!(%alloc_id, "garbage-collecting terminal allocation");
        runner.stop_and_wait().await;
        remove_alloc(context, &alloc_id).await;
        collected.insert(alloc_id);
    }
}

/// Collects what an operator asked for: one terminal allocation, or every
/// terminal one.
async fn collect_on_request(
    context: &Arc<AllocContext>,
    runners: &mut HashMap<String, AllocRunner>,
    collected: &mut HashSet<String>,
    alloc_id: Option<String>,
) -> Result<(), handle::ControlError> {
    let targets: Vec<String> = match alloc_id {
        Some(alloc_id) => {
            let runner = runners
                .get(&alloc_id)
                .ok_or_else(|| handle::ControlError::NotFound(format!("allocation {alloc_id:?} on this client")))?;
            if runner.finished_at().is_none() {
                return Err(handle::ControlError::BadRequest(format!(
                    "allocation {alloc_id} is still running; stop it first"
                )));
            }
            vec![alloc_id]
        }
        None => runners
            .values()
            .filter(|runner| runner.finished_at().is_some())
            .map(|runner| runner.alloc_id().to_string())
            .collect(),
    };
    for alloc_id in targets {
        if let Some(runner) = runners.remove(&alloc_id) {
            runner.stop_and_wait().await;
            remove_alloc(context, &alloc_id).await;
            collected.insert(alloc_id);
        }
    }
    Ok(())
}

/// Removes an allocation's directory and local state.
async fn remove_alloc(context: &Arc<AllocContext>, alloc_id: &str) {
    let dir = AllocDir::new(&context.alloc_root, alloc_id);
    let removed = tokio::task::spawn_blocking(move || dir.destroy()).await;
    if let Ok(Err(error)) = removed {
        tracing::warn!(%alloc_id, %error, "could not remove allocation directory");
    }
    if let Err(error) = context.store.remove(alloc_id) {
        tracing::warn!(%alloc_id, %error, "could not remove local state");
    }
}

/// What the servers' list of allocations asks of the runners.
#[derive(Debug, Default)]
pub struct ReconcileSteps {
    /// Allocations to start a runner for.
    pub start: Vec<AllocWithJob>,
    /// Allocations whose runner must stop its tasks.
    pub stop: Vec<String>,
    /// Allocations the servers no longer list (garbage-collected): stop
    /// them and remove their directory and local state.
    pub collect: Vec<String>,
    /// Allocations stopped before this client ever started them: nothing
    /// runs, but the servers still hold them as `pending`, so the client
    /// reports them `complete` (as a Nomad client does); otherwise they
    /// stay pending forever.
    pub never_started: Vec<String>,
}

/// Compares the servers' allocations with the allocations that have a
/// runner (`known`). Pure, so it is tested without a server.
pub fn plan_reconcile(known: &HashSet<String>, allocs: Vec<AllocWithJob>) -> ReconcileSteps {
    let mut steps = ReconcileSteps::default();
    let listed: HashSet<String> = allocs.iter().map(|entry| entry.alloc.id.clone()).collect();
    for entry in allocs {
        let alloc = &entry.alloc;
        let should_stop =
            alloc.desired_status != AllocDesiredStatus::Run || alloc.client_status == AllocClientStatus::Lost;
        if known.contains(&alloc.id) {
            if should_stop {
                steps.stop.push(alloc.id.clone());
            }
        } else if !should_stop && !alloc.client_status.is_terminal() {
            steps.start.push(entry);
        } else if alloc.desired_status != AllocDesiredStatus::Run && alloc.client_status == AllocClientStatus::Pending {
            steps.never_started.push(alloc.id.clone());
        }
    }
    let mut collect: Vec<String> = known.iter().filter(|id| !listed.contains(*id)).cloned().collect();
    collect.sort();
    steps.collect = collect;
    steps
}

/// Brings the runners in line with the servers' view (see
/// [`plan_reconcile`]).
fn reconcile(
    context: &Arc<AllocContext>,
    runners: &mut HashMap<String, AllocRunner>,
    collections: &mut tokio::task::JoinSet<()>,
    allocs: Vec<AllocWithJob>,
) {
    let known: HashSet<String> = runners.keys().cloned().collect();
    let steps = plan_reconcile(&known, allocs);
    for alloc_id in &steps.stop {
        if let Some(runner) = runners.get(alloc_id) {
            runner.stop();
        }
    }
    for alloc_id in steps.never_started {
        tracing::debug!(%alloc_id, "allocation stopped before it started");
        let _ = context.updates.send(types::AllocClientUpdate {
            alloc_id,
            client_status: AllocClientStatus::Complete,
            client_description: "stopped before it started".to_string(),
            task_states: BTreeMap::new(),
            modify_time: clock::unix_nanos(),
        });
    }
    for AllocWithJob { alloc, job } in steps.start {
        tracing::debug!(alloc_id = %alloc.id, name = %alloc.name, "starting allocation");
        let alloc_id = alloc.id.clone();
        runners.insert(alloc_id, AllocRunner::spawn(Arc::clone(context), alloc, job, None));
    }
    for alloc_id in steps.collect {
        let Some(runner) = runners.remove(&alloc_id) else {
            continue;
        };
        let context = Arc::clone(context);
        collections.spawn(async move {
            runner.stop_and_wait().await;
            remove_alloc(&context, &alloc_id).await;
            tracing::debug!(%alloc_id, "garbage-collected allocation");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::{Allocation, Job};

    fn entry(id: &str, desired: AllocDesiredStatus, client: AllocClientStatus) -> AllocWithJob {
        AllocWithJob {
            alloc: Allocation {
                id: id.into(),
                desired_status: desired,
                client_status: client,
                ..Allocation::default()
            },
            job: Job::default(),
        }
    }

    #[test]
    fn reconcile_starts_stops_and_collects() {
        use AllocClientStatus::{Complete, Lost, Pending, Running};
        use AllocDesiredStatus::{Run, Stop};
        let known: HashSet<String> = ["running", "stopping", "lost", "forgotten"]
            .iter()
            .map(|id| id.to_string())
            .collect();
        let steps = plan_reconcile(
            &known,
            vec![
                entry("new", Run, Pending),
                entry("new-but-stopped", Stop, Pending),
                entry("finished-elsewhere", Run, Complete),
                entry("running", Run, Running),
                entry("stopping", Stop, Running),
                entry("lost", Run, Lost),
            ],
        );
        let started: Vec<&str> = steps.start.iter().map(|entry| entry.alloc.id.as_str()).collect();
        assert_eq!(started, vec!["new"]);
        assert_eq!(steps.stop, vec!["stopping".to_string(), "lost".to_string()]);
        assert_eq!(steps.collect, vec!["forgotten".to_string()]);
        assert_eq!(steps.never_started, vec!["new-but-stopped".to_string()]);
    }
}
