//! Drover's placement engine: turns an evaluation plus a read-only view of
//! the cluster into a [`types::Plan`]. It is pure: no IO, no clock, no global
//! random source. Time (`now`), randomness (`rng`) and new IDs (`ids`) are
//! parameters, so the same inputs always give the same plan.
//!
//! The pipeline for one evaluation is: the *reconciler* compares the job
//! with its allocations and the state of their nodes and decides what to
//! place, stop, migrate, update or reschedule; *feasibility* filters nodes
//! (datacenter, pool, drivers, constraints, devices, ports, resources), with
//! results cached per computed node class; *ranking* orders the feasible
//! nodes best-fit first and re-ranks the few fullest ones by bin-packing,
//! job anti-affinity, reschedule penalty, affinities and spread; and
//! *preemption* evicts lower-priority work when a higher-priority group does
//! not fit. See `README.md` in this crate for the design and its trade-offs.

mod constraint;
mod engine;
mod generic;
#[cfg(any(test, feature = "testing"))]
mod mem_cluster;
mod reconcile;
mod reschedule;
mod system;
mod util;

// Test support (an in-memory cluster, the fixture DSL, the benchmark's
// workload on it): compiled for tests and under the `testing` feature,
// which only dev-dependencies enable (the tidy test checks it).
#[cfg(any(test, feature = "testing"))]
pub mod bench;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::collections::BTreeSet;
use std::fmt;
use types::{Allocation, ComparableResources, Evaluation, Job, JobType, Node, Plan, UnixNanos};

/// A read-only snapshot of the cluster as the scheduler needs it.
///
/// The server implements it over an MVCC state snapshot; the test-only
/// `testing::MemCluster` implements it in memory. Methods with a default
/// body are optional: implement them when the store keeps a cheaper index.
/// Every method must answer from the same snapshot.
pub trait ClusterView {
    /// Every node, in a stable order (the scheduler shuffles with its seed).
    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_>;

    /// Every node with the resources its non-terminal allocations hold.
    /// The default asks [`ClusterView::node_resources_used`] per node;
    /// stores with a usage index should return it directly, since this is
    /// the one full scan the scheduler makes per evaluation.
    fn nodes_with_usage(&self) -> Box<dyn Iterator<Item = (&Node, ComparableResources)> + '_> {
        Box::new(self.nodes().map(move |node| (node, self.node_resources_used(&node.id))))
    }

    /// One node by ID.
    fn node(&self, id: &str) -> Option<&Node>;

    /// The current version of a job.
    fn job(&self, namespace: &str, id: &str) -> Option<&Job>;

    /// An earlier version of a job, used to tell in-place updates from
    /// destructive ones. Without it every version change is destructive.
    fn job_version(&self, namespace: &str, id: &str, version: u64) -> Option<&Job> {
        let _ = (namespace, id, version);
        None
    }

    /// Every allocation of a job, terminal ones included (the reconciler
    /// needs failed allocations to reschedule them).
    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<&Allocation>;

    /// Every allocation on a node, terminal ones included.
    fn allocs_by_node(&self, node_id: &str) -> Vec<&Allocation>;

    /// Resources held on a node by allocations that still hold them.
    fn node_resources_used(&self, node_id: &str) -> ComparableResources {
        let mut used = ComparableResources::default();
        for alloc in self.allocs_by_node(node_id) {
            if alloc.holds_resources() {
                used.add(&alloc.allocated_resources.comparable());
            }
        }
        used
    }

    /// Everything allocations hold on a node: resources, host ports, core
    /// IDs and device instances. Asked only for nodes that are candidates
    /// for a group needing ports, cores or devices, or for preemption.
    fn node_usage(&self, node_id: &str) -> NodeUsage {
        NodeUsage::from_allocs(self.allocs_by_node(node_id))
    }

    /// The job's latest deployment, when the server tracks one. Canary
    /// promotion and rolling-update health come from here.
    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<DeploymentInfo> {
        let _ = (namespace, job_id);
        None
    }

    /// Operator settings (which job types may preempt).
    fn scheduler_config(&self) -> SchedulerConfig {
        SchedulerConfig::default()
    }

    /// An optional column-wise index of every node, kept incrementally by
    /// the store. When present, the per-evaluation scan reads these flat
    /// arrays instead of `Node` structs and per-node usage lookups (a few
    /// nanoseconds per node instead of a cache miss or two). The default is
    /// `None`, and the scheduler then uses [`ClusterView::nodes_with_usage`].
    fn node_index(&self) -> Option<NodeIndex<'_>> {
        None
    }
}

/// One row of a store's node index, and the per-class verdict memo a store
/// keeps beside it: both are kept by the store, so they live in `types`.
pub use types::{NodeEntry, VerdictCache};

/// A column-wise view of every node, returned by [`ClusterView::node_index`].
/// All three slices have the same length and the same order as
/// [`ClusterView::nodes`].
#[derive(Debug, Clone, Copy)]
pub struct NodeIndex<'a> {
    pub(crate) nodes: &'a [std::sync::Arc<Node>],
    pub(crate) entries: &'a [NodeEntry],
    /// Resources held on each node by allocations that hold resources.
    pub(crate) used: &'a [ComparableResources],
    /// One more than the largest `NodeEntry::class`.
    pub(crate) class_count: u32,
    /// Per-class verdicts kept across evaluations, if the store keeps them.
    pub(crate) verdicts: Option<&'a VerdictCache>,
}

impl<'a> NodeIndex<'a> {
    /// Checks that the slices line up; `None` when they do not (the
    /// scheduler then falls back to the per-node path). Class values are
    /// not checked here (that would be a second pass over every entry per
    /// evaluation): an entry whose class is not below `class_count` is
    /// treated as a node without a computed class, checked on its own.
    pub fn new(
        nodes: &'a [std::sync::Arc<Node>],
        entries: &'a [NodeEntry],
        used: &'a [ComparableResources],
        class_count: u32,
    ) -> Option<NodeIndex<'a>> {
        let consistent = nodes.len() == entries.len() && nodes.len() == used.len();
        consistent.then_some(NodeIndex {
            nodes,
            entries,
            used,
            class_count,
            verdicts: None,
        })
    }

    /// Lets evaluations share per-class verdicts through `cache`.
    pub fn with_verdicts(mut self, cache: &'a VerdictCache) -> NodeIndex<'a> {
        self.verdicts = Some(cache);
        self
    }
}

/// What allocations hold on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeUsage {
    /// Summed resources of allocations that hold resources.
    pub resources: ComparableResources,
    /// Host ports in use (static and dynamic), unsorted, may repeat.
    pub ports: Vec<u16>,
    /// Reserved core IDs in use.
    pub cores: Vec<u16>,
    /// Device instance IDs in use.
    pub devices: Vec<String>,
}

impl NodeUsage {
    /// Sums the allocations that still hold resources.
    pub fn from_allocs<'a>(allocs: impl IntoIterator<Item = &'a Allocation>) -> NodeUsage {
        let mut usage = NodeUsage::default();
        for alloc in allocs {
            usage.add(alloc);
        }
        usage
    }

    /// Adds one allocation if it holds resources.
    pub fn add(&mut self, alloc: &Allocation) {
        if !alloc.holds_resources() {
            return;
        }
        let resources = &alloc.allocated_resources;
        self.resources.add(&resources.comparable());
        self.ports.extend(resources.host_ports());
        for task in resources.tasks.values() {
            self.cores.extend(task.reserved_cores.iter().copied());
            for instances in task.devices.values() {
                self.devices.extend(instances.iter().cloned());
            }
        }
    }

    /// Removes one allocation's share (the inverse of [`NodeUsage::add`]).
    pub fn remove(&mut self, alloc: &Allocation) {
        if !alloc.holds_resources() {
            return;
        }
        let resources = &alloc.allocated_resources;
        self.resources.subtract(&resources.comparable());
        for port in resources.host_ports() {
            if let Some(position) = self.ports.iter().position(|used| *used == port) {
                self.ports.swap_remove(position);
            }
        }
        for task in resources.tasks.values() {
            for core in &task.reserved_cores {
                if let Some(position) = self.cores.iter().position(|used| used == core) {
                    self.cores.swap_remove(position);
                }
            }
            for instance in task.devices.values().flatten() {
                if let Some(position) = self.devices.iter().position(|used| used == instance) {
                    self.devices.swap_remove(position);
                }
            }
        }
    }
}

/// The part of a deployment the reconciler needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentInfo {
    pub id: String,
    /// The job version being deployed.
    pub job_version: u64,
    /// Whether the deployment is still running (not successful, failed or
    /// cancelled). New allocations of its version join it.
    pub active: bool,
    /// Task groups whose canaries were promoted.
    pub promoted_groups: BTreeSet<String>,
    /// Allocations the deployment watcher judged healthy. When empty, an
    /// allocation counts as healthy once its client reports it running.
    pub healthy_allocs: BTreeSet<String>,
    /// The servers judge health: an allocation of this deployment is
    /// healthy only once its `deployment_status` says so, not merely
    /// because it runs.
    pub tracks_health: bool,
    /// The rollout failed: its version gets no more destructive updates
    /// or canaries (an operator or auto-revert moves the job on).
    pub failed: bool,
    /// The rollout is paused: no new destructive updates or canaries.
    pub paused: bool,
}

/// How the engine ranks the nodes that fit: `Binpack` (default) by the
/// pack score, `Spread` emptiest node first.
pub use types::SchedulerAlgorithm;

/// Operator settings that change scheduling, as Nomad's scheduler
/// configuration does. The default is Nomad's: best fit, and preemption
/// for system jobs only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub algorithm: SchedulerAlgorithm,
    pub preempt_service: bool,
    pub preempt_batch: bool,
    pub preempt_system: bool,
    pub preempt_sysbatch: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            algorithm: SchedulerAlgorithm::Binpack,
            preempt_service: false,
            preempt_batch: false,
            preempt_system: true,
            preempt_sysbatch: false,
        }
    }
}

impl From<&types::SchedulerConfiguration> for SchedulerConfig {
    /// The parts of the operator's configuration the engine reads.
    fn from(config: &types::SchedulerConfiguration) -> SchedulerConfig {
        let preemption = &config.preemption_config;
        SchedulerConfig {
            algorithm: config.scheduler_algorithm,
            preempt_service: preemption.service_scheduler_enabled,
            preempt_batch: preemption.batch_scheduler_enabled,
            preempt_system: preemption.system_scheduler_enabled,
            preempt_sysbatch: preemption.sysbatch_scheduler_enabled,
        }
    }
}

impl SchedulerConfig {
    /// Whether jobs of this type may evict lower-priority allocations.
    pub fn preemption_enabled(&self, job_type: JobType) -> bool {
        match job_type {
            JobType::Service => self.preempt_service,
            JobType::Batch => self.preempt_batch,
            JobType::System => self.preempt_system,
            JobType::Sysbatch => self.preempt_sysbatch,
        }
    }
}

/// Why an evaluation could not be processed at all. Placement failures are
/// not errors: they are reported in the plan's `eval_update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// The evaluation names no job.
    MissingJobId { eval_id: String },
    /// The job cannot be scheduled as written.
    InvalidJob { job_id: String, reason: String },
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::MissingJobId { eval_id } => write!(f, "evaluation {eval_id} names no job"),
            ScheduleError::InvalidJob { job_id, reason } => write!(f, "job {job_id} cannot be scheduled: {reason}"),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// Schedules one evaluation against a snapshot and returns the plan.
///
/// * `now` stamps new allocations and decides reschedule timing.
/// * `ids` supplies every new allocation and evaluation ID, in order.
/// * `rng` seeds the per-evaluation node shuffle (tie-breaks) and dynamic
///   port picks; the same seed and inputs give the same plan.
///
/// The plan carries `eval_update` (final status, `failed_tg_allocs`,
/// `queued_allocations`) and `created_evals` (a blocked evaluation for what
/// could not be placed, follow-ups for delayed reschedules, evaluations for
/// jobs whose allocations were preempted).
pub fn schedule<R: rand::Rng + ?Sized>(
    view: &(impl ClusterView + ?Sized),
    eval: &Evaluation,
    now: UnixNanos,
    ids: &mut dyn FnMut() -> String,
    rng: &mut R,
) -> Result<Plan, ScheduleError> {
    if eval.job_id.is_empty() {
        return Err(ScheduleError::MissingJobId {
            eval_id: eval.id.clone(),
        });
    }
    let seed = rng.next_u64();
    let job = view.job(&eval.namespace, &eval.job_id);
    let job_type = job
        .map(|job| job.job_type)
        .or(eval.job_type)
        .unwrap_or(JobType::Service);
    let ctx = engine::Ctx {
        view,
        eval,
        now,
        seed,
        config: view.scheduler_config(),
    };
    match job_type {
        JobType::Service | JobType::Batch => generic::schedule(&ctx, job, ids),
        JobType::System | JobType::Sysbatch => system::schedule(&ctx, job, ids),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The operator configuration's defaults (Nomad's) are the engine's.
    #[test]
    fn default_operator_configuration_is_the_default_engine_config() {
        assert_eq!(
            SchedulerConfig::from(&types::SchedulerConfiguration::default()),
            SchedulerConfig::default()
        );
        let mut spread = types::SchedulerConfiguration {
            scheduler_algorithm: SchedulerAlgorithm::Spread,
            ..types::SchedulerConfiguration::default()
        };
        spread.preemption_config.service_scheduler_enabled = true;
        let config = SchedulerConfig::from(&spread);
        assert_eq!(config.algorithm, SchedulerAlgorithm::Spread);
        assert!(config.preemption_enabled(JobType::Service));
        assert!(!config.preemption_enabled(JobType::Batch));
    }
}
