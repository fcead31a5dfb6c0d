//! Heartbeat timers: one per live node, on the leader only. Each heartbeat
//! resets the node's timer; a timer that runs out marks the node down (with
//! evaluations for the jobs that had allocations there).
//!
//! The TTL a node is told grows with the cluster, as in Nomad: the larger
//! of the configured minimum and `nodes / max_heartbeats_per_second`, plus
//! a random share of itself, so a large cluster's heartbeats spread out
//! instead of arriving in waves. The server waits the TTL plus a grace
//! period before marking a node down. A new leader gives every node the
//! longer failover TTL first, so an election does not mark the fleet down.
//! Timers use tokio time, so tests run them under paused time.

use crate::Server;
use rand::Rng;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use types::{NodeStatus, trigger};

/// The TTL for a cluster of `nodes` nodes before jitter: at least `min`,
/// and enough that `nodes` heartbeats per TTL stay under `max_per_second`.
pub(crate) fn base_ttl(min: Duration, nodes: usize, max_per_second: f64) -> Duration {
    if max_per_second <= 0.0 || !max_per_second.is_finite() {
        return min;
    }
    let spread = Duration::from_secs_f64(nodes as f64 / max_per_second);
    min.max(spread)
}

/// A TTL with up to as much again added at random.
pub(crate) fn jittered(ttl: Duration, rng: &mut impl Rng) -> Duration {
    let extra = rng.gen_range(0.0..1.0);
    ttl + ttl.mul_f64(extra)
}

/// The timers, keyed by node ID.
#[derive(Default)]
pub(crate) struct Heartbeats {
    timers: Mutex<HashMap<String, mpsc::UnboundedSender<Duration>>>,
}

impl Heartbeats {
    fn timers(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Duration>>> {
        match self.timers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Resets (or starts) the timer of `node_id` to fire after `timeout`.
    pub(crate) fn reset(&self, server: Server, node_id: &str, timeout: Duration) {
        let mut timers = self.timers();
        if let Some(timer) = timers.get(node_id)
            && timer.send(timeout).is_ok()
        {
            return;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        timers.insert(node_id.to_string(), tx);
        let node_id = node_id.to_string();
        tokio::spawn(async move {
            let mut timeout = timeout;
            loop {
                match tokio::time::timeout(timeout, rx.recv()).await {
                    Ok(Some(next)) => timeout = next,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            server.inner().heartbeats.forget(&node_id);
            if !server.is_leader() {
                return;
            }
            if let Err(error) = server.mark_node_down(&node_id).await {
                tracing::warn!(%node_id, %error, "could not mark node down");
            }
        });
    }

    fn forget(&self, node_id: &str) {
        self.timers().remove(node_id);
    }

    /// Stops every timer (leadership lost).
    pub(crate) fn clear(&self) {
        self.timers().clear();
    }

    /// How many nodes have a running timer.
    pub(crate) fn count(&self) -> usize {
        self.timers().len()
    }
}

impl Server {
    /// The TTL to tell a heartbeating node, and how long the leader waits
    /// for its next heartbeat (TTL plus grace).
    pub(crate) fn heartbeat_ttl(&self) -> (Duration, Duration) {
        let config = self.config();
        let nodes = self.inner().heartbeats.count().max(self.state().node_count());
        let base = base_ttl(config.heartbeat_ttl, nodes, config.max_heartbeats_per_second);
        let ttl = jittered(base, &mut rand::thread_rng());
        (ttl, ttl + config.heartbeat_grace)
    }

    /// Restarts a node's timer after a heartbeat; returns the TTL to tell it.
    pub(crate) fn touch_node(&self, node_id: &str) -> Duration {
        let (ttl, wait) = self.heartbeat_ttl();
        self.inner().heartbeats.reset(self.clone(), node_id, wait);
        ttl
    }

    /// Gives every ready node the failover TTL (a new leader's first act).
    pub(crate) fn reset_all_heartbeats(&self) {
        let state = self.state();
        let failover = self.config().failover_heartbeat_ttl;
        for node in state.nodes() {
            if node.status == NodeStatus::Ready {
                self.inner().heartbeats.reset(self.clone(), &node.id, failover);
            }
        }
    }

    /// Marks a node down and asks for its allocations to be replaced.
    pub(crate) async fn mark_node_down(&self, node_id: &str) -> Result<(), crate::ServerError> {
        let Some(node) = self.state().node(node_id) else {
            return Ok(());
        };
        if node.status == NodeStatus::Down {
            return Ok(());
        }
        tracing::info!(%node_id, "node missed its heartbeat; marking it down");
        let now = crate::now_nanos();
        let evals = self.node_evals(node_id, trigger::NODE_UPDATE, now);
        self.write_local(state::Command::NodeUpdateStatus {
            node_id: node_id.to_string(),
            status: NodeStatus::Down,
            now,
            evals,
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_ttl_grows_with_the_cluster_and_is_jittered() {
        let min = Duration::from_secs(10);
        assert_eq!(base_ttl(min, 100, 50.0), min);
        assert_eq!(base_ttl(min, 10_000, 50.0), Duration::from_secs(200));
        assert_eq!(base_ttl(min, 10_000, 0.0), min, "no limit configured");
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let ttls: Vec<Duration> = (0..100).map(|_| jittered(min, &mut rng)).collect();
        assert!(ttls.iter().all(|ttl| *ttl >= min && *ttl < min * 2));
        assert!(ttls.iter().any(|ttl| *ttl > min + Duration::from_secs(5)), "spread out");
    }
}
