//! An in-memory [`ClusterView`] with plan application, a tiny text fixture
//! format for scheduler tests, and a plan renderer for snapshot tests.
//!
//! [`MemCluster`] keeps per-node usage incrementally, as a real state store
//! should, so it also serves the benchmark. [`MemCluster::apply_plan`]
//! verifies each node again (resources and ports), as the server's plan
//! applier does, and commits what fits.
//!
//! Fixture format, one item per line (`#` starts a comment):
//!
//! ```text
//! now 1000s
//! node n1 dc=dc1 cpu=4000 mem=8192 cores=4 class=web status=ready attr.kernel.name=linux meta.rack=r1
//! job web type=service priority=50 dcs=dc1,dc2 version=1
//! constraint ${attr.kernel.name} = linux          # before any group: job level
//! group api count=3 cpu=500 mem=256 static=http:8080 dynamic=db canary=1 max_parallel=1
//! spread ${node.datacenter} weight=100 dc1=70 dc2=30
//! affinity ${meta.rack} = r1 weight=50
//! alloc a1 web.api[0] node=n1 status=running version=0
//! deployment web version=1 promoted=api
//! eval trigger=job-register job=web
//! ```
//!
//! Node keys: `dc pool class cpu mem disk cores status (ready|down|initializing|disconnected)
//! eligible=false drain=true drain_ignore_system=true drivers=a,b bad_drivers=c attr.X meta.X
//! ports=LOW-HIGH reserved_ports=22,80 device=vendor/type/model:count`.
//! Job keys: `type priority dcs pool version stop all_at_once deregistered`.
//! Group keys: `count cpu mem disk cores driver static=label:port dynamic=label canary max_parallel
//! reschedule=function:delay[:max_delay] attempts interval unlimited device=name:count`.
//! Alloc keys: `node status desired version ports=p1,p2 failed_at=DUR reschedules=DUR,DUR followup=ID
//! created=DUR`. Durations are Go strings; times are offsets from the Unix epoch.

use crate::util::FxHashMap;
use crate::{ClusterView, DeploymentInfo, NodeEntry, NodeIndex, NodeUsage, SchedulerConfig};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;
use types::{
    AllocClientStatus, AllocDesiredStatus, AllocMetric, AllocatedResources, AllocatedTaskResources, Allocation,
    ComparableResources, DrainStrategy, DriverInfo, EphemeralDisk, EvalStatus, Evaluation, Job, JobType,
    NetworkResource, Node, NodeDevice, NodeStatus, Plan, Port, RequestedDevice, RescheduleEvent, ReschedulePolicy,
    RescheduleTracker, Resources, SchedulingEligibility, Spread, SpreadTarget, Task, TaskGroup, TaskState,
    TaskStateKind, UnixNanos, UpdateStrategy,
};

type JobKey = (String, String);

/// Fixture-only marker: the job version is known but the job is gone.
const DEREGISTERED: &str = "fixture.deregistered";

/// Strings that many allocations share (namespace, job, group, eval, node,
/// deployment…), stored once. ID 0 is the empty string.
#[derive(Debug, Clone)]
struct Interner {
    names: Vec<Box<str>>,
    ids: FxHashMap<Box<str>, u32>,
    /// The last ID handed out per field: consecutive allocations of a plan
    /// share most strings, so one comparison usually skips the hash lookup.
    last: [u32; FIELDS],
}

const FIELDS: usize = 14;

impl Default for Interner {
    fn default() -> Self {
        let mut ids = FxHashMap::default();
        ids.insert(Box::<str>::from(""), 0);
        Interner {
            names: vec![Box::from("")],
            ids,
            last: [0; FIELDS],
        }
    }
}

impl Interner {
    fn intern(&mut self, field: usize, text: &str) -> u32 {
        if text.is_empty() {
            return 0;
        }
        let last = self.last[field];
        if &*self.names[last as usize] == text {
            return last;
        }
        let id = match self.ids.get(text) {
            Some(id) => *id,
            None => {
                let id = self.names.len() as u32;
                self.names.push(Box::from(text));
                self.ids.insert(Box::from(text), id);
                id
            }
        };
        self.last[field] = id;
        id
    }

    fn get(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    fn find(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }
}

/// An allocation as [`MemCluster`] stores it: shared strings interned, the
/// per-task resources in a boxed slice instead of a `BTreeMap`, the metric
/// boxed. About a third of a full [`Allocation`]; the full value is built
/// on first read (through [`ClusterView`]) and kept.
#[derive(Debug, Clone)]
struct StoredAlloc {
    id: Box<str>,
    name: Box<str>,
    /// Interned: namespace, eval_id, node_id, node_name, job_id, task_group,
    /// desired_description, client_description, previous_allocation,
    /// next_allocation, followup_eval_id, deployment_id,
    /// preempted_by_allocation.
    strs: [u32; 13],
    job_version: u64,
    tasks: StoredTasks,
    disk_mb: i64,
    networks: Vec<NetworkResource>,
    desired_status: AllocDesiredStatus,
    client_status: AllocClientStatus,
    task_states: BTreeMap<String, TaskState>,
    reschedule_tracker: Option<Box<RescheduleTracker>>,
    preempted_allocations: Vec<String>,
    metrics: StoredMetric,
    create_index: u64,
    modify_index: u64,
    alloc_modify_index: u64,
    create_time: UnixNanos,
    modify_time: UnixNanos,
    full: OnceLock<Box<Allocation>>,
}

fn id_hash(id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<crate::util::FxHasher>::default().hash_one(id)
}

/// Per-task resources: one task inline (the common case), more boxed.
#[derive(Debug, Clone)]
enum StoredTasks {
    One([(u32, AllocatedTaskResources); 1]),
    Many(Box<[(u32, AllocatedTaskResources)]>),
}

impl StoredTasks {
    fn as_slice(&self) -> &[(u32, AllocatedTaskResources)] {
        match self {
            StoredTasks::One(one) => one,
            StoredTasks::Many(tasks) => tasks,
        }
    }
}

/// The placement metric: the counters inline when no per-class or
/// per-dimension breakdown is set (every successful placement), else boxed.
#[derive(Debug, Clone)]
enum StoredMetric {
    None,
    Counts([u64; 6], i64),
    Full(Box<AllocMetric>),
}

impl StoredMetric {
    fn new(metric: Option<AllocMetric>) -> StoredMetric {
        let Some(metric) = metric else {
            return StoredMetric::None;
        };
        let plain = metric.nodes_available.is_empty()
            && metric.class_filtered.is_empty()
            && metric.constraint_filtered.is_empty()
            && metric.class_exhausted.is_empty()
            && metric.dimension_exhausted.is_empty()
            && metric.quota_exhausted.is_empty()
            && metric.scores.is_empty();
        if plain {
            StoredMetric::Counts(
                [
                    metric.nodes_evaluated,
                    metric.nodes_filtered,
                    metric.nodes_in_pool,
                    metric.nodes_exhausted,
                    metric.coalesced_failures,
                    0,
                ],
                metric.allocation_time_ns,
            )
        } else {
            StoredMetric::Full(Box::new(metric))
        }
    }

    fn expand(&self) -> Option<AllocMetric> {
        match self {
            StoredMetric::None => None,
            StoredMetric::Counts(counts, time) => Some(AllocMetric {
                nodes_evaluated: counts[0],
                nodes_filtered: counts[1],
                nodes_in_pool: counts[2],
                nodes_exhausted: counts[3],
                coalesced_failures: counts[4],
                allocation_time_ns: *time,
                ..AllocMetric::default()
            }),
            StoredMetric::Full(metric) => Some((**metric).clone()),
        }
    }
}

const S_NAMESPACE: usize = 0;
const S_NODE: usize = 2;
const S_JOB: usize = 4;
const S_DESIRED_DESCRIPTION: usize = 6;
const S_PREEMPTED_BY: usize = 12;

impl StoredAlloc {
    fn compact(alloc: Allocation, strings: &mut Interner) -> StoredAlloc {
        let Allocation {
            id,
            namespace,
            eval_id,
            name,
            node_id,
            node_name,
            job_id,
            job_version,
            task_group,
            allocated_resources,
            desired_status,
            desired_description,
            client_status,
            client_description,
            task_states,
            previous_allocation,
            next_allocation,
            reschedule_tracker,
            followup_eval_id,
            deployment_id,
            preempted_by_allocation,
            preempted_allocations,
            metrics,
            create_index,
            modify_index,
            alloc_modify_index,
            create_time,
            modify_time,
        } = alloc;
        let strs = [
            strings.intern(0, &namespace),
            strings.intern(1, &eval_id),
            strings.intern(2, &node_id),
            strings.intern(3, &node_name),
            strings.intern(4, &job_id),
            strings.intern(5, &task_group),
            strings.intern(6, &desired_description),
            strings.intern(7, &client_description),
            strings.intern(8, &previous_allocation),
            strings.intern(9, &next_allocation),
            strings.intern(10, &followup_eval_id),
            strings.intern(11, &deployment_id),
            strings.intern(12, &preempted_by_allocation),
        ];
        let AllocatedResources {
            tasks,
            disk_mb,
            networks,
        } = allocated_resources;
        let mut tasks = tasks.into_iter();
        let tasks = match (tasks.next(), tasks.len()) {
            (Some((task, resources)), 0) => StoredTasks::One([(strings.intern(13, &task), resources)]),
            (first, _) => StoredTasks::Many(
                first
                    .into_iter()
                    .chain(tasks)
                    .map(|(task, resources)| (strings.intern(13, &task), resources))
                    .collect(),
            ),
        };
        StoredAlloc {
            id: id.into_boxed_str(),
            name: name.into_boxed_str(),
            strs,
            job_version,
            tasks,
            disk_mb,
            networks,
            desired_status,
            client_status,
            task_states,
            reschedule_tracker: reschedule_tracker.map(Box::new),
            preempted_allocations,
            metrics: StoredMetric::new(metrics),
            create_index,
            modify_index,
            alloc_modify_index,
            create_time,
            modify_time,
            full: OnceLock::new(),
        }
    }

    fn expand(&self, strings: &Interner) -> Allocation {
        let text = |field: usize| strings.get(self.strs[field]).to_string();
        Allocation {
            id: self.id.to_string(),
            namespace: text(0),
            eval_id: text(1),
            name: self.name.to_string(),
            node_id: text(2),
            node_name: text(3),
            job_id: text(4),
            job_version: self.job_version,
            task_group: text(5),
            allocated_resources: AllocatedResources {
                tasks: self
                    .tasks
                    .as_slice()
                    .iter()
                    .map(|(task, resources)| (strings.get(*task).to_string(), resources.clone()))
                    .collect(),
                disk_mb: self.disk_mb,
                networks: self.networks.clone(),
            },
            desired_status: self.desired_status,
            desired_description: text(6),
            client_status: self.client_status,
            client_description: text(7),
            task_states: self.task_states.clone(),
            previous_allocation: text(8),
            next_allocation: text(9),
            reschedule_tracker: self.reschedule_tracker.as_deref().cloned(),
            followup_eval_id: text(10),
            deployment_id: text(11),
            preempted_by_allocation: text(12),
            preempted_allocations: self.preempted_allocations.clone(),
            metrics: self.metrics.expand(),
            create_index: self.create_index,
            modify_index: self.modify_index,
            alloc_modify_index: self.alloc_modify_index,
            create_time: self.create_time,
            modify_time: self.modify_time,
        }
    }

    /// `Allocation::holds_resources`.
    fn holds_resources(&self) -> bool {
        self.desired_status == AllocDesiredStatus::Run && !self.client_status.is_terminal()
    }

    /// `AllocatedResources::comparable`.
    fn comparable(&self) -> ComparableResources {
        let mut total = ComparableResources {
            disk_mb: self.disk_mb,
            ..ComparableResources::default()
        };
        for (_, task) in self.tasks.as_slice() {
            total.cpu_mhz += task.cpu_mhz;
            total.cores += task.reserved_cores.len() as i64;
            total.memory_mb += task.memory_mb;
            total.memory_max_mb += task.memory_max_mb.max(task.memory_mb);
        }
        total
    }

    fn host_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.networks.iter().flat_map(|network| {
            network
                .reserved_ports
                .iter()
                .chain(network.dynamic_ports.iter())
                .map(|port| port.value)
        })
    }
}

/// An in-memory cluster: nodes (with a [`NodeIndex`]), jobs (with
/// versions), allocations stored compactly with by-job and by-node indexes,
/// per-node usage kept incrementally.
#[derive(Debug, Clone, Default)]
pub struct MemCluster {
    nodes: Vec<Node>,
    node_index: FxHashMap<String, usize>,
    node_entries: Vec<NodeEntry>,
    class_ids: FxHashMap<String, u32>,
    usage: Vec<ComparableResources>,
    /// Per-class feasibility verdicts shared by evaluations.
    verdicts: crate::VerdictCache,
    strings: Interner,
    allocs: Vec<StoredAlloc>,
    /// Allocation ID hash → index; IDs whose hash is taken by another ID
    /// go to `alloc_collisions`.
    alloc_index: FxHashMap<u64, u32>,
    alloc_collisions: FxHashMap<Box<str>, u32>,
    /// (namespace, job ID) interned → allocation indexes.
    by_job: FxHashMap<(u32, u32), Vec<u32>>,
    /// Node ID interned → allocation indexes.
    by_node: FxHashMap<u32, Vec<u32>>,
    /// Namespace → job ID → current version.
    jobs: FxHashMap<String, FxHashMap<String, Job>>,
    job_versions: HashMap<(String, String, u64), Job>,
    deployments: HashMap<JobKey, DeploymentInfo>,
    /// Evaluations created or updated by applied plans, in order.
    pub evals: Vec<Evaluation>,
    /// Settings returned by [`ClusterView::scheduler_config`].
    pub config: SchedulerConfig,
}

/// What [`MemCluster::apply_plan`] committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Nodes whose part of the plan did not fit and was dropped.
    pub rejected_nodes: Vec<String>,
    /// New or updated allocations committed.
    pub placed: usize,
}

impl MemCluster {
    /// An empty cluster.
    pub fn new() -> MemCluster {
        MemCluster::default()
    }

    /// Adds or replaces a node. Computes its class if it has none.
    pub fn upsert_node(&mut self, mut node: Node) {
        if node.computed_class.is_empty() {
            node.compute_class();
        }
        let next_class = self.class_ids.len() as u32;
        let class = *self.class_ids.entry(node.computed_class.clone()).or_insert(next_class);
        let entry = NodeEntry::of(&node, class);
        self.verdicts.clear();
        match self.node_index.get(&node.id) {
            Some(&index) => {
                self.nodes[index] = node;
                self.node_entries[index] = entry;
            }
            None => {
                self.node_index.insert(node.id.clone(), self.nodes.len());
                self.nodes.push(node);
                self.node_entries.push(entry);
                self.usage.push(ComparableResources::default());
            }
        }
    }

    /// Forgets the per-class verdicts kept across evaluations (tests: the
    /// plans must not depend on them).
    #[cfg(test)]
    pub(crate) fn forget_verdicts(&mut self) {
        self.verdicts.clear();
    }

    /// Adds a job version and makes it current.
    pub fn upsert_job(&mut self, job: Job) {
        self.job_versions
            .insert((job.namespace.clone(), job.id.clone(), job.version), job.clone());
        self.jobs
            .entry(job.namespace.clone())
            .or_default()
            .insert(job.id.clone(), job);
    }

    /// Records a job version without making it current.
    pub fn add_job_version(&mut self, job: Job) {
        self.job_versions
            .insert((job.namespace.clone(), job.id.clone(), job.version), job);
    }

    /// Removes a job (deregistration); its allocations stay.
    pub fn remove_job(&mut self, namespace: &str, id: &str) {
        if let Some(jobs) = self.jobs.get_mut(namespace) {
            jobs.remove(id);
        }
    }

    /// Sets the latest deployment of a job.
    pub fn set_deployment(&mut self, namespace: &str, job_id: &str, deployment: DeploymentInfo) {
        self.deployments
            .insert((namespace.to_string(), job_id.to_string()), deployment);
    }

    /// Adds or replaces an allocation, keeping indexes and usage current.
    pub fn upsert_alloc(&mut self, alloc: Allocation) {
        let node_slot = self.node_index.get(&alloc.node_id).copied();
        self.insert_stored(alloc, node_slot);
    }

    /// [`MemCluster::upsert_alloc`] with the node's slot already looked up.
    fn insert_stored(&mut self, alloc: Allocation, node_slot: Option<usize>) {
        let stored = StoredAlloc::compact(alloc, &mut self.strings);
        self.insert_compacted(stored, node_slot);
    }

    fn insert_compacted(&mut self, stored: StoredAlloc, node_slot: Option<usize>) {
        let index = self.allocs.len() as u32;
        // One probe of the ID-hash index for both "is it an update?" and
        // "register the new ID".
        let taken = match self.alloc_index.entry(id_hash(&stored.id)) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(index);
                None
            }
            std::collections::hash_map::Entry::Occupied(slot) => Some(*slot.get()),
        };
        if let Some(existing) = taken {
            if self.allocs[existing as usize].id == stored.id {
                self.replace_stored(existing as usize, stored);
                return;
            }
            if let Some(&existing) = self.alloc_collisions.get(&stored.id) {
                self.replace_stored(existing as usize, stored);
                return;
            }
            self.alloc_collisions.insert(stored.id.clone(), index);
        }
        if stored.holds_resources()
            && let Some(slot) = node_slot
        {
            self.usage[slot].add(&stored.comparable());
        }
        self.by_job
            .entry((stored.strs[S_NAMESPACE], stored.strs[S_JOB]))
            .or_default()
            .push(index);
        self.by_node.entry(stored.strs[S_NODE]).or_default().push(index);
        self.allocs.push(stored);
    }

    fn node_slot_of(&self, stored: &StoredAlloc) -> Option<usize> {
        self.node_index.get(self.strings.get(stored.strs[S_NODE])).copied()
    }

    fn replace_stored(&mut self, index: usize, stored: StoredAlloc) {
        let old = &self.allocs[index];
        if old.holds_resources()
            && let Some(slot) = self.node_slot_of(old)
        {
            let freed = old.comparable();
            self.usage[slot].subtract(&freed);
        }
        if stored.holds_resources()
            && let Some(slot) = self.node_slot_of(&stored)
        {
            self.usage[slot].add(&stored.comparable());
        }
        // The indexes are keyed by node and job, which an update may change.
        let (old_job, old_node) = ((old.strs[S_NAMESPACE], old.strs[S_JOB]), old.strs[S_NODE]);
        let (new_job, new_node) = ((stored.strs[S_NAMESPACE], stored.strs[S_JOB]), stored.strs[S_NODE]);
        let index_u32 = index as u32;
        if old_job != new_job {
            if let Some(list) = self.by_job.get_mut(&old_job) {
                list.retain(|entry| *entry != index_u32);
            }
            self.by_job.entry(new_job).or_default().push(index_u32);
        }
        if old_node != new_node {
            if let Some(list) = self.by_node.get_mut(&old_node) {
                list.retain(|entry| *entry != index_u32);
            }
            self.by_node.entry(new_node).or_default().push(index_u32);
        }
        self.allocs[index] = stored;
    }

    fn find_alloc(&self, id: &str) -> Option<usize> {
        if let Some(&index) = self.alloc_index.get(&id_hash(id))
            && &*self.allocs[index as usize].id == id
        {
            return Some(index as usize);
        }
        self.alloc_collisions.get(id).map(|index| *index as usize)
    }

    fn full(&self, index: usize) -> &Allocation {
        let stored = &self.allocs[index];
        stored.full.get_or_init(|| Box::new(stored.expand(&self.strings)))
    }

    /// One allocation by ID.
    pub fn alloc(&self, id: &str) -> Option<&Allocation> {
        self.find_alloc(id).map(|index| self.full(index))
    }

    /// Every allocation, in insertion order.
    pub fn allocs(&self) -> impl Iterator<Item = &Allocation> + '_ {
        (0..self.allocs.len()).map(|index| self.full(index))
    }

    /// How many allocations the cluster holds (terminal ones included).
    pub fn alloc_count(&self) -> usize {
        self.allocs.len()
    }

    /// Every node, in insertion order.
    pub fn node_list(&self) -> &[Node] {
        &self.nodes
    }

    /// Resources held on a node by live allocations.
    pub fn usage_of(&self, node_id: &str) -> ComparableResources {
        self.node_index
            .get(node_id)
            .map(|index| self.usage[*index])
            .unwrap_or_default()
    }

    /// Resources held by live allocations, per node in [`MemCluster::node_list`] order.
    pub fn usage_list(&self) -> &[ComparableResources] {
        &self.usage
    }

    /// Applies a plan as the server's plan applier would: each node's part
    /// is verified against current usage (resources and host ports) and
    /// committed only if it fits; with `all_at_once` one failure rejects
    /// everything. Created evaluations and the eval update are recorded.
    pub fn apply_plan(&mut self, plan: &Plan) -> ApplyOutcome {
        self.apply(plan, None)
    }

    /// Like [`MemCluster::apply_plan`], but moves the plan's allocations
    /// into the cluster instead of cloning them.
    pub fn apply_plan_owned(&mut self, mut plan: Plan) -> ApplyOutcome {
        let placing = std::mem::take(&mut plan.node_allocation);
        self.apply(&plan, Some(placing))
    }

    fn apply(&mut self, plan: &Plan, owned: Option<BTreeMap<String, Vec<Allocation>>>) -> ApplyOutcome {
        let placing = owned.as_ref().unwrap_or(&plan.node_allocation);
        let mut outcome = ApplyOutcome::default();
        let mut node_ids: Vec<&String> = plan
            .node_update
            .keys()
            .chain(placing.keys())
            .chain(plan.node_preemptions.keys())
            .collect();
        node_ids.sort();
        node_ids.dedup();
        let mut accepted: Vec<String> = Vec::new();
        for node_id in node_ids {
            if self.verify_node(plan, placing, node_id) {
                accepted.push(node_id.clone());
            } else {
                outcome.rejected_nodes.push(node_id.clone());
            }
        }
        if plan.all_at_once && !outcome.rejected_nodes.is_empty() {
            outcome.rejected_nodes = accepted.drain(..).chain(outcome.rejected_nodes).collect();
            outcome.rejected_nodes.sort();
        }
        let mut owned = owned;
        for node_id in accepted {
            for alloc in plan.node_update.get(&node_id).into_iter().flatten() {
                self.apply_stop(alloc);
            }
            for alloc in plan.node_preemptions.get(&node_id).into_iter().flatten() {
                self.apply_stop(alloc);
            }
            let node_slot = self.node_index.get(&node_id).copied();
            match owned.as_mut() {
                Some(owned) => {
                    for alloc in owned.remove(&node_id).unwrap_or_default() {
                        outcome.placed += 1;
                        self.insert_stored(alloc, node_slot);
                    }
                }
                None => {
                    for alloc in plan.node_allocation.get(&node_id).into_iter().flatten() {
                        outcome.placed += 1;
                        self.insert_stored(alloc.clone(), node_slot);
                    }
                }
            }
        }
        for eval in &plan.created_evals {
            self.evals.push(eval.clone());
        }
        if let Some(update) = &plan.eval_update {
            match self.evals.iter_mut().find(|eval| eval.id == update.id) {
                Some(existing) => *existing = update.clone(),
                None => self.evals.push(update.clone()),
            }
        }
        outcome
    }

    /// Applies a compact plan ([`crate::schedule_compact`]) with the same
    /// verification and the same result as [`MemCluster::apply_plan_owned`]
    /// on [`crate::CompactPlan::into_plan`], without building an
    /// `Allocation` per placement: each group's template is compacted once
    /// and each placement only adds its ID, name, node and metric. Plans
    /// whose compact nodes also get other changes, `all_at_once` plans and
    /// plans with other new allocations take the full path.
    pub(crate) fn apply_compact(&mut self, compact: crate::CompactPlan) -> ApplyOutcome {
        let placements = &compact.parts.placements;
        let plain = !placements.is_empty()
            && !compact.plan.all_at_once
            && compact.plan.node_allocation.is_empty()
            && placements
                .iter()
                .all(|placement| (placement.position as usize) < self.nodes.len())
            && compact.plan.node_update.iter().all(|(node_id, stops)| {
                let untouched = self
                    .node_index
                    .get(node_id)
                    .is_none_or(|slot| placements.iter().all(|placement| placement.position as usize != *slot));
                untouched && stops.iter().all(|stop| self.find_alloc(&stop.id).is_some())
            })
            && compact
                .plan
                .node_preemptions
                .values()
                .all(|stops| stops.iter().all(|stop| self.find_alloc(&stop.id).is_some()))
            && compact.plan.node_preemptions.keys().all(|node_id| {
                self.node_index
                    .get(node_id)
                    .is_none_or(|slot| placements.iter().all(|placement| placement.position as usize != *slot))
            });
        if !plain {
            let plan = compact.into_plan(&self.nodes);
            return self.apply_plan_owned(plan);
        }
        let crate::CompactPlan { plan, parts } = compact;
        // Everything but the compact placements (stops, preemptions on other
        // nodes, evaluations) goes through the ordinary path first; the
        // ordinary path commits nodes in node-ID order, and nothing it does
        // touches the nodes placed on here.
        let mut outcome = self.apply(&plan, Some(BTreeMap::new()));
        // Per group: the template, compacted once, and what one allocation holds.
        let templates: Vec<Option<(StoredAlloc, ComparableResources)>> = parts
            .templates
            .into_iter()
            .map(|template| {
                template.map(|template| {
                    let stored = StoredAlloc::compact(template, &mut self.strings);
                    let held = stored.comparable();
                    (stored, held)
                })
            })
            .collect();
        // Placements by node (node-ID order, as the full path commits
        // them), in placement order within a node.
        let mut order: Vec<u32> = (0..parts.placements.len() as u32).collect();
        order.sort_by_key(|at| (parts.placements[*at as usize].position, *at));
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let position = parts.placements[order[start] as usize].position;
            let end = start
                + order[start..]
                    .iter()
                    .take_while(|at| parts.placements[**at as usize].position == position)
                    .count();
            runs.push((start, end));
            start = end;
        }
        runs.sort_by(|a, b| {
            let node_a = parts.placements[order[a.0] as usize].position as usize;
            let node_b = parts.placements[order[b.0] as usize].position as usize;
            self.nodes[node_a].id.cmp(&self.nodes[node_b].id)
        });
        let mut rejected: Vec<String> = Vec::new();
        let mut placements: Vec<Option<crate::engine::CompactPlacement>> =
            parts.placements.into_iter().map(Some).collect();
        for (start, end) in runs {
            let slot = placements[order[start] as usize]
                .as_ref()
                .map_or(0, |placement| placement.position as usize);
            // The applier's fit check: current usage, minus what the
            // placements replace on this node, plus what they hold.
            let mut used = self.usage[slot];
            let node_key = self.strings.find(&self.nodes[slot].id);
            let mut known = true;
            for at in &order[start..end] {
                let Some(placement) = placements[*at as usize].as_ref() else {
                    continue;
                };
                let Some((_, held)) = templates.get(placement.group as usize).and_then(Option::as_ref) else {
                    known = false;
                    continue;
                };
                used.add(held);
                if let Some(index) = self.find_alloc(&placement.id) {
                    let existing = &self.allocs[index];
                    if existing.holds_resources() && Some(existing.strs[S_NODE]) == node_key {
                        used.subtract(&existing.comparable());
                    }
                }
            }
            if !known || used.fits_in(&self.nodes[slot].allocatable()).is_err() {
                rejected.push(self.nodes[slot].id.clone());
                continue;
            }
            let node_id = self.strings.intern(S_NODE, &self.nodes[slot].id);
            let node_name = self.strings.intern(3, &self.nodes[slot].name);
            for at in &order[start..end] {
                let Some(placement) = placements[*at as usize].take() else {
                    continue;
                };
                let Some((template, _)) = templates.get(placement.group as usize).and_then(Option::as_ref) else {
                    continue;
                };
                let mut stored = template.clone();
                stored.name = crate::engine::alloc_name(
                    self.strings.get(stored.strs[S_JOB]),
                    self.strings.get(stored.strs[5]),
                    placement.index,
                )
                .into_boxed_str();
                stored.id = placement.id.into_boxed_str();
                stored.strs[S_NODE] = node_id;
                stored.strs[3] = node_name;
                stored.preempted_allocations = placement.preempted;
                stored.metrics = StoredMetric::Counts(
                    [
                        placement.metrics[0],
                        placement.metrics[1],
                        placement.metrics[2],
                        placement.metrics[3],
                        0,
                        0,
                    ],
                    0,
                );
                outcome.placed += 1;
                self.insert_compacted(stored, Some(slot));
            }
        }
        if !rejected.is_empty() {
            outcome.rejected_nodes.extend(rejected);
            outcome.rejected_nodes.sort();
        }
        outcome
    }

    fn apply_stop(&mut self, stopped: &Allocation) {
        let Some(index) = self.find_alloc(&stopped.id) else {
            self.upsert_alloc(stopped.clone());
            return;
        };
        let held = self.allocs[index].holds_resources();
        let desired_description = self.strings.intern(S_DESIRED_DESCRIPTION, &stopped.desired_description);
        let preempted_by = self.strings.intern(S_PREEMPTED_BY, &stopped.preempted_by_allocation);
        let stored = &mut self.allocs[index];
        stored.desired_status = stopped.desired_status;
        stored.strs[S_DESIRED_DESCRIPTION] = desired_description;
        stored.strs[S_PREEMPTED_BY] = preempted_by;
        if stopped.client_status == AllocClientStatus::Lost {
            stored.client_status = AllocClientStatus::Lost;
        }
        stored.full = OnceLock::new();
        if held && !stored.holds_resources() {
            let freed = stored.comparable();
            if let Some(slot) = self.node_slot_of(&self.allocs[index]) {
                self.usage[slot].subtract(&freed);
            }
        }
    }

    fn verify_node(&self, plan: &Plan, placing: &BTreeMap<String, Vec<Allocation>>, node_id: &str) -> bool {
        let placing = placing.get(node_id).map(Vec::as_slice).unwrap_or(&[]);
        if placing.iter().all(|alloc| !alloc.holds_resources()) {
            return true;
        }
        let Some(&slot) = self.node_index.get(node_id) else {
            return false;
        };
        let node = &self.nodes[slot];
        let removed: Vec<&str> = plan
            .node_update
            .get(node_id)
            .into_iter()
            .flatten()
            .chain(plan.node_preemptions.get(node_id).into_iter().flatten())
            .chain(placing.iter())
            .map(|alloc| alloc.id.as_str())
            .collect();
        let needs_ports = placing
            .iter()
            .any(|alloc| alloc.allocated_resources.host_ports().next().is_some());
        let mut used = self.usage[slot];
        let mut ports: Vec<u16> = Vec::new();
        let node_key = self.strings.find(node_id);
        for id in &removed {
            if let Some(index) = self.find_alloc(id) {
                let existing = &self.allocs[index];
                if existing.holds_resources() && Some(existing.strs[S_NODE]) == node_key {
                    used.subtract(&existing.comparable());
                }
            }
        }
        if needs_ports {
            ports.extend(node.reserved_ports.iter().copied());
            if let Some(indexes) = node_key.and_then(|key| self.by_node.get(&key)) {
                for &index in indexes {
                    let existing = &self.allocs[index as usize];
                    if existing.holds_resources() && !removed.contains(&&*existing.id) {
                        ports.extend(existing.host_ports());
                    }
                }
            }
        }
        for alloc in placing.iter().filter(|alloc| alloc.holds_resources()) {
            used.add(&alloc.allocated_resources.comparable());
            ports.extend(alloc.allocated_resources.host_ports());
        }
        if used.fits_in(&node.allocatable()).is_err() {
            return false;
        }
        ports.sort_unstable();
        ports.windows(2).all(|pair| pair[0] != pair[1])
    }

    fn indexed(&self, indexes: Option<&Vec<u32>>) -> Vec<&Allocation> {
        indexes
            .map(|indexes| indexes.iter().map(|index| self.full(*index as usize)).collect())
            .unwrap_or_default()
    }
}

impl ClusterView for MemCluster {
    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
        Box::new(self.nodes.iter())
    }

    fn nodes_with_usage(&self) -> Box<dyn Iterator<Item = (&Node, ComparableResources)> + '_> {
        Box::new(self.nodes.iter().zip(self.usage.iter().copied()))
    }

    fn node(&self, id: &str) -> Option<&Node> {
        self.node_index.get(id).map(|index| &self.nodes[*index])
    }

    fn job(&self, namespace: &str, id: &str) -> Option<&Job> {
        self.jobs.get(namespace).and_then(|jobs| jobs.get(id))
    }

    fn job_version(&self, namespace: &str, id: &str, version: u64) -> Option<&Job> {
        self.job_versions.get(&(namespace.to_string(), id.to_string(), version))
    }

    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<&Allocation> {
        let (Some(namespace), Some(job_id)) = (self.strings.find(namespace), self.strings.find(job_id)) else {
            return Vec::new();
        };
        self.indexed(self.by_job.get(&(namespace, job_id)))
    }

    fn allocs_by_node(&self, node_id: &str) -> Vec<&Allocation> {
        let Some(node_id) = self.strings.find(node_id) else {
            return Vec::new();
        };
        self.indexed(self.by_node.get(&node_id))
    }

    fn node_resources_used(&self, node_id: &str) -> ComparableResources {
        self.usage_of(node_id)
    }

    fn node_usage(&self, node_id: &str) -> NodeUsage {
        NodeUsage::from_allocs(self.allocs_by_node(node_id))
    }

    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<DeploymentInfo> {
        self.deployments
            .get(&(namespace.to_string(), job_id.to_string()))
            .cloned()
    }

    fn scheduler_config(&self) -> SchedulerConfig {
        self.config
    }

    fn node_index(&self) -> Option<NodeIndex<'_>> {
        NodeIndex::new(
            &self.nodes,
            &self.node_entries,
            &self.usage,
            self.class_ids.len() as u32,
        )
        .map(|index| index.with_verdicts(&self.verdicts))
    }
}

/// A parsed fixture: the cluster, the evaluation to run and the time.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub cluster: MemCluster,
    pub eval: Evaluation,
    pub now: UnixNanos,
}

fn parse_duration_nanos(text: &str) -> Result<i64, String> {
    let negative = text.starts_with('-');
    let duration = types::duration::parse_duration(text.trim_start_matches('-'))?;
    let nanos = i64::try_from(duration.as_nanos()).map_err(|_| format!("duration {text} too large"))?;
    Ok(if negative { -nanos } else { nanos })
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("bad number for {key}: {value:?}"))
}

fn split_kv(token: &str) -> Result<(&str, &str), String> {
    token
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {token:?}"))
}

struct PendingAlloc {
    line: usize,
    tokens: Vec<String>,
}

/// Parses a fixture (see the module docs for the format).
pub fn parse_fixture(text: &str) -> Result<Fixture, String> {
    let mut cluster = MemCluster::new();
    let mut now: UnixNanos = 1_000 * 1_000_000_000;
    let mut jobs: Vec<Job> = Vec::new();
    let mut in_group = false;
    let mut pending_allocs: Vec<PendingAlloc> = Vec::new();
    let mut eval_tokens: Option<Vec<String>> = None;
    let mut deployments: Vec<Vec<String>> = Vec::new();
    for (line_number, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let tokens: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let context = |error: String| format!("line {}: {error}", line_number + 1);
        match tokens[0].as_str() {
            "now" => {
                now = parse_duration_nanos(tokens.get(1).map(String::as_str).unwrap_or("0")).map_err(context)?;
            }
            "node" => {
                let node = parse_node(&tokens).map_err(context)?;
                cluster.upsert_node(node);
            }
            "job" => {
                jobs.push(parse_job(&tokens).map_err(context)?);
                in_group = false;
            }
            "group" => {
                let job = jobs.last_mut().ok_or_else(|| context("group before any job".into()))?;
                job.task_groups
                    .push(parse_group(job.job_type, &tokens).map_err(context)?);
                in_group = true;
            }
            "constraint" | "affinity" | "spread" => {
                let job = jobs.last_mut().ok_or_else(|| context("rule before any job".into()))?;
                apply_rule(job, in_group, &tokens).map_err(context)?;
            }
            "alloc" => pending_allocs.push(PendingAlloc {
                line: line_number + 1,
                tokens,
            }),
            "deployment" => deployments.push(tokens),
            "eval" => eval_tokens = Some(tokens),
            other => return Err(context(format!("unknown item {other:?}"))),
        }
    }
    for mut job in jobs {
        let update = job
            .task_groups
            .iter()
            .map(|group| group.update.clone())
            .collect::<Vec<_>>();
        job.canonicalize();
        for (group, update) in job.task_groups.iter_mut().zip(update) {
            if let Some(mut update) = update {
                update.min_healthy_time = Duration::from_secs(10);
                group.update = Some(update);
            }
        }
        let older = cluster
            .job(&job.namespace, &job.id)
            .is_some_and(|current| current.version > job.version);
        if job.meta.contains_key(DEREGISTERED) || older {
            cluster.add_job_version(job);
        } else {
            cluster.upsert_job(job);
        }
    }
    for pending in pending_allocs {
        let alloc =
            parse_alloc(&cluster, &pending.tokens, now).map_err(|error| format!("line {}: {error}", pending.line))?;
        cluster.upsert_alloc(alloc);
    }
    for tokens in deployments {
        let job_id = tokens.get(1).cloned().ok_or("deployment needs a job")?;
        let mut deployment = DeploymentInfo {
            id: format!("deploy-{job_id}"),
            active: true,
            ..DeploymentInfo::default()
        };
        for token in &tokens[2..] {
            let (key, value) = split_kv(token)?;
            match key {
                "version" => deployment.job_version = parse_num(key, value)?,
                "promoted" => deployment.promoted_groups = value.split(',').map(str::to_string).collect(),
                "healthy" => deployment.healthy_allocs = value.split(',').map(str::to_string).collect(),
                "active" => deployment.active = value == "true",
                _ => return Err(format!("unknown deployment key {key}")),
            }
        }
        cluster.set_deployment(types::DEFAULT_NAMESPACE, &job_id, deployment);
    }
    let mut eval = Evaluation {
        id: "eval-0".to_string(),
        namespace: types::DEFAULT_NAMESPACE.to_string(),
        triggered_by: types::trigger::JOB_REGISTER.to_string(),
        status: EvalStatus::Pending,
        ..Evaluation::default()
    };
    for token in eval_tokens.iter().flatten().skip(1) {
        let (key, value) = split_kv(token)?;
        match key {
            "trigger" => eval.triggered_by = value.to_string(),
            "job" => eval.job_id = value.to_string(),
            "node" => eval.node_id = value.to_string(),
            "id" => eval.id = value.to_string(),
            "status" => {
                eval.status = match value {
                    "blocked" => EvalStatus::Blocked,
                    _ => EvalStatus::Pending,
                }
            }
            _ => return Err(format!("unknown eval key {key}")),
        }
    }
    if eval.job_id.is_empty()
        && let Some(job) = cluster
            .jobs
            .values()
            .flat_map(|jobs| jobs.values())
            .min_by(|a, b| a.id.cmp(&b.id))
    {
        eval.job_id = job.id.clone();
    }
    if let Some(job) = cluster.job(&eval.namespace, &eval.job_id) {
        eval.priority = job.priority;
        eval.job_type = Some(job.job_type);
    }
    Ok(Fixture { cluster, eval, now })
}

fn parse_node(tokens: &[String]) -> Result<Node, String> {
    let id = tokens.get(1).ok_or("node needs a name")?.clone();
    let mut node = Node {
        id: id.clone(),
        name: id.clone(),
        status: NodeStatus::Ready,
        ..Node::default()
    };
    node.resources.cpu_mhz = 4000;
    node.resources.cores = 4;
    node.resources.memory_mb = 8192;
    node.resources.disk_mb = 100_000;
    node.resources.min_dynamic_port = 20000;
    node.resources.max_dynamic_port = 32000;
    node.attributes.insert("kernel.name".into(), "linux".into());
    node.attributes.insert("unique.hostname".into(), id.clone());
    let healthy = DriverInfo {
        detected: true,
        healthy: true,
        ..DriverInfo::default()
    };
    node.drivers.insert("exec".into(), healthy.clone());
    for token in &tokens[2..] {
        let (key, value) = split_kv(token)?;
        if let Some(attribute) = key.strip_prefix("attr.") {
            node.attributes.insert(attribute.to_string(), value.to_string());
            continue;
        }
        if let Some(meta) = key.strip_prefix("meta.") {
            node.meta.insert(meta.to_string(), value.to_string());
            continue;
        }
        match key {
            "dc" => node.datacenter = value.to_string(),
            "pool" => node.node_pool = value.to_string(),
            "class" => node.node_class = value.to_string(),
            "cpu" => node.resources.cpu_mhz = parse_num(key, value)?,
            "mem" => node.resources.memory_mb = parse_num(key, value)?,
            "disk" => node.resources.disk_mb = parse_num(key, value)?,
            "cores" => node.resources.cores = parse_num(key, value)?,
            "status" => {
                node.status = match value {
                    "ready" => NodeStatus::Ready,
                    "down" => NodeStatus::Down,
                    "initializing" => NodeStatus::Initializing,
                    "disconnected" => NodeStatus::Disconnected,
                    _ => return Err(format!("unknown node status {value}")),
                }
            }
            "eligible" => {
                if value == "false" {
                    node.scheduling_eligibility = SchedulingEligibility::Ineligible;
                }
            }
            "drain" | "drain_ignore_system" => {
                if value == "true" {
                    node.drain = Some(DrainStrategy {
                        ignore_system_jobs: key == "drain_ignore_system",
                        ..DrainStrategy::default()
                    });
                }
            }
            "drivers" => {
                node.drivers.clear();
                for driver in value.split(',').filter(|driver| !driver.is_empty()) {
                    node.drivers.insert(driver.to_string(), healthy.clone());
                }
            }
            "bad_drivers" => {
                for driver in value.split(',') {
                    node.drivers.insert(
                        driver.to_string(),
                        DriverInfo {
                            detected: true,
                            healthy: false,
                            ..DriverInfo::default()
                        },
                    );
                }
            }
            "ports" => {
                let (low, high) = value.split_once('-').ok_or("ports=LOW-HIGH")?;
                node.resources.min_dynamic_port = parse_num(key, low)?;
                node.resources.max_dynamic_port = parse_num(key, high)?;
            }
            "reserved_ports" => {
                for port in value.split(',') {
                    node.reserved_ports.push(parse_num(key, port)?);
                }
            }
            "device" => {
                let (name, count) = value.split_once(':').ok_or("device=vendor/type/model:count")?;
                let parts: Vec<&str> = name.split('/').collect();
                let [vendor, device_type, model] = parts.as_slice() else {
                    return Err("device=vendor/type/model:count".into());
                };
                let count: usize = parse_num(key, count)?;
                node.resources.devices.push(NodeDevice {
                    vendor: vendor.to_string(),
                    device_type: device_type.to_string(),
                    name: model.to_string(),
                    instance_ids: (0..count).map(|index| format!("{id}-{model}-{index}")).collect(),
                    attributes: BTreeMap::new(),
                });
            }
            _ => return Err(format!("unknown node key {key}")),
        }
    }
    node.compute_class();
    Ok(node)
}

fn parse_job(tokens: &[String]) -> Result<Job, String> {
    let id = tokens.get(1).ok_or("job needs an id")?.clone();
    let mut job = Job {
        id: id.clone(),
        name: id,
        ..Job::default()
    };
    for token in &tokens[2..] {
        let (key, value) = split_kv(token)?;
        match key {
            "type" => job.job_type = JobType::parse(value).ok_or(format!("unknown job type {value}"))?,
            "priority" => job.priority = parse_num(key, value)?,
            "dcs" => job.datacenters = value.split(',').map(str::to_string).collect(),
            "pool" => job.node_pool = value.to_string(),
            "version" => job.version = parse_num(key, value)?,
            "stop" => job.stop = value == "true",
            "all_at_once" => job.all_at_once = value == "true",
            "deregistered" => {
                if value == "true" {
                    job.meta.insert(DEREGISTERED.to_string(), "true".to_string());
                }
            }
            _ => return Err(format!("unknown job key {key}")),
        }
    }
    Ok(job)
}

fn parse_group(job_type: JobType, tokens: &[String]) -> Result<TaskGroup, String> {
    let name = tokens.get(1).ok_or("group needs a name")?.clone();
    let mut task = Task {
        name: name.clone(),
        driver: "exec".into(),
        resources: Resources {
            cpu: 100,
            memory_mb: 256,
            ..Resources::default()
        },
        ..Task::default()
    };
    let mut group = TaskGroup {
        name,
        ephemeral_disk: EphemeralDisk {
            size_mb: 0,
            ..EphemeralDisk::default()
        },
        ..TaskGroup::default()
    };
    let mut network = NetworkResource::default();
    let mut update: Option<UpdateStrategy> = None;
    let mut reschedule: Option<ReschedulePolicy> = None;
    for token in &tokens[2..] {
        let (key, value) = split_kv(token)?;
        match key {
            "count" => group.count = parse_num(key, value)?,
            "cpu" => task.resources.cpu = parse_num(key, value)?,
            "mem" => task.resources.memory_mb = parse_num(key, value)?,
            "disk" => group.ephemeral_disk.size_mb = parse_num(key, value)?,
            "cores" => task.resources.cores = parse_num(key, value)?,
            "driver" => task.driver = value.to_string(),
            "static" => {
                let (label, port) = value.split_once(':').ok_or("static=label:port")?;
                network.reserved_ports.push(Port {
                    label: label.to_string(),
                    value: parse_num(key, port)?,
                    ..Port::default()
                });
            }
            "dynamic" => network.dynamic_ports.push(Port {
                label: value.to_string(),
                ..Port::default()
            }),
            "canary" => update.get_or_insert_with(UpdateStrategy::default).canary = parse_num(key, value)?,
            "max_parallel" => update.get_or_insert_with(UpdateStrategy::default).max_parallel = parse_num(key, value)?,
            "reschedule" => {
                let parts: Vec<&str> = value.split(':').collect();
                let policy = reschedule.get_or_insert_with(|| {
                    ReschedulePolicy::default_for(job_type).unwrap_or_else(|| ReschedulePolicy {
                        attempts: 1,
                        ..ReschedulePolicy::default()
                    })
                });
                policy.delay_function = parts.first().copied().unwrap_or("constant").to_string();
                if let Some(delay) = parts.get(1) {
                    policy.delay = types::duration::parse_duration(delay)?;
                }
                policy.max_delay = match parts.get(2) {
                    Some(max) => types::duration::parse_duration(max)?,
                    None => Duration::ZERO,
                };
            }
            "attempts" | "interval" | "unlimited" => {
                let policy =
                    reschedule.get_or_insert_with(|| ReschedulePolicy::default_for(job_type).unwrap_or_default());
                match key {
                    "attempts" => policy.attempts = parse_num(key, value)?,
                    "interval" => policy.interval = types::duration::parse_duration(value)?,
                    _ => policy.unlimited = value == "true",
                }
            }
            "device" => {
                let (device, count) = value.split_once(':').ok_or("device=name:count")?;
                task.resources.devices.push(RequestedDevice {
                    name: device.to_string(),
                    count: parse_num(key, count)?,
                    ..RequestedDevice::default()
                });
            }
            _ => return Err(format!("unknown group key {key}")),
        }
    }
    if !network.reserved_ports.is_empty() || !network.dynamic_ports.is_empty() {
        group.networks.push(network);
    }
    group.tasks.push(task);
    group.update = update;
    group.reschedule_policy = reschedule;
    Ok(group)
}

fn apply_rule(job: &mut Job, in_group: bool, tokens: &[String]) -> Result<(), String> {
    match tokens[0].as_str() {
        "constraint" => {
            let ltarget = tokens.get(1).ok_or("constraint needs a target")?.clone();
            let operand = tokens.get(2).cloned().unwrap_or_default();
            let rtarget = tokens.get(3..).map(|rest| rest.join(" ")).unwrap_or_default();
            let constraint = types::Constraint {
                ltarget,
                rtarget,
                operand,
            };
            match (in_group, job.task_groups.last_mut()) {
                (true, Some(group)) => group.constraints.push(constraint),
                _ => job.constraints.push(constraint),
            }
        }
        "affinity" => {
            let mut rest: Vec<String> = tokens[1..].to_vec();
            let weight = match rest.last().and_then(|token| token.strip_prefix("weight=")) {
                Some(weight) => {
                    let weight = parse_num("weight", weight)?;
                    rest.pop();
                    weight
                }
                None => 50,
            };
            let affinity = types::Affinity {
                ltarget: rest.first().cloned().ok_or("affinity needs a target")?,
                operand: rest.get(1).cloned().unwrap_or_default(),
                rtarget: rest.get(2..).map(|rest| rest.join(" ")).unwrap_or_default(),
                weight,
            };
            match (in_group, job.task_groups.last_mut()) {
                (true, Some(group)) => group.affinities.push(affinity),
                _ => job.affinities.push(affinity),
            }
        }
        _ => {
            let mut spread = Spread {
                attribute: tokens.get(1).cloned().ok_or("spread needs an attribute")?,
                weight: 50,
                targets: Vec::new(),
            };
            for token in &tokens[2..] {
                let (key, value) = split_kv(token)?;
                if key == "weight" {
                    spread.weight = parse_num(key, value)?;
                } else {
                    spread.targets.push(SpreadTarget {
                        value: key.to_string(),
                        percent: parse_num(key, value)?,
                    });
                }
            }
            match (in_group, job.task_groups.last_mut()) {
                (true, Some(group)) => group.spreads.push(spread),
                _ => job.spreads.push(spread),
            }
        }
    }
    Ok(())
}

fn parse_alloc(cluster: &MemCluster, tokens: &[String], now: UnixNanos) -> Result<Allocation, String> {
    let id = tokens.get(1).ok_or("alloc needs an id")?.clone();
    let name = tokens.get(2).ok_or("alloc needs a name like job.group[0]")?.clone();
    let (job_id, rest) = name.split_once('.').ok_or("alloc name must be job.group[index]")?;
    let group_name = rest.split('[').next().unwrap_or(rest);
    let mut alloc = Allocation {
        id,
        namespace: types::DEFAULT_NAMESPACE.to_string(),
        eval_id: "eval-old".to_string(),
        name: name.clone(),
        job_id: job_id.to_string(),
        task_group: group_name.to_string(),
        desired_status: AllocDesiredStatus::Run,
        client_status: AllocClientStatus::Running,
        create_time: now - 3600 * 1_000_000_000,
        modify_time: now - 3600 * 1_000_000_000,
        ..Allocation::default()
    };
    let mut ports: Vec<u16> = Vec::new();
    let mut failed_at: Option<i64> = None;
    for token in &tokens[3..] {
        let (key, value) = split_kv(token)?;
        match key {
            "node" => alloc.node_id = value.to_string(),
            "status" => {
                alloc.client_status = match value {
                    "pending" => AllocClientStatus::Pending,
                    "running" => AllocClientStatus::Running,
                    "complete" => AllocClientStatus::Complete,
                    "failed" => AllocClientStatus::Failed,
                    "lost" => AllocClientStatus::Lost,
                    "unknown" => AllocClientStatus::Unknown,
                    _ => return Err(format!("unknown alloc status {value}")),
                }
            }
            "desired" => {
                alloc.desired_status = match value {
                    "run" => AllocDesiredStatus::Run,
                    "stop" => AllocDesiredStatus::Stop,
                    "evict" => AllocDesiredStatus::Evict,
                    _ => return Err(format!("unknown desired status {value}")),
                }
            }
            "version" => alloc.job_version = parse_num(key, value)?,
            "ports" => {
                for port in value.split(',') {
                    ports.push(parse_num(key, port)?);
                }
            }
            "failed_at" => failed_at = Some(parse_duration_nanos(value)?),
            "created" => alloc.create_time = parse_duration_nanos(value)?,
            "reschedules" => {
                let mut events = Vec::new();
                for (index, delay) in value.split(',').enumerate() {
                    events.push(RescheduleEvent {
                        reschedule_time: now - 1800 * 1_000_000_000 + index as i64,
                        prev_alloc_id: format!("{}-prev{index}", alloc.id),
                        prev_node_id: "gone".to_string(),
                        delay: parse_duration_nanos(delay)?,
                    });
                }
                alloc.reschedule_tracker = Some(RescheduleTracker { events });
            }
            "followup" => alloc.followup_eval_id = value.to_string(),
            _ => return Err(format!("unknown alloc key {key}")),
        }
    }
    let job = cluster
        .job_version(types::DEFAULT_NAMESPACE, job_id, alloc.job_version)
        .or_else(|| cluster.job(types::DEFAULT_NAMESPACE, job_id))
        .ok_or_else(|| format!("alloc {name} names unknown job {job_id}"))?;
    let group = job
        .group(group_name)
        .ok_or_else(|| format!("alloc {name} names unknown group {group_name}"))?;
    if let Some(node) = cluster.node(&alloc.node_id) {
        alloc.node_name = node.name.clone();
    }
    let mut tasks = types::TaskResources::new();
    for task in &group.tasks {
        tasks.insert(
            task.name.clone(),
            AllocatedTaskResources {
                cpu_mhz: task.resources.cpu,
                memory_mb: task.resources.memory_mb,
                ..AllocatedTaskResources::default()
            },
        );
    }
    let networks = if ports.is_empty() {
        Vec::new()
    } else {
        vec![NetworkResource {
            reserved_ports: ports
                .iter()
                .map(|port| Port {
                    label: format!("p{port}"),
                    value: *port,
                    ..Port::default()
                })
                .collect(),
            ..NetworkResource::default()
        }]
    };
    alloc.allocated_resources = AllocatedResources {
        tasks,
        disk_mb: group.ephemeral_disk.size_mb,
        networks,
    };
    if let Some(failed_at) = failed_at {
        alloc.client_status = AllocClientStatus::Failed;
        for task in &group.tasks {
            alloc.task_states.insert(
                task.name.clone(),
                TaskState {
                    state: TaskStateKind::Dead,
                    failed: true,
                    finished_at: failed_at,
                    ..TaskState::default()
                },
            );
        }
        alloc.modify_time = failed_at;
    }
    Ok(alloc)
}

fn show_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "+" };
    format!(
        "{sign}{}",
        types::duration::format_duration(Duration::from_nanos(nanos.unsigned_abs()))
    )
}

fn describe_alloc(alloc: &Allocation) -> String {
    let mut text = format!("{} ({})", alloc.name, alloc.id);
    let resources = &alloc.allocated_resources;
    let cpu: i64 = resources.tasks.values().map(|task| task.cpu_mhz).sum();
    let mem: i64 = resources.tasks.values().map(|task| task.memory_mb).sum();
    let _ = write!(text, " v{} cpu={cpu} mem={mem}", alloc.job_version);
    let ports: Vec<String> = resources
        .networks
        .iter()
        .flat_map(|network| network.reserved_ports.iter().chain(network.dynamic_ports.iter()))
        .map(|port| format!("{}:{}", port.label, port.value))
        .collect();
    if !ports.is_empty() {
        let _ = write!(text, " ports={}", ports.join(","));
    }
    let cores: Vec<String> = resources
        .tasks
        .values()
        .flat_map(|task| task.reserved_cores.iter().map(u16::to_string))
        .collect();
    if !cores.is_empty() {
        let _ = write!(text, " cores={}", cores.join(","));
    }
    let devices: Vec<String> = resources
        .tasks
        .values()
        .flat_map(|task| task.devices.values().flatten().cloned())
        .collect();
    if !devices.is_empty() {
        let _ = write!(text, " devices={}", devices.join(","));
    }
    text
}

/// Renders a plan as stable text for snapshot tests. `cluster` tells new
/// allocations from updates; times are shown relative to `now`.
pub fn render_plan(plan: &Plan, cluster: &MemCluster, now: UnixNanos) -> String {
    let mut out = String::new();
    if let Some(eval) = &plan.eval_update {
        let queued: Vec<String> = eval
            .queued_allocations
            .iter()
            .map(|(group, count)| format!("{group}={count}"))
            .collect();
        let _ = writeln!(out, "eval {} queued: {}", eval.status.as_str(), queued.join(" "));
    }
    for (node_id, allocs) in &plan.node_update {
        let mut allocs: Vec<&Allocation> = allocs.iter().collect();
        allocs.sort_by(|left, right| left.name.cmp(&right.name).then(left.id.cmp(&right.id)));
        for alloc in allocs {
            let lost = if alloc.client_status == AllocClientStatus::Lost {
                " [lost]"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "stop {node_id} {} ({}): {}{lost}",
                alloc.name, alloc.id, alloc.desired_description
            );
        }
    }
    for (node_id, allocs) in &plan.node_allocation {
        let mut allocs: Vec<&Allocation> = allocs.iter().collect();
        allocs.sort_by(|left, right| left.name.cmp(&right.name).then(left.id.cmp(&right.id)));
        for alloc in allocs {
            let verb = if cluster.alloc(&alloc.id).is_some() {
                "update"
            } else {
                "place"
            };
            let mut line = format!("{verb} {node_id} {}", describe_alloc(alloc));
            if verb == "place" {
                if !alloc.previous_allocation.is_empty() {
                    let _ = write!(line, " prev={}", alloc.previous_allocation);
                }
                if let Some(event) = alloc
                    .reschedule_tracker
                    .as_ref()
                    .and_then(|tracker| tracker.events.last())
                {
                    let _ = write!(
                        line,
                        " reschedule#{} delay={}",
                        alloc
                            .reschedule_tracker
                            .as_ref()
                            .map(|tracker| tracker.events.len())
                            .unwrap_or(0),
                        types::duration::format_duration(Duration::from_nanos(event.delay.max(0) as u64))
                    );
                }
                if !alloc.preempted_allocations.is_empty() {
                    let _ = write!(line, " preempting={}", alloc.preempted_allocations.join(","));
                }
                if !alloc.deployment_id.is_empty() {
                    let _ = write!(line, " deployment={}", alloc.deployment_id);
                }
            } else if !alloc.followup_eval_id.is_empty() {
                let _ = write!(line, " followup={}", alloc.followup_eval_id);
            }
            let _ = writeln!(out, "{line}");
        }
    }
    for (node_id, allocs) in &plan.node_preemptions {
        for alloc in allocs {
            let _ = writeln!(
                out,
                "preempt {node_id} {} ({}) by {}",
                alloc.name, alloc.id, alloc.preempted_by_allocation
            );
        }
    }
    for eval in &plan.created_evals {
        let mut line = format!(
            "created {} {} job={} trigger={}",
            eval.id,
            eval.status.as_str(),
            eval.job_id,
            eval.triggered_by
        );
        if eval.wait_until != 0 {
            let _ = write!(line, " wait_until={}", show_duration(eval.wait_until - now));
        }
        if eval.status == EvalStatus::Blocked {
            let feasible = eval.class_eligibility.values().filter(|ok| **ok).count();
            let infeasible = eval.class_eligibility.len() - feasible;
            let _ = write!(
                line,
                " classes={feasible}ok/{infeasible}no escaped={}",
                eval.escaped_computed_class
            );
        }
        let _ = writeln!(out, "{line}");
    }
    if let Some(eval) = &plan.eval_update {
        for (group, metric) in &eval.failed_tg_allocs {
            let _ = writeln!(
                out,
                "failed {group}: evaluated={} filtered={} exhausted={} coalesced={}",
                metric.nodes_evaluated, metric.nodes_filtered, metric.nodes_exhausted, metric.coalesced_failures
            );
            for (constraint, count) in &metric.constraint_filtered {
                let _ = writeln!(out, "  filtered {constraint}: {count}");
            }
            for (dimension, count) in &metric.dimension_exhausted {
                let _ = writeln!(out, "  exhausted {dimension}: {count}");
            }
        }
    }
    out
}

/// Schedules a fixture's evaluation with a fixed seed and sequential IDs
/// (`id-1`, `id-2`, …) and renders the plan.
pub fn run_fixture(fixture: &Fixture, seed: u64) -> Result<(Plan, String), crate::ScheduleError> {
    use rand::SeedableRng;
    let mut counter = 0u64;
    let mut ids = || {
        counter += 1;
        format!("id-{counter}")
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let plan = crate::schedule(&fixture.cluster, &fixture.eval, fixture.now, &mut ids, &mut rng)?;
    let text = render_plan(&plan, &fixture.cluster, fixture.now);
    Ok((plan, text))
}

/// Checks the compact placement path against the full one on a fixture:
/// [`crate::schedule_compact`] must give exactly [`crate::schedule`]'s plan
/// (through `CompactPlan::into_plan`), and [`MemCluster::apply_compact`]
/// must leave the cluster exactly as [`MemCluster::apply_plan_owned`] does.
pub fn check_compact_equivalence(fixture: &Fixture, seed: u64) -> Result<(), String> {
    use rand::SeedableRng;
    let run = |compact: bool| {
        let mut counter = 0u64;
        let mut ids = || {
            counter += 1;
            format!("id-{counter}")
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut cluster = fixture.cluster.clone();
        let (plan, outcome) = if compact {
            let compact = crate::schedule_compact(&cluster, &fixture.eval, fixture.now, &mut ids, &mut rng)
                .map_err(|error| error.to_string())?;
            let plan = compact.clone().into_plan(cluster.node_list());
            (plan, cluster.apply_compact(compact))
        } else {
            let plan = crate::schedule(&cluster, &fixture.eval, fixture.now, &mut ids, &mut rng)
                .map_err(|error| error.to_string())?;
            let outcome = cluster.apply_plan_owned(plan.clone());
            (plan, outcome)
        };
        Ok::<_, String>((plan, outcome, cluster))
    };
    let (full_plan, full_outcome, full_cluster) = run(false)?;
    let (compact_plan, compact_outcome, compact_cluster) = run(true)?;
    if full_plan != compact_plan {
        return Err(format!("plans differ:\n{full_plan:?}\n{compact_plan:?}"));
    }
    if full_outcome != compact_outcome {
        return Err(format!("outcomes differ: {full_outcome:?} vs {compact_outcome:?}"));
    }
    same_cluster(&full_cluster, &compact_cluster)
}

/// Whether two clusters hold the same allocations (in the same order), usage
/// and evaluations.
pub(crate) fn same_cluster(a: &MemCluster, b: &MemCluster) -> Result<(), String> {
    let (left, right): (Vec<&Allocation>, Vec<&Allocation>) = (a.allocs().collect(), b.allocs().collect());
    if left != right {
        return Err(format!("allocations differ:\n{left:?}\n{right:?}"));
    }
    if a.usage_list() != b.usage_list() {
        return Err("usage differs".to_string());
    }
    if a.evals != b.evals {
        return Err("evaluations differ".to_string());
    }
    for alloc in &left {
        if a.allocs_by_job(&alloc.namespace, &alloc.job_id) != b.allocs_by_job(&alloc.namespace, &alloc.job_id)
            || a.allocs_by_node(&alloc.node_id) != b.allocs_by_node(&alloc.node_id)
        {
            return Err(format!("indexes differ for {}", alloc.id));
        }
    }
    Ok(())
}
