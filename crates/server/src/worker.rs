//! Scheduler workers and the plan applier.
//!
//! Workers run on every server. A worker takes an evaluation from the
//! leader's broker (directly on the leader, over RPC elsewhere), waits
//! until its own state has applied the evaluation's index, runs the pure
//! scheduler on a blocking thread (so a large evaluation never stalls the
//! async runtime, and a scheduler panic fails only that evaluation), and
//! submits the plan to the leader's plan applier. If the applier rejected
//! some nodes (another plan took the room first), the worker schedules
//! again on a fresher snapshot. Done, it acks the evaluation; when it
//! could not finish (the leader moved, a write failed, the scheduler
//! panicked) it nacks it, and the broker hands it out again or, past its
//! delivery limit, fails it with a follow-up.
//!
//! The plan applier runs on the leader only, as a single task, so
//! verification against the latest state and the Raft commit never
//! interleave between plans.

use crate::peer::{PeerCall, PeerReply};
use crate::view::SnapshotView;
use crate::{PlanRequest, Server, ServerError, now_nanos, planner};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use state::Command;
use std::time::Duration;
use tokio::sync::mpsc;
use types::{EvalStatus, Evaluation, Plan, PlanResult};

/// How many times a worker re-plans after a partial commit before it gives
/// the evaluation back to the broker.
const MAX_PLAN_ATTEMPTS: usize = 5;
/// How long one dequeue waits for work before looking at leadership again.
const DEQUEUE_WAIT: Duration = Duration::from_secs(2);

pub(crate) async fn run_plan_applier(server: Server, mut plans: mpsc::Receiver<PlanRequest>) {
    while let Some((plan, reply)) = plans.recv().await {
        let result = apply_plan(&server, plan).await;
        let _ = reply.send(result);
    }
}

/// Verifies a plan against the latest state and commits what still fits.
/// Leader only.
pub(crate) async fn apply_plan(server: &Server, plan: Plan) -> Result<PlanResult, ServerError> {
    if !server.is_leader() {
        return Err(ServerError::NotLeader {
            leader: server.leader(),
        });
    }
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
    // The deployment goes with the first commit its allocations are in;
    // the cancellation of an older one with the plan's final commit.
    let deployment = plan
        .deployment
        .filter(|deployment| snapshot.deployment(&deployment.id).is_none())
        .filter(|_| full || !verified.allocs.is_empty());
    let deployment_updates = if full { plan.deployment_updates } else { Vec::new() };
    if verified.allocs.is_empty()
        && eval_update.is_none()
        && created_evals.is_empty()
        && deployment.is_none()
        && deployment_updates.is_empty()
    {
        return Ok(verified.result);
    }
    let mut result = verified.result;
    let written = server
        .write_local(Command::PlanApply {
            allocs: verified.allocs,
            eval_update,
            created_evals,
            now: now_nanos(),
            deployment,
            deployment_updates,
        })
        .await?;
    result.alloc_index = written.index;
    Ok(result)
}

/// Waits until the applied state has reached `index`.
async fn snapshot_at_least(server: &Server, index: u64) -> state::StateSnapshot {
    if !server.raft().wait_applied(index, Duration::from_secs(5)).await {
        tracing::warn!(
            index,
            "state did not reach the evaluation's index in time; scheduling anyway"
        );
    }
    server.state()
}

/// Takes the next evaluation from the leader's broker, wherever it is.
async fn dequeue(server: &Server) -> Result<Option<(Evaluation, String)>, ServerError> {
    if server.is_leader() {
        if !server.inner().broker.enabled() {
            // Leading, but the duties are not running yet (or any more).
            let mut ready = server.inner().leader_ready.subscribe();
            let _ = tokio::time::timeout(DEQUEUE_WAIT, ready.wait_for(|ready| *ready)).await;
            return Ok(None);
        }
        return Ok(server.inner().broker.dequeue(now_nanos, DEQUEUE_WAIT).await);
    }
    let wait_ms = u64::try_from(DEQUEUE_WAIT.as_millis()).unwrap_or(2_000);
    match server.call_leader(PeerCall::EvalDequeue { wait_ms }).await? {
        PeerReply::Eval(found) => Ok(found),
        other => Err(ServerError::Internal(format!("unexpected dequeue answer {other:?}"))),
    }
}

/// Acks (`done`) or nacks an evaluation at the leader's broker.
async fn settle(server: &Server, eval_id: &str, token: &str, done: bool) {
    let result = if server.is_leader() {
        if done {
            server.inner().broker.ack(eval_id, token)
        } else {
            server.inner().broker.nack(eval_id, token, now_nanos())
        }
        .map_err(|error| ServerError::BadRequest(error.to_string()))
    } else {
        let call = if done {
            PeerCall::EvalAck {
                eval_id: eval_id.to_string(),
                token: token.to_string(),
            }
        } else {
            PeerCall::EvalNack {
                eval_id: eval_id.to_string(),
                token: token.to_string(),
            }
        };
        server.call_leader(call).await.map(drop)
    };
    if let Err(error) = result {
        // The leader moved on: the new leader redelivers from the state.
        tracing::debug!(%eval_id, %error, done, "could not settle evaluation");
    }
}

pub(crate) async fn run_worker(server: Server, worker_idx: u64) {
    // Each worker has its own seeded generator: placement randomness is
    // reproducible for a given seed, and no global RNG is touched.
    let mut rng = SmallRng::seed_from_u64(0x5eed_0000 + worker_idx);
    let mut shutdown = server.inner().shutdown.subscribe();
    let mut backoff = rpc::Backoff::random(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        if *shutdown.borrow() {
            return;
        }
        let next = tokio::select! {
            next = dequeue(&server) => next,
            _ = shutdown.changed() => return,
        };
        let (eval, token) = match next {
            Ok(Some(found)) => {
                backoff.reset();
                found
            }
            Ok(None) => continue,
            Err(error) => {
                tracing::debug!(%error, "no evaluation from the leader; waiting");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let eval_id = eval.id.clone();
        let outcome = process_eval(&server, eval, &mut rng).await;
        if let Err(error) = &outcome {
            tracing::warn!(eval_id = %eval_id, %error, "evaluation not finished; giving it back");
        }
        settle(&server, &eval_id, &token, outcome.is_ok()).await;
    }
}

/// Runs the scheduler for `eval` on a blocking thread; a panic becomes an
/// error for this evaluation alone.
async fn schedule(
    snapshot: state::StateSnapshot,
    eval: Evaluation,
    mut rng: SmallRng,
) -> (Result<Result<Plan, scheduler::ScheduleError>, ServerError>, SmallRng) {
    let seed_after_panic = SmallRng::seed_from_u64(now_nanos() as u64);
    let joined = tokio::task::spawn_blocking(move || {
        let now = now_nanos();
        let mut ids = crate::new_id;
        let plan = scheduler::schedule(&SnapshotView(&snapshot), &eval, now, &mut ids, &mut rng);
        (plan, rng)
    })
    .await;
    match joined {
        Ok((plan, rng)) => (Ok(plan), rng),
        Err(error) => (
            Err(ServerError::Internal(format!("the scheduler failed: {error}"))),
            seed_after_panic,
        ),
    }
}

async fn process_eval(server: &Server, eval: Evaluation, rng: &mut SmallRng) -> Result<(), ServerError> {
    let mut snapshot = snapshot_at_least(server, eval.modify_index).await;
    for attempt in 0..MAX_PLAN_ATTEMPTS {
        let taken = std::mem::replace(rng, SmallRng::seed_from_u64(0));
        let (plan, returned) = schedule(snapshot.clone(), eval.clone(), taken).await;
        *rng = returned;
        let plan = match plan? {
            Ok(plan) => plan,
            Err(error) => {
                let now = now_nanos();
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
    Err(ServerError::Internal(format!(
        "plan rejected {MAX_PLAN_ATTEMPTS} times in a row"
    )))
}
