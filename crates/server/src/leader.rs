//! What a server does while it leads, started and stopped with leadership.
//!
//! On gaining leadership the server first confirms it with a quorum and
//! waits until it has applied everything committed before (so its state
//! holds every pending evaluation), then enables the eval broker and fills
//! it from the state, gives every ready node the failover heartbeat TTL,
//! re-evaluates blocked work, and starts the reaper of failed evaluations.
//! On losing it, the broker is disabled and emptied and the heartbeat
//! timers stop; workers elsewhere then find the new leader.

use crate::{Server, new_id, now_nanos};
use std::time::Duration;
use types::{EvalStatus, trigger};

/// Follows Raft leadership for the life of the server.
pub(crate) async fn run_leadership(server: Server) {
    let mut leading = server.raft().leadership();
    let mut shutdown = server.inner().shutdown.subscribe();
    loop {
        let is_leading = *leading.borrow_and_update();
        if is_leading {
            let duties = tokio::spawn(lead(server.clone()));
            tokio::select! {
                _ = leading.wait_for(|leads| !*leads) => {}
                _ = shutdown.changed() => {}
            }
            duties.abort();
            revoke(&server);
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

fn revoke(server: &Server) {
    tracing::info!("leadership lost; stopping leader duties");
    server.inner().leader_ready.send_replace(false);
    server.inner().broker.set_enabled(false);
    server.inner().heartbeats.clear();
}

/// Establishes leadership, then runs the leader's periodic duties until
/// aborted.
async fn lead(server: Server) {
    // Confirm leadership and catch up with every committed entry.
    let mut backoff = rpc::Backoff::random(Duration::from_millis(20), Duration::from_secs(1));
    loop {
        match server.raft().read_index().await {
            Ok(index) => {
                if server.raft().wait_applied(index, Duration::from_secs(30)).await {
                    break;
                }
            }
            Err(error) => tracing::debug!(%error, "leadership not confirmed yet"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
    let snapshot = server.state();
    let now = now_nanos();
    server.inner().broker.set_enabled(true);
    let mut restored = 0;
    for eval in snapshot.evals() {
        if eval.status == EvalStatus::Pending {
            server.inner().broker.enqueue((**eval).clone(), now);
            restored += 1;
        }
    }
    server.reset_all_heartbeats();
    tracing::info!(pending_evals = restored, "leadership established");
    // Before the server reports ready, so a new cluster's first variable
    // write finds a key.
    server.ensure_root_key().await;
    server.inner().leader_ready.send_replace(true);
    server.unblock_evals().await;
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let gc_interval = server.config().gc.interval.max(Duration::from_secs(1));
    let mut gc = tokio::time::interval_at(tokio::time::Instant::now() + gc_interval, gc_interval);
    gc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                reap_failed_evals(&server).await;
                crate::deployment_watcher::run_once(&server).await;
                server.ensure_root_key().await;
                crate::vars::expire_locks(&server).await;
                crate::periodic::run_once(&server).await;
                crate::drainer::run_once(&server).await;
            }
            _ = gc.tick() => {
                if let Err(error) = server.collect_garbage(false).await {
                    tracing::warn!(%error, "garbage collection failed");
                }
            }
        }
    }
}

/// Marks evaluations that reached the broker's delivery limit failed, each
/// with a follow-up evaluation that runs after a delay: work is retried
/// later, never dropped.
async fn reap_failed_evals(server: &Server) {
    let failed = server.inner().broker.take_failed();
    if failed.is_empty() {
        return;
    }
    let now = now_nanos();
    let delay = server.config().failed_eval_follow_up_delay;
    let wait_until = now.saturating_add(i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX));
    let mut evals = Vec::new();
    for eval in failed {
        tracing::warn!(eval_id = %eval.id, job_id = %eval.job_id, "evaluation reached its delivery limit; failing it with a follow-up");
        let follow_up = types::Evaluation {
            id: new_id(),
            status: EvalStatus::Pending,
            status_description: format!("follow-up of failed evaluation {}", eval.id),
            triggered_by: trigger::FAILED_FOLLOW_UP.to_string(),
            previous_eval: eval.id.clone(),
            wait_until,
            create_time: now,
            modify_time: now,
            node_id: String::new(),
            ..eval.clone()
        };
        let mut failed = eval;
        failed.status = EvalStatus::Failed;
        failed.status_description = "evaluation reached its delivery limit".to_string();
        failed.next_eval = follow_up.id.clone();
        failed.modify_time = now;
        evals.push(failed);
        evals.push(follow_up);
    }
    if let Err(error) = server.write_local(state::Command::EvalUpsert { evals }).await {
        tracing::warn!(%error, "could not record failed evaluations");
    }
}

impl Server {
    /// Writes the commands a leader duty planned (the deployment watcher,
    /// the drainer, the periodic dispatcher), in order. A command the
    /// state refuses is logged and the rest go on; a write that fails ends
    /// the pass (the next tick plans again from the state).
    pub(crate) async fn write_duty(&self, duty: &str, commands: Vec<state::Command>) {
        for command in commands {
            match self.write_local(command).await {
                Ok(result) => {
                    if let Some(error) = result.error {
                        tracing::debug!(%error, duty, "leader duty's update refused");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, duty, "could not record a leader duty's update");
                    return;
                }
            }
        }
    }
}
