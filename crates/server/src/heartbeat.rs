//! Heartbeat timers: one per live node. Each heartbeat resets the node's
//! timer; a timer that runs out marks the node down (with evaluations for
//! the jobs that had allocations there). Timers use tokio time, so tests run
//! them under paused time.

use crate::Server;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use types::{NodeStatus, trigger};

/// The timers, keyed by node ID.
pub(crate) struct Heartbeats {
    timeout: Duration,
    timers: Mutex<HashMap<String, mpsc::UnboundedSender<()>>>,
}

impl Heartbeats {
    pub(crate) fn new(timeout: Duration) -> Heartbeats {
        Heartbeats {
            timeout,
            timers: Mutex::new(HashMap::new()),
        }
    }

    /// Resets (or starts) the timer of `node_id`.
    pub(crate) fn reset(&self, server: Server, node_id: &str) {
        let mut timers = match self.timers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(timer) = timers.get(node_id)
            && timer.send(()).is_ok()
        {
            return;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        timers.insert(node_id.to_string(), tx);
        let timeout = self.timeout;
        let node_id = node_id.to_string();
        tokio::spawn(async move {
            loop {
                match tokio::time::timeout(timeout, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            server.inner().heartbeats.forget(&node_id);
            if let Err(error) = server.mark_node_down(&node_id).await {
                tracing::warn!(%node_id, %error, "could not mark node down");
            }
        });
    }

    fn forget(&self, node_id: &str) {
        let mut timers = match self.timers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        timers.remove(node_id);
    }
}

impl Server {
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
        self.write(state::Command::NodeUpdateStatus {
            node_id: node_id.to_string(),
            status: NodeStatus::Down,
            now,
            evals,
        })
        .await?;
        Ok(())
    }
}
