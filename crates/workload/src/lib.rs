//! The benchmarks' workload, the same for every store it runs against: a
//! synthetic heterogeneous cluster (node shapes, datacenters, classes,
//! attributes) and service jobs whose total demand fills a chosen share of
//! the cluster's binding dimension, with mixed sizes, some constraints and
//! some spread. Everything derives from a seed, so two runs (and two
//! stores) see the same nodes and jobs.
//!
//! Used by `drover-bench` (through the server's code and store) and by the
//! scheduler's own tests; it is never part of a server or a client.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::fmt;
use types::{
    ComparableResources, Constraint, DriverInfo, EphemeralDisk, EvalStatus, Evaluation, Job, JobType, Node, NodeStatus,
    Resources, Spread, SpreadTarget, Task, TaskGroup,
};

/// The figures of one benchmark run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Allocations placed.
    pub placements: u64,
    /// Allocations that could not be placed.
    pub failed: u64,
    /// Wall time of the schedule-and-apply loop.
    pub seconds: f64,
    /// Time spent inside `schedule` only.
    pub schedule_seconds: f64,
    pub placements_per_sec: f64,
    /// Placed demand ÷ cluster capacity in the binding dimension.
    pub fill: f64,
    /// Nodes holding at least one allocation.
    pub nodes_used: u64,
    /// Over cpu and memory, the largest placed demand ÷ capacity of the
    /// nodes in use: 1.0 when the used nodes are full in their binding
    /// dimension.
    pub packing_efficiency: f64,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RESULT placements={} seconds={:.3} placements_per_sec={:.0} fill={:.3} nodes_used={} packing_efficiency={:.3}",
            self.placements, self.seconds, self.placements_per_sec, self.fill, self.nodes_used, self.packing_efficiency
        )
    }
}

/// Node shapes: (class, cores, memory GiB, relative frequency).
const SHAPES: [(&str, i64, i64, u32); 7] = [
    ("small", 4, 8, 3),
    ("medium", 8, 32, 4),
    ("large", 16, 64, 4),
    ("xlarge", 32, 128, 2),
    ("highmem", 16, 256, 1),
    ("compute", 64, 128, 1),
    ("huge", 64, 256, 1),
];
const MHZ_PER_CORE: i64 = 2500;
const DATACENTERS: [(&str, u32); 4] = [("dc1", 4), ("dc2", 3), ("dc3", 2), ("dc4", 1)];

/// A 64-bit mix of a seed and an index (splitmix64's finaliser).
pub fn mix64(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn weighted<'a, T>(rng: &mut SmallRng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, weight)| weight).sum();
    let mut pick = rng.gen_range(0..total);
    for (item, weight) in items {
        if pick < *weight {
            return item;
        }
        pick -= weight;
    }
    &items[items.len() - 1].0
}

/// `count` heterogeneous nodes, ready, with computed classes.
pub fn nodes(count: usize, seed: u64) -> Vec<Node> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let shapes: Vec<((&str, i64, i64), u32)> = SHAPES
        .iter()
        .map(|(class, cores, mem, weight)| ((*class, *cores, *mem), *weight))
        .collect();
    let mut nodes = Vec::with_capacity(count);
    for index in 0..count {
        let (class, cores, mem_gib) = *weighted(&mut rng, &shapes);
        let datacenter = *weighted(&mut rng, &DATACENTERS);
        let id = types::uuid_from_bits(u128::from(mix64(seed, index as u64)) << 64 | index as u128);
        let mut node = Node {
            id,
            secret_id: types::uuid_from_bits(u128::from(mix64(seed ^ 0x5ec2e7, index as u64)) << 64 | index as u128),
            name: format!("node-{index:05}"),
            datacenter: datacenter.to_string(),
            node_class: class.to_string(),
            status: NodeStatus::Ready,
            ..Node::default()
        };
        node.resources.cores = cores;
        node.resources.cpu_mhz = cores * MHZ_PER_CORE;
        node.resources.memory_mb = mem_gib * 1024;
        node.resources.disk_mb = 500 * 1024;
        node.resources.min_dynamic_port = 20000;
        node.resources.max_dynamic_port = 32000;
        node.reserved = ComparableResources {
            cpu_mhz: 200,
            memory_mb: 512,
            ..ComparableResources::default()
        };
        let arch = if rng.gen_range(0..5) == 0 { "arm64" } else { "amd64" };
        node.attributes.insert("cpu.arch".into(), arch.into());
        node.attributes.insert("kernel.name".into(), "linux".into());
        node.attributes.insert("unique.hostname".into(), node.name.clone());
        node.meta.insert("rack".into(), format!("r{}", rng.gen_range(0..20)));
        for driver in ["exec", "docker"] {
            node.drivers.insert(
                driver.into(),
                DriverInfo {
                    detected: true,
                    healthy: true,
                    ..DriverInfo::default()
                },
            );
        }
        node.compute_class();
        nodes.push(node);
    }
    nodes
}

/// Builds `jobs` service jobs of `count` allocations whose total demand is
/// about `target_fill` of the cluster's binding dimension.
pub fn jobs(nodes: &[Node], jobs: usize, count: u32, seed: u64, target_fill: f64) -> Vec<Job> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x005E_ED0F_10B5);
    let mut capacity = ComparableResources::default();
    for node in nodes {
        capacity.add(&node.allocatable());
    }
    // Raw shapes first, then one scale factor for the whole workload.
    let mut shapes: Vec<(f64, f64)> = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let shape = match rng.gen_range(0..3) {
            0 => (rng.gen_range(500.0..4000.0), rng.gen_range(256.0..2048.0)),
            1 => (rng.gen_range(100.0..1000.0), rng.gen_range(1024.0..16384.0)),
            _ => {
                let cpu: f64 = rng.gen_range(250.0..2500.0);
                (cpu, cpu * rng.gen_range(1.0..4.0))
            }
        };
        shapes.push(shape);
    }
    let demand_cpu: f64 = shapes.iter().map(|shape| shape.0).sum::<f64>() * f64::from(count);
    let demand_mem: f64 = shapes.iter().map(|shape| shape.1).sum::<f64>() * f64::from(count);
    let ratio = (demand_cpu / capacity.cpu_mhz.max(1) as f64).max(demand_mem / capacity.memory_mb.max(1) as f64);
    let scale = if ratio > 0.0 { target_fill / ratio } else { 1.0 };
    let mut result = Vec::with_capacity(jobs);
    for (index, (cpu, mem)) in shapes.into_iter().enumerate() {
        // Keep every allocation placeable on a mid-size node.
        let cpu = ((cpu * scale).round() as i64).clamp(50, 16 * MHZ_PER_CORE);
        let mem = ((mem * scale).round() as i64).clamp(32, 64 * 1024);
        let mut group = TaskGroup {
            name: "app".into(),
            count,
            ephemeral_disk: EphemeralDisk {
                size_mb: 100,
                ..EphemeralDisk::default()
            },
            tasks: vec![Task {
                name: "main".into(),
                driver: if index % 2 == 0 { "docker".into() } else { "exec".into() },
                resources: Resources {
                    cpu,
                    memory_mb: mem,
                    ..Resources::default()
                },
                ..Task::default()
            }],
            ..TaskGroup::default()
        };
        let mut job = Job {
            id: format!("job-{index:04}"),
            job_type: JobType::Service,
            ..Job::default()
        };
        match index % 10 {
            1 | 6 => job.constraints.push(Constraint {
                ltarget: "${attr.cpu.arch}".into(),
                rtarget: "amd64".into(),
                operand: "=".into(),
            }),
            3 => group.constraints.push(Constraint {
                ltarget: "${node.class}".into(),
                rtarget: "small".into(),
                operand: "!=".into(),
            }),
            5 => job.spreads.push(Spread {
                attribute: "${node.datacenter}".into(),
                weight: 50,
                targets: Vec::new(),
            }),
            8 if index % 20 == 8 => job.spreads.push(Spread {
                attribute: "${node.datacenter}".into(),
                weight: 80,
                targets: DATACENTERS
                    .iter()
                    .map(|(dc, weight)| SpreadTarget {
                        value: (*dc).to_string(),
                        percent: (*weight * 10) as u8,
                    })
                    .collect(),
            }),
            _ => {}
        }
        job.task_groups.push(group);
        job.canonicalize();
        result.push(job);
    }
    result
}

/// The pending evaluation a job registration creates.
pub fn register_eval(job: &Job, id: String) -> Evaluation {
    Evaluation {
        id,
        namespace: job.namespace.clone(),
        priority: job.priority,
        job_type: Some(job.job_type),
        triggered_by: types::trigger::JOB_REGISTER.to_string(),
        job_id: job.id.clone(),
        status: EvalStatus::Pending,
        ..Evaluation::default()
    }
}

/// (fill, nodes used, packing efficiency) of a cluster given each node's
/// usage (what its live allocations hold): fill is placed demand ÷ cluster
/// capacity in the binding dimension; packing efficiency is placed demand ÷
/// the capacity of the nodes in use, in whichever dimension is fuller.
pub fn packing<'a>(nodes: impl IntoIterator<Item = (&'a Node, ComparableResources)>) -> (f64, u64, f64) {
    let mut total = ComparableResources::default();
    let mut used_capacity = ComparableResources::default();
    let mut demand = ComparableResources::default();
    let mut nodes_used = 0u64;
    for (node, usage) in nodes {
        let capacity = node.allocatable();
        total.add(&capacity);
        if usage != ComparableResources::default() {
            nodes_used += 1;
            used_capacity.add(&capacity);
            demand.add(&usage);
        }
    }
    let ratio = |demand: i64, capacity: i64| {
        if capacity > 0 {
            demand as f64 / capacity as f64
        } else {
            0.0
        }
    };
    let fill = ratio(demand.cpu_mhz, total.cpu_mhz).max(ratio(demand.memory_mb, total.memory_mb));
    let efficiency = ratio(demand.cpu_mhz, used_capacity.cpu_mhz).max(ratio(demand.memory_mb, used_capacity.memory_mb));
    (fill, nodes_used, efficiency)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_workload_and_fills_as_asked() {
        let cluster = nodes(500, 4);
        assert_eq!(cluster, nodes(500, 4));
        assert_ne!(cluster, nodes(500, 5));
        assert!(cluster.iter().all(|node| !node.computed_class.is_empty()));
        let workload = jobs(&cluster, 20, 50, 4, 0.7);
        assert_eq!(workload, jobs(&cluster, 20, 50, 4, 0.7));
        let mut capacity = ComparableResources::default();
        for node in &cluster {
            capacity.add(&node.allocatable());
        }
        let (cpu, mem) = workload.iter().fold((0i64, 0i64), |(cpu, mem), job| {
            let resources = &job.task_groups[0].tasks[0].resources;
            (cpu + resources.cpu * 50, mem + resources.memory_mb * 50)
        });
        let fill = (cpu as f64 / capacity.cpu_mhz as f64).max(mem as f64 / capacity.memory_mb as f64);
        assert!((0.55..=0.85).contains(&fill), "fill {fill}");
    }

    #[test]
    fn packing_counts_only_nodes_in_use() {
        let cluster = nodes(4, 1);
        let mut usage = vec![ComparableResources::default(); 4];
        usage[0] = cluster[0].allocatable();
        let (_, used, efficiency) = packing(cluster.iter().zip(usage));
        assert_eq!(used, 1);
        assert!((efficiency - 1.0).abs() < 1e-9);
    }
}
