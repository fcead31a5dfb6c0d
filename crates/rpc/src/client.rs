//! The calling side: one multiplexed connection, re-dialled on demand after
//! a failure. Concurrent calls share it; each waits for its own answer.

use crate::{
    AllocUpdateRequest, AllocUpdateResponse, Frame, MAX_FRAME_BYTES, NodeGetAllocsRequest, NodeGetAllocsResponse,
    NodeHeartbeatRequest, NodeHeartbeatResponse, NodeRegisterRequest, NodeRegisterResponse, Request, Response,
    RpcError,
};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Response, RpcError>>>>>;

struct Connection {
    outbox: mpsc::Sender<bytes::Bytes>,
    pending: Pending,
}

/// A client of one server address.
pub struct RpcClient {
    addr: String,
    next_id: AtomicU64,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient").field("addr", &self.addr).finish()
    }
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

fn fail_all(pending: &Pending, reason: &str) {
    let drained: Vec<_> = match pending.lock() {
        Ok(mut map) => map.drain().collect(),
        Err(poisoned) => poisoned.into_inner().drain().collect(),
    };
    for (_, waiter) in drained {
        let _ = waiter.send(Err(RpcError::Transport(reason.to_string())));
    }
}

impl RpcClient {
    /// A client for `addr` (`host:port`). Dials lazily, on the first call.
    pub fn new(addr: impl Into<String>) -> RpcClient {
        RpcClient {
            addr: addr.into(),
            next_id: AtomicU64::new(1),
            connection: tokio::sync::Mutex::new(None),
        }
    }

    /// The server address this client calls.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn connection(&self) -> Result<Arc<Connection>, RpcError> {
        let mut slot = self.connection.lock().await;
        if let Some(existing) = slot.as_ref()
            && !existing.outbox.is_closed()
        {
            return Ok(Arc::clone(existing));
        }
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|error| RpcError::Transport(format!("connect {}: {error}", self.addr)))?;
        stream
            .set_nodelay(true)
            .map_err(|error| RpcError::Transport(format!("set nodelay on {}: {error}", self.addr)))?;
        let (read_half, write_half) = stream.into_split();
        let (outbox, mut outbox_rx) = mpsc::channel::<bytes::Bytes>(256);
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let mut writer = FramedWrite::new(write_half, codec());
        let writer_pending = Arc::clone(&pending);
        tokio::spawn(async move {
            while let Some(frame) = outbox_rx.recv().await {
                if writer.send(frame).await.is_err() {
                    break;
                }
            }
            fail_all(&writer_pending, "connection closed while sending");
        });
        let reader_pending = Arc::clone(&pending);
        let reader_outbox = outbox.clone();
        tokio::spawn(async move {
            let mut reader = FramedRead::new(read_half, codec());
            while let Some(Ok(frame)) = reader.next().await {
                let Ok(answer) = serde_json::from_slice::<Frame<Result<Response, RpcError>>>(&frame) else {
                    tracing::warn!("undecodable rpc answer");
                    continue;
                };
                let waiter = match reader_pending.lock() {
                    Ok(mut map) => map.remove(&answer.id),
                    Err(poisoned) => poisoned.into_inner().remove(&answer.id),
                };
                if let Some(waiter) = waiter {
                    let _ = waiter.send(answer.body);
                }
            }
            // Closing the outbox makes the next call re-dial.
            drop(reader_outbox);
            fail_all(&reader_pending, "connection closed");
        });
        let connection = Arc::new(Connection { outbox, pending });
        *slot = Some(Arc::clone(&connection));
        Ok(connection)
    }

    /// Sends one request and waits for its answer.
    pub async fn call(&self, request: Request) -> Result<Response, RpcError> {
        let connection = self.connection().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = serde_json::to_vec(&Frame { id, body: request })
            .map_err(|error| RpcError::Internal(format!("encode request: {error}")))?;
        let (waiter_tx, waiter_rx) = oneshot::channel();
        match connection.pending.lock() {
            Ok(mut map) => map.insert(id, waiter_tx),
            Err(poisoned) => poisoned.into_inner().insert(id, waiter_tx),
        };
        if connection.outbox.send(bytes.into()).await.is_err() {
            *self.connection.lock().await = None;
            return Err(RpcError::Transport(format!("connection to {} closed", self.addr)));
        }
        match waiter_rx.await {
            Ok(result) => {
                if let Err(RpcError::Transport(_)) = &result {
                    *self.connection.lock().await = None;
                }
                result
            }
            Err(_) => {
                *self.connection.lock().await = None;
                Err(RpcError::Transport(format!(
                    "connection to {} dropped the call",
                    self.addr
                )))
            }
        }
    }

    /// Registers (or re-registers) a node.
    pub async fn node_register(&self, request: NodeRegisterRequest) -> Result<NodeRegisterResponse, RpcError> {
        match self.call(Request::NodeRegister(request)).await? {
            Response::NodeRegister(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    /// Heartbeats a node.
    pub async fn node_heartbeat(&self, request: NodeHeartbeatRequest) -> Result<NodeHeartbeatResponse, RpcError> {
        match self.call(Request::NodeHeartbeat(request)).await? {
            Response::NodeHeartbeat(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    /// Waits for a node's allocations to change past `min_index`.
    pub async fn node_get_allocs(&self, request: NodeGetAllocsRequest) -> Result<NodeGetAllocsResponse, RpcError> {
        match self.call(Request::NodeGetAllocs(request)).await? {
            Response::NodeGetAllocs(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    /// Reports client-side allocation status.
    pub async fn alloc_update(&self, request: AllocUpdateRequest) -> Result<AllocUpdateResponse, RpcError> {
        match self.call(Request::AllocUpdate(request)).await? {
            Response::AllocUpdate(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(response: &Response) -> RpcError {
    RpcError::Internal(format!("unexpected response kind: {response:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Handler, serve};
    use std::time::Duration;

    struct Echo;

    impl Handler for Echo {
        async fn handle(&self, request: Request) -> Result<Response, RpcError> {
            match request {
                Request::NodeHeartbeat(heartbeat) if heartbeat.node_id == "missing" => {
                    Err(RpcError::NotFound(format!("node {}", heartbeat.node_id)))
                }
                Request::NodeHeartbeat(_) => Ok(Response::NodeHeartbeat(NodeHeartbeatResponse {
                    index: 7,
                    heartbeat_ttl_ms: 1000,
                })),
                Request::NodeGetAllocs(query) => {
                    // Answers late on purpose: other calls must not wait behind it.
                    tokio::time::sleep(Duration::from_millis(query.max_wait_ms)).await;
                    Ok(Response::NodeGetAllocs(NodeGetAllocsResponse {
                        index: query.min_index + 1,
                        allocs: Vec::new(),
                    }))
                }
                other => Err(RpcError::BadRequest(format!("unsupported {other:?}"))),
            }
        }
    }

    fn heartbeat(node_id: &str) -> NodeHeartbeatRequest {
        NodeHeartbeatRequest {
            node_id: node_id.to_string(),
            secret_id: String::new(),
            status: types::NodeStatus::Ready,
        }
    }

    #[tokio::test]
    async fn calls_are_multiplexed_over_real_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let server = tokio::spawn(serve(listener, Arc::new(Echo)));
        let client = Arc::new(RpcClient::new(addr));
        let slow_client = Arc::clone(&client);
        let slow = tokio::spawn(async move {
            slow_client
                .node_get_allocs(NodeGetAllocsRequest {
                    node_id: "n".into(),
                    secret_id: String::new(),
                    min_index: 4,
                    max_wait_ms: 300,
                })
                .await
        });
        // The heartbeat answers while the blocking query is still waiting.
        let answer = client.node_heartbeat(heartbeat("n")).await.expect("heartbeat");
        assert_eq!(answer.index, 7);
        assert!(!slow.is_finished());
        let allocs = slow.await.expect("join").expect("allocs");
        assert_eq!(allocs.index, 5);
        let error = client
            .node_heartbeat(heartbeat("missing"))
            .await
            .expect_err("not found");
        assert_eq!(error, RpcError::NotFound("node missing".into()));
        server.abort();
    }

    #[tokio::test]
    async fn redials_after_the_server_restarts() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve(listener, Arc::new(Echo)));
        let client = RpcClient::new(addr.to_string());
        client.node_heartbeat(heartbeat("n")).await.expect("first call");
        server.abort();
        let _ = server.await;
        // Existing connections die with the server's tasks only when the
        // runtime drops them; a refused dial must surface as Transport.
        let second = RpcClient::new("127.0.0.1:1");
        let error = second.node_heartbeat(heartbeat("n")).await.expect_err("no server");
        assert!(error.is_retryable(), "{error:?}");
        let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
        let server = tokio::spawn(serve(listener, Arc::new(Echo)));
        let mut answered = false;
        for _ in 0..3 {
            if client.node_heartbeat(heartbeat("n")).await.is_ok() {
                answered = true;
                break;
            }
        }
        assert!(answered, "client never re-dialled");
        server.abort();
    }
}
