//! The benchmark's workload (the `workload` crate) run through the
//! scheduler on an in-memory [`MemCluster`], for the scheduler's own
//! packing and correctness tests. Compiled only for tests and with the
//! `testing` feature: the benchmark users run, `drover-bench scheduler`,
//! goes through the server's code and store instead.
//!
//! **Clock seam:** this module reads a clock (`std::time::Instant`) only to
//! report how long a run took; `now` given to the scheduler is fixed.

use crate::testing::MemCluster;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use types::Job;

pub use workload::BenchReport;

/// A heterogeneous cluster of `count` nodes (the benchmark's shapes).
pub fn build_cluster(count: usize, seed: u64) -> MemCluster {
    let mut cluster = MemCluster::new();
    for node in workload::nodes(count, seed) {
        cluster.upsert_node(node);
    }
    cluster
}

/// Service jobs filling about `target_fill` of the cluster.
pub fn build_jobs(cluster: &MemCluster, jobs: usize, count: u32, seed: u64, target_fill: f64) -> Vec<Job> {
    let nodes: Vec<types::Node> = cluster.node_list().iter().map(|node| (**node).clone()).collect();
    workload::jobs(&nodes, jobs, count, seed, target_fill)
}

/// `jobs` service jobs of `count` allocations over `nodes` nodes, each
/// scheduled and its plan applied before the next.
pub fn run(nodes: usize, jobs: usize, count: u32, seed: u64) -> BenchReport {
    let mut cluster = build_cluster(nodes, seed);
    let workload = build_jobs(&cluster, jobs, count, seed, 0.70);
    let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(1));
    let mut id_counter = 0u64;
    let mut ids = move || {
        id_counter += 1;
        types::uuid_from_bits(u128::from(workload::mix64(seed ^ 0xA110C, id_counter)) << 64 | u128::from(id_counter))
    };
    let now: types::UnixNanos = 1_700_000_000_000_000_000;
    let (mut placements, mut failed, mut schedule_seconds) = (0u64, 0u64, 0.0);
    let started = std::time::Instant::now();
    for job in workload {
        let eval = workload::register_eval(&job, ids());
        cluster.upsert_job(job);
        let schedule_started = std::time::Instant::now();
        let Ok(plan) = crate::schedule(&cluster, &eval, now, &mut ids, &mut rng) else {
            continue;
        };
        schedule_seconds += schedule_started.elapsed().as_secs_f64();
        if let Some(update) = &plan.eval_update {
            failed += update.queued_allocations.values().sum::<u64>();
        }
        placements += cluster.apply_plan_owned(plan).placed as u64;
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

/// (fill, nodes used, packing efficiency) of a cluster's live allocations.
pub fn packing(cluster: &MemCluster) -> (f64, u64, f64) {
    workload::packing(
        cluster
            .node_list()
            .iter()
            .map(|node| &**node)
            .zip(cluster.usage_list().iter().copied()),
    )
}
