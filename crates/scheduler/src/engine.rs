//! The placement engine shared by every scheduler: one scan of the cluster
//! per evaluation into a compact local node table, feasibility per group
//! (cached per computed node class), best-fit candidate selection with
//! re-ranking, allocation building (ports, cores, devices) and preemption.
//!
//! How selection works: for each task group the feasible nodes are split
//! into *buckets* of nodes that score the same on spread and affinity
//! (one bucket when the group has neither). Each bucket keeps a max-heap of
//! its nodes by fullness after the placement (the bin-pack score), and a
//! small *window* holding the `limit` fullest nodes that still fit. A
//! placement scores only the window entries of every bucket (bin-pack, job
//! anti-affinity, reschedule penalty, plus the bucket's spread and affinity
//! scores), takes the best, and refills the window from the heap. Within an
//! evaluation a node only ever gets fuller, so a node dropped because it no
//! longer fits never needs to come back (except when a destructive update
//! frees room, which re-inserts it). Nothing in the per-placement loop
//! allocates or compares strings.

use crate::constraint::{Compiled, Op};
use crate::util::{FxHashMap, mix64};
use crate::{ClusterView, NodeUsage, SchedulerConfig};
use std::collections::{BTreeMap, BinaryHeap};
use types::{
    AllocClientStatus, AllocDesiredStatus, AllocMetric, AllocatedResources, AllocatedTaskResources, Allocation,
    ComparableResources, EvalStatus, Evaluation, Job, NetworkResource, Node, Plan, RescheduleEvent, RescheduleTracker,
    Spread, TaskGroup, UnixNanos,
};

/// Everything one evaluation's scheduling reads.
pub(crate) struct Ctx<'v, V: ClusterView + ?Sized> {
    pub view: &'v V,
    pub eval: &'v Evaluation,
    pub now: UnixNanos,
    pub seed: u64,
    pub config: SchedulerConfig,
}

/// Resources in the four dimensions the scheduler fits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Res {
    pub cpu: i64,
    pub mem: i64,
    pub disk: i64,
    pub cores: i64,
}

impl Res {
    pub(crate) fn from_comparable(resources: &ComparableResources) -> Res {
        Res {
            cpu: resources.cpu_mhz,
            mem: resources.memory_mb,
            disk: resources.disk_mb,
            cores: resources.cores,
        }
    }

    // Usage sums saturate: no ask, however large, may wrap a node's usage
    // negative and make it look empty.
    fn add(&mut self, other: &Res) {
        self.cpu = types::saturating_add(self.cpu, other.cpu);
        self.mem = types::saturating_add(self.mem, other.mem);
        self.disk = types::saturating_add(self.disk, other.disk);
        self.cores = types::saturating_add(self.cores, other.cores);
    }

    fn sub(&mut self, other: &Res) {
        self.cpu = types::saturating_sub(self.cpu, other.cpu);
        self.mem = types::saturating_sub(self.mem, other.mem);
        self.disk = types::saturating_sub(self.disk, other.disk);
        self.cores = types::saturating_sub(self.cores, other.cores);
    }

    /// Adds for the cluster totals that only shape scores ([`Packing`]):
    /// wrapping, as cheap as a plain add, and never used for a fit check.
    fn add_for_score(&mut self, other: &Res) {
        self.cpu = self.cpu.wrapping_add(other.cpu);
        self.mem = self.mem.wrapping_add(other.mem);
        self.disk = self.disk.wrapping_add(other.disk);
        self.cores = self.cores.wrapping_add(other.cores);
    }

    /// The CPU an ask needs on a node, reserved cores charged at the node's
    /// MHz per core. Wrapping: exact for every ask that fits a node (fit
    /// checks use [`resource_exhausted`], which computes exactly), and only
    /// a score for any other.
    #[inline]
    fn cpu_need(&self, mhz_per_core: i64) -> i64 {
        self.cpu.wrapping_add(self.cores.wrapping_mul(mhz_per_core))
    }
}

/// Why a node that passed the static checks cannot take a placement now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exhausted {
    Cpu,
    Memory,
    Disk,
    Cores,
    PortCollision,
    DynamicPorts,
    Devices,
    DistinctHosts,
    DistinctProperty,
}

impl Exhausted {
    const ALL: [Exhausted; 9] = [
        Exhausted::Cpu,
        Exhausted::Memory,
        Exhausted::Disk,
        Exhausted::Cores,
        Exhausted::PortCollision,
        Exhausted::DynamicPorts,
        Exhausted::Devices,
        Exhausted::DistinctHosts,
        Exhausted::DistinctProperty,
    ];

    fn name(self) -> &'static str {
        match self {
            Exhausted::Cpu => "cpu",
            Exhausted::Memory => "memory",
            Exhausted::Disk => "disk",
            Exhausted::Cores => "cores",
            Exhausted::PortCollision => "network: reserved port collision",
            Exhausted::DynamicPorts => "network: dynamic port selection failed",
            Exhausted::Devices => "devices: no free instances",
            Exhausted::DistinctHosts => "distinct_hosts",
            Exhausted::DistinctProperty => "distinct_property",
        }
    }

    /// Distinct-* failures are filters in the metrics, not exhaustion.
    fn is_filter(self) -> bool {
        matches!(self, Exhausted::DistinctHosts | Exhausted::DistinctProperty)
    }
}

const NO_CLASS: u32 = u32::MAX;
const NONE: u32 = u32::MAX;
const REASON_DRIVERS: u16 = 0;
const REASON_DEVICES: u16 = 1;
const REASON_HOST_VOLUMES: u16 = 4;

/// A device request with its compiled constraints.
struct DeviceAsk {
    name: String,
    count: u64,
    constraints: Vec<Compiled>,
    task: usize,
}

/// A distinct_property constraint.
struct DistinctProp {
    target: String,
    limit: u32,
    job_scope: bool,
}

/// One task group, compiled once per evaluation.
pub(crate) struct GroupSpec<'j> {
    pub group: &'j TaskGroup,
    pub ask: Res,
    drivers: Vec<&'j str>,
    /// Host volumes the group asks for: the node's name and whether the
    /// group writes to it.
    host_volumes: Vec<(&'j str, bool)>,
    class_constraints: Vec<(Compiled, u16)>,
    node_constraints: Vec<(Compiled, u16)>,
    distinct_hosts_job: bool,
    distinct_hosts_group: bool,
    distinct_props: Vec<DistinctProp>,
    devices: Vec<DeviceAsk>,
    static_ports: Vec<u16>,
    dynamic_ports: u32,
    needs_detail: bool,
    affinities: Vec<(Compiled, f64)>,
    spreads: Vec<&'j Spread>,
    reasons: Vec<String>,
    /// Some feasibility inputs are outside `computed_class`.
    pub escaped: bool,
}

impl<'j> GroupSpec<'j> {
    pub(crate) fn compile(job: &'j Job, group: &'j TaskGroup) -> GroupSpec<'j> {
        let mut reasons = vec![
            "missing drivers".to_string(),
            "missing devices".to_string(),
            "distinct_hosts".to_string(),
            "distinct_property".to_string(),
            "missing compatible host volumes".to_string(),
        ];
        let mut class_constraints = Vec::new();
        let mut node_constraints = Vec::new();
        let mut distinct_hosts_job = false;
        let mut distinct_hosts_group = false;
        let mut distinct_props = Vec::new();
        let job_level = job.constraints.iter().map(|constraint| (constraint, true));
        let group_level = group
            .constraints
            .iter()
            .chain(group.tasks.iter().flat_map(|task| task.constraints.iter()))
            .map(|constraint| (constraint, false));
        for (constraint, job_scope) in job_level.chain(group_level) {
            let compiled = Compiled::from_constraint(constraint);
            match compiled.op {
                Op::DistinctHosts => {
                    // `distinct_hosts = false` switches it off.
                    if compiled.rtarget.trim() != "false" {
                        if job_scope {
                            distinct_hosts_job = true;
                        } else {
                            distinct_hosts_group = true;
                        }
                    }
                }
                Op::DistinctProperty => distinct_props.push(DistinctProp {
                    target: compiled.ltarget.clone(),
                    limit: compiled.distinct_limit(),
                    job_scope,
                }),
                _ => {
                    let reason = reasons.len() as u16;
                    reasons.push(compiled.display.clone());
                    if compiled.class_cacheable {
                        class_constraints.push((compiled, reason));
                    } else {
                        node_constraints.push((compiled, reason));
                    }
                }
            }
        }
        let mut drivers: Vec<&str> = group
            .tasks
            .iter()
            .map(|task| task.driver.as_str())
            .filter(|driver| !driver.is_empty())
            .collect();
        drivers.sort_unstable();
        drivers.dedup();
        let host_volumes: Vec<(&str, bool)> = group
            .volumes
            .values()
            .filter(|volume| volume.volume_type == "host")
            .map(|volume| (volume.source.as_str(), !volume.read_only))
            .collect();
        // A negative amount (a job stored before validation refused them)
        // asks for nothing rather than handing capacity back.
        let mut ask = Res {
            disk: group.ephemeral_disk.size_mb.max(0),
            ..Res::default()
        };
        let mut devices = Vec::new();
        for (task_index, task) in group.tasks.iter().enumerate() {
            if task.resources.cores > 0 {
                ask.cores = ask.cores.saturating_add(task.resources.cores);
            } else {
                ask.cpu = ask.cpu.saturating_add(task.resources.cpu.max(0));
            }
            ask.mem = ask.mem.saturating_add(task.resources.memory_mb.max(0));
            for device in &task.resources.devices {
                devices.push(DeviceAsk {
                    name: device.name.clone(),
                    count: device.count.max(1),
                    constraints: device.constraints.iter().map(Compiled::from_constraint).collect(),
                    task: task_index,
                });
            }
        }
        let networks = group
            .networks
            .iter()
            .chain(group.tasks.iter().flat_map(|task| task.resources.networks.iter()));
        let mut static_ports = Vec::new();
        let mut dynamic_ports = 0u32;
        for network in networks {
            static_ports.extend(
                network
                    .reserved_ports
                    .iter()
                    .map(|port| port.value)
                    .filter(|port| *port > 0),
            );
            dynamic_ports += network.dynamic_ports.len() as u32;
        }
        let affinities: Vec<(Compiled, f64)> = job
            .affinities
            .iter()
            .chain(group.affinities.iter())
            .chain(group.tasks.iter().flat_map(|task| task.affinities.iter()))
            .map(|affinity| {
                (
                    Compiled::new(&affinity.ltarget, &affinity.operand, &affinity.rtarget),
                    f64::from(affinity.weight),
                )
            })
            .collect();
        let spreads: Vec<&Spread> = job.spreads.iter().chain(group.spreads.iter()).collect();
        let needs_detail = !static_ports.is_empty() || dynamic_ports > 0 || ask.cores > 0 || !devices.is_empty();
        let escaped = !node_constraints.is_empty()
            || !devices.is_empty()
            || distinct_hosts_job
            || distinct_hosts_group
            || !distinct_props.is_empty();
        GroupSpec {
            group,
            ask,
            drivers,
            host_volumes,
            class_constraints,
            node_constraints,
            distinct_hosts_job,
            distinct_hosts_group,
            distinct_props,
            devices,
            static_ports,
            dynamic_ports,
            needs_detail,
            affinities,
            spreads,
            reasons,
            escaped,
        }
    }

    /// Checks the parts of feasibility that `computed_class` covers.
    fn check_class(&self, node: &Node) -> Result<(), u16> {
        for driver in &self.drivers {
            if !driver_ok(node, driver) {
                return Err(REASON_DRIVERS);
            }
        }
        for (source, writes) in &self.host_volumes {
            match node.host_volumes.get(*source) {
                Some(volume) if !(*writes && volume.read_only) => {}
                _ => return Err(REASON_HOST_VOLUMES),
            }
        }
        for (constraint, reason) in &self.class_constraints {
            if !constraint.check_node(node) {
                return Err(*reason);
            }
        }
        Ok(())
    }

    /// What a class verdict of this group depends on besides the class:
    /// drivers and class-cacheable constraints with their reason numbers.
    fn verdict_key(&self) -> String {
        let mut key = String::from("group");
        for driver in &self.drivers {
            key.push('\u{1}');
            key.push_str(driver);
        }
        for (constraint, reason) in &self.class_constraints {
            key.push('\u{2}');
            key.push_str(&constraint.ltarget);
            key.push('\u{3}');
            key.push_str(&constraint.display);
            key.push('\u{3}');
            key.push_str(&constraint.rtarget);
            key.push('\u{3}');
            key.push_str(&reason.to_string());
        }
        key
    }

    /// Checks the parts of feasibility that are per node.
    fn check_node(&self, node: &Node) -> Result<(), u16> {
        for (constraint, reason) in &self.node_constraints {
            if !constraint.check_node(node) {
                return Err(*reason);
            }
        }
        for ask in &self.devices {
            let total: u64 = node
                .resources
                .devices
                .iter()
                .filter(|device| device_matches(device, ask))
                .map(|device| device.instance_ids.len() as u64)
                .sum();
            if total < ask.count {
                return Err(REASON_DEVICES);
            }
        }
        Ok(())
    }

    /// Whether feasibility has per-node parts beyond the class verdict.
    fn has_node_checks(&self) -> bool {
        !self.node_constraints.is_empty() || !self.devices.is_empty()
    }

    fn has_ranking_buckets(&self) -> bool {
        !self.spreads.is_empty() || !self.affinities.is_empty()
    }
}

fn driver_ok(node: &Node, driver: &str) -> bool {
    match node.drivers.get(driver) {
        Some(info) => info.detected && info.healthy,
        None => node
            .attributes
            .get(&format!("driver.{driver}"))
            .is_some_and(|value| value == "1" || value == "true"),
    }
}

fn device_matches(device: &types::NodeDevice, ask: &DeviceAsk) -> bool {
    if !device.matches(&ask.name) {
        return false;
    }
    ask.constraints.iter().all(|constraint| {
        let resolve = |target: &str| -> Option<String> {
            let Some(inner) = target.strip_prefix("${").and_then(|rest| rest.strip_suffix('}')) else {
                return Some(target.to_string());
            };
            if let Some(attribute) = inner.strip_prefix("device.attr.") {
                return device.attributes.get(attribute).cloned();
            }
            match inner {
                "device.vendor" => Some(device.vendor.clone()),
                "device.type" => Some(device.device_type.clone()),
                "device.model" => Some(device.name.clone()),
                _ => None,
            }
        };
        let left = resolve(&constraint.ltarget);
        let right = resolve(&constraint.rtarget);
        constraint.check_values(left.as_deref(), right.as_deref())
    })
}

/// The verdict-cache key of [`in_datacenters_and_pool`] for a job.
fn placement_key(job: &Job) -> String {
    let mut key = String::from("placement");
    for datacenter in &job.datacenters {
        key.push('\u{1}');
        key.push_str(datacenter);
    }
    key.push('\u{2}');
    key.push_str(&job.node_pool);
    key
}

/// Whether a node lies in the job's datacenters and node pool.
pub(crate) fn in_datacenters_and_pool(job: &Job, node: &Node) -> bool {
    let pool_ok = job.node_pool == "all" || job.node_pool == node.node_pool;
    pool_ok
        && job
            .datacenters
            .iter()
            .any(|pattern| crate::util::glob_match(pattern, &node.datacenter))
}

/// Ports, cores and devices held on a node, loaded only when a group needs
/// them.
struct Detail {
    /// Sorted host ports in use, the node's reserved ports included.
    ports: Vec<u16>,
    cores: Vec<u16>,
    devices: Vec<String>,
}

impl Detail {
    fn port_used(&self, port: u16) -> bool {
        self.ports.binary_search(&port).is_ok()
    }

    fn add_port(&mut self, port: u16) {
        if let Err(position) = self.ports.binary_search(&port) {
            self.ports.insert(position, port);
        }
    }

    fn remove_port(&mut self, port: u16) {
        if let Ok(position) = self.ports.binary_search(&port) {
            self.ports.remove(position);
        }
    }

    fn used_in_range(&self, low: u16, high: u16) -> usize {
        let start = self.ports.partition_point(|port| *port < low);
        let end = self.ports.partition_point(|port| *port <= high);
        end - start
    }
}

/// A node in the evaluation's local table.
pub(crate) struct LocalNode<'v> {
    pub node: &'v Node,
    /// Position in the view's node order.
    position: u32,
    class: u32,
    pub used: Res,
    /// Live allocations of the job on the node (all groups), plan included.
    job_allocs: u32,
    tie: u32,
}

/// The state of one evaluation's placements.
pub(crate) struct State<'v, 'c, V: ClusterView + ?Sized> {
    pub ctx: &'c Ctx<'v, V>,
    pub job: &'v Job,
    pub specs: Vec<GroupSpec<'v>>,
    pub nodes: Vec<LocalNode<'v>>,
    /// Capacity and MHz per core by position in the view's node order:
    /// the store's own column when it offers a [`crate::NodeIndex`], so an
    /// evaluation does not copy them per node.
    entries: std::borrow::Cow<'v, [crate::NodeEntry]>,
    /// Ports, cores and devices per local node, loaded on first need (few
    /// nodes per evaluation, so kept apart from the node table).
    details: FxHashMap<u32, Detail>,
    /// A node of each local class (for its `computed_class`).
    class_names: Vec<&'v Node>,
    /// Local class → the store's class (`NodeEntry::class`), fast path only.
    index_class: Vec<u32>,
    verdict_cache: Option<&'v crate::VerdictCache>,
    /// Node ID → local index, for nodes that hold the job's allocations.
    slot_of: FxHashMap<&'v str, u32>,
    /// Allocations stopped or preempted by the plan so far, by local node.
    freed: Vec<(u32, &'v Allocation)>,
    freed_ids: FxHashMap<&'v str, ()>,
    /// Per group: live allocations of the group per local node.
    group_counts: Vec<Vec<u32>>,
    /// Per group: cached class verdicts (0 unknown, 1 feasible, 2+r filtered by reason r).
    class_verdicts: Vec<Vec<u16>>,
    job_priorities: FxHashMap<(&'v str, &'v str), i32>,
    /// Jobs whose allocations this plan preempted, for follow-up evaluations.
    pub preempted_jobs: BTreeMap<(String, String), (i32, Option<types::JobType>)>,
    port_counter: u64,
    templates: Vec<Option<Allocation>>,
    pub deployment_id: String,
    /// The packing model of this evaluation (binding dimension, reserve).
    pack: Packing,
    /// New allocations by local node, moved into the plan by
    /// [`State::flush_into`] (one plan lookup per node, not per placement).
    staged: FxHashMap<u32, Vec<Allocation>>,
    /// Bumped whenever a node's usage changes other than by a placement of
    /// the running group (stops, undone stops, preemptions).
    usage_epoch: u64,
}

/// What kind of placement a request is, for the new allocation's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlaceKind {
    New,
    Lost,
    Migrate,
    Reschedule {
        delay: i64,
    },
    Destructive,
    Canary,
    /// A failed allocation of an older version, replaced by the job's
    /// current version.
    Replace,
}

/// One allocation to place.
#[derive(Debug, Clone)]
pub(crate) struct PlaceRequest<'v> {
    pub group: usize,
    pub index: u32,
    pub previous: Option<&'v Allocation>,
    pub kind: PlaceKind,
    /// System jobs: the one node this placement may use (local index).
    pub node: Option<u32>,
}

/// Per-group accumulated metrics.
#[derive(Default)]
struct MetricAcc {
    evaluated: u64,
    filtered_by_reason: Vec<u64>,
    exhausted: [u64; 9],
    coalesced: u64,
}

const STATE_OUT: u8 = 0;
const STATE_FILTERED: u8 = 1;
const STATE_HEAP: u8 = 2;
const STATE_WINDOW: u8 = 3;
const STATE_DROPPED: u8 = 4;

/// A node in a bucket's window with what a selection reads of it, so that
/// scoring the window does not touch the node table.
#[derive(Clone, Copy)]
struct WindowEntry {
    slot: u32,
    tie: u32,
    /// The bin-pack score of one more allocation of the group here.
    pack: f64,
    /// The job anti-affinity penalty: 0 when the node runs none of the
    /// group, else `(allocations + 1) / desired count`.
    collision: f64,
    /// The whole score when the group has no spread or affinity and the
    /// placement no reschedule penalty: `(pack - collision) / 2`, the very
    /// value the general formula gives then (its bucket sum is 0).
    plain: f64,
}

struct Bucket {
    heap: BinaryHeap<(u64, u32)>,
    /// The window: nodes with their bin-pack score, kept current as their
    /// usage changes (see `GroupRun::epoch`), so a placement scores the
    /// window without recomputing every node's fit.
    window: Vec<WindowEntry>,
    spread_values: Vec<u32>,
    affinity: f64,
}

struct SpreadRun {
    weight: f64,
    /// Desired share (0..=1) per value ID; `None` for values not targeted.
    targets: Vec<Option<f64>>,
    /// Share for values not listed (`*` or the implicit remainder).
    other_share: Option<f64>,
    has_targets: bool,
    counts: Vec<u32>,
    /// Whether a value appears on some candidate node.
    seen: Vec<bool>,
}

/// One group's candidate structures within an evaluation.
pub(crate) struct GroupRun {
    group: usize,
    /// `State::usage_epoch` when the window scores were last known to be
    /// current; a stop or an undone stop on any node bumps the state's
    /// epoch and the next selection rescores the windows.
    epoch: u64,
    limit: usize,
    buckets: Vec<Bucket>,
    bucket_of: Vec<u32>,
    state: Vec<u8>,
    spreads: Vec<SpreadRun>,
    spread_weight_total: f64,
    /// Per distinct_property: value ID per local node, counts per value.
    distinct_values: Vec<Vec<u32>>,
    distinct_counts: Vec<Vec<u32>>,
    metrics: MetricAcc,
    pub failed: bool,
    pub desired_count: u32,
}

const MISSING_VALUE: u32 = u32::MAX;

fn intern(values: &mut FxHashMap<String, u32>, value: Option<String>) -> u32 {
    match value {
        None => MISSING_VALUE,
        Some(value) => {
            let next = values.len() as u32;
            *values.entry(value).or_insert(next)
        }
    }
}

/// How an evaluation packs: which dimension binds cluster-wide, and how
/// much of the other dimension a node should keep free per unit of free
/// binding dimension (the cluster's demand mix), so that nodes fill up in
/// the binding dimension instead of stranding it behind the other one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Packing {
    /// Memory binds (else cpu).
    pub mem_binds: bool,
    /// Other dimension per unit of binding dimension, over what the
    /// cluster runs plus what this job asks for.
    pub reserve: f64,
    /// The operator chose the `spread` algorithm: emptiest node first
    /// instead of best fit (see [`crate::SchedulerAlgorithm`]).
    pub spread: bool,
}

impl Packing {
    /// From the totals of the candidate nodes (capacity and usage) and the
    /// job's own demand.
    fn from_totals(cap: &Res, used: &Res, demand: &Res) -> Packing {
        let pressure = |used: i64, demand: i64, cap: i64| {
            if cap > 0 {
                used.saturating_add(demand) as f64 / cap as f64
            } else {
                0.0
            }
        };
        let cpu = pressure(used.cpu, demand.cpu, cap.cpu);
        let mem = pressure(used.mem, demand.mem, cap.mem);
        let mem_binds = mem >= cpu;
        let (binding, other) = if mem_binds {
            (used.mem.saturating_add(demand.mem), used.cpu.saturating_add(demand.cpu))
        } else {
            (used.cpu.saturating_add(demand.cpu), used.mem.saturating_add(demand.mem))
        };
        let reserve = if binding > 0 {
            other as f64 / binding as f64
        } else {
            0.0
        };
        Packing {
            mem_binds,
            reserve,
            spread: false,
        }
    }
}

/// Bin-pack score of a node after adding the ask, in `[0, 1]`: best fit in
/// the cluster's binding dimension (`0.5 + fill / 2`, so the fullest node
/// that fits wins), halved to below 0.5 when the placement would leave the
/// node short of the other dimension for the binding one still free (it
/// would strand capacity) while the ask itself is heavier than the
/// cluster's mix in that other dimension. Asks lighter than the mix always
/// help such a node and are never penalised.
#[inline]
fn pack_score(pack: Packing, used: &Res, ask_cpu: i64, ask_mem: i64, cap: &Res) -> f64 {
    let (used_b, ask_b, cap_b, used_o, ask_o, cap_o) = if pack.mem_binds {
        (used.mem, ask_mem, cap.mem, used.cpu, ask_cpu, cap.cpu)
    } else {
        (used.cpu, ask_cpu, cap.cpu, used.mem, ask_mem, cap.mem)
    };
    if pack.spread {
        return spread_score(used, ask_cpu, ask_mem, cap);
    }
    if cap_b <= 0 {
        return 0.0;
    }
    // Wrapping: exact whenever the ask fits the node (the only case in
    // which the score decides anything), and no overflow panic otherwise.
    let fill = (used_b.wrapping_add(ask_b) as f64 / cap_b as f64).clamp(0.0, 1.0);
    let free_b = cap_b.wrapping_sub(used_b).wrapping_sub(ask_b) as f64;
    let free_o = cap_o.wrapping_sub(used_o).wrapping_sub(ask_o) as f64;
    let strands = free_o < pack.reserve * free_b && ask_o as f64 > pack.reserve * ask_b as f64;
    if strands { 0.5 * fill } else { 0.5 + 0.5 * fill }
}

/// The `spread` algorithm's score of a node after adding the ask, in
/// `[0, 1]`: the mean of its free cpu and free memory shares, so the
/// emptiest node wins and work spreads over the whole cluster.
#[inline]
fn spread_score(used: &Res, ask_cpu: i64, ask_mem: i64, cap: &Res) -> f64 {
    let free = |used: i64, ask: i64, cap: i64| {
        if cap > 0 {
            (cap.wrapping_sub(used).wrapping_sub(ask) as f64 / cap as f64).clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    0.5 * (free(used.cpu, ask_cpu, cap.cpu) + free(used.mem, ask_mem, cap.mem))
}

#[inline]
fn heap_key(score: f64, tie: u32) -> u64 {
    // Non-negative f32 bits order like the numbers they encode.
    (u64::from((score as f32).to_bits()) << 32) | u64::from(tie)
}

impl<'v, 'c, V: ClusterView + ?Sized> State<'v, 'c, V> {
    /// Scans the cluster once: schedulable nodes in the job's datacenters
    /// and pool, with their usage, interned classes and shuffle tie-breaks.
    pub(crate) fn build(ctx: &'c Ctx<'v, V>, job: &'v Job, job_allocs: &[&'v Allocation]) -> State<'v, 'c, V> {
        let specs: Vec<GroupSpec<'v>> = job
            .task_groups
            .iter()
            .map(|group| GroupSpec::compile(job, group))
            .collect();
        let mut slot_of: FxHashMap<&'v str, u32> = FxHashMap::default();
        for alloc in job_allocs {
            slot_of.insert(alloc.node_id.as_str(), NONE);
        }
        let mut class_names: Vec<&'v Node> = Vec::new();
        let mut index_class: Vec<u32> = Vec::new();
        let mut verdict_cache: Option<&'v crate::VerdictCache> = None;
        // Fast path: whether each local class is in the job's datacenters and pool.
        let mut local_ok: Vec<bool> = Vec::new();
        let mut nodes: Vec<LocalNode<'v>> = Vec::new();
        let entries: std::borrow::Cow<'v, [crate::NodeEntry]>;
        // Capacity and usage over the candidate nodes, for the packing model.
        let mut total_cap = Res::default();
        let mut total_used = Res::default();
        match ctx.view.node_index() {
            Some(index) => {
                // Column-wise fast path: the `Node` itself is read once per
                // computed class (datacenter and pool are part of it) unless
                // the store's verdict cache already knows the class, and by
                // ID only when the job already has allocations.
                verdict_cache = index.verdicts;
                entries = std::borrow::Cow::Borrowed(index.entries);
                let placement_key = verdict_cache.map(|_| placement_key(job));
                // Per store class: 0 unknown, 1 in the job's datacenters and
                // pool, 2 not, 3 no computed class.
                let placement_verdicts: Vec<u16> = match (verdict_cache, placement_key.as_deref()) {
                    (Some(cache), Some(key)) => cache.load(key, index.class_count as usize),
                    _ => vec![0; index.class_count as usize],
                };
                let mut codes = ClassCodes {
                    local_class: vec![UNSEEN; index.class_count as usize],
                    placement_verdicts,
                    class_ok: Vec::new(),
                    class_names,
                    index_class,
                };
                scan_index(index, job, ctx.seed, &mut codes, &mut slot_of, &mut nodes);
                for local in &nodes {
                    total_used.add_for_score(&local.used);
                    if let Some(entry) = index.entries.get(local.position as usize) {
                        total_cap.add_for_score(&Res::from_comparable(&entry.capacity));
                    }
                }
                let ClassCodes {
                    placement_verdicts,
                    class_ok,
                    class_names: names,
                    index_class: classes,
                    ..
                } = codes;
                class_names = names;
                index_class = classes;
                if let (Some(cache), Some(key)) = (verdict_cache, placement_key) {
                    cache.store(key, placement_verdicts);
                }
                local_ok = class_ok;
            }
            None => {
                let mut class_ids: FxHashMap<&'v str, u32> = FxHashMap::default();
                let mut class_ok: Vec<u8> = Vec::new();
                let mut owned_entries: Vec<crate::NodeEntry> = Vec::new();
                for (position, (node, used)) in ctx.view.nodes_with_usage().enumerate() {
                    let entry = crate::NodeEntry::of(node, 0);
                    owned_entries.push(entry);
                    if !node.is_schedulable() {
                        continue;
                    }
                    let class = if node.computed_class.is_empty() {
                        NO_CLASS
                    } else {
                        let next = class_names.len() as u32;
                        let id = *class_ids.entry(node.computed_class.as_str()).or_insert(next);
                        if id == next {
                            class_names.push(node);
                            class_ok.push(0);
                        }
                        id
                    };
                    let ok = if class == NO_CLASS {
                        in_datacenters_and_pool(job, node)
                    } else {
                        let cached = &mut class_ok[class as usize];
                        if *cached == 0 {
                            *cached = if in_datacenters_and_pool(job, node) { 1 } else { 2 };
                        }
                        *cached == 1
                    };
                    if !ok {
                        continue;
                    }
                    let index = nodes.len() as u32;
                    if !slot_of.is_empty()
                        && let Some(slot) = slot_of.get_mut(node.id.as_str())
                    {
                        *slot = index;
                    }
                    let used = Res::from_comparable(&used);
                    total_cap.add_for_score(&Res::from_comparable(&entry.capacity));
                    total_used.add_for_score(&used);
                    nodes.push(LocalNode {
                        node,
                        position: position as u32,
                        class,
                        used,
                        job_allocs: 0,
                        tie: mix64(ctx.seed, position as u64) as u32,
                    });
                }
                entries = std::borrow::Cow::Owned(owned_entries);
            }
        }
        // The packing model: totals over the candidate nodes plus the job.
        let mut demand = Res::default();
        for spec in &specs {
            let count = i64::from(spec.group.count);
            demand.cpu = demand.cpu.saturating_add(spec.ask.cpu.saturating_mul(count));
            demand.mem = demand.mem.saturating_add(spec.ask.mem.saturating_mul(count));
        }
        let pack = Packing {
            spread: ctx.config.algorithm == crate::SchedulerAlgorithm::Spread,
            ..Packing::from_totals(&total_cap, &total_used, &demand)
        };
        let group_count = specs.len();
        let class_count = class_names.len();
        let mut state = State {
            ctx,
            job,
            specs,
            nodes,
            entries,
            details: FxHashMap::default(),
            class_names,
            index_class,
            verdict_cache,
            slot_of,
            freed: Vec::new(),
            freed_ids: FxHashMap::default(),
            group_counts: vec![Vec::new(); group_count],
            class_verdicts: vec![vec![0; class_count]; group_count],
            job_priorities: FxHashMap::default(),
            preempted_jobs: BTreeMap::new(),
            port_counter: 0,
            templates: vec![None; group_count],
            deployment_id: String::new(),
            pack,
            staged: FxHashMap::default(),
            usage_epoch: 0,
        };
        for alloc in job_allocs {
            if alloc.holds_resources() {
                state.count_alloc(alloc, 1);
            }
        }
        if let Some(cache) = state.verdict_cache {
            for group in 0..group_count {
                let stored = cache.load(&state.specs[group].verdict_key(), 0);
                // Only classes with candidate nodes: the others never get a
                // verdict in an evaluation (`class_eligibility` lists only
                // classes with one).
                for (local, store_class) in state.index_class.iter().enumerate() {
                    if local_ok.get(local) == Some(&true)
                        && let Some(verdict) = stored.get(*store_class as usize)
                    {
                        state.class_verdicts[group][local] = *verdict;
                    }
                }
            }
        }
        state
    }

    /// Hands the class verdicts learned in this evaluation to the store's
    /// verdict cache (if any), for later evaluations of the same shape.
    pub(crate) fn save_verdicts(&self) {
        let Some(cache) = self.verdict_cache else {
            return;
        };
        for (group, verdicts) in self.class_verdicts.iter().enumerate() {
            if verdicts.iter().all(|verdict| *verdict == 0) {
                continue;
            }
            let key = self.specs[group].verdict_key();
            let mut stored = cache.load(&key, 0);
            for (local, verdict) in verdicts.iter().enumerate() {
                let store_class = self.index_class[local] as usize;
                if *verdict != 0 {
                    if stored.len() <= store_class {
                        stored.resize(store_class + 1, 0);
                    }
                    stored[store_class] = *verdict;
                }
            }
            cache.store(key, stored);
        }
    }

    /// Local index of a node by ID, for nodes holding the job's allocations
    /// or present in the table.
    pub(crate) fn slot(&self, node_id: &str) -> Option<u32> {
        self.slot_of.get(node_id).copied().filter(|slot| *slot != NONE)
    }

    fn group_index(&self, name: &str) -> Option<usize> {
        self.job.task_groups.iter().position(|group| group.name == name)
    }

    fn ensure_group_counts(&mut self, group: usize) {
        if self.group_counts[group].len() != self.nodes.len() {
            self.group_counts[group] = vec![0; self.nodes.len()];
        }
    }

    /// Adds (`delta = 1`) or removes (`-1`) a live allocation of the job from
    /// the per-node job and group counters.
    fn count_alloc(&mut self, alloc: &Allocation, delta: i32) {
        let Some(slot) = self.slot(&alloc.node_id) else {
            return;
        };
        let node = &mut self.nodes[slot as usize];
        node.job_allocs = node.job_allocs.saturating_add_signed(delta);
        if let Some(group) = self.group_index(&alloc.task_group) {
            self.ensure_group_counts(group);
            let count = &mut self.group_counts[group][slot as usize];
            *count = count.saturating_add_signed(delta);
        }
    }

    /// Releases what a stopped or preempted allocation held on its node.
    pub(crate) fn free_alloc(&mut self, alloc: &'v Allocation) {
        if !alloc.holds_resources() {
            return;
        }
        self.freed_ids.insert(alloc.id.as_str(), ());
        let slot = match self.slot(&alloc.node_id) {
            Some(slot) => slot,
            None => match self.nodes.iter().position(|local| local.node.id == alloc.node_id) {
                Some(position) => {
                    self.slot_of.insert(alloc.node_id.as_str(), position as u32);
                    position as u32
                }
                None => return,
            },
        };
        if alloc.job_id == self.job.id && alloc.namespace == self.job.namespace {
            self.count_alloc(alloc, -1);
        }
        self.usage_epoch += 1;
        let node = &mut self.nodes[slot as usize];
        node.used
            .sub(&Res::from_comparable(&alloc.allocated_resources.comparable()));
        if let Some(detail) = self.details.get_mut(&slot) {
            remove_detail(detail, alloc);
        }
        self.freed.push((slot, alloc));
    }

    /// Undoes [`State::free_alloc`] (a destructive update whose replacement
    /// could not be placed keeps its old allocation).
    pub(crate) fn unfree_alloc(&mut self, alloc: &'v Allocation) {
        let Some(position) = self.freed.iter().rposition(|(_, freed)| std::ptr::eq(*freed, alloc)) else {
            return;
        };
        let (slot, _) = self.freed.remove(position);
        self.freed_ids.remove(alloc.id.as_str());
        if alloc.job_id == self.job.id && alloc.namespace == self.job.namespace {
            self.count_alloc(alloc, 1);
        }
        self.usage_epoch += 1;
        let node = &mut self.nodes[slot as usize];
        node.used
            .add(&Res::from_comparable(&alloc.allocated_resources.comparable()));
        if let Some(detail) = self.details.get_mut(&slot) {
            add_detail(detail, &alloc.allocated_resources);
        }
    }

    pub(crate) fn is_freed(&self, alloc_id: &str) -> bool {
        self.freed_ids.contains_key(alloc_id)
    }

    fn load_detail(&mut self, slot: u32) {
        if self.details.contains_key(&slot) {
            return;
        }
        let node = self.nodes[slot as usize].node;
        let mut usage: NodeUsage = self.ctx.view.node_usage(&node.id);
        for (freed_slot, alloc) in &self.freed {
            if *freed_slot == slot {
                usage.remove(alloc);
            }
        }
        let mut ports = usage.ports;
        ports.extend(node.reserved_ports.iter().copied());
        ports.sort_unstable();
        ports.dedup();
        let mut cores = usage.cores;
        cores.sort_unstable();
        self.details.insert(
            slot,
            Detail {
                ports,
                cores,
                devices: usage.devices,
            },
        );
    }

    /// The verdict of the static checks for a group on a node.
    fn static_verdict(&mut self, group: usize, slot: u32) -> Result<(), u16> {
        let node = self.nodes[slot as usize].node;
        let class = self.nodes[slot as usize].class;
        let spec = &self.specs[group];
        if class == NO_CLASS {
            spec.check_class(node)?;
        } else {
            let cached = &mut self.class_verdicts[group][class as usize];
            if *cached == 0 {
                *cached = match spec.check_class(node) {
                    Ok(()) => 1,
                    Err(reason) => 2 + reason,
                };
            }
            if *cached != 1 {
                return Err(*cached - 2);
            }
        }
        spec.check_node(node)
    }

    /// Whether the group can take one more placement on the node now.
    fn fits(&mut self, run: &GroupRun, slot: u32) -> Result<(), Exhausted> {
        let spec = &self.specs[run.group];
        let ask = spec.ask;
        let local = &self.nodes[slot as usize];
        let (cap, mhz_per_core) = self.shape(slot);
        if let Some(dimension) = resource_exhausted(&local.used, &cap, mhz_per_core, &ask) {
            return Err(dimension);
        }
        if spec.distinct_hosts_job && local.job_allocs > 0 {
            return Err(Exhausted::DistinctHosts);
        }
        if spec.distinct_hosts_group
            && self.group_counts[run.group]
                .get(slot as usize)
                .is_some_and(|count| *count > 0)
        {
            return Err(Exhausted::DistinctHosts);
        }
        for (index, prop) in spec.distinct_props.iter().enumerate() {
            let value = run.distinct_values[index][slot as usize];
            if value == MISSING_VALUE || run.distinct_counts[index][value as usize] >= prop.limit {
                return Err(Exhausted::DistinctProperty);
            }
        }
        if !spec.needs_detail {
            return Ok(());
        }
        self.load_detail(slot);
        let spec = &self.specs[run.group];
        let local = &self.nodes[slot as usize];
        let Some(detail) = self.details.get(&slot) else {
            return Ok(());
        };
        for (position, port) in spec.static_ports.iter().enumerate() {
            if detail.port_used(*port) || spec.static_ports[..position].contains(port) {
                return Err(Exhausted::PortCollision);
            }
        }
        if spec.dynamic_ports > 0 {
            let (low, high) = dynamic_range(local.node);
            let range = usize::from(high - low) + 1;
            let static_in_range = spec
                .static_ports
                .iter()
                .filter(|port| (low..=high).contains(*port))
                .count();
            let free = range.saturating_sub(detail.used_in_range(low, high) + static_in_range);
            if free < spec.dynamic_ports as usize {
                return Err(Exhausted::DynamicPorts);
            }
        }
        if ask.cores > 0 {
            let free = (0..local.node.resources.cores)
                .filter(|core| detail.cores.binary_search(&(*core as u16)).is_err())
                .count() as i64;
            if free < ask.cores {
                return Err(Exhausted::Cores);
            }
        }
        for device_ask in &spec.devices {
            let free: u64 = local
                .node
                .resources
                .devices
                .iter()
                .filter(|device| device_matches(device, device_ask))
                .map(|device| {
                    device
                        .instance_ids
                        .iter()
                        .filter(|instance| !detail.devices.contains(instance))
                        .count() as u64
                })
                .sum();
            if free < device_ask.count {
                return Err(Exhausted::Devices);
            }
        }
        Ok(())
    }

    /// Builds the candidate structures for a group: static feasibility for
    /// every node, buckets for spread and affinity, heaps by fullness.
    pub(crate) fn start_group(&mut self, group: usize, desired_count: u32, existing: &[&'v Allocation]) -> GroupRun {
        self.ensure_group_counts(group);
        let node_count = self.nodes.len();
        let spec = &self.specs[group];
        let batch_like = matches!(self.job.job_type, types::JobType::Batch | types::JobType::Sysbatch);
        let n_props = spec.distinct_props.len();
        let mut run = GroupRun {
            group,
            epoch: self.usage_epoch,
            limit: 2,
            buckets: Vec::new(),
            bucket_of: vec![NONE; node_count],
            state: vec![STATE_OUT; node_count],
            spreads: Vec::new(),
            spread_weight_total: 0.0,
            distinct_values: vec![Vec::new(); n_props],
            distinct_counts: vec![Vec::new(); n_props],
            metrics: MetricAcc {
                filtered_by_reason: vec![0; spec.reasons.len()],
                ..MetricAcc::default()
            },
            failed: false,
            desired_count: desired_count.max(1),
        };
        // Distinct properties: value IDs per node and current counts.
        for prop_index in 0..n_props {
            let mut values: FxHashMap<String, u32> = FxHashMap::default();
            let target = self.specs[group].distinct_props[prop_index].target.clone();
            let job_scope = self.specs[group].distinct_props[prop_index].job_scope;
            let per_node: Vec<u32> = self
                .nodes
                .iter()
                .map(|local| intern(&mut values, local.node.resolve_target(&target)))
                .collect();
            let mut counts = vec![0u32; values.len()];
            let group_name = self.job.task_groups[group].name.as_str();
            for alloc in self.ctx.view.allocs_by_job(&self.job.namespace, &self.job.id) {
                if !alloc.holds_resources() || self.is_freed(&alloc.id) {
                    continue;
                }
                if !job_scope && alloc.task_group != group_name {
                    continue;
                }
                let Some(node) = self.ctx.view.node(&alloc.node_id) else {
                    continue;
                };
                let value = intern(&mut values, node.resolve_target(&target));
                if value != MISSING_VALUE {
                    if counts.len() < values.len() {
                        counts.resize(values.len(), 0);
                    }
                    counts[value as usize] += 1;
                }
            }
            counts.resize(values.len(), 0);
            run.distinct_values[prop_index] = per_node;
            run.distinct_counts[prop_index] = counts;
        }
        // Spread: value IDs per node through buckets.
        let spreads: Vec<&Spread> = self.specs[group].spreads.clone();
        let mut spread_values: Vec<FxHashMap<String, u32>> = vec![FxHashMap::default(); spreads.len()];
        let affinity_cacheable = self.specs[group]
            .affinities
            .iter()
            .all(|(affinity, _)| affinity.class_cacheable);
        // When every spread attribute and affinity is covered by the
        // computed class, a node's bucket is its class's bucket: computed
        // at the class's first node (in node order, so values and buckets
        // are numbered as a per-node walk would number them).
        let bucket_by_class = affinity_cacheable
            && spreads
                .iter()
                .all(|spread| !crate::constraint::references_unique(&spread.attribute));
        let mut class_bucket: Vec<u32> = vec![NONE; self.class_names.len()];
        // Bucket key: the spread value IDs, then the affinity score's bits.
        let mut bucket_ids: FxHashMap<Vec<u32>, u32> = FxHashMap::default();
        let mut key_buffer: Vec<u32> = Vec::with_capacity(spreads.len() + 2);
        let mut members: Vec<Vec<(u64, u32)>> = Vec::new();
        let bucketed = self.specs[group].has_ranking_buckets();
        let node_checks = self.specs[group].has_node_checks();
        let ask = self.specs[group].ask;
        let pack = self.pack;
        let mut feasible = 0usize;
        run.metrics.evaluated += node_count as u64;
        // Disjoint borrows, so the loop below reads nodes and specs while
        // it fills the class verdicts and the run.
        let specs = &self.specs;
        let spec = &specs[group];
        let nodes = &self.nodes;
        let entries = &self.entries;
        let verdicts = &mut self.class_verdicts[group];
        if !bucketed && !node_checks {
            // The common case (no spread, affinity or per-node checks) in
            // a loop of its own: same verdicts, metrics and heap entries.
            let mut heap = Vec::with_capacity(node_count);
            feasible = scan_plain(nodes, entries, verdicts, spec, &mut run, &mut heap, pack);
            if feasible > 0 {
                run.buckets.push(Bucket {
                    heap: BinaryHeap::new(),
                    window: Vec::new(),
                    spread_values: Vec::new(),
                    affinity: 0.0,
                });
                members.push(heap);
            }
        }
        for (slot, local) in nodes.iter().enumerate().filter(|_| bucketed || node_checks) {
            // Static feasibility: the class verdict (cached per class),
            // then the per-node checks if the group has any.
            let verdict = if local.class == NO_CLASS {
                spec.check_class(local.node)
            } else {
                let cached = &mut verdicts[local.class as usize];
                if *cached == 0 {
                    *cached = match spec.check_class(local.node) {
                        Ok(()) => 1,
                        Err(reason) => 2 + reason,
                    };
                }
                if *cached == 1 { Ok(()) } else { Err(*cached - 2) }
            };
            let verdict = match verdict {
                Ok(()) if node_checks => spec.check_node(local.node),
                other => other,
            };
            if let Err(reason) = verdict {
                run.metrics.filtered_by_reason[reason as usize] += 1;
                run.state[slot] = STATE_FILTERED;
                continue;
            }
            feasible += 1;
            let bucket = if !bucketed {
                if run.buckets.is_empty() {
                    run.buckets.push(Bucket {
                        heap: BinaryHeap::new(),
                        window: Vec::new(),
                        spread_values: Vec::new(),
                        affinity: 0.0,
                    });
                    members.push(Vec::with_capacity(node_count));
                }
                0
            } else if bucket_by_class && local.class != NO_CLASS && class_bucket[local.class as usize] != NONE {
                class_bucket[local.class as usize]
            } else {
                key_buffer.clear();
                for (spread_index, spread) in spreads.iter().enumerate() {
                    key_buffer.push(intern(
                        &mut spread_values[spread_index],
                        local.node.resolve_target(&spread.attribute),
                    ));
                }
                let spread_len = key_buffer.len();
                let affinity = affinity_score(&spec.affinities, local.node);
                let bits = affinity.to_bits();
                key_buffer.push((bits >> 32) as u32);
                key_buffer.push(bits as u32);
                let id = match bucket_ids.get(key_buffer.as_slice()) {
                    Some(id) => *id,
                    None => {
                        let id = run.buckets.len() as u32;
                        bucket_ids.insert(key_buffer.clone(), id);
                        run.buckets.push(Bucket {
                            heap: BinaryHeap::new(),
                            window: Vec::new(),
                            spread_values: key_buffer[..spread_len].to_vec(),
                            affinity,
                        });
                        members.push(Vec::new());
                        id
                    }
                };
                if bucket_by_class && local.class != NO_CLASS {
                    class_bucket[local.class as usize] = id;
                }
                id
            };
            run.bucket_of[slot] = bucket;
            // Resources are checked here so exhausted nodes never enter a
            // heap; ports, cores and devices wait until a node is a
            // candidate, since they need the node's detailed usage.
            let (cap, mhz_per_core) = match entries.get(local.position as usize) {
                Some(entry) => (Res::from_comparable(&entry.capacity), entry.mhz_per_core),
                None => (Res::default(), 0),
            };
            if let Some(dimension) = resource_exhausted(&local.used, &cap, mhz_per_core, &ask) {
                run.metrics.exhausted[dimension as usize] += 1;
                run.state[slot] = STATE_DROPPED;
                continue;
            }
            let score = pack_score(pack, &local.used, ask.cpu_need(mhz_per_core), ask.mem, &cap);
            members[bucket as usize].push((heap_key(score, local.tie), slot as u32));
            run.state[slot] = STATE_HEAP;
        }
        for (bucket, entries) in run.buckets.iter_mut().zip(members) {
            bucket.heap = BinaryHeap::from(entries);
        }
        // Candidate limit: 2 for batch, ⌈log2 n⌉ for service; with spread or
        // affinity every bucket is scored, which covers every distinct score.
        run.limit = if batch_like {
            2
        } else {
            let n = feasible.max(2) as f64;
            (n.log2().ceil() as usize).max(2)
        };
        // Spread targets and current counts.
        for (spread_index, spread) in spreads.iter().enumerate() {
            let values = &mut spread_values[spread_index];
            let mut targets = Vec::new();
            let mut listed_share = 0.0;
            let mut star: Option<f64> = None;
            for target in &spread.targets {
                let share = f64::from(target.percent) / 100.0;
                if target.value == "*" {
                    star = Some(share);
                    continue;
                }
                let id = intern(values, Some(target.value.clone()));
                if targets.len() <= id as usize {
                    targets.resize(id as usize + 1, None);
                }
                targets[id as usize] = Some(share);
                listed_share += share;
            }
            let has_targets = !spread.targets.is_empty();
            let other_share = match star {
                Some(share) => Some(share),
                None if has_targets && listed_share < 1.0 => Some(1.0 - listed_share),
                None => None,
            };
            let mut counts = vec![0u32; values.len()];
            for alloc in existing {
                if !alloc.holds_resources() || self.is_freed(&alloc.id) {
                    continue;
                }
                let Some(node) = self.ctx.view.node(&alloc.node_id) else {
                    continue;
                };
                let value = intern(values, node.resolve_target(&spread.attribute));
                if value != MISSING_VALUE {
                    if counts.len() < values.len() {
                        counts.resize(values.len(), 0);
                    }
                    counts[value as usize] += 1;
                }
            }
            counts.resize(values.len(), 0);
            targets.resize(values.len(), None);
            let mut seen = vec![false; values.len()];
            for bucket in &run.buckets {
                let value = bucket.spread_values[spread_index];
                if value != MISSING_VALUE {
                    seen[value as usize] = true;
                }
            }
            let weight = f64::from(spread.weight.max(1));
            run.spread_weight_total += weight;
            run.spreads.push(SpreadRun {
                weight,
                targets,
                other_share,
                has_targets,
                counts,
                seen,
            });
        }
        run
    }

    /// The spread and affinity part of a bucket's score: (sum, count).
    fn bucket_score(&self, run: &GroupRun, bucket: &Bucket) -> (f64, f64) {
        let mut sum = 0.0;
        let mut count = 0.0;
        if !self.specs[run.group].affinities.is_empty() {
            sum += bucket.affinity;
            count += 1.0;
        }
        if !run.spreads.is_empty() {
            let total = f64::from(run.desired_count);
            let mut spread_sum = 0.0;
            for (spread_index, spread) in run.spreads.iter().enumerate() {
                let value = bucket.spread_values[spread_index];
                let score = if value == MISSING_VALUE {
                    -1.0
                } else if spread.has_targets {
                    let (share, used) = match spread.targets[value as usize] {
                        Some(share) => (Some(share), f64::from(spread.counts[value as usize])),
                        None => {
                            let others: u32 = spread
                                .counts
                                .iter()
                                .zip(&spread.targets)
                                .filter(|(_, target)| target.is_none())
                                .map(|(count, _)| *count)
                                .sum();
                            (spread.other_share, f64::from(others))
                        }
                    };
                    match share {
                        Some(share) if share > 0.0 => {
                            let desired = share * total;
                            ((desired - used) / desired).clamp(-1.0, 1.0)
                        }
                        _ => -1.0,
                    }
                } else {
                    let mut min = u32::MAX;
                    let mut max = 0u32;
                    for (count, seen) in spread.counts.iter().zip(&spread.seen) {
                        if *seen || *count > 0 {
                            min = min.min(*count);
                            max = max.max(*count);
                        }
                    }
                    if min >= max {
                        0.0
                    } else {
                        let current = spread.counts[value as usize];
                        1.0 - 2.0 * f64::from(current - min) / f64::from(max - min)
                    }
                };
                spread_sum += spread.weight / run.spread_weight_total * score;
            }
            sum += spread_sum;
            count += 1.0;
        }
        (sum, count)
    }

    /// The bin-pack score of one more allocation of `group` on `slot`.
    #[inline]
    fn pack_of(&self, group: usize, slot: u32) -> f64 {
        let local = &self.nodes[slot as usize];
        let ask = &self.specs[group].ask;
        let (cap, mhz_per_core) = self.shape(slot);
        pack_score(self.pack, &local.used, ask.cpu_need(mhz_per_core), ask.mem, &cap)
    }

    /// A local node's capacity and MHz per core.
    #[inline]
    fn shape(&self, slot: u32) -> (Res, i64) {
        match self.entries.get(self.nodes[slot as usize].position as usize) {
            Some(entry) => (Res::from_comparable(&entry.capacity), entry.mhz_per_core),
            None => (Res::default(), 0),
        }
    }

    /// The job anti-affinity penalty of `slot` for the run's group.
    #[inline]
    fn collision_of(&self, run: &GroupRun, slot: u32) -> f64 {
        let collisions = self.group_counts[run.group][slot as usize];
        if collisions > 0 {
            f64::from(collisions + 1) / f64::from(run.desired_count)
        } else {
            0.0
        }
    }

    fn window_entry(&self, run: &GroupRun, slot: u32) -> WindowEntry {
        let pack = self.pack_of(run.group, slot);
        let collision = self.collision_of(run, slot);
        WindowEntry {
            slot,
            tie: self.nodes[slot as usize].tie,
            pack,
            collision,
            plain: plain_score(pack, collision),
        }
    }

    /// Picks the best node for one placement, or `None` when no node fits.
    pub(crate) fn select(&mut self, run: &mut GroupRun, penalty: &[u32]) -> Option<u32> {
        let group = run.group;
        let mut best: Option<(f64, u64, u32)> = None;
        if run.epoch != self.usage_epoch {
            for bucket_index in 0..run.buckets.len() {
                for position in 0..run.buckets[bucket_index].window.len() {
                    let slot = run.buckets[bucket_index].window[position].slot;
                    run.buckets[bucket_index].window[position] = self.window_entry(run, slot);
                }
            }
            run.epoch = self.usage_epoch;
        }
        for bucket_index in 0..run.buckets.len() {
            self.refill(run, bucket_index);
            if run.buckets[bucket_index].window.is_empty() {
                continue;
            }
            let (bucket_sum, bucket_count) = self.bucket_score(run, &run.buckets[bucket_index]);
            if bucket_count == 0.0 && penalty.is_empty() && self.specs[group].distinct_props.is_empty() {
                // No spread, affinity, penalty or per-candidate check: each
                // entry's score is already known.
                for entry in &run.buckets[bucket_index].window {
                    let tie = u64::from(entry.tie);
                    let better = match best {
                        None => true,
                        Some((best_score, best_tie, _)) => {
                            entry.plain > best_score || (entry.plain == best_score && tie > best_tie)
                        }
                    };
                    if better {
                        best = Some((entry.plain, tie, entry.slot));
                    }
                }
                continue;
            }
            let mut position = 0;
            while position < run.buckets[bucket_index].window.len() {
                let entry = run.buckets[bucket_index].window[position];
                let slot = entry.slot;
                if !self.specs[group].distinct_props.is_empty()
                    && let Err(reason) = self.fits(run, slot)
                {
                    run.metrics.exhausted[reason as usize] += 1;
                    run.state[slot as usize] = STATE_DROPPED;
                    run.buckets[bucket_index].window.swap_remove(position);
                    continue;
                }
                // Bin-pack and job anti-affinity always count, so a node
                // already running the group is not halved by the average
                // (that would scatter every job over every node).
                let mut sum = bucket_sum + entry.pack - entry.collision;
                let mut count = bucket_count + 2.0;
                if !penalty.is_empty() {
                    count += 1.0;
                    if penalty.contains(&slot) {
                        sum -= 1.0;
                    }
                }
                let score = sum / count;
                let tie = u64::from(entry.tie);
                let better = match best {
                    None => true,
                    Some((best_score, best_tie, _)) => score > best_score || (score == best_score && tie > best_tie),
                };
                if better {
                    best = Some((score, tie, slot));
                }
                position += 1;
            }
        }
        best.map(|(_, _, slot)| slot)
    }

    fn refill(&mut self, run: &mut GroupRun, bucket_index: usize) {
        while run.buckets[bucket_index].window.len() < run.limit {
            let Some((_, slot)) = run.buckets[bucket_index].heap.pop() else {
                return;
            };
            if run.state[slot as usize] != STATE_HEAP {
                continue;
            }
            match self.fits(run, slot) {
                Ok(()) => {
                    run.state[slot as usize] = STATE_WINDOW;
                    let entry = self.window_entry(run, slot);
                    run.buckets[bucket_index].window.push(entry);
                }
                Err(reason) => {
                    run.metrics.exhausted[reason as usize] += 1;
                    run.state[slot as usize] = STATE_DROPPED;
                }
            }
        }
    }

    /// After a placement on `slot`: update counters, and drop the node from
    /// its window if it cannot take another allocation of the group.
    fn after_place(&mut self, run: &mut GroupRun, slot: u32) {
        let bucket_index = run.bucket_of[slot as usize];
        if bucket_index != NONE {
            let bucket = &run.buckets[bucket_index as usize];
            for (spread_index, spread) in run.spreads.iter_mut().enumerate() {
                let value = bucket.spread_values[spread_index];
                if value != MISSING_VALUE {
                    spread.counts[value as usize] += 1;
                }
            }
        }
        for index in 0..run.distinct_values.len() {
            let value = run.distinct_values[index][slot as usize];
            if value != MISSING_VALUE {
                run.distinct_counts[index][value as usize] += 1;
            }
        }
        if run.state[slot as usize] != STATE_WINDOW {
            return;
        }
        match self.fits(run, slot) {
            Err(reason) => {
                run.metrics.exhausted[reason as usize] += 1;
                run.state[slot as usize] = STATE_DROPPED;
                let bucket = &mut run.buckets[bucket_index as usize];
                if let Some(position) = bucket.window.iter().position(|entry| entry.slot == slot) {
                    bucket.window.swap_remove(position);
                }
            }
            Ok(()) => {
                // The node's key changed with its usage. If it fell below
                // the best node still waiting in the heap (it would now
                // strand capacity), it goes back to the heap, so the window
                // keeps holding the best-fitting nodes.
                let pack = self.pack_of(run.group, slot);
                let collision = self.collision_of(run, slot);
                let key = heap_key(pack, self.nodes[slot as usize].tie);
                let bucket = &mut run.buckets[bucket_index as usize];
                let Some(position) = bucket.window.iter().position(|entry| entry.slot == slot) else {
                    return;
                };
                if bucket.heap.peek().is_some_and(|(top, _)| *top > key) {
                    bucket.window.swap_remove(position);
                    bucket.heap.push((key, slot));
                    run.state[slot as usize] = STATE_HEAP;
                } else {
                    let entry = &mut bucket.window[position];
                    entry.pack = pack;
                    entry.collision = collision;
                    entry.plain = plain_score(pack, collision);
                }
            }
        }
    }

    /// A node gained room (a destructive update stopped an allocation on
    /// it): make it a candidate again if it had been dropped.
    pub(crate) fn reconsider(&mut self, run: &mut GroupRun, slot: u32) {
        let bucket_index = run.bucket_of[slot as usize];
        if bucket_index == NONE || run.state[slot as usize] != STATE_DROPPED {
            return;
        }
        let score = self.pack_of(run.group, slot);
        run.buckets[bucket_index as usize]
            .heap
            .push((heap_key(score, self.nodes[slot as usize].tie), slot));
        run.state[slot as usize] = STATE_HEAP;
    }

    /// A node lost room again (an undone stop): it must leave the window if
    /// it no longer fits.
    pub(crate) fn recheck(&mut self, run: &mut GroupRun, slot: u32) {
        if run.state[slot as usize] == STATE_WINDOW && self.fits(run, slot).is_err() {
            run.state[slot as usize] = STATE_DROPPED;
            let bucket_index = run.bucket_of[slot as usize] as usize;
            let bucket = &mut run.buckets[bucket_index];
            if let Some(position) = bucket.window.iter().position(|entry| entry.slot == slot) {
                bucket.window.swap_remove(position);
            }
        }
    }

    /// Whether a fixed node (system jobs) can take the group now; on
    /// failure records why in the run's metrics.
    pub(crate) fn check_fixed(&mut self, run: &mut GroupRun, slot: u32) -> bool {
        match self.static_verdict(run.group, slot) {
            Err(reason) => {
                run.metrics.filtered_by_reason[reason as usize] += 1;
                false
            }
            Ok(()) => match self.fits(run, slot) {
                Ok(()) => true,
                Err(reason) => {
                    run.metrics.exhausted[reason as usize] += 1;
                    false
                }
            },
        }
    }

    /// Whether the static checks pass for a group on a node.
    pub(crate) fn statically_feasible(&mut self, group: usize, slot: u32) -> bool {
        self.static_verdict(group, slot).is_ok()
    }

    /// Per-group template for new allocations: everything but ID, name,
    /// node and assigned ports/cores/devices.
    fn template(&mut self, group: usize) -> &Allocation {
        if self.templates[group].is_none() {
            let job = self.job;
            let task_group = &job.task_groups[group];
            let mut tasks = types::TaskResources::new();
            for task in &task_group.tasks {
                tasks.insert(
                    task.name.clone(),
                    AllocatedTaskResources {
                        cpu_mhz: if task.resources.cores > 0 {
                            0
                        } else {
                            task.resources.cpu
                        },
                        reserved_cores: Vec::new(),
                        memory_mb: task.resources.memory_mb,
                        memory_max_mb: task.resources.memory_max_mb,
                        devices: BTreeMap::new(),
                    },
                );
            }
            let networks: Vec<NetworkResource> = task_group
                .networks
                .iter()
                .chain(task_group.tasks.iter().flat_map(|task| task.resources.networks.iter()))
                .cloned()
                .collect();
            let eval = self.ctx.eval;
            self.templates[group] = Some(Allocation {
                namespace: job.namespace.clone(),
                eval_id: eval.id.clone(),
                job_id: job.id.clone(),
                job_version: job.version,
                task_group: task_group.name.clone(),
                allocated_resources: AllocatedResources {
                    tasks,
                    disk_mb: task_group.ephemeral_disk.size_mb,
                    networks,
                },
                desired_status: AllocDesiredStatus::Run,
                client_status: AllocClientStatus::Pending,
                deployment_id: self.deployment_id.clone(),
                create_time: self.ctx.now,
                modify_time: self.ctx.now,
                ..Allocation::default()
            });
        }
        self.templates[group].as_ref().expect("template was just built")
    }

    /// Builds the allocation for a placement on `slot` and charges it to the
    /// node. `run` is updated so later placements see it.
    pub(crate) fn place(
        &mut self,
        run: &mut GroupRun,
        slot: u32,
        request: &PlaceRequest<'v>,
        alloc_id: String,
        preempted: Vec<String>,
    ) -> Allocation {
        let group = request.group;
        let mut alloc = self.template(group).clone();
        alloc.id = alloc_id;
        alloc.name = alloc_name(&self.job.id, &self.job.task_groups[group].name, request.index);
        let local_node = self.nodes[slot as usize].node;
        alloc.node_id = local_node.id.clone();
        alloc.node_name = local_node.name.clone();
        alloc.preempted_allocations = preempted;
        if self.specs[group].needs_detail {
            self.load_detail(slot);
            self.assign_detail(group, slot, &mut alloc);
        }
        let (_, mhz_per_core) = self.shape(slot);
        for task in &self.job.task_groups[group].tasks {
            if task.resources.cores > 0
                && let Some(resources) = alloc.allocated_resources.tasks.get_mut(&task.name)
            {
                resources.cpu_mhz = task.resources.cores.saturating_mul(mhz_per_core);
            }
        }
        if let Some(previous) = request.previous {
            alloc.previous_allocation = previous.id.clone();
            if let PlaceKind::Reschedule { delay } = request.kind {
                let mut tracker = previous
                    .reschedule_tracker
                    .clone()
                    .unwrap_or_else(RescheduleTracker::default);
                tracker.events.push(RescheduleEvent {
                    reschedule_time: self.ctx.now,
                    prev_alloc_id: previous.id.clone(),
                    prev_node_id: previous.node_id.clone(),
                    delay,
                });
                alloc.reschedule_tracker = Some(tracker);
            }
        }
        if request.kind == PlaceKind::Canary {
            alloc.deployment_status = Some(types::AllocDeploymentStatus {
                canary: true,
                ..types::AllocDeploymentStatus::default()
            });
        }
        alloc.metrics = Some(AllocMetric {
            nodes_evaluated: run.metrics.evaluated,
            nodes_filtered: run.metrics.filtered_by_reason.iter().sum(),
            nodes_in_pool: self.nodes.len() as u64,
            nodes_exhausted: run.metrics.exhausted.iter().sum(),
            ..AllocMetric::default()
        });
        self.charge(run, group, slot);
        alloc
    }

    /// Charges one placement of `group` to the node on `slot`.
    fn charge(&mut self, run: &mut GroupRun, group: usize, slot: u32) {
        let ask = self.specs[group].ask;
        let (_, mhz_per_core) = self.shape(slot);
        let local = &mut self.nodes[slot as usize];
        local.used.add(&Res {
            cpu: ask.cpu_need(mhz_per_core),
            ..ask
        });
        local.job_allocs += 1;
        self.ensure_group_counts(group);
        self.group_counts[group][slot as usize] += 1;
        self.after_place(run, slot);
    }

    /// Holds a new allocation on `slot` for the plan.
    pub(crate) fn stage(&mut self, slot: u32, alloc: Allocation) {
        self.staged.entry(slot).or_default().push(alloc);
    }

    /// Moves the staged allocations into the plan, after anything the plan
    /// already holds for their nodes, in placement order per node.
    pub(crate) fn flush_into(&mut self, plan: &mut Plan) {
        for (slot, allocs) in self.staged.drain() {
            let node_id = &self.nodes[slot as usize].node.id;
            match plan.node_allocation.get_mut(node_id) {
                Some(list) => list.extend(allocs),
                None => {
                    plan.node_allocation.insert(node_id.clone(), allocs);
                }
            }
        }
    }

    /// Picks dynamic ports, cores and device instances for a new allocation
    /// and records them in the node's detail.
    fn assign_detail(&mut self, group: usize, slot: u32, alloc: &mut Allocation) {
        let seed = self.ctx.seed;
        let counter = self.port_counter;
        self.port_counter += 1;
        let spec = &self.specs[group];
        let task_group = spec.group;
        let node = self.nodes[slot as usize].node;
        let Some(detail) = self.details.get_mut(&slot) else {
            return;
        };
        for port in &spec.static_ports {
            detail.add_port(*port);
        }
        let (low, high) = dynamic_range(node);
        let span = u64::from(high - low) + 1;
        let mut pick = mix64(seed, counter ^ 0xD1CE) % span;
        for network in &mut alloc.allocated_resources.networks {
            for port in &mut network.dynamic_ports {
                // Start at a seeded offset and walk the range: different
                // allocations rarely probe the same ports.
                let mut tries = 0;
                while tries < span {
                    let candidate = low + (pick % span) as u16;
                    pick += 1;
                    tries += 1;
                    if !detail.port_used(candidate) {
                        port.value = candidate;
                        detail.add_port(candidate);
                        break;
                    }
                }
            }
        }
        for task in &task_group.tasks {
            let Some(resources) = alloc.allocated_resources.tasks.get_mut(&task.name) else {
                continue;
            };
            if task.resources.cores > 0 {
                let mut chosen = Vec::new();
                for core in 0..node.resources.cores {
                    if chosen.len() as i64 == task.resources.cores {
                        break;
                    }
                    let core = core as u16;
                    if let Err(position) = detail.cores.binary_search(&core) {
                        detail.cores.insert(position, core);
                        chosen.push(core);
                    }
                }
                resources.reserved_cores = chosen;
            }
        }
        for device_ask in &spec.devices {
            let task_name = &task_group.tasks[device_ask.task].name;
            let mut chosen = Vec::new();
            for device in node
                .resources
                .devices
                .iter()
                .filter(|device| device_matches(device, device_ask))
            {
                for instance in &device.instance_ids {
                    if chosen.len() as u64 == device_ask.count {
                        break;
                    }
                    if !detail.devices.contains(instance) {
                        detail.devices.push(instance.clone());
                        chosen.push(instance.clone());
                    }
                }
            }
            if let Some(resources) = alloc.allocated_resources.tasks.get_mut(task_name) {
                resources
                    .devices
                    .entry(device_ask.name.clone())
                    .or_default()
                    .extend(chosen);
            }
        }
    }

    /// The failure metric for a group, as `failed_tg_allocs` reports it.
    pub(crate) fn failure_metric(&self, run: &GroupRun) -> AllocMetric {
        let spec = &self.specs[run.group];
        let mut metric = AllocMetric {
            nodes_evaluated: run.metrics.evaluated,
            nodes_in_pool: self.nodes.len() as u64,
            coalesced_failures: run.metrics.coalesced,
            ..AllocMetric::default()
        };
        for local in &self.nodes {
            *metric.nodes_available.entry(local.node.datacenter.clone()).or_default() += 1;
        }
        for (reason, count) in run.metrics.filtered_by_reason.iter().enumerate() {
            if *count > 0 {
                metric.nodes_filtered += count;
                *metric
                    .constraint_filtered
                    .entry(spec.reasons[reason].clone())
                    .or_default() += count;
            }
        }
        for (dimension, count) in Exhausted::ALL.iter().zip(run.metrics.exhausted.iter()) {
            if *count == 0 {
                continue;
            }
            if dimension.is_filter() {
                metric.nodes_filtered += count;
                *metric
                    .constraint_filtered
                    .entry(dimension.name().to_string())
                    .or_default() += count;
            } else {
                metric.nodes_exhausted += count;
                *metric
                    .dimension_exhausted
                    .entry(dimension.name().to_string())
                    .or_default() += count;
            }
        }
        for (slot, local) in self.nodes.iter().enumerate() {
            let class_name = if local.node.node_class.is_empty() {
                "<none>"
            } else {
                local.node.node_class.as_str()
            };
            match run.state.get(slot) {
                Some(&STATE_FILTERED) => *metric.class_filtered.entry(class_name.to_string()).or_default() += 1,
                Some(&STATE_DROPPED) => *metric.class_exhausted.entry(class_name.to_string()).or_default() += 1,
                _ => {}
            }
        }
        metric
    }

    pub(crate) fn note_coalesced(&self, run: &mut GroupRun) {
        run.metrics.coalesced += 1;
    }

    /// [`State::note_coalesced`] for `count` placements at once.
    pub(crate) fn note_coalesced_many(&self, run: &mut GroupRun, count: u64) {
        run.metrics.coalesced = run.metrics.coalesced.saturating_add(count);
    }

    /// Computed classes seen, with whether the group was feasible there.
    pub(crate) fn class_eligibility(&self, group: usize) -> BTreeMap<String, bool> {
        let mut eligibility = BTreeMap::new();
        for (class, verdict) in self.class_verdicts[group].iter().enumerate() {
            if *verdict != 0 {
                eligibility.insert(self.class_names[class].computed_class.clone(), *verdict == 1);
            }
        }
        eligibility
    }

    fn job_priority(&mut self, namespace: &'v str, job_id: &'v str) -> i32 {
        if let Some(priority) = self.job_priorities.get(&(namespace, job_id)) {
            return *priority;
        }
        let priority = self
            .ctx
            .view
            .job(namespace, job_id)
            .map(|job| job.priority)
            .unwrap_or(types::DEFAULT_JOB_PRIORITY);
        self.job_priorities.insert((namespace, job_id), priority);
        priority
    }

    /// Finds the node where evicting the fewest lower-priority allocations
    /// (priority at least 10 below the job's) makes the group fit, and the
    /// allocations to evict. Only nodes that pass the static checks are
    /// considered; `fixed` restricts the search to one node (system jobs).
    pub(crate) fn find_preemption(&mut self, run: &GroupRun, fixed: Option<u32>) -> Option<(u32, Vec<&'v Allocation>)> {
        if !self.ctx.config.preemption_enabled(self.job.job_type) {
            return None;
        }
        let max_victim_priority = self.job.priority - 10;
        let spec_ask = self.specs[run.group].ask;
        let static_ports = self.specs[run.group].static_ports.clone();
        let mut best: Option<(PreemptRank, u32, Vec<&'v Allocation>)> = None;
        let slots: Vec<u32> = match fixed {
            Some(slot) => vec![slot],
            None => (0..self.nodes.len() as u32)
                .filter(|slot| run.state[*slot as usize] == STATE_DROPPED)
                .collect(),
        };
        for slot in slots {
            let local = &self.nodes[slot as usize];
            let (cap, mhz_per_core) = self.shape(slot);
            let need_cpu = spec_ask.cpu.saturating_add(spec_ask.cores.saturating_mul(mhz_per_core));
            let mut need = Res {
                cpu: local.used.cpu.saturating_add(need_cpu).saturating_sub(cap.cpu),
                mem: local.used.mem.saturating_add(spec_ask.mem).saturating_sub(cap.mem),
                disk: local.used.disk.saturating_add(spec_ask.disk).saturating_sub(cap.disk),
                cores: local
                    .used
                    .cores
                    .saturating_add(spec_ask.cores)
                    .saturating_sub(cap.cores),
            };
            let node_id: &'v str = local.node.id.as_str();
            let node_reserved: Vec<u16> = local.node.reserved_ports.clone();
            if static_ports.iter().any(|port| node_reserved.contains(port)) {
                continue;
            }
            let mut candidates: Vec<(&'v Allocation, i32, Res)> = Vec::new();
            let mut forced: Vec<&'v Allocation> = Vec::new();
            let mut blocked = false;
            for alloc in self.ctx.view.allocs_by_node(node_id) {
                if !alloc.holds_resources() || self.is_freed(&alloc.id) {
                    continue;
                }
                let same_job = alloc.job_id == self.job.id && alloc.namespace == self.job.namespace;
                let priority = self.job_priority(alloc.namespace.as_str(), alloc.job_id.as_str());
                let preemptible = !same_job && priority <= max_victim_priority;
                let holds_wanted_port = alloc
                    .allocated_resources
                    .host_ports()
                    .any(|port| static_ports.contains(&port));
                if holds_wanted_port {
                    if preemptible {
                        forced.push(alloc);
                    } else {
                        blocked = true;
                    }
                    continue;
                }
                if preemptible {
                    candidates.push((
                        alloc,
                        priority,
                        Res::from_comparable(&alloc.allocated_resources.comparable()),
                    ));
                }
            }
            if blocked {
                continue;
            }
            for alloc in &forced {
                need.sub(&Res::from_comparable(&alloc.allocated_resources.comparable()));
            }
            let covered = |need: &Res| need.cpu <= 0 && need.mem <= 0 && need.disk <= 0 && need.cores <= 0;
            // Lowest priority first; among equals, the allocation covering
            // the largest share of what is still missing.
            let usefulness = |need: &Res, res: &Res| -> f64 {
                let mut total = 0.0;
                for (missing, have) in [
                    (need.cpu, res.cpu),
                    (need.mem, res.mem),
                    (need.disk, res.disk),
                    (need.cores, res.cores),
                ] {
                    if missing > 0 {
                        total += have.min(missing) as f64 / missing as f64;
                    }
                }
                total
            };
            let mut chosen: Vec<(&'v Allocation, i32, Res)> = Vec::new();
            let mut remaining = candidates;
            while !covered(&need) && !remaining.is_empty() {
                let mut pick = 0;
                for index in 1..remaining.len() {
                    let (_, priority, res) = &remaining[index];
                    let (_, best_priority, best_res) = &remaining[pick];
                    let better = *priority < *best_priority
                        || (*priority == *best_priority && usefulness(&need, res) > usefulness(&need, best_res));
                    if better {
                        pick = index;
                    }
                }
                let entry = remaining.swap_remove(pick);
                need.sub(&entry.2);
                chosen.push(entry);
            }
            if !covered(&need) {
                continue;
            }
            // Drop any victim the others make unnecessary, highest priority first.
            let mut index = chosen.len();
            while index > 0 {
                index -= 1;
                let mut without = need;
                without.add(&chosen[index].2);
                if covered(&without) {
                    need = without;
                    chosen.remove(index);
                }
            }
            let victims: Vec<&'v Allocation> = forced
                .iter()
                .copied()
                .chain(chosen.iter().map(|entry| entry.0))
                .collect();
            // After eviction the ports, cores and devices must work out too.
            let max_priority = chosen.iter().map(|entry| entry.1).max().unwrap_or(0);
            let evicted: i64 = chosen.iter().map(|entry| entry.2.cpu + entry.2.mem).sum();
            let rank = (
                victims.len(),
                max_priority,
                evicted,
                u32::MAX - self.nodes[slot as usize].tie,
            );
            if best.as_ref().is_none_or(|(best_rank, _, _)| rank < *best_rank) {
                best = Some((rank, slot, victims));
            }
        }
        best.map(|(_, slot, victims)| (slot, victims))
    }

    /// Evicts the chosen allocations into the plan, frees their resources,
    /// and checks that the group now fits (ports and devices included).
    pub(crate) fn apply_preemption(
        &mut self,
        run: &mut GroupRun,
        slot: u32,
        victims: &[&'v Allocation],
        preemptor_id: &str,
        plan: &mut Plan,
    ) -> bool {
        for victim in victims {
            self.free_alloc(victim);
        }
        if self.fits(run, slot).is_err() {
            for victim in victims {
                self.unfree_alloc(victim);
            }
            return false;
        }
        for victim in victims {
            plan.append_preemption(victim, preemptor_id);
            let job_type = self
                .ctx
                .view
                .job(&victim.namespace, &victim.job_id)
                .map(|job| job.job_type);
            let priority = self.job_priority(victim.namespace.as_str(), victim.job_id.as_str());
            self.preempted_jobs
                .insert((victim.namespace.clone(), victim.job_id.clone()), (priority, job_type));
        }
        true
    }
}

/// How a preemption choice ranks: fewer victims, then lower victim
/// priority, then less evicted, then the shuffle tie-break.
type PreemptRank = (usize, i32, i64, u32);

/// [`State::start_group`]'s pass for a group without spread, affinity or
/// per-node checks: the class verdict, then resources, then the heap key,
/// for every local node, filling the run's states and metrics. Returns how
/// many nodes passed the static checks.
fn scan_plain(
    nodes: &[LocalNode<'_>],
    entries: &[crate::NodeEntry],
    verdicts: &mut [u16],
    spec: &GroupSpec<'_>,
    run: &mut GroupRun,
    heap: &mut Vec<(u64, u32)>,
    pack: Packing,
) -> usize {
    let ask = spec.ask;
    let mut feasible = 0;
    let GroupRun {
        state,
        bucket_of,
        metrics,
        ..
    } = run;
    let rows = nodes.iter().zip(state.iter_mut()).zip(bucket_of.iter_mut());
    for (slot, ((local, state), bucket_of)) in rows.enumerate() {
        let verdict = match verdicts.get_mut(local.class as usize) {
            Some(cached) => {
                if *cached == 0 {
                    *cached = match spec.check_class(local.node) {
                        Ok(()) => 1,
                        Err(reason) => 2 + reason,
                    };
                }
                *cached
            }
            // `NO_CLASS`: checked on its own.
            None => match spec.check_class(local.node) {
                Ok(()) => 1,
                Err(reason) => 2 + reason,
            },
        };
        if verdict != 1 {
            if let Some(count) = metrics.filtered_by_reason.get_mut(usize::from(verdict - 2)) {
                *count += 1;
            }
            *state = STATE_FILTERED;
            continue;
        }
        feasible += 1;
        *bucket_of = 0;
        let (cap, mhz_per_core) = match entries.get(local.position as usize) {
            Some(entry) => (Res::from_comparable(&entry.capacity), entry.mhz_per_core),
            None => (Res::default(), 0),
        };
        if let Some(dimension) = resource_exhausted(&local.used, &cap, mhz_per_core, &ask) {
            metrics.exhausted[dimension as usize] += 1;
            *state = STATE_DROPPED;
            continue;
        }
        let score = pack_score(pack, &local.used, ask.cpu_need(mhz_per_core), ask.mem, &cap);
        heap.push((heap_key(score, local.tie), slot as u32));
        *state = STATE_HEAP;
    }
    feasible
}

/// A window entry's score without spread, affinity or penalty: what
/// `State::select`'s general formula gives with a bucket sum of 0, no
/// bucket count and no penalty (`(0 + pack - collision) / (0 + 2)`).
#[inline]
fn plain_score(pack: f64, collision: f64) -> f64 {
    (pack - collision) / 2.0
}

/// A store class's code before its first node in [`State::build`].
const UNSEEN: u32 = u32::MAX - 1;

/// What [`State::build`] learns per store class while it scans the index.
struct ClassCodes<'v> {
    /// Per store class: the local class, with [`REJECTED`] set when the
    /// class lies outside the job's datacenters and pool; `NO_CLASS` for
    /// nodes without a computed class (checked one by one); [`UNSEEN`]
    /// before the class's first node. One lookup per node.
    local_class: Vec<u32>,
    /// Per store class: 0 unknown, 1 in the job's datacenters and pool, 2
    /// not, 3 no computed class (shared with the verdict cache).
    placement_verdicts: Vec<u16>,
    /// Per local class: in the job's datacenters and pool.
    class_ok: Vec<bool>,
    /// Per local class: its first node.
    class_names: Vec<&'v Node>,
    /// Per local class: the store's class number.
    index_class: Vec<u32>,
}

/// [`State::build`]'s pass over a store's node index: keeps schedulable
/// nodes in the job's datacenters and pool, in the index's order, and
/// records the local slot of nodes named in `slot_of`.
fn scan_index<'v>(
    index: crate::NodeIndex<'v>,
    job: &Job,
    seed: u64,
    codes: &mut ClassCodes<'v>,
    slot_of: &mut FxHashMap<&'v str, u32>,
    nodes: &mut Vec<LocalNode<'v>>,
) {
    nodes.reserve(index.entries.len());
    let track_slots = !slot_of.is_empty();
    let rows = index.entries.iter().zip(index.nodes).zip(index.used);
    for (position, ((entry, node), used)) in rows.enumerate() {
        if !entry.schedulable {
            continue;
        }
        let mut code = codes.local_class.get(entry.class as usize).copied().unwrap_or(NO_CLASS);
        if code == UNSEEN {
            code = first_of_class(
                job,
                node,
                entry.class,
                &mut codes.placement_verdicts,
                &mut codes.class_ok,
                &mut codes.class_names,
                &mut codes.index_class,
            );
            codes.local_class[entry.class as usize] = code;
        }
        let class = if code == NO_CLASS {
            if !in_datacenters_and_pool(job, node) {
                continue;
            }
            NO_CLASS
        } else if code & REJECTED != 0 {
            continue;
        } else {
            code
        };
        if track_slots && let Some(slot) = slot_of.get_mut(node.id.as_str()) {
            *slot = nodes.len() as u32;
        }
        nodes.push(LocalNode {
            node,
            position: position as u32,
            class,
            used: Res::from_comparable(used),
            job_allocs: 0,
            tie: mix64(seed, position as u64) as u32,
        });
    }
}

/// Set on a store class's local number when the class lies outside the
/// job's datacenters and pool (see [`State::build`]).
const REJECTED: u32 = 1 << 31;

/// The first node of a store class in [`State::build`]: decides (or reads
/// from the verdict cache) whether the class lies in the job's datacenters
/// and pool, gives it a local number, and returns the class's code: the
/// local number, with [`REJECTED`] when outside, or `NO_CLASS` for nodes
/// without a computed class. Out of line: it runs once per class, and
/// keeping it out of the per-node loop keeps that loop in registers.
#[cold]
#[inline(never)]
fn first_of_class<'v>(
    job: &Job,
    node: &'v Node,
    store_class: u32,
    placement_verdicts: &mut [u16],
    class_ok: &mut Vec<bool>,
    class_names: &mut Vec<&'v Node>,
    index_class: &mut Vec<u32>,
) -> u32 {
    let Some(verdict) = placement_verdicts.get_mut(store_class as usize) else {
        return NO_CLASS;
    };
    if *verdict == 0 {
        *verdict = if node.computed_class.is_empty() {
            3
        } else if in_datacenters_and_pool(job, node) {
            1
        } else {
            2
        };
    }
    if *verdict == 3 {
        return NO_CLASS;
    }
    class_ok.push(*verdict == 1);
    class_names.push(node);
    index_class.push(store_class);
    let local = class_names.len() as u32 - 1;
    if *verdict == 1 { local } else { local | REJECTED }
}

/// The first dimension in which `ask` does not fit on a node with `used`
/// of `cap` (cores asked are charged as `mhz_per_core` MHz each).
#[inline]
fn resource_exhausted(used: &Res, cap: &Res, mhz_per_core: i64, ask: &Res) -> Option<Exhausted> {
    // Checked: a sum that overflows does not fit, so no ask, however
    // large, wraps into a fit.
    let exceeds = |used: i64, ask: i64, cap: i64| used.checked_add(ask).is_none_or(|total| total > cap);
    let need_cpu = ask
        .cores
        .checked_mul(mhz_per_core)
        .and_then(|cores| cores.checked_add(ask.cpu));
    if need_cpu.is_none_or(|need_cpu| exceeds(used.cpu, need_cpu, cap.cpu)) {
        Some(Exhausted::Cpu)
    } else if exceeds(used.mem, ask.mem, cap.mem) {
        Some(Exhausted::Memory)
    } else if exceeds(used.disk, ask.disk, cap.disk) {
        Some(Exhausted::Disk)
    } else if exceeds(used.cores, ask.cores, cap.cores) {
        Some(Exhausted::Cores)
    } else {
        None
    }
}

fn affinity_score(affinities: &[(Compiled, f64)], node: &Node) -> f64 {
    let total: f64 = affinities.iter().map(|(_, weight)| weight.abs()).sum();
    if total == 0.0 {
        return 0.0;
    }
    let matched: f64 = affinities
        .iter()
        .filter(|(affinity, _)| affinity.check_node(node))
        .map(|(_, weight)| *weight)
        .sum();
    matched / total
}

/// The node's dynamic port range, with Nomad's defaults when unset.
pub(crate) fn dynamic_range(node: &Node) -> (u16, u16) {
    let low = if node.resources.min_dynamic_port == 0 {
        20000
    } else {
        node.resources.min_dynamic_port
    };
    let high = if node.resources.max_dynamic_port == 0 {
        32000
    } else {
        node.resources.max_dynamic_port
    };
    if high < low { (low, low) } else { (low, high) }
}

fn remove_detail(detail: &mut Detail, alloc: &Allocation) {
    for port in alloc.allocated_resources.host_ports() {
        detail.remove_port(port);
    }
    for task in alloc.allocated_resources.tasks.values() {
        for core in &task.reserved_cores {
            if let Ok(position) = detail.cores.binary_search(core) {
                detail.cores.remove(position);
            }
        }
        for instance in task.devices.values().flatten() {
            if let Some(position) = detail.devices.iter().position(|used| used == instance) {
                detail.devices.swap_remove(position);
            }
        }
    }
}

fn add_detail(detail: &mut Detail, resources: &AllocatedResources) {
    for port in resources.host_ports() {
        detail.add_port(port);
    }
    for task in resources.tasks.values() {
        for core in &task.reserved_cores {
            if let Err(position) = detail.cores.binary_search(core) {
                detail.cores.insert(position, *core);
            }
        }
        detail.devices.extend(task.devices.values().flatten().cloned());
    }
}

/// `Allocation::make_name` (`job.group[index]`) without `format!`, in a
/// buffer of the exact size.
pub(crate) fn alloc_name(job_id: &str, group: &str, index: u32) -> String {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    let mut rest = index;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut name = String::with_capacity(job_id.len() + group.len() + 3 + digits.len() - start);
    name.push_str(job_id);
    name.push('.');
    name.push_str(group);
    name.push('[');
    for digit in &digits[start..] {
        name.push(char::from(*digit));
    }
    name.push(']');
    name
}

/// A new evaluation record with the fields every created evaluation shares.
pub(crate) fn new_eval(
    template: &Evaluation,
    job: Option<&Job>,
    id: String,
    status: EvalStatus,
    triggered_by: &str,
    now: UnixNanos,
) -> Evaluation {
    Evaluation {
        id,
        namespace: template.namespace.clone(),
        priority: job.map(|job| job.priority).unwrap_or(template.priority),
        job_type: job.map(|job| job.job_type).or(template.job_type),
        triggered_by: triggered_by.to_string(),
        job_id: template.job_id.clone(),
        job_modify_index: job.map(|job| job.job_modify_index).unwrap_or(template.job_modify_index),
        status,
        previous_eval: template.id.clone(),
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    }
}

#[cfg(test)]
mod tests {
    use super::{Packing, Res, pack_score};

    fn res(cpu: i64, mem: i64) -> Res {
        Res {
            cpu,
            mem,
            ..Res::default()
        }
    }

    /// The cached plain score is bit for bit what the general formula in
    /// `select` computes without spread, affinity or penalty.
    #[test]
    fn plain_score_is_the_general_formula_with_nothing_else() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        for _ in 0..100_000 {
            let pack: f64 = rng.gen_range(0.0..1.0);
            let collision: f64 = if rng.gen_bool(0.5) {
                0.0
            } else {
                f64::from(rng.gen_range(1u32..50) + 1) / f64::from(rng.gen_range(1u32..2000))
            };
            let (bucket_sum, bucket_count) = (0.0, 0.0);
            let general = (bucket_sum + pack - collision) / (bucket_count + 2.0);
            assert_eq!(super::plain_score(pack, collision).to_bits(), general.to_bits());
        }
    }

    /// Asks so large that a plain sum wraps negative: two tasks of 2^62 MiB
    /// used to add up to a negative ask that fit every node.
    #[test]
    fn oversized_asks_saturate_and_never_fit() {
        use super::{Exhausted, GroupSpec, resource_exhausted};
        let mut job = types::Job {
            id: "huge".into(),
            ..types::Job::default()
        };
        let task = |name: &str| types::Task {
            name: name.into(),
            resources: types::Resources {
                memory_mb: 1 << 62,
                cpu: i64::MAX,
                ..types::Resources::default()
            },
            ..types::Task::default()
        };
        job.task_groups.push(types::TaskGroup {
            name: "g".into(),
            tasks: vec![task("a"), task("b")],
            ..types::TaskGroup::default()
        });
        let spec = GroupSpec::compile(&job, &job.task_groups[0]);
        assert_eq!(spec.ask.mem, i64::MAX);
        assert_eq!(spec.ask.cpu, i64::MAX);
        // Negative amounts ask for nothing; they never free capacity.
        let mut negative = job.clone();
        negative.task_groups[0].tasks[0].resources = types::Resources {
            cpu: -4000,
            memory_mb: -1 << 40,
            ..types::Resources::default()
        };
        negative.task_groups[0].tasks.truncate(1);
        negative.task_groups[0].ephemeral_disk.size_mb = -5;
        let spec_negative = GroupSpec::compile(&negative, &negative.task_groups[0]);
        assert_eq!(
            (spec_negative.ask.cpu, spec_negative.ask.mem, spec_negative.ask.disk),
            (0, 0, 0)
        );
        let cap = Res {
            cpu: 4000,
            mem: 8192,
            disk: 10_000,
            cores: 4,
        };
        let used = res(100, 100);
        assert_eq!(resource_exhausted(&used, &cap, 1000, &spec.ask), Some(Exhausted::Cpu));
        let memory_only = Res { cpu: 0, ..spec.ask };
        assert_eq!(
            resource_exhausted(&used, &cap, 1000, &memory_only),
            Some(Exhausted::Memory)
        );
        let cores = Res {
            cpu: 0,
            mem: 0,
            cores: i64::MAX,
            ..Res::default()
        };
        assert_eq!(resource_exhausted(&used, &cap, 1000, &cores), Some(Exhausted::Cpu));
        let mut usage = used;
        usage.add(&spec.ask);
        assert_eq!((usage.cpu, usage.mem), (i64::MAX, i64::MAX));
        assert!(
            pack_score(
                Packing::from_totals(&cap, &usage, &spec.ask),
                &usage,
                i64::MAX,
                i64::MAX,
                &cap
            )
            .is_finite()
        );
    }

    #[test]
    fn packing_model_picks_the_binding_dimension() {
        let cap = res(100_000, 100_000);
        let pack = Packing::from_totals(&cap, &res(20_000, 60_000), &res(0, 0));
        assert!(pack.mem_binds);
        assert!((pack.reserve - 20_000.0 / 60_000.0).abs() < 1e-9);
        let pack = Packing::from_totals(&cap, &res(0, 0), &res(5_000, 1_000));
        assert!(!pack.mem_binds, "an empty cluster binds on what the job asks most");
    }

    #[test]
    fn pack_score_is_best_fit_in_the_binding_dimension() {
        let pack = Packing {
            mem_binds: true,
            reserve: 0.25,
            spread: false,
        };
        let cap = res(10_000, 16_000);
        let fuller = pack_score(pack, &res(2_000, 12_000), 100, 1_000, &cap);
        let emptier = pack_score(pack, &res(2_000, 4_000), 100, 1_000, &cap);
        assert!(fuller > emptier);
        assert!((0.5..=1.0).contains(&fuller) && (0.5..=1.0).contains(&emptier));
    }

    #[test]
    fn pack_score_penalises_only_asks_that_strand_the_binding_dimension() {
        let pack = Packing {
            mem_binds: true,
            reserve: 0.5,
            spread: false,
        };
        let cap = res(10_000, 16_000);
        // Cpu nearly gone while half the memory is free: a cpu-heavy ask
        // would strand that memory…
        let used = res(8_500, 8_000);
        assert!(pack_score(pack, &used, 1_000, 200, &cap) < 0.5);
        // …a memory-heavy ask helps and keeps its best-fit score.
        assert!(pack_score(pack, &used, 100, 2_000, &cap) > 0.5);
        // With cpu to spare, the cpu-heavy ask is fine too.
        assert!(pack_score(pack, &res(1_000, 8_000), 1_000, 200, &cap) > 0.5);
    }

    #[test]
    fn alloc_name_matches_types() {
        for (job, group, index) in [
            ("web", "api", 0),
            ("job-0001", "app", 999),
            ("a", "b", u32::MAX),
            ("", "", 10),
        ] {
            assert_eq!(
                super::alloc_name(job, group, index),
                types::Allocation::make_name(job, group, index)
            );
        }
    }
}

#[cfg(test)]
mod index_tests {
    use crate::testing::MemCluster;
    use crate::{ClusterView, NodeEntry, NodeIndex};
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use types::{Allocation, ComparableResources, EvalStatus, Evaluation, Job, Node};

    /// A store whose node index numbers every class out of range.
    struct OutOfRangeClasses<'a> {
        inner: &'a MemCluster,
        entries: Vec<NodeEntry>,
    }

    impl ClusterView for OutOfRangeClasses<'_> {
        fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
            self.inner.nodes()
        }
        fn node(&self, id: &str) -> Option<&Node> {
            self.inner.node(id)
        }
        fn job(&self, namespace: &str, id: &str) -> Option<&Job> {
            self.inner.job(namespace, id)
        }
        fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<&Allocation> {
            self.inner.allocs_by_job(namespace, job_id)
        }
        fn allocs_by_node(&self, node_id: &str) -> Vec<&Allocation> {
            self.inner.allocs_by_node(node_id)
        }
        fn node_resources_used(&self, node_id: &str) -> ComparableResources {
            self.inner.node_resources_used(node_id)
        }
        fn node_index(&self) -> Option<NodeIndex<'_>> {
            NodeIndex::new(self.inner.node_list(), &self.entries, self.inner.usage_list(), 1)
        }
    }

    /// Class numbers the index does not cover make their nodes be checked
    /// one by one: the plan is the one the per-node path gives, and
    /// nothing panics.
    #[test]
    fn out_of_range_classes_fall_back_to_per_node_checks() {
        let cluster = crate::bench::build_cluster(120, 5);
        let mut cluster = cluster;
        let jobs = crate::bench::build_jobs(&cluster, 12, 20, 5, 0.6);
        for job in jobs {
            cluster.upsert_job(job.clone());
            let eval = Evaluation {
                id: format!("eval-{}", job.id),
                namespace: job.namespace.clone(),
                priority: job.priority,
                job_type: Some(job.job_type),
                job_id: job.id.clone(),
                status: EvalStatus::Pending,
                ..Evaluation::default()
            };
            let entries: Vec<NodeEntry> = cluster.node_list().iter().map(|node| NodeEntry::of(node, 9)).collect();
            let odd = OutOfRangeClasses {
                inner: &cluster,
                entries,
            };
            assert!(odd.node_index().is_some(), "the index is offered");
            let mut counter = 0u64;
            let mut ids = || {
                counter += 1;
                format!("id-{counter}")
            };
            let got = crate::schedule(&odd, &eval, 0, &mut ids, &mut SmallRng::seed_from_u64(4)).expect("schedules");
            cluster.forget_verdicts();
            let mut counter = 0u64;
            let mut ids = || {
                counter += 1;
                format!("id-{counter}")
            };
            let want =
                crate::schedule(&cluster, &eval, 0, &mut ids, &mut SmallRng::seed_from_u64(4)).expect("schedules");
            assert_eq!(got, want);
            assert!(!want.node_allocation.is_empty(), "the job is placed");
            cluster.apply_plan_owned(want);
        }
    }
}

#[cfg(test)]
mod host_volume_tests {
    use super::*;
    use types::{HostVolume, Task, VolumeRequest};

    fn job_asking(read_only: bool) -> Job {
        Job {
            id: "j".into(),
            task_groups: vec![TaskGroup {
                name: "g".into(),
                volumes: [(
                    "data".to_string(),
                    VolumeRequest {
                        name: "data".into(),
                        volume_type: "host".into(),
                        source: "shared".into(),
                        read_only,
                        ..VolumeRequest::default()
                    },
                )]
                .into(),
                tasks: vec![Task {
                    name: "t".into(),
                    driver: "exec".into(),
                    ..Task::default()
                }],
                ..TaskGroup::default()
            }],
            ..Job::default()
        }
    }

    fn node_with(volume: Option<bool>) -> Node {
        let mut node = Node::default();
        node.attributes.insert("driver.exec".into(), "1".into());
        if let Some(read_only) = volume {
            node.host_volumes.insert(
                "shared".into(),
                HostVolume {
                    path: "/srv/shared".into(),
                    read_only,
                },
            );
        }
        node.compute_class();
        node
    }

    #[test]
    fn groups_go_only_where_their_host_volumes_are() {
        let writer = job_asking(false);
        let reader = job_asking(true);
        let writes = GroupSpec::compile(&writer, &writer.task_groups[0]);
        let reads = GroupSpec::compile(&reader, &reader.task_groups[0]);
        let (none, read_only, read_write) = (node_with(None), node_with(Some(true)), node_with(Some(false)));
        assert_eq!(writes.check_class(&none), Err(REASON_HOST_VOLUMES));
        assert_eq!(
            writes.reasons[REASON_HOST_VOLUMES as usize],
            "missing compatible host volumes"
        );
        // A read-only volume takes readers only.
        assert_eq!(writes.check_class(&read_only), Err(REASON_HOST_VOLUMES));
        assert_eq!(reads.check_class(&read_only), Ok(()));
        assert_eq!(writes.check_class(&read_write), Ok(()));
        // The volumes are part of the class, so the class cache keeps them apart.
        assert_ne!(none.computed_class, read_only.computed_class);
        assert_ne!(read_only.computed_class, read_write.computed_class);
    }
}
