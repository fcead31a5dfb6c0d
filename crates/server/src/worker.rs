//! Scheduler workers and the plan applier.
//!
//! A worker takes an evaluation from the broker, waits until its state
//! snapshot has caught up with the evaluation, runs the pure scheduler, and
//! submits the plan. If the plan applier rejected some nodes (another plan
//! took the room first), the worker schedules again on a fresher snapshot.
//! The plan applier is a single task, so verification against the latest
//! state and the Raft commit never interleave between plans.

use crate::view::SnapshotView;
use crate::{PlanRequest, Server, ServerError, now_nanos, planner};
use rand::SeedableRng;
use state::Command;
use std::time::Duration;
use tokio::sync::mpsc;
use types::{EvalStatus, Evaluation, Plan, PlanResult};

/// How many times a worker re-plans after a partial commit.
const MAX_PLAN_ATTEMPTS: usize = 5;

pub(crate) async fn run_plan_applier(server: Server, mut plans: mpsc::Receiver<PlanRequest>) {
    while let Some((plan, reply)) = plans.recv().await {
        let result = apply_plan(&server, plan).await;
        let _ = reply.send(result);
    }
}

async fn apply_plan(server: &Server, plan: Plan) -> Result<PlanResult, ServerError> {
    let snapshot = server.state();
    let verified = planner::verify_plan(&snapshot, &plan);
    let full = verified.result.rejected_nodes.is_empty();
    // On a partial commit the worker re-plans, and the eval's final status
    // comes with that later plan.
    let (eval_update, created_evals) = if full {
        (plan.eval_update, plan.created_evals)
    } else {
        (None, Vec::new())
    };
    if verified.allocs.is_empty() && eval_update.is_none() && created_evals.is_empty() {
        return Ok(verified.result);
    }
    let mut result = verified.result;
    let written = server
        .write(Command::PlanApply {
            allocs: verified.allocs,
            eval_update,
            created_evals,
            now: now_nanos(),
        })
        .await?;
    result.alloc_index = written.index;
    Ok(result)
}

/// Waits until the applied state has reached `index`.
async fn snapshot_at_least(server: &Server, index: u64) -> state::StateSnapshot {
    let mut applied = server.subscribe();
    let wait = applied.wait_for(|applied_index| *applied_index >= index);
    if tokio::time::timeout(Duration::from_secs(5), wait).await.is_err() {
        tracing::warn!(
            index,
            "state did not reach the evaluation's index in time; scheduling anyway"
        );
    }
    server.state()
}

pub(crate) async fn run_worker(server: Server, worker_idx: u64) {
    // Each worker has its own seeded generator: placement randomness is
    // reproducible for a given seed, and no global RNG is touched.
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed_0000 + worker_idx);
    loop {
        let eval = server.inner().broker.dequeue(now_nanos).await;
        let eval_id = eval.id.clone();
        if let Err(error) = process_eval(&server, eval, &mut rng).await {
            tracing::warn!(eval_id = %eval_id, %error, "evaluation failed");
        }
        server.inner().broker.ack(&eval_id);
    }
}

async fn process_eval(server: &Server, eval: Evaluation, rng: &mut rand::rngs::SmallRng) -> Result<(), ServerError> {
    let mut snapshot = snapshot_at_least(server, eval.modify_index).await;
    for attempt in 0..MAX_PLAN_ATTEMPTS {
        let now = now_nanos();
        let mut ids = crate::new_id;
        let plan = match scheduler::schedule(&SnapshotView(&snapshot), &eval, now, &mut ids, rng) {
            Ok(plan) => plan,
            Err(error) => {
                let mut failed = eval.clone();
                failed.status = EvalStatus::Failed;
                failed.status_description = error.to_string();
                failed.modify_time = now;
                server.write(Command::EvalUpsert { evals: vec![failed] }).await?;
                return Ok(());
            }
        };
        let result = server.submit_plan(plan).await?;
        if result.rejected_nodes.is_empty() {
            return Ok(());
        }
        tracing::debug!(eval_id = %eval.id, attempt, rejected = ?result.rejected_nodes, "plan partly rejected; re-planning");
        let at_least = result.alloc_index.max(snapshot.index());
        snapshot = snapshot_at_least(server, at_least).await;
    }
    let mut failed = eval.clone();
    failed.status = EvalStatus::Failed;
    failed.status_description = format!("plan rejected {MAX_PLAN_ATTEMPTS} times");
    failed.modify_time = now_nanos();
    server.write(Command::EvalUpsert { evals: vec![failed] }).await?;
    Ok(())
}
