//! The status updater against a real RPC server: updates are coalesced per
//! allocation, retried while the server cannot take them, and one update
//! the server refuses does not hold up the others.

use client::updater::{UpdaterTimings, run_updater};
use rpc::{AllocUpdateResponse, Handler, Request, Response, RpcClient, RpcError, serve};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use types::{AllocClientStatus, AllocClientUpdate};

const PATIENCE: Duration = Duration::from_secs(30);

/// Refuses updates for the allocation "poison" and answers "not the
/// leader" to the first `unavailable` calls.
#[derive(Default)]
struct Recorder {
    unavailable: Mutex<u32>,
    calls: Mutex<Vec<Vec<AllocClientUpdate>>>,
    /// Counts accepted calls, so tests wait on it.
    accepted: tokio::sync::watch::Sender<usize>,
}

impl Handler for Recorder {
    async fn handle(&self, request: Request, _peer: &rpc::PeerInfo) -> Result<Response, RpcError> {
        let Request::AllocUpdate(request) = request else {
            return Err(RpcError::BadRequest("unexpected".into()));
        };
        {
            let mut unavailable = self.unavailable.lock().expect("lock");
            if *unavailable > 0 {
                *unavailable -= 1;
                return Err(RpcError::NotLeader { leader: None });
            }
        }
        if request.updates.iter().any(|update| update.alloc_id == "poison") {
            return Err(RpcError::NotFound("allocation poison".into()));
        }
        self.calls.lock().expect("lock").push(request.updates);
        self.accepted.send_modify(|n| *n += 1);
        Ok(Response::AllocUpdate(AllocUpdateResponse { index: 1 }))
    }
}

fn update(alloc_id: &str, status: AllocClientStatus) -> AllocClientUpdate {
    AllocClientUpdate {
        alloc_id: alloc_id.into(),
        client_status: status,
        ..AllocClientUpdate::default()
    }
}

async fn start(recorder: Arc<Recorder>) -> Arc<RpcClient> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(serve(listener, recorder));
    Arc::new(RpcClient::new(addr))
}

fn timings() -> UpdaterTimings {
    UpdaterTimings {
        // Long enough that everything sent at once lands in one batch.
        batch_window: Duration::from_millis(200),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

#[tokio::test]
async fn updates_are_coalesced_and_a_refused_one_is_isolated() {
    let recorder = Arc::new(Recorder::default());
    let rpc = start(Arc::clone(&recorder)).await;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let updater = tokio::spawn(run_updater(receiver, rpc, "n".into(), "s".into(), timings()));
    sender.send(update("a", AllocClientStatus::Pending)).expect("send");
    sender.send(update("a", AllocClientStatus::Running)).expect("send");
    sender.send(update("poison", AllocClientStatus::Running)).expect("send");
    sender.send(update("b", AllocClientStatus::Complete)).expect("send");
    drop(sender);
    tokio::time::timeout(PATIENCE, updater)
        .await
        .expect("finishes")
        .expect("join");
    let delivered: Vec<(String, AllocClientStatus)> = recorder
        .calls
        .lock()
        .expect("lock")
        .iter()
        .flatten()
        .map(|update| (update.alloc_id.clone(), update.client_status))
        .collect();
    assert_eq!(
        delivered,
        vec![
            ("a".to_string(), AllocClientStatus::Running),
            ("b".to_string(), AllocClientStatus::Complete),
        ]
    );
}

#[tokio::test]
async fn a_terminal_update_is_retried_until_the_server_takes_it() {
    let recorder = Arc::new(Recorder {
        unavailable: Mutex::new(3),
        ..Recorder::default()
    });
    let rpc = start(Arc::clone(&recorder)).await;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let updater = tokio::spawn(run_updater(receiver, rpc, "n".into(), "s".into(), timings()));
    sender.send(update("a", AllocClientStatus::Failed)).expect("send");
    // The sender stays open: the updater must keep retrying by itself.
    let mut accepted = recorder.accepted.subscribe();
    tokio::time::timeout(PATIENCE, accepted.wait_for(|n| *n >= 1))
        .await
        .expect("delivered")
        .expect("recorder alive");
    let delivered = recorder.calls.lock().expect("lock")[0].clone();
    assert_eq!(delivered, vec![update("a", AllocClientStatus::Failed)]);
    assert_eq!(*recorder.unavailable.lock().expect("lock"), 0);
    drop(sender);
    tokio::time::timeout(PATIENCE, updater)
        .await
        .expect("finishes")
        .expect("join");
}
