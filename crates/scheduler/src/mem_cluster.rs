//! [`MemCluster`]: an in-memory [`ClusterView`] with plan application, for
//! the scheduler's tests and its benchmark.
//!
//! It keeps per-node usage incrementally, as a real state store should.
//! [`MemCluster::apply_plan`] verifies each node again (resources and
//! ports), as the server's plan applier does, and commits what fits.
//!
//! Allocations are stored compactly, since the benchmark keeps a million:
//! canonical UUID IDs as their bits, names as their index, the fields a
//! group's allocations share once per plan ("shapes"), rare fields boxed
//! aside, in fixed-size chunks that never move, behind an open-addressing
//! ID index. The full [`Allocation`] is rebuilt on first read and cached.

use crate::util::FxHashMap;
use crate::{ClusterView, DeploymentInfo, NodeEntry, NodeIndex, NodeUsage, SchedulerConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use types::{
    AllocClientStatus, AllocDesiredStatus, AllocMetric, AllocatedResources, AllocatedTaskResources, Allocation,
    ComparableResources, Evaluation, Job, NetworkResource, Node, Plan, RescheduleTracker, TaskState, UnixNanos,
};

type JobKey = (String, String);

/// Fixture-only marker: the job version is known but the job is gone.
pub(crate) const DEREGISTERED: &str = "fixture.deregistered";

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

use types::uuid_text;

/// The bits of canonical UUID text (exactly what [`uuid_text`] writes), or
/// `None` for any other text: uppercase, braces, wrong length or dash
/// positions. `uuid_text(parse_uuid(text)?) == text` always holds, which is
/// what lets the store keep such IDs as bits.
pub(crate) fn parse_uuid(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 || bytes[8] != b'-' || bytes[13] != b'-' || bytes[18] != b'-' || bytes[23] != b'-' {
        return None;
    }
    // The 32 digits without dashes, then eight at a time (the store parses
    // every new ID; a digit-at-a-time loop was a few percent of the run).
    let mut digits = [0u8; 32];
    digits[0..8].copy_from_slice(&bytes[0..8]);
    digits[8..12].copy_from_slice(&bytes[9..13]);
    digits[12..16].copy_from_slice(&bytes[14..18]);
    digits[16..20].copy_from_slice(&bytes[19..23]);
    digits[20..32].copy_from_slice(&bytes[24..36]);
    let mut bits = 0u128;
    for eight in digits.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(eight);
        bits = bits << 32 | u128::from(hex8(u64::from_be_bytes(word))?);
    }
    Some(bits)
}

/// Eight lowercase hex digits, the first in the high byte of `word`, as
/// their 32-bit value; `None` unless every byte is `0-9` or `a-f`.
fn hex8(word: u64) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte b below 0x80 (checked below; no carry crosses bytes then):
    // b + (0x80 - low) has its high bit set exactly when b >= low.
    let at_least = |low: u64| word.wrapping_add((0x80 - low) * ONES);
    let digit = at_least(u64::from(b'0')) & !at_least(u64::from(b'9') + 1);
    let letter = at_least(u64::from(b'a')) & !at_least(u64::from(b'f') + 1);
    if word & HIGH != 0 || (digit | letter) & HIGH != HIGH {
        return None;
    }
    // '0'-'9' have low nibble 0-9 and bit 6 clear; 'a'-'f' have low nibble
    // 1-6 and bit 6 set: + 9 gives 10-15.
    let nibbles = (word & (0x0F * ONES)) + ((word >> 6) & ONES) * 9;
    // Pairs of nibbles into bytes, bytes into 16 bits, then into 32.
    let bytes = (nibbles | nibbles >> 4) & 0x00FF_00FF_00FF_00FF;
    let halves = (bytes | bytes >> 8) & 0x0000_FFFF_0000_FFFF;
    Some((halves | halves >> 16) & 0xFFFF_FFFF)
}

/// The ID index key of a UUID ID: its two halves folded, no string hashing
/// (the map's hasher mixes the key again).
fn uuid_key(bits: u128) -> u64 {
    (bits >> 64) as u64 ^ bits as u64
}

/// The ID index key of any other ID.
fn id_hash(id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<crate::util::FxHasher>::default().hash_one(id)
}

/// The ID index key of an ID given as text, `bits` being `parse_uuid(id)`.
fn id_key(id: &str, bits: Option<u128>) -> u64 {
    match bits {
        Some(bits) => uuid_key(bits),
        None => id_hash(id),
    }
}

/// Allocation ID key → index of the allocation first stored under it:
/// open addressing with linear probing, key and index side by side in one
/// `u64`, so that a lookup and the insert after it touch one cache line of
/// a table half the size of a `HashMap<u64, u32>` (which also keeps control
/// bytes and entries apart: two cache misses per new ID once a million are
/// indexed). Keys are folded to 32 bits; IDs whose folded keys are equal
/// are told apart by the caller (`MemCluster::alloc_collisions`).
#[derive(Debug, Clone, Default)]
struct IdIndex {
    /// `key << 32 | (index + 1)`, `0` when free (zeroed memory is an empty
    /// table, which the allocator hands out without writing it). The length
    /// is zero or a power of two, at most half of it used (short probes).
    slots: Vec<u64>,
    len: usize,
}

impl IdIndex {
    /// The key as the table compares it.
    fn fold(key: u64) -> u32 {
        (key ^ key >> 32) as u32
    }

    /// The slot where the probe for a folded key starts: multiplicative
    /// hashing, whose high bits depend on every bit of the key.
    fn start(&self, key: u32) -> usize {
        let bits = self.slots.len().trailing_zeros();
        (u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    /// Probes for a folded key: `Ok(index)` where it is stored, or
    /// `Err(slot)`, the free slot that ends its probe sequence. The table
    /// must not be empty.
    fn probe(&self, key: u32) -> Result<u32, usize> {
        let mask = self.slots.len() - 1;
        let mut at = self.start(key);
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return Err(at);
            }
            if (slot >> 32) as u32 == key {
                return Ok((slot as u32).wrapping_sub(1));
            }
            at = (at + 1) & mask;
        }
    }

    fn get(&self, key: u64) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        self.probe(Self::fold(key)).ok()
    }

    /// The index stored under `key`, or `None` once `index` is stored
    /// under it: one probe for both.
    fn get_or_insert(&mut self, key: u64, index: u32) -> Option<u32> {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let key = Self::fold(key);
        match self.probe(key) {
            Ok(existing) => Some(existing),
            Err(at) => {
                // Indexes are below `u32::MAX` (the store's own limit), so
                // `index + 1` is never 0, the free mark.
                self.slots[at] = u64::from(key) << 32 | u64::from(index.wrapping_add(1));
                self.len += 1;
                None
            }
        }
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![0; capacity]);
        let mask = capacity - 1;
        for slot in old {
            if slot == 0 {
                continue;
            }
            let mut at = self.start((slot >> 32) as u32);
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = slot;
        }
    }
}

/// Entries per [`Segmented`] chunk.
const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

/// A growable array in fixed-size chunks: pushing never moves what is
/// already stored (a `Vec` of a million ~200-byte entries copies the whole
/// array at every doubling and touches twice the memory while it does).
/// Entry `i` lives in chunk `i / CHUNK` at `i % CHUNK`; every chunk but the
/// last is full.
#[derive(Debug, Clone)]
struct Segmented<T> {
    chunks: Vec<Vec<T>>,
}

impl<T> Default for Segmented<T> {
    fn default() -> Self {
        Segmented { chunks: Vec::new() }
    }
}

impl<T> Segmented<T> {
    fn len(&self) -> usize {
        match self.chunks.last() {
            Some(last) => (self.chunks.len() - 1) * CHUNK + last.len(),
            None => 0,
        }
    }

    /// Appends `value` and returns its index.
    fn push(&mut self, value: T) -> usize {
        let index = self.len();
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(value),
            _ => {
                // The first chunk grows as a plain `Vec` (small clusters stay
                // small); later ones are allocated whole, once.
                let mut chunk = if self.chunks.is_empty() {
                    Vec::new()
                } else {
                    Vec::with_capacity(CHUNK)
                };
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
        index
    }
}

impl<T> std::ops::Index<usize> for Segmented<T> {
    type Output = T;
    fn index(&self, index: usize) -> &T {
        &self.chunks[index >> CHUNK_BITS][index & (CHUNK - 1)]
    }
}

impl<T> std::ops::IndexMut<usize> for Segmented<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        &mut self.chunks[index >> CHUNK_BITS][index & (CHUNK - 1)]
    }
}

/// Full [`Allocation`]s built on first read, one slot per stored
/// allocation, in [`Segmented`]'s chunks: a chunk's slots are allocated
/// only when one of its allocations is read (the benchmark reads none), so
/// a stored allocation costs no cache space until then.
#[derive(Debug, Clone, Default)]
struct FullCache {
    chunks: Vec<OnceLock<CacheChunk>>,
}

/// One chunk's cache slots.
type CacheChunk = Box<[OnceLock<Box<Allocation>>]>;

impl FullCache {
    /// Makes room for `len` allocations.
    fn grow_to(&mut self, len: usize) {
        let chunks = len.div_ceil(CHUNK);
        if self.chunks.len() < chunks {
            self.chunks.resize_with(chunks, OnceLock::new);
        }
    }

    /// The cached allocation at `index`, built by `build` on first read.
    fn get_or_init(&self, index: usize, build: impl FnOnce() -> Allocation) -> &Allocation {
        let slots = self.chunks[index >> CHUNK_BITS].get_or_init(|| (0..CHUNK).map(|_| OnceLock::new()).collect());
        slots[index & (CHUNK - 1)].get_or_init(|| Box::new(build()))
    }

    /// Forgets the allocation at `index` (it changed).
    fn invalidate(&mut self, index: usize) {
        if let Some(slots) = self.chunks.get_mut(index >> CHUNK_BITS).and_then(OnceLock::get_mut) {
            slots[index & (CHUNK - 1)].take();
        }
    }
}

/// The parts of an allocation that a plain new one leaves empty, boxed so
/// that such an allocation has no heap part at all.
#[derive(Debug, Clone, Default, PartialEq)]
struct Extra {
    /// The ID when it is not canonical UUID text ([`parse_uuid`]).
    id: Option<Box<str>>,
    /// The name when it is not `job.group[index]` of the allocation's own
    /// job and group.
    name: Option<Box<str>>,
    networks: Vec<NetworkResource>,
    task_states: BTreeMap<String, TaskState>,
    reschedule_tracker: Option<RescheduleTracker>,
    deployment_status: Option<types::AllocDeploymentStatus>,
    preempted_allocations: Vec<String>,
    desired_transition: types::DesiredTransition,
    /// The metric when [`metric_counts`] cannot hold it.
    metric: Option<AllocMetric>,
    /// create, modify and alloc-modify index (the scheduler sets none).
    indexes: [u64; 3],
    /// Interned, set on few allocations: client_description,
    /// previous_allocation, next_allocation, followup_eval_id,
    /// preempted_by_allocation.
    strs: [u32; 5],
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.id.is_none()
            && self.name.is_none()
            && self.networks.is_empty()
            && self.task_states.is_empty()
            && self.deployment_status.is_none()
            && self.reschedule_tracker.is_none()
            && self.preempted_allocations.is_empty()
            && self.desired_transition == types::DesiredTransition::default()
            && self.metric.is_none()
            && self.indexes == [0; 3]
            && self.strs == [0; 5]
    }
}

/// The counters of a metric with no per-class or per-dimension breakdown,
/// no allocation time and counts that fit `u32` (every successful
/// placement): evaluated, filtered, in pool, exhausted, coalesced.
fn metric_counts(metric: &AllocMetric) -> Option<[u32; 5]> {
    let plain = metric.nodes_available.is_empty()
        && metric.class_filtered.is_empty()
        && metric.constraint_filtered.is_empty()
        && metric.class_exhausted.is_empty()
        && metric.dimension_exhausted.is_empty()
        && metric.quota_exhausted.is_empty()
        && metric.scores.is_empty()
        && metric.allocation_time_ns == 0;
    if !plain {
        return None;
    }
    Some([
        u32::try_from(metric.nodes_evaluated).ok()?,
        u32::try_from(metric.nodes_filtered).ok()?,
        u32::try_from(metric.nodes_in_pool).ok()?,
        u32::try_from(metric.nodes_exhausted).ok()?,
        u32::try_from(metric.coalesced_failures).ok()?,
    ])
}

/// The index of `name` when it is exactly `alloc_name(job, group, index)`
/// (decimal without leading zeros), so that the name can be rebuilt.
fn name_index(name: &str, job: &str, group: &str) -> Option<u32> {
    let digits = name
        .strip_prefix(job)?
        .strip_prefix('.')?
        .strip_prefix(group)?
        .strip_prefix('[')?
        .strip_suffix(']')?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && (digits.len() == 1 || !digits.starts_with('0'));
    if canonical { digits.parse().ok() } else { None }
}

/// An allocation as [`MemCluster`] stores it: a canonical UUID ID as bits,
/// the name as its index, the node interned, the plain metric inline,
/// everything the allocations of one group and plan share as one [`Shape`]
/// ID, everything rarely set in a boxed [`Extra`]. A plain new allocation is
/// 64 bytes with no heap part; the full [`Allocation`] is built on first
/// read (through [`ClusterView`]) and kept.
#[derive(Debug, Clone)]
struct StoredAlloc {
    /// The ID's bits ([`parse_uuid`]), high half first, unless `extra.id`
    /// holds its text. Two `u64`s rather than a `u128`: 8-byte alignment.
    id: [u64; 2],
    /// Index into [`Shapes`].
    shape: u32,
    /// Interned node ID and node name.
    node: u32,
    node_name: u32,
    /// The name's index ([`name_index`]), unless `extra.name` holds it.
    name_index: u32,
    /// The metric's counters ([`metric_counts`]) when `has_counts`;
    /// otherwise `extra.metric` is the metric, if any.
    counts: [u32; 5],
    has_counts: bool,
    extra: Option<Box<Extra>>,
}

/// What the allocations of one task group placed by one plan have in
/// common: everything but ID, node, name, metric and the [`Extra`] fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    /// Interned: namespace, eval_id, job_id, task_group,
    /// desired_description, deployment_id.
    strs: [u32; 6],
    job_version: u64,
    tasks: StoredTasks,
    disk_mb: i64,
    create_time: UnixNanos,
    modify_time: UnixNanos,
    desired_status: AllocDesiredStatus,
    client_status: AllocClientStatus,
}

// Positions in `Shape::strs`.
const SH_NAMESPACE: usize = 0;
const SH_EVAL: usize = 1;
const SH_JOB: usize = 2;
const SH_GROUP: usize = 3;
const SH_DESIRED_DESCRIPTION: usize = 4;
const SH_DEPLOYMENT: usize = 5;

impl std::hash::Hash for Shape {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Every field but the contents of `StoredTasks::Many` (whose task
        // resources are not `Hash`); equal shapes still hash alike.
        self.strs.hash(state);
        self.job_version.hash(state);
        match &self.tasks {
            StoredTasks::One {
                task,
                cpu_mhz,
                memory_mb,
                memory_max_mb,
            } => (task, cpu_mhz, memory_mb, memory_max_mb).hash(state),
            StoredTasks::Many(tasks) => tasks.len().hash(state),
        }
        self.disk_mb.hash(state);
        self.create_time.hash(state);
        self.modify_time.hash(state);
        self.desired_status.hash(state);
        self.client_status.hash(state);
    }
}

impl Shape {
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
        match &self.tasks {
            StoredTasks::One {
                cpu_mhz,
                memory_mb,
                memory_max_mb,
                ..
            } => {
                total.cpu_mhz += i64::from(*cpu_mhz);
                total.memory_mb += i64::from(*memory_mb);
                total.memory_max_mb += i64::from((*memory_max_mb).max(*memory_mb));
            }
            StoredTasks::Many(tasks) => {
                for (_, task) in tasks.iter() {
                    total.cpu_mhz += task.cpu_mhz;
                    total.cores += task.reserved_cores.len() as i64;
                    total.memory_mb += task.memory_mb;
                    total.memory_max_mb += task.memory_max_mb.max(task.memory_mb);
                }
            }
        }
        total
    }
}

/// Every distinct [`Shape`] once, with what an allocation of that shape
/// holds (its comparable resources, computed once).
#[derive(Debug, Clone, Default)]
struct Shapes {
    list: Vec<(Shape, ComparableResources)>,
    ids: FxHashMap<Shape, u32>,
}

impl Shapes {
    fn intern(&mut self, shape: Shape) -> u32 {
        if let Some(&id) = self.ids.get(&shape) {
            return id;
        }
        let id = self.list.len() as u32;
        let held = shape.comparable();
        self.list.push((shape.clone(), held));
        self.ids.insert(shape, id);
        id
    }

    fn get(&self, id: u32) -> &Shape {
        &self.list[id as usize].0
    }

    /// The comparable resources of an allocation of this shape.
    fn held(&self, id: u32) -> &ComparableResources {
        &self.list[id as usize].1
    }
}

/// Per-task resources: one plain task inline (the common case), anything
/// else boxed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StoredTasks {
    /// One task without reserved cores or devices whose figures fit `i32`.
    One {
        task: u32,
        cpu_mhz: i32,
        memory_mb: i32,
        memory_max_mb: i32,
    },
    Many(Box<[(u32, AllocatedTaskResources)]>),
}

impl StoredTasks {
    fn new(tasks: types::TaskResources, strings: &mut Interner) -> StoredTasks {
        let mut tasks = tasks.into_iter();
        let first = tasks.next();
        if let Some((task, resources)) = &first
            && tasks.len() == 0
            && resources.reserved_cores.is_empty()
            && resources.devices.is_empty()
            && let (Ok(cpu_mhz), Ok(memory_mb), Ok(memory_max_mb)) = (
                i32::try_from(resources.cpu_mhz),
                i32::try_from(resources.memory_mb),
                i32::try_from(resources.memory_max_mb),
            )
        {
            return StoredTasks::One {
                task: strings.intern(13, task),
                cpu_mhz,
                memory_mb,
                memory_max_mb,
            };
        }
        StoredTasks::Many(
            first
                .into_iter()
                .chain(tasks)
                .map(|(task, resources)| (strings.intern(13, &task), resources))
                .collect(),
        )
    }

    fn expand(&self, strings: &Interner) -> types::TaskResources {
        match self {
            StoredTasks::One {
                task,
                cpu_mhz,
                memory_mb,
                memory_max_mb,
            } => types::TaskResources::from([(
                strings.get(*task).to_string(),
                AllocatedTaskResources {
                    cpu_mhz: i64::from(*cpu_mhz),
                    memory_mb: i64::from(*memory_mb),
                    memory_max_mb: i64::from(*memory_max_mb),
                    ..AllocatedTaskResources::default()
                },
            )]),
            StoredTasks::Many(tasks) => tasks
                .iter()
                .map(|(task, resources)| (strings.get(*task).to_string(), resources.clone()))
                .collect(),
        }
    }
}

// The interner's field numbers (its last-value shortcut is per field).
const S_DESIRED_DESCRIPTION: usize = 6;
const S_PREEMPTED_BY: usize = 12;
// preempted_by_allocation's position in `Extra::strs`.
const R_PREEMPTED_BY: usize = 4;

impl StoredAlloc {
    fn compact(alloc: Allocation, strings: &mut Interner, shapes: &mut Shapes) -> StoredAlloc {
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
            deployment_status,
            preempted_by_allocation,
            preempted_allocations,
            desired_transition,
            metrics,
            create_index,
            modify_index,
            alloc_modify_index,
            create_time,
            modify_time,
        } = alloc;
        let AllocatedResources {
            tasks,
            disk_mb,
            networks,
        } = allocated_resources;
        let shape = Shape {
            strs: [
                strings.intern(0, &namespace),
                strings.intern(1, &eval_id),
                strings.intern(4, &job_id),
                strings.intern(5, &task_group),
                strings.intern(6, &desired_description),
                strings.intern(11, &deployment_id),
            ],
            job_version,
            tasks: StoredTasks::new(tasks, strings),
            disk_mb,
            create_time,
            modify_time,
            desired_status,
            client_status,
        };
        let rare = [
            strings.intern(7, &client_description),
            strings.intern(8, &previous_allocation),
            strings.intern(9, &next_allocation),
            strings.intern(10, &followup_eval_id),
            strings.intern(12, &preempted_by_allocation),
        ];
        let mut extra = Extra {
            networks,
            task_states,
            reschedule_tracker,
            deployment_status,
            preempted_allocations,
            desired_transition,
            indexes: [create_index, modify_index, alloc_modify_index],
            strs: rare,
            ..Extra::default()
        };
        let bits = parse_uuid(&id);
        if bits.is_none() {
            extra.id = Some(id.into_boxed_str());
        }
        let index = name_index(&name, &job_id, &task_group);
        if index.is_none() {
            extra.name = Some(name.into_boxed_str());
        }
        let counts = match metrics {
            Some(metric) => {
                let counts = metric_counts(&metric);
                if counts.is_none() {
                    extra.metric = Some(metric);
                }
                counts
            }
            None => None,
        };
        let bits = bits.unwrap_or(0);
        StoredAlloc {
            id: [(bits >> 64) as u64, bits as u64],
            shape: shapes.intern(shape),
            node: strings.intern(2, &node_id),
            node_name: strings.intern(3, &node_name),
            name_index: index.unwrap_or(0),
            counts: counts.unwrap_or_default(),
            has_counts: counts.is_some(),
            extra: (!extra.is_empty()).then(|| Box::new(extra)),
        }
    }

    fn expand(&self, strings: &Interner, shapes: &Shapes) -> Allocation {
        let shape = shapes.get(self.shape);
        let extra = self.extra.as_deref();
        let text = |field: usize| strings.get(shape.strs[field]).to_string();
        let rare = |field: usize| strings.get(extra.map_or(0, |extra| extra.strs[field])).to_string();
        Allocation {
            id: self.id_string(),
            namespace: text(SH_NAMESPACE),
            eval_id: text(SH_EVAL),
            name: match extra.and_then(|extra| extra.name.as_deref()) {
                Some(name) => name.to_string(),
                None => crate::engine::alloc_name(
                    strings.get(shape.strs[SH_JOB]),
                    strings.get(shape.strs[SH_GROUP]),
                    self.name_index,
                ),
            },
            node_id: strings.get(self.node).to_string(),
            node_name: strings.get(self.node_name).to_string(),
            job_id: text(SH_JOB),
            job_version: shape.job_version,
            task_group: text(SH_GROUP),
            allocated_resources: AllocatedResources {
                tasks: shape.tasks.expand(strings),
                disk_mb: shape.disk_mb,
                networks: extra.map(|extra| extra.networks.clone()).unwrap_or_default(),
            },
            desired_status: shape.desired_status,
            desired_description: text(SH_DESIRED_DESCRIPTION),
            client_status: shape.client_status,
            client_description: rare(0),
            task_states: extra.map(|extra| extra.task_states.clone()).unwrap_or_default(),
            previous_allocation: rare(1),
            next_allocation: rare(2),
            reschedule_tracker: extra.and_then(|extra| extra.reschedule_tracker.clone()),
            followup_eval_id: rare(3),
            deployment_id: text(SH_DEPLOYMENT),
            deployment_status: extra.and_then(|extra| extra.deployment_status.clone()),
            preempted_by_allocation: rare(R_PREEMPTED_BY),
            preempted_allocations: extra
                .map(|extra| extra.preempted_allocations.clone())
                .unwrap_or_default(),
            desired_transition: extra.map(|extra| extra.desired_transition.clone()).unwrap_or_default(),
            metrics: match (self.has_counts, extra.and_then(|extra| extra.metric.as_ref())) {
                (true, _) => {
                    let counts = self.counts;
                    Some(AllocMetric {
                        nodes_evaluated: u64::from(counts[0]),
                        nodes_filtered: u64::from(counts[1]),
                        nodes_in_pool: u64::from(counts[2]),
                        nodes_exhausted: u64::from(counts[3]),
                        coalesced_failures: u64::from(counts[4]),
                        ..AllocMetric::default()
                    })
                }
                (false, metric) => metric.cloned(),
            },
            create_index: extra.map_or(0, |extra| extra.indexes[0]),
            modify_index: extra.map_or(0, |extra| extra.indexes[1]),
            alloc_modify_index: extra.map_or(0, |extra| extra.indexes[2]),
            create_time: shape.create_time,
            modify_time: shape.modify_time,
        }
    }

    /// The ID's text when it is not kept as bits.
    fn text_id(&self) -> Option<&str> {
        self.extra.as_deref().and_then(|extra| extra.id.as_deref())
    }

    /// The ID's bits (meaningful when [`StoredAlloc::text_id`] is `None`).
    fn id_bits(&self) -> u128 {
        u128::from(self.id[0]) << 64 | u128::from(self.id[1])
    }

    fn id_string(&self) -> String {
        match self.text_id() {
            Some(id) => id.to_string(),
            None => uuid_text(self.id_bits()),
        }
    }

    /// Whether the allocation's ID is `id`, given with `bits = parse_uuid(id)`.
    fn has_id(&self, id: &str, bits: Option<u128>) -> bool {
        match (bits, self.text_id()) {
            (Some(bits), None) => self.id_bits() == bits,
            (None, Some(text)) => text == id,
            _ => false,
        }
    }

    fn same_id(&self, other: &StoredAlloc) -> bool {
        match (self.text_id(), other.text_id()) {
            (None, None) => self.id == other.id,
            (Some(left), Some(right)) => left == right,
            _ => false,
        }
    }

    fn id_key(&self) -> u64 {
        match self.text_id() {
            Some(id) => id_hash(id),
            None => uuid_key(self.id_bits()),
        }
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    fn host_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.extra
            .as_deref()
            .map(|extra| extra.networks.as_slice())
            .unwrap_or(&[])
            .iter()
            .flat_map(|network| {
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
    nodes: Vec<std::sync::Arc<Node>>,
    node_index: FxHashMap<String, usize>,
    node_entries: Vec<NodeEntry>,
    class_ids: FxHashMap<String, u32>,
    usage: Vec<ComparableResources>,
    /// Per-class feasibility verdicts shared by evaluations.
    verdicts: crate::VerdictCache,
    strings: Interner,
    /// What groups of allocations share ([`StoredAlloc::shape`]).
    shapes: Shapes,
    allocs: Segmented<StoredAlloc>,
    /// The full form of `allocs`, built on first read.
    full: FullCache,
    /// Whether any allocation ever stored holds a negative amount of a
    /// fitted resource (see [`MemCluster::apply_compact`]'s fit check).
    negative_resources: bool,
    /// Each node's rank in node-ID order, by position; `None` after a node
    /// is added, computed again when needed.
    node_ranks: Option<Vec<u32>>,
    /// Each node's interned (ID, name), by position, once placed on:
    /// consecutive placements are on different nodes, so the interner's
    /// last-value shortcut misses and every lookup would hash the ID.
    node_strs: Vec<Option<(u32, u32)>>,
    /// Allocation ID key ([`uuid_key`] or [`id_hash`]) → index; IDs whose
    /// key is taken by another ID go to `alloc_collisions`.
    alloc_index: IdIndex,
    alloc_collisions: FxHashMap<Box<str>, u32>,
    /// (namespace, job ID) interned → allocation indexes.
    by_job: FxHashMap<(u32, u32), Vec<u32>>,
    /// Node ID interned → allocation indexes.
    by_node: FxHashMap<u32, Vec<u32>>,
    /// Namespace → job ID → current version.
    pub(crate) jobs: FxHashMap<String, FxHashMap<String, Job>>,
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
                self.nodes[index] = std::sync::Arc::new(node);
                self.node_entries[index] = entry;
                self.node_strs[index] = None;
            }
            None => {
                self.node_ranks = None;
                self.node_index.insert(node.id.clone(), self.nodes.len());
                self.nodes.push(std::sync::Arc::new(node));
                self.node_entries.push(entry);
                self.usage.push(ComparableResources::default());
                self.node_strs.push(None);
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
        let stored = StoredAlloc::compact(alloc, &mut self.strings, &mut self.shapes);
        self.insert_compacted(stored, node_slot);
    }

    fn insert_compacted(&mut self, stored: StoredAlloc, node_slot: Option<usize>) {
        match self.claim_id(
            stored.id_key(),
            |existing| existing.same_id(&stored),
            || stored.id_string(),
        ) {
            Some(existing) => self.replace_stored(existing, stored),
            None => {
                let index = self.allocs.push(stored);
                self.index_new(index, node_slot);
            }
        }
    }

    /// One probe of the ID index for both "is it an update?" and "register
    /// the new ID": the index of the allocation that has the ID (`is_it`),
    /// or `None` once the ID is registered for the next new allocation.
    /// `text` (the ID) is only needed when another ID has the same key (as
    /// [`IdIndex`] compares keys).
    fn claim_id(
        &mut self,
        key: u64,
        is_it: impl Fn(&StoredAlloc) -> bool,
        text: impl FnOnce() -> String,
    ) -> Option<usize> {
        let index = self.allocs.len() as u32;
        let taken = self.alloc_index.get_or_insert(key, index)? as usize;
        if is_it(&self.allocs[taken]) {
            return Some(taken);
        }
        let text = text();
        if let Some(&existing) = self.alloc_collisions.get(text.as_str()) {
            return Some(existing as usize);
        }
        self.alloc_collisions.insert(text.into_boxed_str(), index);
        None
    }

    /// Usage and indexes for the allocation just pushed at `index`.
    fn index_new(&mut self, index: usize, node_slot: Option<usize>) {
        let stored = &self.allocs[index];
        let held = *self.shapes.held(stored.shape);
        self.negative_resources |= is_negative(&held);
        if self.holds(stored)
            && let Some(slot) = node_slot
        {
            self.usage[slot].add(&held);
        }
        let (job, node) = (self.job_key(stored), stored.node);
        let index = index as u32;
        self.by_job.entry(job).or_default().push(index);
        self.by_node.entry(node).or_default().push(index);
        self.full.grow_to(self.allocs.len());
    }

    fn node_slot_of(&self, stored: &StoredAlloc) -> Option<usize> {
        self.node_index.get(self.strings.get(stored.node)).copied()
    }

    /// `Allocation::holds_resources` of a stored allocation.
    fn holds(&self, stored: &StoredAlloc) -> bool {
        self.shapes.get(stored.shape).holds_resources()
    }

    /// `AllocatedResources::comparable` of a stored allocation.
    fn held(&self, stored: &StoredAlloc) -> ComparableResources {
        *self.shapes.held(stored.shape)
    }

    /// The `by_job` key: interned (namespace, job ID).
    fn job_key(&self, stored: &StoredAlloc) -> (u32, u32) {
        let shape = self.shapes.get(stored.shape);
        (shape.strs[SH_NAMESPACE], shape.strs[SH_JOB])
    }

    fn replace_stored(&mut self, index: usize, stored: StoredAlloc) {
        self.negative_resources |= is_negative(&self.held(&stored));
        let old = &self.allocs[index];
        if self.holds(old)
            && let Some(slot) = self.node_slot_of(old)
        {
            let freed = self.held(old);
            self.usage[slot].subtract(&freed);
        }
        if self.holds(&stored)
            && let Some(slot) = self.node_slot_of(&stored)
        {
            let held = self.held(&stored);
            self.usage[slot].add(&held);
        }
        // The indexes are keyed by node and job, which an update may change.
        let old = &self.allocs[index];
        let (old_job, old_node) = (self.job_key(old), old.node);
        let (new_job, new_node) = (self.job_key(&stored), stored.node);
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
        self.full.invalidate(index);
    }

    fn find_alloc(&self, id: &str) -> Option<usize> {
        self.find_parsed(id, parse_uuid(id))
    }

    /// [`MemCluster::find_alloc`] with `bits = parse_uuid(id)` already known.
    fn find_parsed(&self, id: &str, bits: Option<u128>) -> Option<usize> {
        // A vacant key means a new ID: an ID goes to `alloc_collisions` only
        // when its key is taken, and keys are never removed.
        let index = self.alloc_index.get(id_key(id, bits))? as usize;
        if self.allocs[index].has_id(id, bits) {
            return Some(index);
        }
        self.alloc_collisions.get(id).map(|index| *index as usize)
    }

    fn full(&self, index: usize) -> &Allocation {
        self.full
            .get_or_init(index, || self.allocs[index].expand(&self.strings, &self.shapes))
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
    pub fn node_list(&self) -> &[std::sync::Arc<Node>] {
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

    fn apply_stop(&mut self, stopped: &Allocation) {
        let Some(index) = self.find_alloc(&stopped.id) else {
            self.upsert_alloc(stopped.clone());
            return;
        };
        let old_shape = self.allocs[index].shape;
        let held = self.shapes.get(old_shape).holds_resources();
        let desired_description = self.strings.intern(S_DESIRED_DESCRIPTION, &stopped.desired_description);
        let preempted_by = self.strings.intern(S_PREEMPTED_BY, &stopped.preempted_by_allocation);
        // The stopped allocation takes the shape of its old one with the
        // new status and description (the allocations stopped by one plan
        // usually share it again).
        let mut shape = self.shapes.get(old_shape).clone();
        shape.desired_status = stopped.desired_status;
        shape.strs[SH_DESIRED_DESCRIPTION] = desired_description;
        if stopped.client_status == AllocClientStatus::Lost {
            shape.client_status = AllocClientStatus::Lost;
        }
        let new_shape = self.shapes.intern(shape);
        let stored = &mut self.allocs[index];
        stored.shape = new_shape;
        // Kept in the extra part; an empty one is not created for "none".
        if preempted_by != 0 || stored.extra.is_some() {
            stored.extra_mut().strs[R_PREEMPTED_BY] = preempted_by;
        }
        self.full.invalidate(index);
        if held && !self.shapes.get(new_shape).holds_resources() {
            let freed = *self.shapes.held(new_shape);
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
        let removed: Vec<(&str, Option<u128>)> = plan
            .node_update
            .get(node_id)
            .into_iter()
            .flatten()
            .chain(plan.node_preemptions.get(node_id).into_iter().flatten())
            .chain(placing.iter())
            .map(|alloc| (alloc.id.as_str(), parse_uuid(&alloc.id)))
            .collect();
        let needs_ports = placing
            .iter()
            .any(|alloc| alloc.allocated_resources.host_ports().next().is_some());
        let mut used = self.usage[slot];
        let mut ports: Vec<u16> = Vec::new();
        let node_key = self.strings.find(node_id);
        for &(id, bits) in &removed {
            if let Some(index) = self.find_parsed(id, bits) {
                let existing = &self.allocs[index];
                if self.holds(existing) && Some(existing.node) == node_key {
                    used.subtract(&self.held(existing));
                }
            }
        }
        if needs_ports {
            ports.extend(node.reserved_ports.iter().copied());
            if let Some(indexes) = node_key.and_then(|key| self.by_node.get(&key)) {
                for &index in indexes {
                    let existing = &self.allocs[index as usize];
                    if self.holds(existing) && !removed.iter().any(|(id, bits)| existing.has_id(id, *bits)) {
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

/// Whether any dimension the fit check compares is negative.
fn is_negative(resources: &ComparableResources) -> bool {
    resources.cpu_mhz < 0 || resources.memory_mb < 0 || resources.disk_mb < 0 || resources.cores < 0
}

impl ClusterView for MemCluster {
    fn nodes(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
        Box::new(self.nodes.iter().map(|node| &**node))
    }

    fn nodes_with_usage(&self) -> Box<dyn Iterator<Item = (&Node, ComparableResources)> + '_> {
        Box::new(self.nodes.iter().map(|node| &**node).zip(self.usage.iter().copied()))
    }

    fn node(&self, id: &str) -> Option<&Node> {
        self.node_index.get(id).map(|index| &*self.nodes[*index])
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

#[cfg(test)]
mod tests {
    use super::*;
    use types::{NodeStatus, Port};

    #[test]
    fn uuid_text_round_trips_and_only_canonical_text_parses() {
        for bits in [
            0u128,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            1 << 127,
            0xdead_beef,
        ] {
            let text = uuid_text(bits);
            let hex = format!("{bits:032x}");
            let expected = format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            );
            assert_eq!(text, expected);
            assert_eq!(parse_uuid(&text), Some(bits));
        }
        let canonical = "0123abcd-ef01-4567-89ab-cdef01234567";
        assert_eq!(parse_uuid(canonical).map(uuid_text).as_deref(), Some(canonical));
        for other in [
            "",
            "a1",
            "id-1",
            "0123ABCD-ef01-4567-89ab-cdef01234567",
            "0123abcd-ef01-4567-89ab-cdef0123456",
            "0123abcd-ef01-4567-89ab-cdef012345678",
            "0123abcd0ef01-4567-89ab-cdef01234567",
            "0123abcd-ef01-4567-89ab-cdef0123456g",
            "{123abcd-ef01-4567-89ab-cdef01234567}",
            "0123abcdef01-4567-89ab-cdef-01234567",
            "0123abcd-ef01-4567-89ab-cdef0123456\u{e9}",
        ] {
            assert_eq!(parse_uuid(other), None, "{other:?} is not canonical UUID text");
        }
        // Every ASCII byte in every position, against the plain rule.
        for at in 0..36 {
            for byte in 0..128u8 {
                let mut text = canonical.as_bytes().to_vec();
                text[at] = byte;
                let text = String::from_utf8(text).expect("ASCII");
                let dash = matches!(at, 8 | 13 | 18 | 23);
                let valid = if dash {
                    byte == b'-'
                } else {
                    byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)
                };
                let parsed = parse_uuid(&text);
                assert_eq!(parsed.is_some(), valid, "{text:?}");
                if let Some(bits) = parsed {
                    assert_eq!(uuid_text(bits), text);
                }
            }
        }
    }

    #[test]
    fn hex8_takes_exactly_lowercase_hex_digits() {
        let base = *b"0123abcd";
        assert_eq!(hex8(u64::from_be_bytes(base)), Some(0x0123_abcd));
        assert_eq!(hex8(u64::from_be_bytes(*b"ffffffff")), Some(0xFFFF_FFFF));
        assert_eq!(hex8(u64::from_be_bytes(*b"00000000")), Some(0));
        for at in 0..8 {
            for byte in 0..=255u8 {
                let mut word = base;
                word[at] = byte;
                let expected = match byte {
                    b'0'..=b'9' | b'a'..=b'f' => {
                        let text: String = word.iter().map(|byte| char::from(*byte)).collect();
                        u64::from_str_radix(&text, 16).ok()
                    }
                    _ => None,
                };
                assert_eq!(hex8(u64::from_be_bytes(word)), expected, "byte {byte:#x} at {at}");
            }
        }
    }

    #[test]
    fn segmented_keeps_order_and_never_moves_entries() {
        let mut store: Segmented<usize> = Segmented::default();
        assert_eq!(store.len(), 0);
        let first = store.push(0);
        assert_eq!(first, 0);
        let address = std::ptr::from_ref(&store[0]) as usize;
        let total = 3 * CHUNK + 5;
        for value in 1..total {
            assert_eq!(store.push(value), value);
        }
        assert_eq!(store.len(), total);
        assert_eq!(store.chunks.len(), 4);
        assert!(store.chunks[..3].iter().all(|chunk| chunk.len() == CHUNK));
        for index in [0, 1, CHUNK - 1, CHUNK, 2 * CHUNK + 7, total - 1] {
            assert_eq!(store[index], index);
        }
        store[CHUNK] = 42;
        assert_eq!(store[CHUNK], 42);
        // Chunks after the first are allocated whole: the first entry of a
        // full chunk stays where it was.
        let second = std::ptr::from_ref(&store[CHUNK]) as usize;
        for value in 0..CHUNK {
            store.push(value);
        }
        assert_eq!(std::ptr::from_ref(&store[CHUNK]) as usize, second);
        assert_ne!(address, 0);
    }

    #[test]
    fn name_index_only_for_the_canonical_name() {
        assert_eq!(name_index("web.api[0]", "web", "api"), Some(0));
        assert_eq!(name_index("web.api[42]", "web", "api"), Some(42));
        assert_eq!(name_index("a.b.c[7]", "a.b", "c"), Some(7));
        assert_eq!(name_index("web.api[4294967295]", "web", "api"), Some(u32::MAX));
        for name in [
            "web.api[01]",
            "web.api[]",
            "web.api[+1]",
            "web.api[4294967296]",
            "web.db[1]",
            "other.api[1]",
            "web.api[1] ",
            "web.api1",
            "",
        ] {
            assert_eq!(name_index(name, "web", "api"), None, "{name:?}");
        }
    }

    fn plain_alloc(id: &str, index: u32) -> Allocation {
        Allocation {
            id: id.to_string(),
            namespace: "default".into(),
            eval_id: "eval-1".into(),
            name: crate::engine::alloc_name("web", "api", index),
            node_id: "n1".into(),
            node_name: "node-1".into(),
            job_id: "web".into(),
            task_group: "api".into(),
            allocated_resources: AllocatedResources {
                tasks: types::TaskResources::from([(
                    "main".to_string(),
                    AllocatedTaskResources {
                        cpu_mhz: 500,
                        memory_mb: 256,
                        ..AllocatedTaskResources::default()
                    },
                )]),
                disk_mb: 100,
                networks: Vec::new(),
            },
            metrics: Some(AllocMetric {
                nodes_evaluated: 3,
                nodes_in_pool: 5,
                ..AllocMetric::default()
            }),
            create_time: 7,
            modify_time: 8,
            ..Allocation::default()
        }
    }

    fn cluster_with_node() -> MemCluster {
        let mut cluster = MemCluster::new();
        let mut node = Node {
            id: "n1".into(),
            name: "node-1".into(),
            status: NodeStatus::Ready,
            ..Node::default()
        };
        node.resources.cpu_mhz = 100_000;
        node.resources.memory_mb = 100_000;
        node.resources.disk_mb = 100_000;
        cluster.upsert_node(node);
        cluster
    }

    #[test]
    fn plain_allocation_is_stored_flat() {
        let mut strings = Interner::default();
        let mut shapes = Shapes::default();
        let stored = StoredAlloc::compact(plain_alloc(&types::uuid_from_bits(9), 3), &mut strings, &mut shapes);
        assert!(stored.extra.is_none(), "no boxed part: {stored:?}");
        assert!(matches!(shapes.get(stored.shape).tasks, StoredTasks::One { .. }));
        assert!(stored.has_counts);
        assert!(
            std::mem::size_of::<StoredAlloc>() <= 64,
            "{}",
            std::mem::size_of::<StoredAlloc>()
        );
        // Allocations of one group and plan share their shape.
        let other = StoredAlloc::compact(plain_alloc(&types::uuid_from_bits(10), 4), &mut strings, &mut shapes);
        assert_eq!(other.shape, stored.shape);
        let mut stopped = plain_alloc(&types::uuid_from_bits(11), 5);
        stopped.desired_status = AllocDesiredStatus::Stop;
        let stopped = StoredAlloc::compact(stopped, &mut strings, &mut shapes);
        assert_ne!(stopped.shape, stored.shape);
        assert_eq!(shapes.list.len(), 2);
        // Shapes with several tasks hash by task count only; equality
        // still tells them apart.
        let many = |cores: Vec<u16>| {
            let mut alloc = plain_alloc(&types::uuid_from_bits(12), 6);
            alloc.allocated_resources.tasks = types::TaskResources::from([
                ("a".to_string(), AllocatedTaskResources::default()),
                (
                    "b".to_string(),
                    AllocatedTaskResources {
                        reserved_cores: cores,
                        ..AllocatedTaskResources::default()
                    },
                ),
            ]);
            alloc
        };
        let first = StoredAlloc::compact(many(vec![1]), &mut strings, &mut shapes).shape;
        let same = StoredAlloc::compact(many(vec![1]), &mut strings, &mut shapes).shape;
        let different = StoredAlloc::compact(many(vec![2]), &mut strings, &mut shapes).shape;
        assert_eq!(first, same);
        assert_ne!(first, different);
        assert_eq!(shapes.held(different).cores, 1);
    }

    #[test]
    fn every_field_survives_the_compact_form() {
        // With hex letters, so that its uppercase form differs.
        let uuid = types::uuid_from_bits(0xabcd_ef01);
        assert_ne!(uuid, uuid.to_uppercase());
        let mut odd = plain_alloc("a1", 0);
        odd.name = "web.api[007]".into();
        odd.client_description = "client says".into();
        odd.previous_allocation = "prev".into();
        odd.next_allocation = "next".into();
        odd.followup_eval_id = "follow".into();
        odd.preempted_by_allocation = "other".into();
        odd.deployment_id = "deploy".into();
        odd.preempted_allocations = vec!["x".into()];
        odd.create_index = 4;
        odd.alloc_modify_index = 6;
        odd.allocated_resources.tasks = types::TaskResources::from([
            (
                "a".to_string(),
                AllocatedTaskResources {
                    cpu_mhz: i64::from(i32::MAX) + 1,
                    ..AllocatedTaskResources::default()
                },
            ),
            (
                "b".to_string(),
                AllocatedTaskResources {
                    reserved_cores: vec![1, 2],
                    ..AllocatedTaskResources::default()
                },
            ),
        ]);
        odd.allocated_resources.networks = vec![NetworkResource {
            reserved_ports: vec![Port {
                label: "http".into(),
                value: 8080,
                ..Port::default()
            }],
            ..NetworkResource::default()
        }];
        odd.task_states.insert(
            "a".into(),
            TaskState {
                failed: true,
                ..TaskState::default()
            },
        );
        odd.reschedule_tracker = Some(RescheduleTracker { events: Vec::new() });
        let mut big_metric = plain_alloc(&uuid.to_uppercase(), 1);
        big_metric.metrics = Some(AllocMetric {
            nodes_evaluated: u64::from(u32::MAX) + 1,
            ..AllocMetric::default()
        });
        let mut timed_metric = plain_alloc("", 2);
        timed_metric.metrics = Some(AllocMetric {
            allocation_time_ns: 5,
            coalesced_failures: 2,
            ..AllocMetric::default()
        });
        let mut no_metric = plain_alloc(&types::uuid_from_bits(2), 4);
        no_metric.metrics = None;
        no_metric.name = "other.api[4]".into();
        let single_big_task = {
            let mut alloc = plain_alloc(&types::uuid_from_bits(3), 5);
            alloc.allocated_resources.tasks = types::TaskResources::from([(
                "main".to_string(),
                AllocatedTaskResources {
                    memory_mb: i64::from(i32::MIN) - 1,
                    ..AllocatedTaskResources::default()
                },
            )]);
            alloc
        };
        let allocs = vec![
            plain_alloc(&uuid, 0),
            odd,
            big_metric,
            timed_metric,
            no_metric,
            single_big_task,
        ];
        let mut cluster = cluster_with_node();
        for alloc in &allocs {
            cluster.upsert_alloc(alloc.clone());
        }
        let stored: Vec<&Allocation> = cluster.allocs().collect();
        assert_eq!(stored, allocs.iter().collect::<Vec<_>>());
        for alloc in &allocs {
            assert_eq!(cluster.alloc(&alloc.id), Some(alloc));
        }
        assert_eq!(cluster.alloc("A1"), None);
        assert_eq!(cluster.alloc(&types::uuid_from_bits(99)), None);
        // Uppercase text is another ID than its lowercase form.
        assert_eq!(cluster.alloc(&uuid.to_uppercase()), Some(&allocs[2]));
        assert_eq!(cluster.alloc(&uuid), Some(&allocs[0]));
        assert_eq!(cluster.allocs_by_node("n1").len(), allocs.len());
    }

    #[test]
    fn updates_and_stops_reach_the_cache_and_usage() {
        let id = types::uuid_from_bits(5);
        let mut cluster = cluster_with_node();
        cluster.upsert_alloc(plain_alloc(&id, 0));
        assert_eq!(cluster.usage_of("n1").cpu_mhz, 500);
        assert_eq!(cluster.alloc(&id).map(|alloc| alloc.job_version), Some(0));
        let mut updated = plain_alloc(&id, 0);
        updated.job_version = 2;
        cluster.upsert_alloc(updated.clone());
        assert_eq!(cluster.alloc_count(), 1);
        assert_eq!(cluster.alloc(&id), Some(&updated));
        assert_eq!(cluster.usage_of("n1").cpu_mhz, 500);
        let mut stop = updated.clone();
        stop.desired_status = AllocDesiredStatus::Evict;
        stop.desired_description = "preempted".into();
        stop.preempted_by_allocation = "winner".into();
        let mut plan = Plan::default();
        plan.node_update.insert("n1".into(), vec![stop.clone()]);
        cluster.apply_plan(&plan);
        assert_eq!(cluster.alloc(&id), Some(&stop));
        assert_eq!(cluster.usage_of("n1").cpu_mhz, 0);
    }

    #[test]
    fn colliding_keys_keep_every_id_apart() {
        // A UUID's key is its halves folded: these three share key 0 with
        // each other, and the fourth shares the text ID's key.
        let text_key = id_hash("a1");
        let ids = [
            uuid_text(1 << 64 | 1),
            uuid_text(2 << 64 | 2),
            uuid_text(0),
            uuid_text(u128::from(text_key)),
            "a1".to_string(),
            // Another key, but one that the ID index folds like key 0.
            uuid_text(1 << 32 | 1),
        ];
        assert_eq!(IdIndex::fold(uuid_key(1 << 32 | 1)), IdIndex::fold(uuid_key(0)));
        assert_eq!(uuid_key(1 << 64 | 1), uuid_key(2 << 64 | 2));
        assert_eq!(uuid_key(u128::from(text_key)), text_key);
        let mut cluster = cluster_with_node();
        for (index, id) in ids.iter().enumerate() {
            cluster.upsert_alloc(plain_alloc(id, index as u32));
        }
        for (index, id) in ids.iter().enumerate() {
            assert_eq!(
                cluster.alloc(id).map(|alloc| alloc.name.clone()),
                Some(format!("web.api[{index}]"))
            );
        }
        // Updates of colliding IDs replace, not add.
        for id in &ids {
            let mut updated = plain_alloc(id, 9);
            updated.job_version = 3;
            cluster.upsert_alloc(updated);
        }
        assert_eq!(cluster.alloc_count(), ids.len());
        assert!(cluster.allocs().all(|alloc| alloc.job_version == 3));
        assert_eq!(cluster.alloc(&uuid_text(3 << 64 | 3)), None);
    }

    #[test]
    fn id_index_matches_a_hash_map() {
        let mut index = IdIndex::default();
        let mut model: HashMap<u64, u32> = HashMap::new();
        assert_eq!(index.get(7), None);
        // Warming only reads, on an empty table too.
        assert_eq!((index.get(7), index.len), (None, 0));
        // Small keys (neighbouring probe starts), random ones, and repeats.
        let keys: Vec<u64> = (0..3000u64)
            .map(|n| {
                if n % 3 == 0 {
                    n / 3
                } else {
                    crate::util::mix64(5, n % 1000)
                }
            })
            .collect();
        for (at, key) in keys.iter().enumerate() {
            let expected = model.get(key).copied();
            assert_eq!(index.get_or_insert(*key, at as u32), expected, "key {key}");
            model.entry(*key).or_insert(at as u32);
            assert!(index.len * 2 <= index.slots.len());
        }
        assert_eq!(index.len, model.len());
        let before = index.slots.clone();
        assert_eq!(index.slots, before, "warming changes nothing");
        for (key, value) in &model {
            assert_eq!(index.get(*key), Some(*value));
        }
        assert!(model.keys().all(|key| {
            model
                .keys()
                .filter(|other| IdIndex::fold(**other) == IdIndex::fold(*key))
                .count()
                == 1
        }));
        for absent in [5000, 123_456, 0xDEAD_BEEF] {
            assert_eq!(index.get(absent), None);
        }
        // Index 0 under key 0 is not mistaken for a free slot.
        let mut zero = IdIndex::default();
        assert_eq!(zero.get_or_insert(0, 0), None);
        assert_eq!(zero.get(0), Some(0));
        assert_eq!(zero.get_or_insert(0, 1), Some(0));
        // Keys that fold alike are one key to the table (the store tells
        // their IDs apart).
        let folded = 1u64 << 32 | 1;
        assert_eq!(IdIndex::fold(folded), IdIndex::fold(0));
        assert_eq!(zero.get(folded), Some(0));
        assert_eq!(zero.get_or_insert(folded, 2), Some(0));
    }
}
