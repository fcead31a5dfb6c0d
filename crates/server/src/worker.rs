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
use crate::{PlanRequest, Server, ServerError, now_nanos, planner};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use state::Command;
use std::time::Duration;
use tokio::sync::mpsc;
use types::{EvalStatus, Evaluation, Plan};

/// How many plans in a row may be rejected without committing anything
/// before a worker gives the evaluation back to the broker. A plan that
/// commits part of its work resets the count: under contention (best fit
/// sends concurrent workers to the same fullest nodes) an evaluation keeps
/// going while it makes progress, instead of failing after a fixed number
/// of partial commits.
const MAX_FRUITLESS_PLANS: usize = 5;
/// A bound on all plans for one evaluation, progressing or not. Every
/// progressing plan commits at least one placement or stop, and an
/// evaluation has at most a group's count limit of those; this only
/// guards against a scheduler bug looping forever.
const MAX_PLANS: usize = 1_000;
/// How long one dequeue waits for work before looking at leadership again.
const DEQUEUE_WAIT: Duration = Duration::from_secs(2);

/// The plan applier, on the leader: one plan at a time is verified and
/// written, in the order they arrive, and it is pipelined. While plan N's
/// Raft write is in flight, plan N+1 is verified against the applied state
/// plus what plan N will hold ([`planner::PendingUsage`]); N+1's write is
/// issued once N's has returned, so commits keep verification order.
pub(crate) async fn run_plan_applier(server: Server, mut plans: mpsc::Receiver<PlanRequest>) {
    let mut in_flight: Option<(tokio::task::JoinHandle<()>, planner::PendingUsage)> = None;
    while let Some((plan, reply)) = plans.recv().await {
        if !server.is_leader() {
            let _ = reply.send(Err(ServerError::NotLeader {
                leader: server.leader(),
            }));
            continue;
        }
        // Only the outstanding delivery of the evaluation may commit: one
        // whose nack timer ran out was handed to another worker, whose
        // plan would place the same allocations again.
        if let Err(error) = server
            .inner()
            .broker
            .outstanding_reset(&plan.eval_id, &plan.eval_token, now_nanos())
        {
            let _ = reply.send(Err(ServerError::BadRequest(format!(
                "plan for evaluation {} refused: {error}",
                plan.eval_id
            ))));
            continue;
        }
        let state = server.state();
        let pending = match &in_flight {
            // Counted unless the state already holds it.
            Some((_, pending)) => pending.unapplied(&state),
            None => planner::PendingUsage::default(),
        };
        let verify_started = std::time::Instant::now();
        let (command, mut result) = planner::plan_command_with(&state, plan, now_nanos(), &pending);
        let inner = server.inner();
        inner
            .metrics
            .time("nomad.nomad.plan.evaluate", &[], verify_started.elapsed());
        inner.plans_applied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !result.rejected_nodes.is_empty() {
            inner.plans_rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if !pending.is_empty() {
                // Rejected against a write not applied yet: the worker's
                // next snapshot must include at least the next entry.
                result.refresh_index = state.index() + 1;
            }
        }
        if let Some((commit, _)) = in_flight.take() {
            let _ = commit.await;
        }
        let Some(command) = command else {
            let _ = reply.send(Ok(result));
            continue;
        };
        let mut holds = planner::PendingUsage::default();
        holds.add(&state, &command);
        let writer = server.clone();
        let commit = tokio::spawn(async move {
            let apply_started = std::time::Instant::now();
            let written = writer.write_local(command).await.map(|written| {
                result.alloc_index = written.index;
                result
            });
            let metrics = writer.metrics();
            metrics.time("nomad.nomad.plan.apply", &[], apply_started.elapsed());
            if let Ok(result) = &written {
                let placed: usize = result.node_allocation.values().map(Vec::len).sum();
                metrics.incr("drover.scheduler.placements", &[], placed as f64);
            }
            let _ = reply.send(written);
        });
        in_flight = Some((commit, holds));
    }
    if let Some((commit, _)) = in_flight {
        let _ = commit.await;
    }
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
        let eval_type = eval.job_type.map(|job_type| job_type.as_str()).unwrap_or("unknown");
        let started = std::time::Instant::now();
        let outcome = process_eval(&server, eval, &token, &mut rng).await;
        server
            .metrics()
            .time("drover.scheduler.eval_time", &[("type", eval_type)], started.elapsed());
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
        let mut ids = crate::new_id;
        let plan = crate::plan_evaluation(&snapshot, &eval, now_nanos(), &mut ids, &mut rng);
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

async fn process_eval(server: &Server, eval: Evaluation, token: &str, rng: &mut SmallRng) -> Result<(), ServerError> {
    let mut snapshot = if server.is_leader() {
        snapshot_at_least(server, eval.modify_index).await
    } else {
        // A follower may lag the leader: an earlier delivery of this
        // evaluation may have committed a plan this server has not
        // applied yet, and planning without it would place twice. Plan on
        // a state at least as new as the leader's commit index.
        match server.read_state(false).await {
            Ok(snapshot) if snapshot.index() >= eval.modify_index => snapshot,
            _ => snapshot_at_least(server, eval.modify_index).await,
        }
    };
    let mut fruitless = 0;
    let mut backoff = rpc::Backoff::random(Duration::from_millis(5), Duration::from_millis(200));
    for attempt in 0..MAX_PLANS {
        let taken = std::mem::replace(rng, SmallRng::seed_from_u64(0));
        let started = std::time::Instant::now();
        let (plan, returned) = schedule(snapshot.clone(), eval.clone(), taken).await;
        let eval_type = eval.job_type.map(|job_type| job_type.as_str()).unwrap_or("unknown");
        server.metrics().time(
            &format!("nomad.nomad.worker.invoke_scheduler.{eval_type}"),
            &[],
            started.elapsed(),
        );
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
        let mut plan = plan;
        plan.eval_token = token.to_string();
        let result = server.submit_plan(plan).await?;
        if result.rejected_nodes.is_empty() {
            return Ok(());
        }
        let progressed =
            !(result.node_allocation.is_empty() && result.node_update.is_empty() && result.node_preemptions.is_empty());
        tracing::debug!(eval_id = %eval.id, attempt, progressed, rejected = ?result.rejected_nodes, "plan partly rejected; re-planning");
        if progressed {
            fruitless = 0;
            backoff.reset();
        } else {
            fruitless += 1;
            if fruitless >= MAX_FRUITLESS_PLANS {
                return Err(ServerError::Internal(format!(
                    "{MAX_FRUITLESS_PLANS} plans in a row rejected without progress"
                )));
            }
            // Nothing fitted: the same snapshot race is likely to repeat at
            // once, so let the other workers' plans land first.
            tokio::time::sleep(backoff.next_delay()).await;
        }
        let at_least = result.alloc_index.max(result.refresh_index).max(snapshot.index());
        snapshot = snapshot_at_least(server, at_least).await;
    }
    Err(ServerError::Internal(format!("{MAX_PLANS} plans without finishing")))
}
