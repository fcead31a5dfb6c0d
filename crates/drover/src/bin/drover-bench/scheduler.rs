//! `drover-bench scheduler`: placements per second through the server's
//! own code and store, on one core, without Raft's IO: each job is
//! registered into a `state::StateSnapshot` with its evaluation, scheduled
//! by `server::plan_evaluation` (what every worker calls) against an O(1)
//! snapshot of that state, verified by `server::plan_command` (what the
//! plan applier calls) against the latest state, and the resulting command
//! applied (what every server's state machine does with it). The workload
//! comes from the `workload` crate, the same for every run of a seed.

use rand::SeedableRng;
use rand::rngs::SmallRng;
use state::{Command, StateSnapshot};
use std::time::Instant;

/// The figures of one run.
#[derive(Debug, Default)]
pub struct Report {
    pub placements: u64,
    pub failed: u64,
    pub seconds: f64,
    pub schedule_seconds: f64,
    pub verify_seconds: f64,
    pub apply_seconds: f64,
    pub fill: f64,
    pub nodes_used: u64,
    pub packing_efficiency: f64,
    /// Plans verified by the applier, and of those the ones with a node
    /// rejected because a concurrent plan took its room first.
    pub plans: u64,
    pub conflicts: u64,
}

/// Runs `jobs` service jobs of `count` allocations over `nodes` nodes.
pub fn run(nodes: usize, jobs: usize, count: u32, seed: u64) -> Report {
    let cluster = workload::nodes(nodes, seed);
    let workload = workload::jobs(&cluster, jobs, count, seed, 0.70);
    let now: types::UnixNanos = 1_700_000_000_000_000_000;
    let mut state = StateSnapshot::new();
    let mut index = 0u64;
    for node in cluster {
        index += 1;
        state.apply(index, Command::NodeRegister { node, now });
    }
    let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(1));
    let mut id_counter = 0u64;
    let mut ids = move || {
        id_counter += 1;
        types::uuid_from_bits(u128::from(workload::mix64(seed ^ 0xA110C, id_counter)) << 64 | u128::from(id_counter))
    };
    let (mut placements, mut failed, mut plans) = (0u64, 0u64, 0u64);
    let (mut schedule_seconds, mut verify_seconds, mut apply_seconds) = (0.0, 0.0, 0.0);
    // Clock seam: timing only; the server code is given a fixed `now`.
    let started = Instant::now();
    for job in workload {
        let eval = workload::register_eval(&job, ids());
        index += 1;
        state.apply(
            index,
            Command::JobRegister {
                job,
                eval: Some(eval.clone()),
                now,
                enforce_index: None,
            },
        );
        let phase = Instant::now();
        let snapshot = state.clone();
        let Ok(plan) = server::plan_evaluation(&snapshot, &eval, now, &mut ids, &mut rng) else {
            continue;
        };
        schedule_seconds += phase.elapsed().as_secs_f64();
        if let Some(update) = &plan.eval_update {
            failed += update.queued_allocations.values().sum::<u64>();
        }
        let phase = Instant::now();
        let (command, result) = server::plan_command(&state, plan, now);
        plans += 1;
        verify_seconds += phase.elapsed().as_secs_f64();
        placements += result
            .node_allocation
            .values()
            .map(|allocs| allocs.len() as u64)
            .sum::<u64>();
        if let Some(command) = command {
            let phase = Instant::now();
            index += 1;
            state.apply(index, command);
            apply_seconds += phase.elapsed().as_secs_f64();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (fill, nodes_used, packing_efficiency) =
        workload::packing(state.nodes().map(|node| (&**node, state.node_usage(&node.id))));
    Report {
        placements,
        failed,
        seconds,
        schedule_seconds,
        verify_seconds,
        apply_seconds,
        fill,
        nodes_used,
        packing_efficiency,
        plans,
        conflicts: 0,
    }
}

/// The shared store of the concurrent variant: what the plan applier owns.
struct Store {
    state: StateSnapshot,
    index: u64,
}

/// `workers` threads schedule at once, each on its own snapshot, and
/// submit their plans to one applier (a lock around verification and
/// apply, as the server's single plan-applier task serialises them). A
/// partly rejected plan is planned again on a fresh snapshot, as workers
/// do; the report counts those conflicts.
pub fn run_concurrent(nodes: usize, jobs: usize, count: u32, seed: u64, workers: usize) -> Report {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let cluster = workload::nodes(nodes, seed);
    let workload = workload::jobs(&cluster, jobs, count, seed, 0.70);
    let now: types::UnixNanos = 1_700_000_000_000_000_000;
    let mut state = StateSnapshot::new();
    let mut index = 0u64;
    for node in cluster {
        index += 1;
        state.apply(index, Command::NodeRegister { node, now });
    }
    let store = Mutex::new(Store { state, index });
    let next_job = AtomicUsize::new(0);
    let (placements, failed, plans, conflicts) = (
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    let started = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let (store, next_job, workload) = (&store, &next_job, &workload);
            let (placements, failed, plans, conflicts) = (&placements, &failed, &plans, &conflicts);
            scope.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(1 + worker as u64));
                let mut id_counter = 0u64;
                let salt = seed ^ 0xA110C ^ ((worker as u64) << 56);
                let mut ids = move || {
                    id_counter += 1;
                    types::uuid_from_bits(u128::from(workload::mix64(salt, id_counter)) << 64 | u128::from(id_counter))
                };
                loop {
                    let Some(job) = workload.get(next_job.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    let eval = workload::register_eval(job, ids());
                    let mut snapshot = {
                        let Ok(mut store) = store.lock() else { return };
                        store.index += 1;
                        let index = store.index;
                        store.state.apply(
                            index,
                            Command::JobRegister {
                                job: job.clone(),
                                eval: Some(eval.clone()),
                                now,
                                enforce_index: None,
                            },
                        );
                        store.state.clone()
                    };
                    while let Ok(plan) = server::plan_evaluation(&snapshot, &eval, now, &mut ids, &mut rng) {
                        let queued: u64 = plan
                            .eval_update
                            .as_ref()
                            .map(|update| update.queued_allocations.values().sum())
                            .unwrap_or(0);
                        let Ok(mut store) = store.lock() else { return };
                        let (command, result) = server::plan_command(&store.state, plan, now);
                        if let Some(command) = command {
                            store.index += 1;
                            let index = store.index;
                            store.state.apply(index, command);
                        }
                        plans.fetch_add(1, Ordering::Relaxed);
                        let placed: u64 = result.node_allocation.values().map(|allocs| allocs.len() as u64).sum();
                        placements.fetch_add(placed, Ordering::Relaxed);
                        if result.rejected_nodes.is_empty() {
                            failed.fetch_add(queued, Ordering::Relaxed);
                            break;
                        }
                        conflicts.fetch_add(1, Ordering::Relaxed);
                        snapshot = store.state.clone();
                    }
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let Ok(store) = store.into_inner() else {
        return Report::default();
    };
    let state = store.state;
    let (fill, nodes_used, packing_efficiency) =
        workload::packing(state.nodes().map(|node| (&**node, state.node_usage(&node.id))));
    Report {
        placements: placements.into_inner(),
        failed: failed.into_inner(),
        seconds,
        fill,
        nodes_used,
        packing_efficiency,
        plans: plans.into_inner(),
        conflicts: conflicts.into_inner(),
        ..Report::default()
    }
}
