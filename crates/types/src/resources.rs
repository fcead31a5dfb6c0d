//! Resources asked for by tasks, offered by nodes and granted to allocations.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default CPU for a task that does not ask (MHz), as in Nomad.
pub const DEFAULT_CPU_MHZ: i64 = 100;
/// Default memory for a task that does not ask (MiB), as in Nomad.
pub const DEFAULT_MEMORY_MB: i64 = 300;
/// Default ephemeral disk for a group (MiB), as in Nomad.
pub const DEFAULT_DISK_MB: i64 = 300;

/// What a task asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// CPU shares in MHz.
    pub cpu: i64,
    /// Whole reserved cores; when non-zero `cpu` is derived from them.
    pub cores: i64,
    /// Memory in MiB.
    pub memory_mb: i64,
    /// Memory oversubscription limit in MiB (0: none).
    pub memory_max_mb: i64,
    /// Task-level networks (deprecated in Nomad, kept for old files).
    pub networks: Vec<NetworkResource>,
    /// Generic devices such as GPUs.
    pub devices: Vec<RequestedDevice>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: DEFAULT_CPU_MHZ,
            cores: 0,
            memory_mb: DEFAULT_MEMORY_MB,
            memory_max_mb: 0,
            networks: Vec::new(),
            devices: Vec::new(),
        }
    }
}

/// A request for a generic device (`device "nvidia/gpu" { count = 1 }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RequestedDevice {
    pub name: String,
    pub count: u64,
    pub constraints: Vec<crate::Constraint>,
    pub affinities: Vec<crate::Affinity>,
}

/// A group or task network: mode plus the ports it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NetworkResource {
    /// "host", "bridge", "none", "cni/<name>"; empty means host.
    pub mode: String,
    pub device: String,
    pub ip: String,
    pub hostname: String,
    pub mbits: i64,
    pub dns: Option<DnsConfig>,
    /// Ports with a fixed host port.
    pub reserved_ports: Vec<Port>,
    /// Ports the scheduler picks from the node's dynamic range.
    pub dynamic_ports: Vec<Port>,
}

/// A named port. `value` is the host port (0 until assigned for dynamic
/// ports); `to` is the port inside the task's network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Port {
    pub label: String,
    pub value: u16,
    pub to: i32,
    pub host_network: String,
}

/// DNS settings for a group network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// A group's scratch disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EphemeralDisk {
    pub sticky: bool,
    pub migrate: bool,
    pub size_mb: i64,
}

impl Default for EphemeralDisk {
    fn default() -> Self {
        EphemeralDisk {
            sticky: false,
            migrate: false,
            size_mb: DEFAULT_DISK_MB,
        }
    }
}

/// `a + b`, saturating at the bounds of `i64`. The same value as
/// `i64::saturating_add`, but the common case is one add and a branch on
/// overflow (the saturation is out of line), which matters in the
/// scheduler's per-placement accounting.
#[inline]
pub fn saturating_add(a: i64, b: i64) -> i64 {
    match a.checked_add(b) {
        Some(sum) => sum,
        None => saturated(b),
    }
}

/// `a - b`, saturating like [`saturating_add`].
#[inline]
pub fn saturating_sub(a: i64, b: i64) -> i64 {
    match a.checked_sub(b) {
        Some(difference) => difference,
        None => saturated(b.checked_neg().unwrap_or(i64::MAX)),
    }
}

/// The bound an overflowing sum saturates at: it overflowed in the
/// direction of the operand that was added.
#[cold]
#[inline(never)]
fn saturated(added: i64) -> i64 {
    if added > 0 { i64::MAX } else { i64::MIN }
}

/// The flattened, comparable amount of resources: what the scheduler adds
/// and subtracts. Kept small and `Copy` so usage indexes stay cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(default)]
pub struct ComparableResources {
    pub cpu_mhz: i64,
    pub cores: i64,
    pub memory_mb: i64,
    pub memory_max_mb: i64,
    pub disk_mb: i64,
}

impl ComparableResources {
    /// Adds `other` into `self`. Sums saturate at `i64::MAX`: no ask,
    /// however large, can wrap a node's usage negative and make a full node
    /// look empty.
    pub fn add(&mut self, other: &ComparableResources) {
        self.cpu_mhz = saturating_add(self.cpu_mhz, other.cpu_mhz);
        self.cores = saturating_add(self.cores, other.cores);
        self.memory_mb = saturating_add(self.memory_mb, other.memory_mb);
        self.memory_max_mb = saturating_add(self.memory_max_mb, other.memory_max_mb);
        self.disk_mb = saturating_add(self.disk_mb, other.disk_mb);
    }

    /// Subtracts `other` from `self`, saturating as [`Self::add`] does.
    pub fn subtract(&mut self, other: &ComparableResources) {
        self.cpu_mhz = saturating_sub(self.cpu_mhz, other.cpu_mhz);
        self.cores = saturating_sub(self.cores, other.cores);
        self.memory_mb = saturating_sub(self.memory_mb, other.memory_mb);
        self.memory_max_mb = saturating_sub(self.memory_max_mb, other.memory_max_mb);
        self.disk_mb = saturating_sub(self.disk_mb, other.disk_mb);
    }

    /// Whether `self` fits inside `capacity`. On failure names the first
    /// exhausted dimension ("cpu", "memory", "disk", "cores").
    pub fn fits_in(&self, capacity: &ComparableResources) -> Result<(), &'static str> {
        if self.cpu_mhz > capacity.cpu_mhz {
            return Err("cpu");
        }
        if self.memory_mb > capacity.memory_mb {
            return Err("memory");
        }
        if self.disk_mb > capacity.disk_mb {
            return Err("disk");
        }
        if self.cores > capacity.cores {
            return Err("cores");
        }
        Ok(())
    }
}

/// What a node offers to the scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeResources {
    /// Total CPU in MHz (cores × MHz per core).
    pub cpu_mhz: i64,
    /// Total number of cores.
    pub cores: i64,
    /// Total memory in MiB.
    pub memory_mb: i64,
    /// Total scratch disk in MiB.
    pub disk_mb: i64,
    /// Host networks the node can offer ports on.
    pub networks: Vec<NodeNetwork>,
    /// Lowest port of the dynamic port range (Nomad's default: 20000).
    pub min_dynamic_port: u16,
    /// Highest port of the dynamic port range (Nomad's default: 32000).
    pub max_dynamic_port: u16,
    /// Device groups fingerprinted on the node.
    pub devices: Vec<NodeDevice>,
}

impl NodeResources {
    /// The node's totals in comparable form.
    pub fn comparable(&self) -> ComparableResources {
        ComparableResources {
            cpu_mhz: self.cpu_mhz,
            cores: self.cores,
            memory_mb: self.memory_mb,
            memory_max_mb: 0,
            disk_mb: self.disk_mb,
        }
    }
}

/// A host network on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeNetwork {
    pub mode: String,
    pub device: String,
    pub ip: String,
    pub mbits: i64,
}

/// A group of identical devices on a node (vendor/type/name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NodeDevice {
    pub vendor: String,
    pub device_type: String,
    pub name: String,
    pub instance_ids: Vec<String>,
    pub attributes: BTreeMap<String, String>,
}

impl NodeDevice {
    /// Whether a request name (`"gpu"`, `"nvidia/gpu"`, `"nvidia/gpu/1080ti"`)
    /// matches this device group.
    pub fn matches(&self, request: &str) -> bool {
        let parts: Vec<&str> = request.split('/').collect();
        match parts.as_slice() {
            [device_type] => *device_type == self.device_type,
            [vendor, device_type] => *vendor == self.vendor && *device_type == self.device_type,
            [vendor, device_type, name] => {
                *vendor == self.vendor && *device_type == self.device_type && *name == self.name
            }
            _ => false,
        }
    }
}

/// Resources granted to one task of an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AllocatedTaskResources {
    pub cpu_mhz: i64,
    /// Core IDs reserved for the task when it asked for `cores`.
    pub reserved_cores: Vec<u16>,
    pub memory_mb: i64,
    pub memory_max_mb: i64,
    /// Device instance IDs granted, by device name.
    pub devices: BTreeMap<String, Vec<String>>,
}

/// Per-task granted resources by task name: a small map kept sorted by
/// name in one `Vec` (groups have a handful of tasks; a `BTreeMap` costs a
/// ≈1 KiB node per allocation). Same API subset and the same serde form (a
/// map) as the `BTreeMap` it replaces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskResources {
    entries: Vec<(String, AllocatedTaskResources)>,
}

impl TaskResources {
    /// An empty map.
    pub fn new() -> TaskResources {
        TaskResources::default()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(name, _)| name.as_str().cmp(key))
    }

    /// The resources of one task.
    pub fn get(&self, key: &str) -> Option<&AllocatedTaskResources> {
        self.position(key).ok().map(|index| &self.entries[index].1)
    }

    /// The resources of one task, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut AllocatedTaskResources> {
        self.position(key).ok().map(|index| &mut self.entries[index].1)
    }

    /// Inserts or replaces a task's resources; returns the previous value.
    pub fn insert(&mut self, key: String, value: AllocatedTaskResources) -> Option<AllocatedTaskResources> {
        match self.position(&key) {
            Ok(index) => Some(std::mem::replace(&mut self.entries[index].1, value)),
            Err(index) => {
                self.entries.insert(index, (key, value));
                None
            }
        }
    }

    /// Removes a task's resources.
    pub fn remove(&mut self, key: &str) -> Option<AllocatedTaskResources> {
        self.position(key).ok().map(|index| self.entries.remove(index).1)
    }

    /// Whether a task has resources.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (task name, resources) in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &AllocatedTaskResources)> + '_ {
        self.entries.iter().map(|(name, resources)| (name, resources))
    }

    /// Task names in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &String> + '_ {
        self.entries.iter().map(|(name, _)| name)
    }

    /// Resources in task-name order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &AllocatedTaskResources> + '_ {
        self.entries.iter().map(|(_, resources)| resources)
    }

    /// Resources in task-name order, mutably.
    pub fn values_mut(&mut self) -> impl ExactSizeIterator<Item = &mut AllocatedTaskResources> + '_ {
        self.entries.iter_mut().map(|(_, resources)| resources)
    }
}

impl FromIterator<(String, AllocatedTaskResources)> for TaskResources {
    fn from_iter<I: IntoIterator<Item = (String, AllocatedTaskResources)>>(iter: I) -> Self {
        let mut map = TaskResources::new();
        for (key, value) in iter {
            map.insert(key, value);
        }
        map
    }
}

impl<const N: usize> From<[(String, AllocatedTaskResources); N]> for TaskResources {
    fn from(entries: [(String, AllocatedTaskResources); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl From<BTreeMap<String, AllocatedTaskResources>> for TaskResources {
    fn from(map: BTreeMap<String, AllocatedTaskResources>) -> Self {
        TaskResources {
            entries: map.into_iter().collect(),
        }
    }
}

impl IntoIterator for TaskResources {
    type Item = (String, AllocatedTaskResources);
    type IntoIter = std::vec::IntoIter<(String, AllocatedTaskResources)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl Serialize for TaskResources {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.entries.iter().map(|(name, resources)| (name, resources)))
    }
}

impl<'de> Deserialize<'de> for TaskResources {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, AllocatedTaskResources>::deserialize(deserializer).map(TaskResources::from)
    }
}

/// Resources granted to an allocation as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AllocatedResources {
    pub tasks: TaskResources,
    pub disk_mb: i64,
    /// Networks with their host ports assigned.
    pub networks: Vec<NetworkResource>,
}

impl AllocatedResources {
    /// The total in comparable form, for fit checks and usage indexes.
    /// Saturating, like [`ComparableResources::add`].
    pub fn comparable(&self) -> ComparableResources {
        let mut total = ComparableResources {
            disk_mb: self.disk_mb,
            ..ComparableResources::default()
        };
        for task in self.tasks.values() {
            total.add(&ComparableResources {
                cpu_mhz: task.cpu_mhz,
                cores: i64::try_from(task.reserved_cores.len()).unwrap_or(i64::MAX),
                memory_mb: task.memory_mb,
                memory_max_mb: task.memory_max_mb.max(task.memory_mb),
                disk_mb: 0,
            });
        }
        total
    }

    /// Every host port the allocation holds.
    pub fn host_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.networks.iter().flat_map(|network| {
            network
                .reserved_ports
                .iter()
                .chain(network.dynamic_ports.iter())
                .map(|port| port.value)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_resources_match_btreemap_order_and_json() {
        let task = |cpu_mhz| AllocatedTaskResources {
            cpu_mhz,
            memory_mb: 64,
            ..AllocatedTaskResources::default()
        };
        let mut map = TaskResources::new();
        let mut reference = BTreeMap::new();
        for (name, cpu) in [("web", 1), ("db", 2), ("cache", 3), ("web", 4)] {
            assert_eq!(
                map.insert(name.to_string(), task(cpu)),
                reference.insert(name.to_string(), task(cpu))
            );
        }
        assert_eq!(map.len(), 3);
        assert_eq!(map.get("web").map(|task| task.cpu_mhz), Some(4));
        assert!(map.get("nope").is_none());
        assert!(map.iter().map(|(name, _)| name).eq(reference.keys()));
        let json = serde_json::to_string(&map).expect("serialize");
        assert_eq!(json, serde_json::to_string(&reference).expect("serialize"));
        let back: TaskResources = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, map);
        assert_eq!(TaskResources::from(reference), map);
    }

    #[test]
    fn fit_names_the_exhausted_dimension() {
        let capacity = ComparableResources {
            cpu_mhz: 1000,
            cores: 2,
            memory_mb: 1024,
            memory_max_mb: 0,
            disk_mb: 100,
        };
        let mut ask = ComparableResources {
            cpu_mhz: 500,
            memory_mb: 2048,
            ..Default::default()
        };
        assert_eq!(ask.fits_in(&capacity), Err("memory"));
        ask.memory_mb = 512;
        assert_eq!(ask.fits_in(&capacity), Ok(()));
        ask.add(&ask.clone());
        assert_eq!(ask.cpu_mhz, 1000);
        assert_eq!(ask.fits_in(&capacity), Ok(()));
        ask.cpu_mhz += 1;
        assert_eq!(ask.fits_in(&capacity), Err("cpu"));
    }

    #[test]
    fn saturating_helpers_match_the_standard_ones() {
        let values = [i64::MIN, i64::MIN + 1, -5, -1, 0, 1, 5, i64::MAX - 1, i64::MAX];
        for a in values {
            for b in values {
                assert_eq!(saturating_add(a, b), a.saturating_add(b), "{a} + {b}");
                assert_eq!(saturating_sub(a, b), a.saturating_sub(b), "{a} - {b}");
            }
        }
    }

    /// `MemoryMB: 4611686018427387904` in two tasks used to wrap the sum
    /// negative, so the allocation fit any node.
    #[test]
    fn sums_saturate_instead_of_wrapping_negative() {
        let huge = AllocatedTaskResources {
            cpu_mhz: i64::MAX,
            memory_mb: 1 << 62,
            ..AllocatedTaskResources::default()
        };
        let resources = AllocatedResources {
            tasks: TaskResources::from([("a".to_string(), huge.clone()), ("b".to_string(), huge)]),
            disk_mb: 300,
            networks: Vec::new(),
        };
        let total = resources.comparable();
        assert_eq!(total.memory_mb, i64::MAX);
        assert_eq!(total.cpu_mhz, i64::MAX);
        let node = ComparableResources {
            cpu_mhz: 4000,
            cores: 4,
            memory_mb: 8192,
            memory_max_mb: 0,
            disk_mb: 10_000,
        };
        assert_eq!(total.fits_in(&node), Err("cpu"));
        let mut usage = ComparableResources {
            memory_mb: 100,
            ..ComparableResources::default()
        };
        usage.add(&total);
        usage.add(&total);
        assert_eq!(usage.memory_mb, i64::MAX, "usage never wraps negative");
        usage.subtract(&ComparableResources {
            memory_mb: i64::MAX,
            ..ComparableResources::default()
        });
        usage.subtract(&ComparableResources {
            memory_mb: i64::MAX,
            ..ComparableResources::default()
        });
        assert_eq!(usage.memory_mb, i64::MIN + 1, "subtraction saturates too");
    }

    #[test]
    fn device_names_match_at_every_depth() {
        let device = NodeDevice {
            vendor: "nvidia".into(),
            device_type: "gpu".into(),
            name: "1080ti".into(),
            ..Default::default()
        };
        assert!(device.matches("gpu"));
        assert!(device.matches("nvidia/gpu"));
        assert!(device.matches("nvidia/gpu/1080ti"));
        assert!(!device.matches("amd/gpu"));
        assert!(!device.matches("fpga"));
    }
}
