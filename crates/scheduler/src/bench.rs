//! The scheduler benchmark: a synthetic heterogeneous cluster, a workload
//! that fills 60–80% of its binding dimension with mixed sizes, some
//! constraints and some spread, scheduled one job at a time with each plan
//! applied to the in-memory view before the next evaluation.
//!
//! **Clock seam:** this module is the only place in the crate that reads a
//! clock (`std::time::Instant`), to time the run. The scheduler itself never
//! does; `now` passed to it is a fixed synthetic time.

use crate::testing::MemCluster;
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

/// Builds a heterogeneous cluster of `count` nodes.
pub fn build_cluster(count: usize, seed: u64) -> MemCluster {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut cluster = MemCluster::new();
    let shapes: Vec<((&str, i64, i64), u32)> = SHAPES
        .iter()
        .map(|(class, cores, mem, weight)| ((*class, *cores, *mem), *weight))
        .collect();
    for index in 0..count {
        let (class, cores, mem_gib) = *weighted(&mut rng, &shapes);
        let datacenter = *weighted(&mut rng, &DATACENTERS);
        let id = types::uuid_from_bits(u128::from(crate::util::mix64(seed, index as u64)) << 64 | index as u128);
        let mut node = Node {
            id,
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
        cluster.upsert_node(node);
    }
    cluster
}

/// Builds `jobs` service jobs of `count` allocations whose total demand is
/// about `target_fill` of the cluster's binding dimension.
pub fn build_jobs(cluster: &MemCluster, jobs: usize, count: u32, seed: u64, target_fill: f64) -> Vec<Job> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x005E_ED0F_10B5);
    let mut capacity = ComparableResources::default();
    for node in cluster.node_list() {
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
fn register_eval(job: &Job, id: String) -> Evaluation {
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

/// Runs the benchmark: `nodes` nodes, `jobs` service jobs of `count`
/// allocations each, everything derived from `seed`.
pub fn run(nodes: usize, jobs: usize, count: u32, seed: u64) -> BenchReport {
    let mut cluster = build_cluster(nodes, seed);
    let workload = build_jobs(&cluster, jobs, count, seed, 0.70);
    let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(1));
    let mut id_counter = 0u64;
    let mut ids = move || {
        id_counter += 1;
        types::uuid_from_bits(u128::from(crate::util::mix64(seed ^ 0xA110C, id_counter)) << 64 | u128::from(id_counter))
    };
    let now: types::UnixNanos = 1_700_000_000_000_000_000;
    let mut placements = 0u64;
    let mut failed = 0u64;
    let mut schedule_seconds = 0.0;
    // Clock seam: timing only; nothing below feeds the scheduler a clock.
    let started = std::time::Instant::now();
    for job in workload {
        let eval = register_eval(&job, ids());
        cluster.upsert_job(job);
        let schedule_started = std::time::Instant::now();
        // The compact path: the same scheduling as `schedule` (which gives
        // exactly `compact.into_plan(..)`), but plain new allocations reach
        // the store without a `types::Allocation` built and freed per
        // placement. The store still verifies every node's part.
        let compact = match crate::schedule_compact(&cluster, &eval, now, &mut ids, &mut rng) {
            Ok(compact) => compact,
            Err(_) => continue,
        };
        schedule_seconds += schedule_started.elapsed().as_secs_f64();
        if let Some(update) = &compact.plan.eval_update {
            failed += update.queued_allocations.values().sum::<u64>();
        }
        placements += cluster.apply_compact(compact).placed as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (fill, nodes_used, packing_efficiency) = packing(&cluster);
    BenchReport {
        placements,
        failed,
        seconds,
        schedule_seconds,
        placements_per_sec: if seconds > 0.0 {
            placements as f64 / seconds
        } else {
            0.0
        },
        fill,
        nodes_used,
        packing_efficiency,
    }
}

/// (fill, nodes used, packing efficiency) of a cluster's live allocations,
/// from its per-node usage index (every allocation that holds resources).
pub fn packing(cluster: &MemCluster) -> (f64, u64, f64) {
    let mut total = ComparableResources::default();
    let mut used_capacity = ComparableResources::default();
    let mut demand = ComparableResources::default();
    let mut nodes_used = 0u64;
    for (node, usage) in cluster.node_list().iter().zip(cluster.usage_list()) {
        let capacity = node.allocatable();
        total.add(&capacity);
        if *usage != ComparableResources::default() {
            nodes_used += 1;
            used_capacity.add(&capacity);
            demand.add(usage);
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

    /// The benchmark loop through the compact path (with class verdicts
    /// remembered across evaluations) and through `schedule` +
    /// `apply_plan_owned` (without), job by job: same plans, same outcomes,
    /// same store. Demand 1.2× capacity so that some groups fail (blocked evaluations
    /// with class eligibility).
    #[test]
    fn compact_path_matches_full_path() {
        let mut full = build_cluster(300, 3);
        let mut compact = full.clone();
        let workload = build_jobs(&full, 40, 60, 3, 1.2);
        let mut blocked = 0;
        let mut compact_placements = 0;
        let mut rng_full = SmallRng::seed_from_u64(9);
        let mut rng_compact = SmallRng::seed_from_u64(9);
        let (mut counter_full, mut counter_compact) = (0u64, 0u64);
        let now: types::UnixNanos = 1_700_000_000_000_000_000;
        for job in workload {
            let eval = register_eval(&job, format!("eval-{}", job.id));
            full.upsert_job(job.clone());
            compact.upsert_job(job);
            let mut ids_full = || {
                counter_full += 1;
                types::uuid_from_bits(u128::from(counter_full))
            };
            let mut ids_compact = || {
                counter_compact += 1;
                types::uuid_from_bits(u128::from(counter_compact))
            };
            // The full path starts every evaluation without remembered
            // class verdicts; the compact one keeps them across jobs.
            full.forget_verdicts();
            let plan = crate::schedule(&full, &eval, now, &mut ids_full, &mut rng_full).expect("schedules");
            let parts =
                crate::schedule_compact(&compact, &eval, now, &mut ids_compact, &mut rng_compact).expect("schedules");
            compact_placements += parts.parts.placements.len();
            assert_eq!(parts.clone().into_plan(compact.node_list()), plan);
            blocked += plan
                .created_evals
                .iter()
                .filter(|created| !created.class_eligibility.is_empty())
                .count();
            assert_eq!(compact.apply_compact(parts), full.apply_plan_owned(plan));
            crate::testing::same_cluster(&full, &compact).expect("same store");
        }
        assert!(blocked > 0, "some evaluations block");
        assert!(compact_placements > 1000, "the compact path is taken");
        assert_eq!(packing(&full), packing(&compact));
    }
}
