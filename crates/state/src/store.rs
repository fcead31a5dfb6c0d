//! The tables, their indexes, reads, and the deterministic `apply`.

use crate::command::{Command, CommandResult};
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use types::{
    AllocClientStatus, AllocDesiredStatus, Allocation, ComparableResources, DEFAULT_NAMESPACE, Deployment, EvalStatus,
    Evaluation, Index, Job, JobStatus, JobType, Namespace, Node, NodeEntry, NodeStatus, SchedulerConfiguration,
    UnixNanos, VerdictCache,
};

/// How many versions of a job are kept (Nomad's `JobTrackedVersions`).
pub const JOB_TRACKED_VERSIONS: u64 = 6;
/// How many scaling events are kept per task group (Nomad keeps twenty).
pub const SCALING_EVENTS_KEPT: usize = 20;
/// How many events are kept per task (Nomad keeps ten).
pub const TASK_EVENTS_KEPT: usize = 10;

/// Key of a namespaced object: (namespace, id).
type NsKey = (String, String);

/// Errors reading the state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("ambiguous prefix {prefix:?} matches {count} objects")]
    AmbiguousPrefix { prefix: String, count: usize },
}

/// The last index at which each table changed, for blocking queries and the
/// `X-Nomad-Index` header on list endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TableIndexes {
    pub jobs: Index,
    pub nodes: Index,
    pub allocs: Index,
    pub evals: Index,
    #[serde(default)]
    pub namespaces: Index,
    #[serde(default)]
    pub deployments: Index,
    pub acl_policies: Index,
    #[serde(default)]
    pub acl_tokens: Index,
    #[serde(default)]
    pub acl_roles: Index,
    #[serde(default)]
    pub variables: Index,
    #[serde(default)]
    pub root_keys: Index,
    #[serde(default)]
    pub services: Index,
}

/// Counts of allocations per client status for one task group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaskGroupSummary {
    pub queued: u64,
    pub complete: u64,
    pub failed: u64,
    pub running: u64,
    pub starting: u64,
    pub lost: u64,
    pub unknown: u64,
}

/// A job's allocation counts by task group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JobSummary {
    pub job_id: String,
    pub namespace: String,
    pub summary: BTreeMap<String, TaskGroupSummary>,
    pub create_index: Index,
    pub modify_index: Index,
}

/// The whole cluster state at one Raft index. Cloning it is O(1) and gives
/// a read snapshot that later writes do not change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "PersistedState", from = "PersistedState")]
pub struct StateSnapshot {
    index: Index,
    pub(crate) tables: TableIndexes,
    pub(crate) jobs: OrdMap<NsKey, Arc<Job>>,
    /// Every version of every job: (namespace, id, version).
    pub(crate) job_versions: OrdMap<(String, String, u64), Arc<Job>>,
    nodes: OrdMap<String, Arc<Node>>,
    pub(crate) allocs: OrdMap<String, Arc<Allocation>>,
    allocs_by_job: OrdMap<NsKey, OrdSet<String>>,
    allocs_by_node: OrdMap<String, OrdSet<String>>,
    /// Per node: the last index the servers changed any of its allocations
    /// at (placements, stops, GC); client reports do not count.
    node_alloc_index: OrdMap<String, Index>,
    evals: OrdMap<String, Arc<Evaluation>>,
    evals_by_job: OrdMap<NsKey, OrdSet<String>>,
    /// Per node: resources held by allocations that still hold them, kept
    /// up to date on every allocation change instead of being recomputed.
    node_usage: OrdMap<String, ComparableResources>,
    /// IDs of the evaluations whose status is `blocked`: unblocking visits
    /// these instead of every evaluation ever written.
    blocked_evals: OrdSet<String>,
    /// System and sysbatch jobs: a node change re-evaluates these without
    /// a pass over every job.
    system_jobs: OrdSet<NsKey>,
    /// The operator's scheduler configuration (Nomad's defaults until set).
    scheduler_config: Arc<SchedulerConfiguration>,
    /// Namespaces written by operators. `default` is not stored until it
    /// is changed; reads synthesise it ([`Namespace::builtin_default`]).
    namespaces: OrdMap<String, Arc<Namespace>>,
    /// Deployments by ID, and their IDs per job.
    pub(crate) deployments: OrdMap<String, Arc<Deployment>>,
    pub(crate) deployments_by_job: OrdMap<NsKey, OrdSet<String>>,
    /// The scheduler's column-wise node index, kept with every node and
    /// usage change (derived: rebuilt on load, not persisted).
    columns: NodeColumns,
    /// ACL objects (see `acl.rs`).
    pub(crate) acl: crate::acl::AclTables,
    /// Scaling events per (namespace, job, group), newest last.
    pub(crate) scaling_events: OrdMap<(String, String, String), Arc<Vec<types::ScalingEvent>>>,
    /// Variables and root keys (see `vars.rs`).
    pub(crate) vars: crate::vars::VarTables,
    /// Native service registrations (see `services.rs`).
    pub(crate) services: crate::services::ServiceTables,
    /// The last launch of each periodic job (see `launches.rs`).
    pub(crate) periodic_launches: OrdMap<NsKey, UnixNanos>,
    /// Children waiting for a slot under their parent's `max_concurrent`.
    pub(crate) child_queues: OrdMap<NsKey, imbl::Vector<String>>,
}

/// Every node as the scheduler's per-evaluation pass reads it: the nodes,
/// their [`NodeEntry`] rows and their usage as three parallel columns, in
/// the order nodes were first stored (a node keeps its row while it
/// exists; a removed node's row is filled by the last one). Cloning is
/// O(1): each column is shared until a write copies it, and usage (which
/// every plan changes) is a column apart from the nodes (which change
/// rarely). Computed classes are interned to small integers that are never
/// renumbered, so per-class verdicts stay valid; the verdict memo still
/// starts afresh whenever a node changes.
#[derive(Debug, Clone, Default)]
pub struct NodeColumns {
    nodes: Arc<Vec<Arc<Node>>>,
    entries: Arc<Vec<NodeEntry>>,
    used: Arc<Vec<ComparableResources>>,
    position: OrdMap<String, u32>,
    class_ids: OrdMap<String, u32>,
    verdicts: Arc<VerdictCache>,
}

impl PartialEq for NodeColumns {
    /// Derived data: two states are equal when their nodes and usage are,
    /// which `StateSnapshot`'s own fields compare, whatever the row order.
    fn eq(&self, _: &NodeColumns) -> bool {
        true
    }
}

impl NodeColumns {
    /// Every node, in row order.
    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// Each node's row, in the same order.
    pub fn entries(&self) -> &[NodeEntry] {
        &self.entries
    }

    /// Each node's usage, in the same order.
    pub fn used(&self) -> &[ComparableResources] {
        &self.used
    }

    /// One more than the largest interned class number.
    pub fn class_count(&self) -> u32 {
        self.class_ids.len() as u32
    }

    /// The per-class verdict memo for these nodes.
    pub fn verdicts(&self) -> &VerdictCache {
        &self.verdicts
    }

    fn upsert(&mut self, node: &Arc<Node>, used: ComparableResources) {
        let class = if node.computed_class.is_empty() {
            u32::MAX
        } else {
            let next = self.class_ids.len() as u32;
            *self.class_ids.entry(node.computed_class.clone()).or_insert(next)
        };
        let entry = NodeEntry::of(node, class);
        match self.position.get(&node.id) {
            Some(&row) => {
                let row = row as usize;
                if let Some(slot) = Arc::make_mut(&mut self.nodes).get_mut(row) {
                    *slot = Arc::clone(node);
                }
                if let Some(slot) = Arc::make_mut(&mut self.entries).get_mut(row) {
                    *slot = entry;
                }
            }
            None => {
                self.position.insert(node.id.clone(), self.nodes.len() as u32);
                Arc::make_mut(&mut self.nodes).push(Arc::clone(node));
                Arc::make_mut(&mut self.entries).push(entry);
                Arc::make_mut(&mut self.used).push(used);
            }
        }
        self.verdicts = Arc::default();
    }

    fn remove(&mut self, node_id: &str) {
        let Some(row) = self.position.remove(node_id) else {
            return;
        };
        let row = row as usize;
        let nodes = Arc::make_mut(&mut self.nodes);
        if row >= nodes.len() {
            return;
        }
        nodes.swap_remove(row);
        Arc::make_mut(&mut self.entries).swap_remove(row);
        Arc::make_mut(&mut self.used).swap_remove(row);
        if let Some(moved) = self.nodes.get(row) {
            self.position.insert(moved.id.clone(), row as u32);
        }
        self.verdicts = Arc::default();
    }

    fn set_used(&mut self, node_id: &str, used: ComparableResources) {
        if let Some(&row) = self.position.get(node_id)
            && let Some(slot) = Arc::make_mut(&mut self.used).get_mut(row as usize)
        {
            *slot = used;
        }
    }
}

/// The on-disk (Raft snapshot) form: plain object lists. Secondary indexes
/// are derived, so they are rebuilt on load rather than stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PersistedState {
    index: Index,
    pub(crate) tables: TableIndexes,
    job_versions: Vec<Job>,
    jobs: Vec<Job>,
    nodes: Vec<Node>,
    allocs: Vec<Allocation>,
    evals: Vec<Evaluation>,
    node_alloc_index: Vec<(String, Index)>,
    #[serde(default)]
    scheduler_config: SchedulerConfiguration,
    #[serde(default)]
    namespaces: Vec<Namespace>,
    #[serde(default)]
    deployments: Vec<Deployment>,
    acl: crate::acl::PersistedAcl,
    #[serde(default)]
    scaling_events: Vec<((String, String, String), Vec<types::ScalingEvent>)>,
    #[serde(default)]
    vars: crate::vars::PersistedVars,
    #[serde(default)]
    services: crate::services::PersistedServices,
    #[serde(default)]
    periodic_launches: Vec<(NsKey, UnixNanos)>,
    #[serde(default)]
    child_queues: Vec<(NsKey, Vec<String>)>,
}

impl From<StateSnapshot> for PersistedState {
    fn from(state: StateSnapshot) -> PersistedState {
        PersistedState {
            index: state.index,
            tables: state.tables,
            job_versions: state.job_versions.values().map(|job| (**job).clone()).collect(),
            jobs: state.jobs.values().map(|job| (**job).clone()).collect(),
            nodes: state.nodes.values().map(|node| (**node).clone()).collect(),
            allocs: state.allocs.values().map(|alloc| (**alloc).clone()).collect(),
            evals: state.evals.values().map(|eval| (**eval).clone()).collect(),
            node_alloc_index: state.node_alloc_index.into_iter().collect(),
            scheduler_config: (*state.scheduler_config).clone(),
            namespaces: state
                .namespaces
                .values()
                .map(|namespace| (**namespace).clone())
                .collect(),
            deployments: state
                .deployments
                .values()
                .map(|deployment| (**deployment).clone())
                .collect(),
            acl: state.acl.persisted(),
            scaling_events: state
                .scaling_events
                .iter()
                .map(|(key, events)| (key.clone(), (**events).clone()))
                .collect(),
            vars: state.vars.persisted(),
            services: state.services.persisted(),
            periodic_launches: state.periodic_launches.into_iter().collect(),
            child_queues: state
                .child_queues
                .into_iter()
                .map(|(parent, queue)| (parent, queue.into_iter().collect()))
                .collect(),
        }
    }
}

impl From<PersistedState> for StateSnapshot {
    fn from(persisted: PersistedState) -> StateSnapshot {
        let mut state = StateSnapshot {
            index: persisted.index,
            tables: persisted.tables,
            node_alloc_index: persisted.node_alloc_index.into_iter().collect(),
            scheduler_config: Arc::new(persisted.scheduler_config),
            namespaces: persisted
                .namespaces
                .into_iter()
                .map(|namespace| (namespace.name.clone(), Arc::new(namespace)))
                .collect(),
            acl: crate::acl::AclTables::from_persisted(persisted.acl),
            vars: crate::vars::VarTables::from_persisted(persisted.vars),
            services: crate::services::ServiceTables::from_persisted(persisted.services),
            periodic_launches: persisted.periodic_launches.into_iter().collect(),
            child_queues: persisted
                .child_queues
                .into_iter()
                .map(|(parent, queue)| (parent, queue.into_iter().collect::<imbl::Vector<String>>()))
                .collect(),
            ..StateSnapshot::default()
        };
        for job in persisted.job_versions {
            state
                .job_versions
                .insert((job.namespace.clone(), job.id.clone(), job.version), Arc::new(job));
        }
        for job in persisted.jobs {
            state.put_job(key(&job.namespace, &job.id), Arc::new(job));
        }
        for node in persisted.nodes {
            state.put_node(Arc::new(node));
        }
        for alloc in persisted.allocs {
            state
                .allocs_by_job
                .entry(key(&alloc.namespace, &alloc.job_id))
                .or_default()
                .insert(alloc.id.clone());
            state
                .allocs_by_node
                .entry(alloc.node_id.clone())
                .or_default()
                .insert(alloc.id.clone());
            state.track_usage(None, Some(&alloc));
            state.allocs.insert(alloc.id.clone(), Arc::new(alloc));
        }
        for eval in persisted.evals {
            state
                .evals_by_job
                .entry(key(&eval.namespace, &eval.job_id))
                .or_default()
                .insert(eval.id.clone());
            state.index_blocked(&eval);
            state.evals.insert(eval.id.clone(), Arc::new(eval));
        }
        for deployment in persisted.deployments {
            state.put_deployment(deployment);
        }
        for (key, events) in persisted.scaling_events {
            state.scaling_events.insert(key, Arc::new(events));
        }
        state
    }
}

/// The object whose ID is `prefix`, or else the one object whose ID starts
/// with it. Keys are ordered, so the candidates are one contiguous range.
pub(crate) fn by_prefix<T>(table: &OrdMap<String, Arc<T>>, prefix: &str) -> Result<Option<Arc<T>>, StateError> {
    if let Some(exact) = table.get(prefix) {
        return Ok(Some(Arc::clone(exact)));
    }
    let mut matches = table
        .range(prefix.to_string()..)
        .take_while(|(id, _)| id.starts_with(prefix))
        .map(|(_, value)| value);
    match (matches.next(), matches.next()) {
        (None, _) => Ok(None),
        (Some(only), None) => Ok(Some(Arc::clone(only))),
        (Some(_), Some(_)) => Err(StateError::AmbiguousPrefix {
            prefix: prefix.to_string(),
            count: 2 + matches.count(),
        }),
    }
}

pub(crate) fn key(namespace: &str, id: &str) -> NsKey {
    (namespace.to_string(), id.to_string())
}

/// Whether two job versions have the same user-written spec.
fn same_spec(old: &Job, new: &Job) -> bool {
    let mut old = old.clone();
    let mut new = new.clone();
    for job in [&mut old, &mut new] {
        job.status = JobStatus::Pending;
        job.status_description.clear();
        job.stable = false;
        job.version = 0;
        job.submit_time = 0;
        job.create_index = 0;
        job.modify_index = 0;
        job.job_modify_index = 0;
    }
    old == new
}

impl StateSnapshot {
    /// An empty state.
    pub fn new() -> StateSnapshot {
        StateSnapshot::default()
    }

    /// The Raft index of the last applied command.
    pub fn index(&self) -> Index {
        self.index
    }

    /// Per-table last-change indexes.
    pub fn table_indexes(&self) -> TableIndexes {
        self.tables
    }

    // ----- reads -------------------------------------------------------

    pub fn job(&self, namespace: &str, id: &str) -> Option<Arc<Job>> {
        self.jobs.get(&key(namespace, id)).cloned()
    }

    pub fn job_version(&self, namespace: &str, id: &str, version: u64) -> Option<Arc<Job>> {
        self.job_versions
            .get(&(namespace.to_string(), id.to_string(), version))
            .cloned()
    }

    /// All versions of a job, newest first.
    pub fn job_versions(&self, namespace: &str, id: &str) -> Vec<Arc<Job>> {
        let start = (namespace.to_string(), id.to_string(), 0);
        let end = (namespace.to_string(), id.to_string(), u64::MAX);
        let mut versions: Vec<Arc<Job>> = self
            .job_versions
            .range(start..=end)
            .map(|(_, job)| job.clone())
            .collect();
        versions.reverse();
        versions
    }

    /// Jobs in a namespace (`None`: every namespace), by ID.
    pub fn jobs(&self, namespace: Option<&str>) -> Vec<Arc<Job>> {
        self.jobs
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|wanted| wanted == ns))
            .map(|(_, job)| job.clone())
            .collect()
    }

    /// Resources held on a node by its live allocations (incremental index).
    pub fn node_usage(&self, node_id: &str) -> ComparableResources {
        self.node_usage.get(node_id).copied().unwrap_or_default()
    }

    /// The scheduler's column-wise node index, kept incrementally.
    pub fn node_columns(&self) -> &NodeColumns {
        &self.columns
    }

    /// Borrowing reads, for the scheduler's view of a snapshot.
    pub fn node_ref(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id).map(|node| &**node)
    }

    pub fn job_ref(&self, namespace: &str, id: &str) -> Option<&Job> {
        self.jobs.get(&key(namespace, id)).map(|job| &**job)
    }

    pub fn job_version_ref(&self, namespace: &str, id: &str, version: u64) -> Option<&Job> {
        self.job_versions
            .get(&(namespace.to_string(), id.to_string(), version))
            .map(|job| &**job)
    }

    pub fn allocs_by_job_ref(&self, namespace: &str, job_id: &str) -> Vec<&Allocation> {
        self.allocs_by_job
            .get(&key(namespace, job_id))
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.allocs.get(id).map(|alloc| &**alloc))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn allocs_by_node_ref(&self, node_id: &str) -> Vec<&Allocation> {
        self.allocs_by_node
            .get(node_id)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.allocs.get(id).map(|alloc| &**alloc))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn node(&self, id: &str) -> Option<Arc<Node>> {
        self.nodes.get(id).cloned()
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.nodes.values()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn alloc(&self, id: &str) -> Option<Arc<Allocation>> {
        self.allocs.get(id).cloned()
    }

    pub fn allocs(&self) -> impl Iterator<Item = &Arc<Allocation>> {
        self.allocs.values()
    }

    pub fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Allocation>> {
        self.allocs_by_job
            .get(&key(namespace, job_id))
            .map(|ids| ids.iter().filter_map(|id| self.allocs.get(id).cloned()).collect())
            .unwrap_or_default()
    }

    pub fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>> {
        self.allocs_by_node
            .get(node_id)
            .map(|ids| ids.iter().filter_map(|id| self.allocs.get(id).cloned()).collect())
            .unwrap_or_default()
    }

    /// The last index at which any allocation on `node_id` changed.
    pub fn node_alloc_index(&self, node_id: &str) -> Index {
        self.node_alloc_index.get(node_id).copied().unwrap_or(0)
    }

    pub fn eval(&self, id: &str) -> Option<Arc<Evaluation>> {
        self.evals.get(id).cloned()
    }

    pub fn evals(&self) -> impl Iterator<Item = &Arc<Evaluation>> {
        self.evals.values()
    }

    /// The operator's scheduler configuration.
    pub fn scheduler_config(&self) -> &SchedulerConfiguration {
        &self.scheduler_config
    }

    /// The evaluations whose status is `blocked`, in ID order (the order of
    /// [`StateSnapshot::evals`]), from their own index.
    /// A namespace by name; `default` always exists.
    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        match self.namespaces.get(name) {
            Some(namespace) => Some(Arc::clone(namespace)),
            None if name == DEFAULT_NAMESPACE => Some(Arc::new(Namespace::builtin_default())),
            None => None,
        }
    }

    /// Every namespace, `default` included, by name.
    pub fn namespaces(&self) -> Vec<Arc<Namespace>> {
        let mut all: Vec<Arc<Namespace>> = self.namespaces.values().cloned().collect();
        if !self.namespaces.contains_key(DEFAULT_NAMESPACE) {
            let at = all.partition_point(|namespace| namespace.name.as_str() < DEFAULT_NAMESPACE);
            all.insert(at, Arc::new(Namespace::builtin_default()));
        }
        all
    }

    /// Jobs in `namespace` that are not dead (they block its deletion).
    fn live_jobs_in(&self, namespace: &str) -> Vec<String> {
        let first = (namespace.to_string(), String::new());
        self.jobs
            .range(first..)
            .take_while(|((job_namespace, _), _)| job_namespace == namespace)
            .filter(|(_, job)| job.status != JobStatus::Dead)
            .map(|((_, id), _)| id.clone())
            .collect()
    }

    pub fn blocked_evals(&self) -> impl Iterator<Item = &Arc<Evaluation>> {
        self.blocked_evals.iter().filter_map(|id| self.evals.get(id))
    }

    /// Every system and sysbatch job (stopped ones included), in
    /// (namespace, ID) order, from their own index.
    pub fn system_jobs(&self) -> impl Iterator<Item = &Arc<Job>> {
        self.system_jobs.iter().filter_map(|job_key| self.jobs.get(job_key))
    }

    pub fn evals_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Evaluation>> {
        self.evals_by_job
            .get(&key(namespace, job_id))
            .map(|ids| ids.iter().filter_map(|id| self.evals.get(id).cloned()).collect())
            .unwrap_or_default()
    }

    /// An allocation by full ID or unique prefix, as the CLI accepts them.
    pub fn alloc_by_prefix(&self, prefix: &str) -> Result<Option<Arc<Allocation>>, StateError> {
        by_prefix(&self.allocs, prefix)
    }

    /// A node by full ID or unique prefix.
    pub fn node_by_prefix(&self, prefix: &str) -> Result<Option<Arc<Node>>, StateError> {
        by_prefix(&self.nodes, prefix)
    }

    /// An evaluation by full ID or unique prefix.
    pub fn eval_by_prefix(&self, prefix: &str) -> Result<Option<Arc<Evaluation>>, StateError> {
        by_prefix(&self.evals, prefix)
    }

    /// The job's allocation counts per task group, as Nomad's job summary.
    pub fn job_summary(&self, namespace: &str, job_id: &str) -> Option<JobSummary> {
        let job = self.job(namespace, job_id)?;
        let mut summary: BTreeMap<String, TaskGroupSummary> = job
            .task_groups
            .iter()
            .map(|group| (group.name.clone(), TaskGroupSummary::default()))
            .collect();
        for alloc in self.allocs_by_job(namespace, job_id) {
            let entry = summary.entry(alloc.task_group.clone()).or_default();
            match alloc.client_status {
                AllocClientStatus::Pending => entry.starting += 1,
                AllocClientStatus::Running => entry.running += 1,
                AllocClientStatus::Complete => entry.complete += 1,
                AllocClientStatus::Failed => entry.failed += 1,
                AllocClientStatus::Lost => entry.lost += 1,
                AllocClientStatus::Unknown => entry.unknown += 1,
            }
        }
        // Queued: what the newest evaluation could not place.
        if let Some(latest) = self
            .evals_by_job(namespace, job_id)
            .into_iter()
            .max_by_key(|eval| eval.create_index)
        {
            for (group, queued) in &latest.queued_allocations {
                summary.entry(group.clone()).or_default().queued = *queued;
            }
        }
        Some(JobSummary {
            job_id: job.id.clone(),
            namespace: job.namespace.clone(),
            summary,
            create_index: job.create_index,
            modify_index: self.tables.allocs.max(job.modify_index),
        })
    }

    // ----- apply -------------------------------------------------------

    /// Applies one command at Raft index `index`. Deterministic: the result
    /// depends only on the state, the index and the command.
    pub fn apply(&mut self, index: Index, command: Command) -> CommandResult {
        self.index = self.index.max(index);
        let mut result = CommandResult {
            index,
            ..CommandResult::default()
        };
        match command {
            Command::JobRegister {
                job,
                eval,
                now,
                enforce_index,
            } => {
                if let Some(expected) = enforce_index {
                    let current = self
                        .jobs
                        .get(&key(&job.namespace, &job.id))
                        .map(|existing| existing.job_modify_index);
                    let refusal = match (expected, current) {
                        (0, Some(found)) => Some(format!(
                            "Enforcing job modify index 0: job {:?} exists with job modify index {found}",
                            job.id
                        )),
                        (expected, None) if expected != 0 => Some(format!(
                            "Enforcing job modify index {expected}: job {:?} does not exist",
                            job.id
                        )),
                        (expected, Some(found)) if expected != found => Some(format!(
                            "Enforcing job modify index {expected}: job {:?} exists with conflicting job modify index: {found}",
                            job.id
                        )),
                        _ => None,
                    };
                    if refusal.is_some() {
                        result.error = refusal;
                        return result;
                    }
                }
                result.job_version = Some(self.upsert_job(index, job, now));
                if let Some(eval) = eval {
                    result.evals_to_enqueue.push(eval.id.clone());
                    self.upsert_eval(index, eval);
                }
            }
            Command::JobDeregister {
                namespace,
                job_id,
                purge,
                eval,
                now,
            } => {
                let job_key = key(&namespace, &job_id);
                let Some(existing) = self.jobs.get(&job_key).cloned() else {
                    result.error = Some(format!("job {job_id:?} not found"));
                    return result;
                };
                if purge {
                    self.jobs.remove(&job_key);
                    self.system_jobs.remove(&job_key);
                    self.forget_children_of(&job_key);
                    self.purge_versions(&namespace, &job_id, u64::MAX);
                    self.purge_deployments(index, &job_key);
                } else {
                    let mut stopped = (*existing).clone();
                    stopped.stop = true;
                    self.upsert_job(index, stopped, now);
                }
                self.tables.jobs = index;
                if let Some(eval) = eval {
                    result.evals_to_enqueue.push(eval.id.clone());
                    self.upsert_eval(index, eval);
                }
            }
            Command::NodeRegister { mut node, now } => {
                if let Some(existing) = self.nodes.get(&node.id) {
                    node.create_index = existing.create_index;
                    // A re-registration keeps the operator's eligibility and drain.
                    node.scheduling_eligibility = existing.scheduling_eligibility;
                    node.drain = existing.drain.clone();
                } else {
                    node.create_index = index;
                }
                node.modify_index = index;
                node.status = NodeStatus::Ready;
                node.status_updated_at = now;
                self.put_node(Arc::new(node));
                self.tables.nodes = index;
            }
            Command::NodeUpdateStatus {
                node_id,
                status,
                now,
                evals,
            } => {
                let Some(existing) = self.nodes.get(&node_id).cloned() else {
                    result.error = Some(format!("node {node_id:?} not found"));
                    return result;
                };
                let mut node = (*existing).clone();
                node.status = status;
                node.status_updated_at = now;
                node.modify_index = index;
                self.put_node(Arc::new(node));
                if status == NodeStatus::Down {
                    self.drop_node_services(index, &node_id);
                }
                self.tables.nodes = index;
                for eval in evals {
                    result.evals_to_enqueue.push(eval.id.clone());
                    self.upsert_eval(index, eval);
                }
            }
            Command::EvalUpsert { evals } => {
                for eval in evals {
                    if matches!(eval.status, EvalStatus::Pending) {
                        result.evals_to_enqueue.push(eval.id.clone());
                    }
                    self.upsert_eval(index, eval);
                }
            }
            Command::PlanApply {
                allocs,
                eval_update,
                created_evals,
                now,
                deployment,
                deployment_updates,
            } => {
                if let Some(deployment) = deployment {
                    self.upsert_deployment(index, deployment);
                }
                for update in deployment_updates {
                    self.set_deployment_status(index, &update, now);
                }
                let mut touched_jobs = Vec::new();
                for alloc in allocs {
                    touched_jobs.push(key(&alloc.namespace, &alloc.job_id));
                    self.upsert_alloc(index, alloc, now);
                }
                if let Some(eval) = eval_update {
                    touched_jobs.push(key(&eval.namespace, &eval.job_id));
                    self.upsert_eval(index, eval);
                }
                for eval in created_evals {
                    if eval.status == EvalStatus::Pending {
                        result.evals_to_enqueue.push(eval.id.clone());
                    }
                    self.upsert_eval(index, eval);
                }
                touched_jobs.sort();
                touched_jobs.dedup();
                for (namespace, job_id) in touched_jobs {
                    self.refresh_job_status(index, &namespace, &job_id);
                }
            }
            Command::AllocClientUpdate { updates, evals, now } => {
                let mut touched_jobs = Vec::new();
                for update in updates {
                    let Some(existing) = self.allocs.get(&update.alloc_id).cloned() else {
                        continue;
                    };
                    // A client re-reporting what is already stored (after an
                    // agent restart, say) changes nothing and bumps no index.
                    if existing.client_status == update.client_status
                        && existing.client_description == update.client_description
                        && existing.task_states == update.task_states
                    {
                        continue;
                    }
                    let mut alloc = (*existing).clone();
                    alloc.client_status = update.client_status;
                    alloc.client_description = update.client_description;
                    alloc.task_states = update.task_states;
                    // Keep the newest events per task only (Nomad keeps ten).
                    for task_state in alloc.task_states.values_mut() {
                        let excess = task_state.events.len().saturating_sub(TASK_EVENTS_KEPT);
                        task_state.events.drain(..excess);
                    }
                    alloc.modify_time = if update.modify_time > 0 {
                        update.modify_time
                    } else {
                        now
                    };
                    alloc.modify_index = index;
                    touched_jobs.push(key(&alloc.namespace, &alloc.job_id));
                    // The node's own reports do not wake its allocation watch:
                    // only server-side changes (`node_alloc_index`) do.
                    self.track_usage(Some(&existing), Some(&alloc));
                    if alloc.client_status.is_terminal() {
                        self.drop_alloc_services(index, &alloc.id);
                    }
                    self.allocs.insert(alloc.id.clone(), Arc::new(alloc));
                    self.tables.allocs = index;
                }
                for eval in evals {
                    result.evals_to_enqueue.push(eval.id.clone());
                    self.upsert_eval(index, eval);
                }
                touched_jobs.sort();
                touched_jobs.dedup();
                for (namespace, job_id) in touched_jobs {
                    self.refresh_job_status(index, &namespace, &job_id);
                }
            }
            Command::SchedulerConfigSet { mut config, cas } => {
                let current = &self.scheduler_config;
                if cas.is_some_and(|cas| cas != current.modify_index) {
                    return result;
                }
                config.create_index = if current.create_index == 0 {
                    index
                } else {
                    current.create_index
                };
                config.modify_index = index;
                self.scheduler_config = Arc::new(config);
                result.updated = true;
            }
            Command::StateRestore { state } => {
                // Nodes with allocations before or after must both wake.
                let mut watched: Vec<String> = self.node_alloc_index.keys().cloned().collect();
                *self = *state;
                watched.extend(self.node_alloc_index.keys().cloned());
                self.index = self.index.max(index);
                self.tables = TableIndexes {
                    jobs: index,
                    nodes: index,
                    allocs: index,
                    evals: index,
                    namespaces: index,
                    deployments: index,
                    acl_policies: index,
                    acl_tokens: index,
                    acl_roles: index,
                    variables: index,
                    root_keys: index,
                    services: index,
                };
                for node_id in watched {
                    self.node_alloc_index.insert(node_id, index);
                }
                result.evals_to_enqueue = self
                    .evals
                    .values()
                    .filter(|eval| eval.status == EvalStatus::Pending)
                    .map(|eval| eval.id.clone())
                    .collect();
            }
            Command::NamespaceUpsert { namespaces } => {
                for mut namespace in namespaces {
                    namespace.create_index = match self.namespaces.get(&namespace.name) {
                        Some(existing) => existing.create_index,
                        None if namespace.name == DEFAULT_NAMESPACE => Namespace::builtin_default().create_index,
                        None => index,
                    };
                    namespace.modify_index = index;
                    self.namespaces.insert(namespace.name.clone(), Arc::new(namespace));
                }
                self.tables.namespaces = index;
            }
            Command::NamespaceDelete { names } => {
                for name in &names {
                    if name == DEFAULT_NAMESPACE {
                        result.error = Some("the default namespace cannot be deleted".to_string());
                        return result;
                    }
                    if !self.namespaces.contains_key(name) {
                        result.error = Some(format!("namespace {name:?} not found"));
                        return result;
                    }
                    let live = self.live_jobs_in(name);
                    if !live.is_empty() {
                        result.error = Some(format!(
                            "namespace {name:?} has {} non-terminal job(s) ({}); stop them first",
                            live.len(),
                            live.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                        ));
                        return result;
                    }
                }
                for name in &names {
                    self.namespaces.remove(name);
                }
                self.tables.namespaces = index;
            }
            Command::DeploymentAllocHealth {
                deployment_id,
                healthy,
                unhealthy,
                status,
                job,
                eval,
                now,
            } => {
                if let Err(error) = self.apply_alloc_health(index, &deployment_id, &healthy, &unhealthy, now) {
                    result.error = Some(error);
                    return result;
                }
                if let Some(update) = status {
                    self.set_deployment_status(index, &update, now);
                }
                self.register_and_evaluate(index, job, eval, now, &mut result);
            }
            Command::DeploymentStatusSet { update, job, eval, now } => {
                if let Err(error) = self.check_deployment_active(&update.deployment_id) {
                    result.error = Some(error);
                    return result;
                }
                self.set_deployment_status(index, &update, now);
                self.register_and_evaluate(index, job, eval, now, &mut result);
            }
            Command::DeploymentPromote {
                deployment_id,
                groups,
                eval,
                now,
            } => {
                if let Err(error) = self.promote(index, &deployment_id, &groups, now) {
                    result.error = Some(error);
                    return result;
                }
                self.register_and_evaluate(index, None, eval, now, &mut result);
            }
            Command::AclBootstrap { .. }
            | Command::AclPolicyUpsert { .. }
            | Command::AclPolicyDelete { .. }
            | Command::AclTokenUpsert { .. }
            | Command::AclTokenDelete { .. }
            | Command::AclRoleUpsert { .. }
            | Command::AclRoleDelete { .. } => self.apply_acl(index, command, &mut result),
            Command::RootKeyUpsert { .. } | Command::VarApply { .. } => self.apply_vars(index, command, &mut result),
            Command::JobScale {
                namespace,
                job_id,
                group,
                mut event,
                job,
                eval,
                now,
            } => {
                if self.jobs.get(&key(&namespace, &job_id)).is_none() {
                    result.error = Some(format!("job {job_id:?} not found"));
                    return result;
                }
                event.create_index = index;
                let events_key = (namespace, job_id, group);
                let mut events = self
                    .scaling_events
                    .get(&events_key)
                    .map(|events| (**events).clone())
                    .unwrap_or_default();
                events.push(event);
                let excess = events.len().saturating_sub(SCALING_EVENTS_KEPT);
                events.drain(..excess);
                self.scaling_events.insert(events_key, Arc::new(events));
                self.register_and_evaluate(index, job, eval, now, &mut result);
                self.tables.jobs = index;
            }
            Command::JobStability {
                namespace,
                job_id,
                version,
                stable,
            } => {
                if self.job_version_ref(&namespace, &job_id, version).is_none() {
                    result.error = Some(format!("job {job_id:?} has no version {version}"));
                    return result;
                }
                self.set_stable(index, &namespace, &job_id, version, stable);
            }
            Command::NodeEligibility {
                node_id,
                eligible,
                evals,
                now,
            } => {
                let Some(existing) = self.nodes.get(&node_id).cloned() else {
                    result.error = Some(format!("node {node_id:?} not found"));
                    return result;
                };
                let mut node = (*existing).clone();
                node.scheduling_eligibility = if eligible {
                    types::SchedulingEligibility::Eligible
                } else {
                    types::SchedulingEligibility::Ineligible
                };
                node.status_updated_at = now;
                node.modify_index = index;
                self.put_node(Arc::new(node));
                self.tables.nodes = index;
                for eval in evals {
                    result.evals_to_enqueue.push(eval.id.clone());
                    self.upsert_eval(index, eval);
                }
            }
            Command::ServiceRegistrationUpsert { services } => self.apply_service_upsert(index, services),
            Command::ServiceRegistrationDelete { ids } => self.apply_service_delete(index, ids),
            Command::PeriodicLaunch {
                namespace,
                job_id,
                launch,
                force,
                child,
                eval,
                now,
            } => self.apply_periodic_launch(index, &namespace, &job_id, launch, force, child, eval, now, &mut result),
            Command::JobDispatch { child, eval, now } => self.apply_dispatch(index, child, eval, now, &mut result),
            Command::ChildRelease {
                namespace,
                parent_id,
                evals,
            } => self.apply_child_release(index, &namespace, &parent_id, evals, &mut result),
            Command::NodeDrain {
                node_id,
                drain,
                mark_eligible,
                evals,
                now,
            } => self.apply_node_drain(index, &node_id, drain, mark_eligible, evals, now, &mut result),
            Command::NodeDrainComplete { node_id, now } => {
                self.apply_node_drain_complete(index, &node_id, now, &mut result)
            }
            Command::AllocDesiredTransition {
                alloc_ids,
                evals,
                now,
                force_reschedule,
            } => self.apply_alloc_transition(index, alloc_ids, force_reschedule, evals, now, &mut result),
            Command::GcDelete {
                eval_ids,
                alloc_ids,
                jobs,
                node_ids,
            } => {
                for id in eval_ids {
                    if let Some(eval) = self.evals.remove(&id) {
                        self.blocked_evals.remove(&id);
                        let job_key = key(&eval.namespace, &eval.job_id);
                        if let Some(set) = self.evals_by_job.get_mut(&job_key) {
                            set.remove(&id);
                        }
                        self.tables.evals = index;
                    }
                }
                for id in alloc_ids {
                    self.drop_alloc_services(index, &id);
                    if let Some(alloc) = self.allocs.remove(&id) {
                        self.track_usage(Some(&alloc), None);
                        let job_key = key(&alloc.namespace, &alloc.job_id);
                        if let Some(set) = self.allocs_by_job.get_mut(&job_key) {
                            set.remove(&id);
                        }
                        if let Some(set) = self.allocs_by_node.get_mut(&alloc.node_id) {
                            set.remove(&id);
                        }
                        self.node_alloc_index.insert(alloc.node_id.clone(), index);
                        self.tables.allocs = index;
                    }
                }
                for (namespace, job_id) in jobs {
                    let job_key = key(&namespace, &job_id);
                    if self.jobs.remove(&job_key).is_some() {
                        self.system_jobs.remove(&job_key);
                        self.forget_children_of(&job_key);
                        self.purge_versions(&namespace, &job_id, u64::MAX);
                        self.purge_deployments(index, &job_key);
                        self.tables.jobs = index;
                    }
                    // Only empty index entries go with the job: anything
                    // still listed was not collected and stays reachable.
                    if self.allocs_by_job.get(&job_key).is_some_and(OrdSet::is_empty) {
                        self.allocs_by_job.remove(&job_key);
                    }
                    if self.evals_by_job.get(&job_key).is_some_and(OrdSet::is_empty) {
                        self.evals_by_job.remove(&job_key);
                    }
                }
                for node_id in node_ids {
                    let holds_allocs = self.allocs_by_node.get(&node_id).is_some_and(|set| !set.is_empty());
                    if !holds_allocs && self.nodes.remove(&node_id).is_some() {
                        self.columns.remove(&node_id);
                        self.allocs_by_node.remove(&node_id);
                        self.node_usage.remove(&node_id);
                        self.node_alloc_index.remove(&node_id);
                        self.tables.nodes = index;
                    }
                }
            }
        }
        result
    }

    /// Removes a job's versions below `below` (every version with
    /// `u64::MAX`). Versions are one contiguous key range.
    fn purge_versions(&mut self, namespace: &str, job_id: &str, below: u64) {
        if below == 0 {
            return;
        }
        let first = (namespace.to_string(), job_id.to_string(), 0);
        let last = (namespace.to_string(), job_id.to_string(), below.saturating_sub(1));
        let versions: Vec<_> = self
            .job_versions
            .range(first..=last)
            .map(|(key, _)| key.clone())
            .collect();
        for version in versions {
            self.job_versions.remove(&version);
        }
    }

    /// Stores a job; bumps its version when the spec changed. Returns the
    /// version stored.
    pub(crate) fn upsert_job(&mut self, index: Index, mut job: Job, now: UnixNanos) -> u64 {
        let job_key = key(&job.namespace, &job.id);
        match self.jobs.get(&job_key) {
            Some(existing) => {
                job.create_index = existing.create_index;
                if same_spec(existing, &job) {
                    job.version = existing.version;
                    job.job_modify_index = existing.job_modify_index;
                    job.submit_time = existing.submit_time;
                } else {
                    job.version = existing.version + 1;
                    job.job_modify_index = index;
                    job.submit_time = now;
                }
            }
            None => {
                job.create_index = index;
                job.version = 0;
                job.job_modify_index = index;
                job.submit_time = now;
            }
        }
        job.modify_index = index;
        job.status = self.compute_job_status(&job);
        let version = job.version;
        let job = Arc::new(job);
        self.job_versions
            .insert((job.namespace.clone(), job.id.clone(), version), Arc::clone(&job));
        // Keep the newest versions only (Nomad keeps six).
        let oldest_kept = (version + 1).saturating_sub(JOB_TRACKED_VERSIONS);
        self.purge_versions(&job.namespace, &job.id, oldest_kept);
        self.put_job(job_key, job);
        self.tables.jobs = index;
        version
    }

    /// Stores a job as the current version, keeping the system-job index.
    fn put_job(&mut self, job_key: NsKey, job: Arc<Job>) {
        if matches!(job.job_type, JobType::System | JobType::Sysbatch) {
            self.system_jobs.insert(job_key.clone());
        } else {
            self.system_jobs.remove(&job_key);
        }
        self.jobs.insert(job_key, job);
    }

    /// Keeps the blocked-evaluation index for an evaluation being stored.
    fn index_blocked(&mut self, eval: &Evaluation) {
        if eval.status == EvalStatus::Blocked {
            self.blocked_evals.insert(eval.id.clone());
        } else {
            self.blocked_evals.remove(&eval.id);
        }
    }

    pub(crate) fn upsert_eval(&mut self, index: Index, mut eval: Evaluation) {
        match self.evals.get(&eval.id) {
            Some(existing) => eval.create_index = existing.create_index,
            None => eval.create_index = index,
        }
        eval.modify_index = index;
        let job_key = key(&eval.namespace, &eval.job_id);
        self.evals_by_job
            .entry(job_key.clone())
            .or_default()
            .insert(eval.id.clone());
        self.index_blocked(&eval);
        self.evals.insert(eval.id.clone(), Arc::new(eval));
        self.tables.evals = index;
        // The job's status may depend on pending evaluations.
        self.refresh_job_status(index, &job_key.0, &job_key.1);
    }

    pub(crate) fn upsert_alloc(&mut self, index: Index, mut alloc: Allocation, now: UnixNanos) {
        let existing = self.allocs.get(&alloc.id).cloned();
        self.count_placement(index, existing.as_deref(), &mut alloc, now);
        match self.allocs.get(&alloc.id) {
            Some(existing) => {
                alloc.create_index = existing.create_index;
                alloc.create_time = existing.create_time;
                // The client owns these fields; a plan never rolls them back,
                // except to mark an allocation on a down node as lost.
                if alloc.client_status != AllocClientStatus::Lost || existing.client_status.is_terminal() {
                    alloc.client_status = existing.client_status;
                    alloc.client_description = existing.client_description.clone();
                }
                alloc.task_states = existing.task_states.clone();
                // The drainer's mark survives a plan made before it.
                alloc.desired_transition.migrate |= existing.desired_transition.migrate;
                alloc.desired_transition.force_reschedule |= existing.desired_transition.force_reschedule;
                if alloc.desired_status != existing.desired_status || alloc.job_version != existing.job_version {
                    alloc.alloc_modify_index = index;
                } else {
                    alloc.alloc_modify_index = existing.alloc_modify_index;
                }
            }
            None => {
                alloc.create_index = index;
                alloc.alloc_modify_index = index;
                if alloc.create_time == 0 {
                    alloc.create_time = now;
                }
            }
        }
        alloc.modify_index = index;
        alloc.modify_time = now;
        // Link the replaced allocation forward to its replacement.
        if !alloc.previous_allocation.is_empty()
            && let Some(previous) = self.allocs.get(&alloc.previous_allocation).cloned()
            && previous.next_allocation != alloc.id
        {
            let mut previous = (*previous).clone();
            previous.next_allocation = alloc.id.clone();
            previous.modify_index = index;
            self.allocs.insert(previous.id.clone(), Arc::new(previous));
        }
        let job_key = key(&alloc.namespace, &alloc.job_id);
        self.allocs_by_job.entry(job_key).or_default().insert(alloc.id.clone());
        self.allocs_by_node
            .entry(alloc.node_id.clone())
            .or_default()
            .insert(alloc.id.clone());
        self.node_alloc_index.insert(alloc.node_id.clone(), index);
        let previous = self.allocs.get(&alloc.id).cloned();
        self.track_usage(previous.as_deref(), Some(&alloc));
        if alloc.client_status.is_terminal() {
            // A plan marking an allocation lost ends its instances.
            self.drop_alloc_services(index, &alloc.id);
        }
        self.allocs.insert(alloc.id.clone(), Arc::new(alloc));
        self.tables.allocs = index;
    }

    /// Moves an allocation's resources in or out of its node's usage as it
    /// starts or stops holding them.
    fn track_usage(&mut self, before: Option<&Allocation>, after: Option<&Allocation>) {
        if let Some(before) = before.filter(|alloc| alloc.holds_resources()) {
            let usage = self.node_usage.entry(before.node_id.clone()).or_default();
            usage.subtract(&before.allocated_resources.comparable());
            let usage = *usage;
            self.columns.set_used(&before.node_id, usage);
        }
        if let Some(after) = after.filter(|alloc| alloc.holds_resources()) {
            let usage = self.node_usage.entry(after.node_id.clone()).or_default();
            usage.add(&after.allocated_resources.comparable());
            let usage = *usage;
            self.columns.set_used(&after.node_id, usage);
        }
    }

    /// Stores a node in the table and in the scheduler's node index.
    pub(crate) fn put_node(&mut self, node: Arc<Node>) {
        let used = self.node_usage(&node.id);
        self.columns.upsert(&node, used);
        self.nodes.insert(node.id.clone(), node);
    }

    /// Nomad's job status rule: running while any allocation is live,
    /// pending while evaluations are outstanding, dead once everything ended.
    fn compute_job_status(&self, job: &Job) -> JobStatus {
        let allocs = self.allocs_by_job(&job.namespace, &job.id);
        if allocs
            .iter()
            .any(|alloc| !alloc.client_status.is_terminal() && alloc.desired_status == AllocDesiredStatus::Run)
        {
            return JobStatus::Running;
        }
        if job.is_template() && !job.stop {
            return JobStatus::Running;
        }
        let evals = self.evals_by_job(&job.namespace, &job.id);
        if evals
            .iter()
            .any(|eval| matches!(eval.status, EvalStatus::Pending | EvalStatus::Blocked))
        {
            return JobStatus::Pending;
        }
        if job.stop || !allocs.is_empty() {
            // Stopped, or every allocation finished. A service job whose
            // allocations all ended and that is not stopped is still pending
            // a replacement unless it was batch work.
            if job.stop || matches!(job.job_type, JobType::Batch | JobType::Sysbatch) || !evals.is_empty() {
                return JobStatus::Dead;
            }
        }
        JobStatus::Pending
    }

    fn refresh_job_status(&mut self, index: Index, namespace: &str, job_id: &str) {
        let job_key = key(namespace, job_id);
        let Some(job) = self.jobs.get(&job_key).cloned() else {
            return;
        };
        let status = self.compute_job_status(&job);
        if status != job.status {
            let mut updated = (*job).clone();
            updated.status = status;
            updated.modify_index = index;
            self.put_job(job_key, Arc::new(updated));
            self.tables.jobs = index;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use types::{AllocClientUpdate, Task, TaskGroup};

    fn job(id: &str) -> Job {
        let mut job = Job {
            id: id.to_string(),
            job_type: JobType::Batch,
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
        };
        job.canonicalize();
        job
    }

    fn eval(id: &str, job_id: &str) -> Evaluation {
        Evaluation {
            id: id.to_string(),
            namespace: "default".into(),
            job_id: job_id.to_string(),
            status: EvalStatus::Pending,
            ..Evaluation::default()
        }
    }

    fn alloc(id: &str, job_id: &str, node_id: &str) -> Allocation {
        Allocation {
            id: id.to_string(),
            namespace: "default".into(),
            job_id: job_id.to_string(),
            node_id: node_id.to_string(),
            task_group: "g".into(),
            name: format!("{job_id}.g[0]"),
            allocated_resources: types::AllocatedResources {
                tasks: [(
                    "t".to_string(),
                    types::AllocatedTaskResources {
                        cpu_mhz: 250,
                        memory_mb: 64,
                        ..Default::default()
                    },
                )]
                .into(),
                ..Default::default()
            },
            ..Allocation::default()
        }
    }

    /// The node index agrees with the node table and the usage index.
    fn assert_columns_match(state: &StateSnapshot) {
        let columns = state.node_columns();
        assert_eq!(columns.nodes().len(), state.node_count());
        assert_eq!(columns.entries().len(), state.node_count());
        assert_eq!(columns.used().len(), state.node_count());
        let mut class_of: BTreeMap<String, u32> = BTreeMap::new();
        for ((node, entry), used) in columns.nodes().iter().zip(columns.entries()).zip(columns.used()) {
            assert_eq!(
                state.node(&node.id).as_deref(),
                Some(&**node),
                "row holds the stored node"
            );
            assert_eq!(*used, state.node_usage(&node.id), "usage of {}", node.id);
            assert!(entry.class < columns.class_count());
            let class = *class_of.entry(node.computed_class.clone()).or_insert(entry.class);
            assert_eq!(class, entry.class, "one number per computed class");
            assert_eq!(*entry, NodeEntry::of(node, class));
        }
        let distinct: BTreeSet<u32> = class_of.values().copied().collect();
        assert_eq!(distinct.len(), class_of.len(), "different classes, different numbers");
    }

    #[test]
    fn the_node_index_follows_nodes_usage_removal_and_restore() {
        let node = |id: &str, class: &str| Node {
            id: id.to_string(),
            computed_class: class.to_string(),
            resources: types::NodeResources {
                cpu_mhz: 4000,
                cores: 4,
                memory_mb: 8192,
                ..types::NodeResources::default()
            },
            ..Node::default()
        };
        let mut state = StateSnapshot::new();
        for (index, (id, class)) in [("n1", "a"), ("n2", "b"), ("n3", "a")].into_iter().enumerate() {
            state.apply(
                index as u64 + 1,
                Command::NodeRegister {
                    node: node(id, class),
                    now: 1,
                },
            );
        }
        assert_columns_match(&state);
        let before = state.clone();
        state.apply(
            4,
            Command::PlanApply {
                allocs: vec![alloc("x", "j", "n1"), alloc("y", "j", "n3"), alloc("z", "j", "n3")],
                eval_update: None,
                created_evals: Vec::new(),
                now: 2,
                deployment: None,
                deployment_updates: Vec::new(),
            },
        );
        assert_columns_match(&state);
        assert_eq!(state.node_columns().used()[2].cpu_mhz, 500);
        // The snapshot taken before keeps its own columns.
        assert_columns_match(&before);
        assert!(before.node_columns().used().iter().all(|used| used.cpu_mhz == 0));

        let mut stopped = alloc("y", "j", "n3");
        stopped.desired_status = AllocDesiredStatus::Stop;
        stopped.client_status = AllocClientStatus::Complete;
        state.apply(
            5,
            Command::PlanApply {
                allocs: vec![stopped],
                eval_update: None,
                created_evals: Vec::new(),
                now: 3,
                deployment: None,
                deployment_updates: Vec::new(),
            },
        );
        state.apply(
            6,
            Command::NodeUpdateStatus {
                node_id: "n2".into(),
                status: NodeStatus::Down,
                now: 4,
                evals: Vec::new(),
            },
        );
        assert_columns_match(&state);
        assert!(
            !state.node_columns().entries()[1].schedulable,
            "a down node is not schedulable"
        );
        state.apply(
            7,
            Command::NodeEligibility {
                node_id: "n3".into(),
                eligible: false,
                evals: Vec::new(),
                now: 4,
            },
        );
        assert_columns_match(&state);
        assert!(
            !state.node_columns().entries()[2].schedulable,
            "an ineligible node is not schedulable"
        );
        // n1 holds no allocation once x is collected: removing it moves the
        // last row into its place.
        state.apply(
            8,
            Command::GcDelete {
                eval_ids: Vec::new(),
                alloc_ids: vec!["x".into()],
                jobs: Vec::new(),
                node_ids: vec!["n1".into()],
            },
        );
        assert_eq!(state.node_count(), 2);
        assert_columns_match(&state);
        state.apply(
            8,
            Command::NodeRegister {
                node: node("n4", "c"),
                now: 5,
            },
        );
        assert_columns_match(&state);
        let restored: StateSnapshot =
            serde_json::from_value(serde_json::to_value(&state).expect("persist")).expect("restore");
        assert_columns_match(&restored);
    }

    #[test]
    fn job_versions_bump_only_on_spec_change() {
        let mut state = StateSnapshot::new();
        let result = state.apply(
            1,
            Command::JobRegister {
                job: job("a"),
                eval: Some(eval("e1", "a")),
                now: 10,
                enforce_index: None,
            },
        );
        assert_eq!(result.job_version, Some(0));
        assert_eq!(result.evals_to_enqueue, vec!["e1".to_string()]);
        let result = state.apply(
            2,
            Command::JobRegister {
                job: job("a"),
                eval: None,
                now: 20,
                enforce_index: None,
            },
        );
        assert_eq!(result.job_version, Some(0));
        let mut changed = job("a");
        changed.priority = 70;
        let result = state.apply(
            3,
            Command::JobRegister {
                job: changed,
                eval: None,
                now: 30,
                enforce_index: None,
            },
        );
        assert_eq!(result.job_version, Some(1));
        let stored = state.job("default", "a").expect("job stored");
        assert_eq!(
            (stored.create_index, stored.modify_index, stored.job_modify_index),
            (1, 3, 3)
        );
        assert_eq!(stored.submit_time, 30);
        assert_eq!(state.job_versions("default", "a").len(), 2);
        assert_eq!(state.table_indexes().jobs, 3);
    }

    #[test]
    fn snapshots_are_isolated_from_later_writes() {
        let mut state = StateSnapshot::new();
        state.apply(
            1,
            Command::JobRegister {
                job: job("a"),
                eval: None,
                now: 1,
                enforce_index: None,
            },
        );
        let snapshot = state.clone();
        state.apply(
            2,
            Command::JobRegister {
                job: job("b"),
                eval: None,
                now: 2,
                enforce_index: None,
            },
        );
        assert_eq!(snapshot.jobs(None).len(), 1);
        assert_eq!(state.jobs(None).len(), 2);
        assert_eq!(snapshot.index(), 1);
    }

    #[test]
    fn plan_and_client_updates_maintain_indexes_and_job_status() {
        let mut state = StateSnapshot::new();
        state.apply(
            1,
            Command::JobRegister {
                job: job("a"),
                eval: Some(eval("e1", "a")),
                now: 1,
                enforce_index: None,
            },
        );
        assert_eq!(
            state.job("default", "a").map(|job| job.status),
            Some(JobStatus::Pending)
        );
        let mut done = eval("e1", "a");
        done.status = EvalStatus::Complete;
        state.apply(
            2,
            Command::PlanApply {
                allocs: vec![alloc("x1", "a", "n1")],
                eval_update: Some(done),
                created_evals: Vec::new(),
                now: 5,
                deployment: None,
                deployment_updates: Vec::new(),
            },
        );
        assert_eq!(state.allocs_by_node("n1").len(), 1);
        assert_eq!(state.allocs_by_job("default", "a").len(), 1);
        assert_eq!(state.node_alloc_index("n1"), 2);
        assert_eq!(state.node_usage("n1").cpu_mhz, 250);
        assert_eq!(
            state.job("default", "a").map(|job| job.status),
            Some(JobStatus::Running)
        );
        state.apply(
            3,
            Command::AllocClientUpdate {
                updates: vec![AllocClientUpdate {
                    alloc_id: "x1".into(),
                    client_status: AllocClientStatus::Complete,
                    ..AllocClientUpdate::default()
                }],
                evals: Vec::new(),
                now: 9,
            },
        );
        let stored = state.alloc("x1").expect("alloc");
        assert_eq!((stored.create_index, stored.modify_index), (2, 3));
        assert_eq!(
            state.node_usage("n1"),
            ComparableResources::default(),
            "a finished alloc frees its node"
        );
        assert_eq!(state.job("default", "a").map(|job| job.status), Some(JobStatus::Dead));
        let summary = state.job_summary("default", "a").expect("summary");
        assert_eq!(summary.summary["g"].complete, 1);
        // A plan re-sending the alloc must not roll back the client's status.
        state.apply(
            4,
            Command::PlanApply {
                allocs: vec![alloc("x1", "a", "n1")],
                eval_update: None,
                created_evals: Vec::new(),
                now: 10,
                deployment: None,
                deployment_updates: Vec::new(),
            },
        );
        assert_eq!(
            state.alloc("x1").map(|a| a.client_status),
            Some(AllocClientStatus::Complete)
        );
    }

    #[test]
    fn prefixes_resolve_uniquely() {
        let mut state = StateSnapshot::new();
        state.apply(
            1,
            Command::PlanApply {
                allocs: vec![alloc("abc1", "a", "n"), alloc("abd2", "a", "n")],
                eval_update: None,
                created_evals: Vec::new(),
                now: 1,
                deployment: None,
                deployment_updates: Vec::new(),
            },
        );
        assert_eq!(
            state.alloc_by_prefix("abc").expect("ok").map(|a| a.id.clone()),
            Some("abc1".into())
        );
        assert!(state.alloc_by_prefix("ab").is_err());
        assert_eq!(state.alloc_by_prefix("zz").expect("ok"), None);
    }

    #[test]
    fn deregister_stops_or_purges() {
        let mut state = StateSnapshot::new();
        state.apply(
            0,
            Command::JobRegister {
                job: job("ab"),
                eval: None,
                now: 0,
                enforce_index: None,
            },
        );
        state.apply(
            1,
            Command::JobRegister {
                job: job("a"),
                eval: None,
                now: 1,
                enforce_index: None,
            },
        );
        state.apply(
            2,
            Command::JobDeregister {
                namespace: "default".into(),
                job_id: "a".into(),
                purge: false,
                eval: None,
                now: 2,
            },
        );
        let stopped = state.job("default", "a").expect("still there");
        assert!(stopped.stop);
        assert_eq!(stopped.status, JobStatus::Dead);
        state.apply(
            3,
            Command::JobDeregister {
                namespace: "default".into(),
                job_id: "a".into(),
                purge: true,
                eval: None,
                now: 3,
            },
        );
        assert!(state.job("default", "a").is_none());
        assert!(
            state.job_versions("default", "a").is_empty(),
            "purge drops every version"
        );
        assert_eq!(
            state.job_versions("default", "ab").len(),
            1,
            "a job sharing the prefix keeps its own"
        );
        let missing = state.apply(
            4,
            Command::JobDeregister {
                namespace: "default".into(),
                job_id: "a".into(),
                purge: true,
                eval: None,
                now: 4,
            },
        );
        assert!(missing.error.is_some());
    }

    /// The blocked-evaluation and system-job indexes against a full scan.
    fn check_indexes(state: &StateSnapshot) {
        let blocked: Vec<&str> = state.blocked_evals().map(|eval| eval.id.as_str()).collect();
        let scanned: Vec<&str> = state
            .evals()
            .filter(|eval| eval.status == EvalStatus::Blocked)
            .map(|eval| eval.id.as_str())
            .collect();
        assert_eq!(blocked, scanned);
        assert_eq!(state.blocked_evals.len(), scanned.len(), "no stale IDs in the index");
        let system: Vec<String> = state.system_jobs().map(|job| job.id.clone()).collect();
        let scanned: Vec<String> = state
            .jobs(None)
            .iter()
            .filter(|job| matches!(job.job_type, JobType::System | JobType::Sysbatch))
            .map(|job| job.id.clone())
            .collect();
        assert_eq!(system, scanned);
        assert_eq!(state.system_jobs.len(), scanned.len(), "no stale keys in the index");
    }

    #[test]
    fn blocked_and_system_indexes_follow_every_write() {
        let mut state = StateSnapshot::new();
        let mut system = job("sys");
        system.job_type = JobType::System;
        let blocked = |id: &str, job_id: &str| Evaluation {
            status: EvalStatus::Blocked,
            ..eval(id, job_id)
        };
        state.apply(
            1,
            Command::JobRegister {
                job: system.clone(),
                eval: Some(blocked("e1", "sys")),
                now: 1,
                enforce_index: None,
            },
        );
        state.apply(
            2,
            Command::JobRegister {
                job: job("batch"),
                eval: Some(blocked("e2", "batch")),
                now: 2,
                enforce_index: None,
            },
        );
        check_indexes(&state);
        assert_eq!(state.blocked_evals().count(), 2);
        assert_eq!(state.system_jobs().count(), 1);
        // Unblocked, a new blocked one, one deleted.
        state.apply(
            3,
            Command::EvalUpsert {
                evals: vec![eval("e1", "sys"), blocked("e3", "batch")],
            },
        );
        check_indexes(&state);
        state.apply(
            4,
            Command::GcDelete {
                eval_ids: vec!["e2".into()],
                alloc_ids: Vec::new(),
                jobs: Vec::new(),
                node_ids: Vec::new(),
            },
        );
        check_indexes(&state);
        assert_eq!(
            state.blocked_evals().map(|eval| eval.id.clone()).collect::<Vec<_>>(),
            vec!["e3".to_string()]
        );
        // A job that changes type leaves (or joins) the system index.
        let mut now_batch = system.clone();
        now_batch.job_type = JobType::Batch;
        state.apply(
            5,
            Command::JobRegister {
                job: now_batch,
                eval: None,
                now: 5,
                enforce_index: None,
            },
        );
        check_indexes(&state);
        assert_eq!(state.system_jobs().count(), 0);
        state.apply(
            6,
            Command::JobRegister {
                job: system,
                eval: None,
                now: 6,
                enforce_index: None,
            },
        );
        check_indexes(&state);
        // Purged jobs leave it; restored state rebuilds both indexes.
        let bytes = serde_json::to_vec(&state).expect("encode");
        let restored: StateSnapshot = serde_json::from_slice(&bytes).expect("decode");
        check_indexes(&restored);
        assert_eq!(restored.system_jobs().count(), 1);
        assert_eq!(restored.blocked_evals().count(), 1);
        state.apply(
            7,
            Command::JobDeregister {
                namespace: "default".into(),
                job_id: "sys".into(),
                purge: true,
                eval: None,
                now: 7,
            },
        );
        check_indexes(&state);
        assert_eq!(state.system_jobs().count(), 0);
    }

    #[test]
    fn scheduler_config_is_set_with_check_and_set_and_persists() {
        let mut state = StateSnapshot::new();
        assert_eq!(state.scheduler_config(), &SchedulerConfiguration::default());
        let mut spread = SchedulerConfiguration {
            scheduler_algorithm: types::SchedulerAlgorithm::Spread,
            ..SchedulerConfiguration::default()
        };
        let set = state.apply(
            3,
            Command::SchedulerConfigSet {
                config: spread.clone(),
                cas: None,
            },
        );
        assert!(set.updated);
        assert_eq!(state.scheduler_config().create_index, 3);
        assert_eq!(state.scheduler_config().modify_index, 3);
        // A stale check-and-set index changes nothing.
        spread.preemption_config.service_scheduler_enabled = true;
        let stale = state.apply(
            4,
            Command::SchedulerConfigSet {
                config: spread.clone(),
                cas: Some(2),
            },
        );
        assert!(!stale.updated);
        assert!(!state.scheduler_config().preemption_config.service_scheduler_enabled);
        let fresh = state.apply(
            5,
            Command::SchedulerConfigSet {
                config: spread,
                cas: Some(3),
            },
        );
        assert!(fresh.updated);
        assert!(state.scheduler_config().preemption_config.service_scheduler_enabled);
        assert_eq!(
            state.scheduler_config().create_index,
            3,
            "the first write's index stays"
        );
        assert_eq!(state.scheduler_config().modify_index, 5);
        let bytes = serde_json::to_vec(&state).expect("encode");
        let restored: StateSnapshot = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(restored.scheduler_config(), state.scheduler_config());
    }

    #[test]
    fn serde_round_trip_keeps_state() {
        let mut state = StateSnapshot::new();
        state.apply(
            1,
            Command::JobRegister {
                job: job("a"),
                eval: Some(eval("e1", "a")),
                now: 1,
                enforce_index: None,
            },
        );
        let bytes = serde_json::to_vec(&state).expect("encode");
        let restored: StateSnapshot = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(restored.index(), 1);
        assert_eq!(restored.job("default", "a"), state.job("default", "a"));
        assert_eq!(restored.evals_by_job("default", "a").len(), 1);
        assert_eq!(restored.job_versions("default", "a").len(), 1);
        assert_eq!(restored.table_indexes(), state.table_indexes());
    }

    #[test]
    fn only_the_newest_job_versions_are_kept() {
        let mut state = StateSnapshot::new();
        for version in 0..10u64 {
            let mut changed = job("j");
            changed.meta.insert("v".into(), version.to_string());
            state.apply(
                version + 1,
                Command::JobRegister {
                    job: changed,
                    eval: None,
                    now: 1,
                    enforce_index: None,
                },
            );
        }
        let versions: Vec<u64> = state
            .job_versions("default", "j")
            .iter()
            .map(|job| job.version)
            .collect();
        assert_eq!(versions.len(), JOB_TRACKED_VERSIONS as usize, "{versions:?}");
        assert_eq!(versions.iter().copied().min(), Some(4));
        assert_eq!(versions.iter().copied().max(), Some(9));
        assert!(state.job_version("default", "j", 3).is_none());
    }

    #[test]
    fn only_the_newest_task_events_are_kept() {
        let mut state = StateSnapshot::new();
        state.apply(
            1,
            Command::JobRegister {
                job: job("j"),
                eval: None,
                now: 1,
                enforce_index: None,
            },
        );
        state.apply(
            2,
            Command::PlanApply {
                allocs: vec![alloc("a", "j", "n1")],
                eval_update: None,
                created_evals: Vec::new(),
                now: 1,
                deployment: None,
                deployment_updates: Vec::new(),
            },
        );
        let events: Vec<types::TaskEvent> = (0..25)
            .map(|n| types::TaskEvent {
                time: n,
                ..types::TaskEvent::default()
            })
            .collect();
        let update = AllocClientUpdate {
            alloc_id: "a".into(),
            client_status: AllocClientStatus::Running,
            task_states: [(
                "t".to_string(),
                types::TaskState {
                    events,
                    ..types::TaskState::default()
                },
            )]
            .into(),
            ..AllocClientUpdate::default()
        };
        state.apply(
            3,
            Command::AllocClientUpdate {
                updates: vec![update],
                evals: Vec::new(),
                now: 1,
            },
        );
        let kept = &state.alloc("a").expect("alloc").task_states["t"].events;
        assert_eq!(kept.len(), TASK_EVENTS_KEPT);
        assert_eq!(kept.first().map(|event| event.time), Some(15), "the newest ten");
    }

    #[test]
    fn collecting_jobs_and_nodes_leaves_no_index_behind() {
        let mut state = StateSnapshot::new();
        let node = Node {
            id: "n1".into(),
            ..Node::default()
        };
        state.apply(1, Command::NodeRegister { node, now: 1 });
        state.apply(
            2,
            Command::JobRegister {
                job: job("j"),
                eval: Some(eval("e1", "j")),
                now: 1,
                enforce_index: None,
            },
        );
        state.apply(
            3,
            Command::PlanApply {
                allocs: vec![alloc("a", "j", "n1")],
                eval_update: None,
                created_evals: Vec::new(),
                now: 1,
                deployment: None,
                deployment_updates: Vec::new(),
            },
        );
        // The node still holds an allocation: it is not collected.
        state.apply(
            4,
            Command::GcDelete {
                eval_ids: Vec::new(),
                alloc_ids: Vec::new(),
                jobs: Vec::new(),
                node_ids: vec!["n1".into()],
            },
        );
        assert!(state.node("n1").is_some());
        state.apply(
            5,
            Command::GcDelete {
                eval_ids: vec!["e1".into()],
                alloc_ids: vec!["a".into()],
                jobs: vec![("default".into(), "j".into())],
                node_ids: vec!["n1".into()],
            },
        );
        assert!(state.job("default", "j").is_none());
        assert!(state.job_versions("default", "j").is_empty());
        assert!(state.node("n1").is_none());
        assert_eq!(state.allocs().count(), 0);
        assert_eq!(state.evals().count(), 0);
        assert!(state.allocs_by_job.is_empty() && state.evals_by_job.is_empty());
        assert!(state.allocs_by_node.is_empty() && state.node_usage.is_empty());
        check_indexes(&state);
    }

    fn namespace(name: &str, description: &str) -> Namespace {
        Namespace {
            name: name.into(),
            description: description.into(),
            ..Namespace::default()
        }
    }

    #[test]
    fn namespaces_are_created_updated_and_deleted_only_when_empty() {
        let mut state = StateSnapshot::new();
        // `default` exists before anything is written.
        let names = |state: &StateSnapshot| -> Vec<String> {
            state
                .namespaces()
                .iter()
                .map(|namespace| namespace.name.clone())
                .collect()
        };
        assert_eq!(names(&state), vec!["default"]);
        assert_eq!(
            state.namespace("default").map(|namespace| namespace.create_index),
            Some(1)
        );
        assert!(state.namespace("prod").is_none());

        state.apply(
            5,
            Command::NamespaceUpsert {
                namespaces: vec![namespace("prod", "production"), namespace("a-team", "")],
            },
        );
        assert_eq!(names(&state), vec!["a-team", "default", "prod"]);
        let prod = state.namespace("prod").expect("created");
        assert_eq!((prod.create_index, prod.modify_index), (5, 5));
        assert_eq!(state.table_indexes().namespaces, 5);
        state.apply(
            6,
            Command::NamespaceUpsert {
                namespaces: vec![namespace("prod", "changed"), namespace("default", "ours")],
            },
        );
        let prod = state.namespace("prod").expect("still there");
        assert_eq!(
            (prod.create_index, prod.modify_index, prod.description.as_str()),
            (5, 6, "changed")
        );
        let default = state.namespace("default").expect("default");
        assert_eq!((default.create_index, default.description.as_str()), (1, "ours"));
        assert_eq!(names(&state), vec!["a-team", "default", "prod"]);

        // A live job holds its namespace; `default` and unknown names are refused.
        let mut in_prod = job("web");
        in_prod.namespace = "prod".into();
        state.apply(
            7,
            Command::JobRegister {
                job: in_prod,
                eval: None,
                now: 7,
                enforce_index: None,
            },
        );
        for (names, error) in [
            (vec!["prod"], "non-terminal job(s) (web)"),
            (vec!["a-team", "default"], "default namespace cannot be deleted"),
            (vec!["nope"], "not found"),
        ] {
            let result = state.apply(
                8,
                Command::NamespaceDelete {
                    names: names.iter().map(|name| name.to_string()).collect(),
                },
            );
            let message = result.error.expect("refused");
            assert!(message.contains(error), "{message}");
        }
        assert_eq!(names(&state), vec!["a-team", "default", "prod"], "all or nothing");

        // Once the job is purged, the namespace can go.
        state.apply(
            9,
            Command::JobDeregister {
                namespace: "prod".into(),
                job_id: "web".into(),
                purge: true,
                eval: None,
                now: 9,
            },
        );
        let result = state.apply(
            10,
            Command::NamespaceDelete {
                names: vec!["prod".into()],
            },
        );
        assert_eq!(result.error, None);
        assert_eq!(names(&state), vec!["a-team", "default"]);
        assert_eq!(state.table_indexes().namespaces, 10);

        let bytes = serde_json::to_vec(&state).expect("encode");
        let restored: StateSnapshot = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(restored.namespaces(), state.namespaces());
        assert_eq!(restored.table_indexes(), state.table_indexes());
    }
}
