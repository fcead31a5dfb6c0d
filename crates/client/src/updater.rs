//! Sends allocation status to the servers in batches.
//!
//! Updates are whole snapshots of an allocation's client-side state, so a
//! newer one for the same allocation replaces an older one still waiting.
//! The first update after a quiet period goes out after a short window
//! (gathering whatever else arrives meanwhile); a failed batch is kept and
//! retried with back-off until the server takes it. Nothing is dropped:
//! should the agent stop before the server answers, the allocation's local
//! state still holds the status, and it is sent again on the next start.

use rpc::{AllocUpdateRequest, RpcClient, RpcError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use types::AllocClientUpdate;

/// Where alloc runners put their updates.
pub type UpdateSender = mpsc::UnboundedSender<AllocClientUpdate>;

/// Timings of the update loop.
#[derive(Debug, Clone, Copy)]
pub struct UpdaterTimings {
    /// How long to gather updates before sending.
    pub batch_window: Duration,
    /// First pause after a failed send; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest pause between retries.
    pub max_backoff: Duration,
}

/// Whether the server refused the request itself (retrying cannot help), as
/// opposed to failing to process it (not the leader, connection lost,
/// internal error).
fn is_rejection(error: &RpcError) -> bool {
    matches!(
        error,
        RpcError::BadRequest(_) | RpcError::NotFound(_) | RpcError::PermissionDenied(_)
    )
}

/// Takes updates into `pending` for `duration` (a newer one for an
/// allocation replaces the older). Returns whether the channel is still
/// open; it stops early once every sender is gone.
async fn gather(
    updates: &mut mpsc::UnboundedReceiver<AllocClientUpdate>,
    pending: &mut BTreeMap<String, AllocClientUpdate>,
    duration: Duration,
) -> bool {
    let window = tokio::time::sleep(duration);
    tokio::pin!(window);
    loop {
        tokio::select! {
            _ = &mut window => return true,
            update = updates.recv() => match update {
                Some(update) => {
                    pending.insert(update.alloc_id.clone(), update);
                }
                None => return false,
            },
        }
    }
}

/// Runs until every sender is dropped and the last batch went out (or,
/// after the senders are gone, a final attempt failed).
pub async fn run_updater(
    mut updates: mpsc::UnboundedReceiver<AllocClientUpdate>,
    rpc: Arc<RpcClient>,
    node_id: String,
    secret_id: String,
    timings: UpdaterTimings,
) {
    let mut pending: BTreeMap<String, AllocClientUpdate> = BTreeMap::new();
    let mut backoff = timings.min_backoff;
    let mut open = true;
    loop {
        if pending.is_empty() {
            if !open {
                return;
            }
            match updates.recv().await {
                Some(update) => {
                    pending.insert(update.alloc_id.clone(), update);
                }
                None => return,
            }
        }
        // Gather what arrives within the window.
        if open {
            open = gather(&mut updates, &mut pending, timings.batch_window).await;
        }
        let batch: Vec<AllocClientUpdate> = pending.values().cloned().collect();
        let request = AllocUpdateRequest {
            node_id: node_id.clone(),
            secret_id: secret_id.clone(),
            updates: batch.clone(),
        };
        match rpc.alloc_update(request).await {
            Ok(_) => {
                backoff = timings.min_backoff;
                // Keep only what changed while the batch was in flight.
                for sent in batch {
                    if pending.get(&sent.alloc_id) == Some(&sent) {
                        pending.remove(&sent.alloc_id);
                    }
                }
            }
            Err(error) if is_rejection(&error) => {
                // One bad update must not hold up the others: send them one
                // by one and drop only those the server refuses outright.
                tracing::warn!(%error, n_updates = batch.len(), "allocation update rejected, sending one by one");
                for update in batch {
                    let single = AllocUpdateRequest {
                        node_id: node_id.clone(),
                        secret_id: secret_id.clone(),
                        updates: vec![update.clone()],
                    };
                    match rpc.alloc_update(single).await {
                        Ok(_) => {}
                        Err(error) if is_rejection(&error) => {
                            tracing::error!(alloc_id = %update.alloc_id, %error, "server refused allocation update, dropping it");
                        }
                        Err(_) => continue,
                    }
                    if pending.get(&update.alloc_id) == Some(&update) {
                        pending.remove(&update.alloc_id);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, n_updates = batch.len(), "allocation update failed, will retry");
                if !open {
                    // Shutting down: the local state keeps the status for
                    // the next start.
                    return;
                }
                // Keep taking updates while backing off.
                open = gather(&mut updates, &mut pending, backoff).await;
                backoff = (backoff * 2).min(timings.max_backoff);
            }
        }
    }
}
