//! The calling side: a list of servers, one multiplexed connection per
//! server, re-dialled on demand after a failure. Concurrent calls share a
//! connection; each waits for its own answer, up to its deadline.
//!
//! A client agent knows several servers: calls go to the current one, and a
//! transport failure or a timeout moves the client on to the next, so the
//! caller's retry lands elsewhere. Servers tell clients the current server
//! set in their answers ([`RpcClient::set_servers`]). Servers call a chosen
//! peer with [`RpcClient::call_to`].

use crate::server::codec;
use crate::{
    AllocUpdateRequest, AllocUpdateResponse, Frame, NodeGetAllocsRequest, NodeGetAllocsResponse, NodeHeartbeatRequest,
    NodeHeartbeatResponse, NodeRegisterRequest, NodeRegisterResponse, Request, Response, RpcError, codec as wire,
};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Response, RpcError>>>>>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

struct Connection {
    outbox: mpsc::Sender<bytes::Bytes>,
    pending: Pending,
}

impl Connection {
    fn is_open(&self) -> bool {
        !self.outbox.is_closed()
    }
}

/// Settings of the calling side.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long dialling a server may take.
    pub connect_timeout: Duration,
    /// Mutual TLS to the servers. `None`: plain TCP.
    pub tls: Option<crate::RpcTls>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

#[derive(Debug, Default)]
struct ServerList {
    addrs: Vec<String>,
    /// The addresses the client was configured with: always kept, so a
    /// wrong list learned from a server cannot strand the client.
    configured: Vec<String>,
    current: usize,
    /// The servers' HTTP addresses, as they reported them.
    http_addrs: Vec<String>,
}

/// A client of a set of servers (often just one).
pub struct RpcClient {
    servers: Mutex<ServerList>,
    next_id: AtomicU64,
    connections: tokio::sync::Mutex<HashMap<String, Arc<Connection>>>,
    options: ClientOptions,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient").field("servers", &self.servers()).finish()
    }
}

fn fail_all(pending: &Pending, reason: &str) {
    let drained: Vec<_> = lock(pending).drain().collect();
    for (_, waiter) in drained {
        let _ = waiter.send(Err(RpcError::Transport(reason.to_string())));
    }
}

impl RpcClient {
    /// A client of one server at `addr` (`host:port`). Dials lazily.
    pub fn new(addr: impl Into<String>) -> RpcClient {
        RpcClient::with_servers(vec![addr.into()], ClientOptions::default())
    }

    /// A client of several servers; calls start with the first.
    pub fn with_servers(addrs: Vec<String>, options: ClientOptions) -> RpcClient {
        RpcClient {
            servers: Mutex::new(ServerList {
                configured: addrs.clone(),
                addrs,
                current: 0,
                http_addrs: Vec::new(),
            }),
            next_id: AtomicU64::new(1),
            connections: tokio::sync::Mutex::new(HashMap::new()),
            options,
        }
    }

    /// The server calls go to now.
    pub fn addr(&self) -> String {
        let list = lock(&self.servers);
        list.addrs.get(list.current).cloned().unwrap_or_default()
    }

    /// Every known server.
    pub fn servers(&self) -> Vec<String> {
        lock(&self.servers).addrs.clone()
    }

    /// Replaces the server set with what the servers reported (plus the
    /// configured servers, which are always kept), keeping the current
    /// server when it is still a member. An empty list is ignored.
    pub fn set_servers(&self, mut addrs: Vec<String>) {
        if addrs.is_empty() {
            return;
        }
        let mut list = lock(&self.servers);
        for configured in &list.configured {
            if !addrs.contains(configured) {
                addrs.push(configured.clone());
            }
        }
        if list.addrs == addrs {
            return;
        }
        let current = list.addrs.get(list.current).cloned();
        list.current = current
            .and_then(|current| addrs.iter().position(|addr| *addr == current))
            .unwrap_or(0);
        list.addrs = addrs;
    }

    /// The servers' HTTP addresses, as they last reported them.
    pub fn http_addrs(&self) -> Vec<String> {
        lock(&self.servers).http_addrs.clone()
    }

    fn learn(&self, servers: &[String], http_addrs: &[String]) {
        self.set_servers(servers.to_vec());
        if !http_addrs.is_empty() {
            lock(&self.servers).http_addrs = http_addrs.to_vec();
        }
    }

    /// Moves on to the next server (after `failed` did not answer), unless
    /// another caller already did.
    fn rotate_from(&self, failed: &str) {
        let mut list = lock(&self.servers);
        if list.addrs.get(list.current).is_some_and(|addr| addr == failed) && !list.addrs.is_empty() {
            list.current = (list.current + 1) % list.addrs.len();
        }
    }

    async fn connection(&self, addr: &str) -> Result<Arc<Connection>, RpcError> {
        if let Some(existing) = self.connections.lock().await.get(addr)
            && existing.is_open()
        {
            return Ok(Arc::clone(existing));
        }
        // Dial without holding the map: a peer whose packets are dropped
        // keeps a dial waiting for the whole connect timeout, and calls to
        // every other peer (a Raft vote to the healthy half of a
        // partitioned cluster) must not wait behind it.
        let dial = TcpStream::connect(addr);
        let stream = match tokio::time::timeout(self.options.connect_timeout, dial).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(RpcError::Transport(format!("connect {addr}: {error}"))),
            Err(_) => {
                return Err(RpcError::Transport(format!(
                    "connect {addr}: no answer within {:?}",
                    self.options.connect_timeout
                )));
            }
        };
        stream
            .set_nodelay(true)
            .map_err(|error| RpcError::Transport(format!("set nodelay on {addr}: {error}")))?;
        // The TLS handshake, too, happens outside the map.
        let connection = Arc::new(match &self.options.tls {
            None => spawn_connection(stream),
            Some(tls) => spawn_connection(
                tls.connect(stream)
                    .await
                    .map_err(|error| RpcError::Transport(format!("TLS to {addr}: {error}")))?,
            ),
        });
        let mut connections = self.connections.lock().await;
        // Two callers may have dialled at once: keep the first open one,
        // and this connection closes when dropped.
        if let Some(existing) = connections.get(addr)
            && existing.is_open()
        {
            return Ok(Arc::clone(existing));
        }
        connections.insert(addr.to_string(), Arc::clone(&connection));
        Ok(connection)
    }

    async fn forget(&self, addr: &str) {
        self.connections.lock().await.remove(addr);
    }

    /// Sends one request to the current server and waits for its answer
    /// up to the request's default deadline. A transport failure or a
    /// timeout moves the client on to the next server.
    pub async fn call(&self, request: Request) -> Result<Response, RpcError> {
        let deadline = request.default_deadline();
        let addr = self.addr();
        let result = self.call_to(&addr, request, deadline).await;
        if let Err(RpcError::Transport(_) | RpcError::Timeout(_)) = &result {
            self.rotate_from(&addr);
        }
        result
    }

    /// Sends one request to `addr` and waits up to `deadline` for its
    /// answer.
    pub async fn call_to(&self, addr: &str, request: Request, deadline: Duration) -> Result<Response, RpcError> {
        if addr.is_empty() {
            return Err(RpcError::Transport("no server address known".to_string()));
        }
        let work = async {
            let connection = self.connection(addr).await?;
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let bytes = wire::encode(&Frame { id, body: &request })
                .map_err(|error| RpcError::Internal(format!("encode request: {error}")))?;
            let (waiter_tx, waiter_rx) = oneshot::channel();
            lock(&connection.pending).insert(id, waiter_tx);
            let guard = PendingGuard {
                pending: &connection.pending,
                id,
            };
            if connection.outbox.send(bytes.into()).await.is_err() {
                return Err(RpcError::Transport(format!("connection to {addr} closed")));
            }
            let answer = waiter_rx.await;
            drop(guard);
            match answer {
                Ok(result) => result,
                Err(_) => Err(RpcError::Transport(format!("connection to {addr} dropped the call"))),
            }
        };
        let result = match tokio::time::timeout(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(RpcError::Timeout(deadline)),
        };
        // A connection that broke, or that let a call go unanswered past
        // its deadline (packets dropped by a partition, say), is dialled
        // afresh next time instead of being trusted again.
        if let Err(RpcError::Transport(_) | RpcError::Timeout(_)) = &result {
            self.forget(addr).await;
        }
        result
    }

    /// Registers (or re-registers) a node.
    pub async fn node_register(&self, request: NodeRegisterRequest) -> Result<NodeRegisterResponse, RpcError> {
        match self.call(Request::NodeRegister(request)).await? {
            Response::NodeRegister(answer) => {
                self.learn(&answer.servers, &answer.server_http_addrs);
                Ok(answer)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Heartbeats a node.
    pub async fn node_heartbeat(&self, request: NodeHeartbeatRequest) -> Result<NodeHeartbeatResponse, RpcError> {
        match self.call(Request::NodeHeartbeat(request)).await? {
            Response::NodeHeartbeat(answer) => {
                self.learn(&answer.servers, &answer.server_http_addrs);
                Ok(answer)
            }
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

    /// Stores and removes a node's service registrations.
    pub async fn service_update(
        &self,
        request: crate::ServiceUpdateRequest,
    ) -> Result<crate::ServiceUpdateResponse, RpcError> {
        match self.call(Request::ServiceUpdate(request)).await? {
            Response::ServiceUpdate(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    /// A blocking query for every service registration.
    pub async fn service_watch(
        &self,
        request: crate::ServiceWatchRequest,
    ) -> Result<crate::ServiceWatchResponse, RpcError> {
        match self.call(Request::ServiceWatch(request)).await? {
            Response::ServiceWatch(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }
}

/// Removes a call's waiter when the call ends for any reason (answer,
/// error or deadline), so abandoned calls leave nothing behind.
struct PendingGuard<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(&self.id);
    }
}

fn spawn_connection<S>(stream: S) -> Connection
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (read_half, write_half) = tokio::io::split(stream);
    let (outbox, mut outbox_rx) = mpsc::channel::<bytes::Bytes>(256);
    let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
    let mut writer = FramedWrite::new(write_half, codec());
    let writer_pending = Arc::clone(&pending);
    let (reader_done_tx, mut reader_done_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = outbox_rx.recv() => {
                    let Some(frame) = frame else { break };
                    if writer.send(frame).await.is_err() {
                        break;
                    }
                }
                // The peer closed its side: stop, so the outbox closes and
                // the next call re-dials.
                _ = &mut reader_done_rx => break,
            }
        }
        drop(outbox_rx);
        fail_all(&writer_pending, "connection closed");
    });
    let reader_pending = Arc::clone(&pending);
    tokio::spawn(async move {
        let mut reader = FramedRead::new(read_half, codec());
        while let Some(Ok(frame)) = reader.next().await {
            let Ok(answer) = wire::decode::<Frame<Result<Response, RpcError>>>(&frame) else {
                tracing::warn!("undecodable rpc answer");
                continue;
            };
            let waiter = lock(&reader_pending).remove(&answer.id);
            if let Some(waiter) = waiter {
                let _ = waiter.send(answer.body);
            }
        }
        let _ = reader_done_tx.send(());
        fail_all(&reader_pending, "connection closed");
    });
    Connection { outbox, pending }
}

fn unexpected(response: &Response) -> RpcError {
    RpcError::Internal(format!("unexpected response kind: {response:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Handler, PeerInfo, ServeConfig, serve, serve_with};

    struct Echo;

    impl Handler for Echo {
        async fn handle(&self, request: Request, _peer: &PeerInfo) -> Result<Response, RpcError> {
            match request {
                Request::NodeHeartbeat(heartbeat) if heartbeat.node_id == "missing" => {
                    Err(RpcError::NotFound(format!("node {}", heartbeat.node_id)))
                }
                Request::NodeHeartbeat(_) => Ok(Response::NodeHeartbeat(NodeHeartbeatResponse {
                    index: 7,
                    heartbeat_ttl_ms: 1000,
                    servers: Vec::new(),
                    server_http_addrs: Vec::new(),
                })),
                Request::NodeGetAllocs(query) => {
                    // Answers late on purpose: other calls must not wait behind it.
                    tokio::time::sleep(Duration::from_millis(query.max_wait_ms)).await;
                    Ok(Response::NodeGetAllocs(NodeGetAllocsResponse {
                        index: query.min_index + 1,
                        allocs: Vec::new(),
                        delta: None,
                    }))
                }
                other => Err(RpcError::BadRequest(format!("unsupported {}", other.kind()))),
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

    fn allocs_query(max_wait_ms: u64) -> NodeGetAllocsRequest {
        NodeGetAllocsRequest {
            node_id: "n".into(),
            secret_id: String::new(),
            min_index: 4,
            max_wait_ms,
            delta: false,
        }
    }

    async fn listen() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        (listener, addr)
    }

    #[tokio::test]
    async fn calls_are_multiplexed_over_real_tcp() {
        let (listener, addr) = listen().await;
        let server = tokio::spawn(serve(listener, Arc::new(Echo)));
        let client = Arc::new(RpcClient::new(addr));
        let slow_client = Arc::clone(&client);
        let slow = tokio::spawn(async move { slow_client.node_get_allocs(allocs_query(300)).await });
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
    async fn a_call_past_its_deadline_times_out_and_leaves_nothing_pending() {
        let (listener, addr) = listen().await;
        let server = tokio::spawn(serve(listener, Arc::new(Echo)));
        let client = RpcClient::new(addr.clone());
        let error = client
            .call_to(
                &addr,
                Request::NodeGetAllocs(allocs_query(5_000)),
                Duration::from_millis(50),
            )
            .await
            .expect_err("deadline");
        assert_eq!(error, RpcError::Timeout(Duration::from_millis(50)));
        assert!(error.is_retryable());
        let connection = client.connection(&addr).await.expect("connection");
        assert!(lock(&connection.pending).is_empty(), "the abandoned call left a waiter");
        server.abort();
    }

    /// A peer that never answers a dial (its SYNs dropped, as behind a
    /// partition) must not hold up calls to other peers: the dial used to
    /// hold the connection map for the whole connect timeout, so a
    /// partitioned server stopped the other two from electing a leader.
    #[tokio::test]
    async fn a_dial_that_hangs_does_not_block_calls_to_other_peers() {
        let (listener, live) = listen().await;
        let server = tokio::spawn(serve(listener, Arc::new(Echo)));
        // A listener with a one-slot accept queue that never accepts: once
        // the queue is full, the kernel drops further SYNs and a dial hangs.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let blackhole = socket.listen(1).expect("listen");
        let hanging = blackhole.local_addr().expect("addr").to_string();
        let mut fillers = Vec::new();
        for _ in 0..3 {
            if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(&hanging)).await
            {
                fillers.push(stream);
            }
        }
        let options = ClientOptions {
            connect_timeout: Duration::from_secs(3),
            ..ClientOptions::default()
        };
        let client = Arc::new(RpcClient::with_servers(vec![live.clone()], options));
        let stuck_client = Arc::clone(&client);
        let stuck_addr = hanging.clone();
        let stuck = tokio::spawn(async move {
            stuck_client
                .call_to(
                    &stuck_addr,
                    Request::NodeHeartbeat(heartbeat("n")),
                    Duration::from_secs(5),
                )
                .await
        });
        // Let the hanging dial start first.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!stuck.is_finished(), "the dial to the full listener should hang");
        let answer = client
            .call_to(
                &live,
                Request::NodeHeartbeat(heartbeat("n")),
                Duration::from_millis(1_000),
            )
            .await;
        assert!(
            matches!(answer, Ok(Response::NodeHeartbeat(_))),
            "a call to a live peer waited behind the hanging dial: {answer:?}"
        );
        stuck.abort();
        server.abort();
        drop(fillers);
    }

    #[tokio::test]
    async fn fails_over_to_the_next_server_and_learns_the_set() {
        let (listener, live) = listen().await;
        let server = tokio::spawn(serve(listener, Arc::new(Echo)));
        // The first server refuses connections.
        let (dead_listener, dead) = listen().await;
        drop(dead_listener);
        let client = RpcClient::with_servers(vec![dead.clone(), live.clone()], ClientOptions::default());
        let first = client.node_heartbeat(heartbeat("n")).await;
        assert!(matches!(first, Err(RpcError::Transport(_))), "{first:?}");
        assert_eq!(client.addr(), live, "moved on after the failure");
        client
            .node_heartbeat(heartbeat("n"))
            .await
            .expect("second server answers");
        client.set_servers(vec!["10.0.0.9:4647".into(), live.clone()]);
        assert_eq!(client.addr(), live, "keeps the current server when it is still listed");
        assert_eq!(
            client.servers(),
            vec!["10.0.0.9:4647".to_string(), live.clone(), dead.clone()],
            "the configured servers stay"
        );
        client.set_servers(Vec::new());
        assert_eq!(client.servers().len(), 3, "an empty list is ignored");
        server.abort();
    }

    #[tokio::test]
    async fn redials_after_the_server_restarts() {
        let (listener, addr) = listen().await;
        let server = tokio::spawn(serve(listener, Arc::new(Echo)));
        let client = RpcClient::new(addr.clone());
        client.node_heartbeat(heartbeat("n")).await.expect("first call");
        server.abort();
        let _ = server.await;
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("rebind");
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

    #[tokio::test]
    async fn idle_connections_are_closed_by_the_server() {
        let (listener, addr) = listen().await;
        let config = ServeConfig {
            idle_timeout: Duration::from_millis(100),
            ..ServeConfig::default()
        };
        let server = tokio::spawn(serve_with(listener, Arc::new(Echo), config));
        let client = RpcClient::new(addr.clone());
        client.node_heartbeat(heartbeat("n")).await.expect("call");
        let connection = client.connection(&addr).await.expect("connection");
        // A blocking query longer than the idle timeout keeps it open.
        client.node_get_allocs(allocs_query(300)).await.expect("long query");
        assert!(connection.is_open(), "closed while a call was in flight");
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while connection.is_open() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(closed.is_ok(), "the idle connection was never closed");
        server.abort();
    }

    #[tokio::test]
    async fn in_flight_requests_per_connection_are_bounded() {
        let (listener, addr) = listen().await;
        let config = ServeConfig {
            max_in_flight_per_connection: 2,
            ..ServeConfig::default()
        };
        let server = tokio::spawn(serve_with(listener, Arc::new(Echo), config));
        let client = Arc::new(RpcClient::new(addr));
        // Two slow queries fill the connection's slots; a heartbeat behind
        // them waits for a slot instead of being handled at once.
        let mut slow = Vec::new();
        for _ in 0..2 {
            let client = Arc::clone(&client);
            slow.push(tokio::spawn(
                async move { client.node_get_allocs(allocs_query(400)).await },
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        client.node_heartbeat(heartbeat("n")).await.expect("heartbeat");
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "the third request was handled while two were in flight"
        );
        for query in slow {
            query.await.expect("join").expect("query");
        }
        server.abort();
    }

    #[tokio::test]
    async fn garbage_frames_get_an_error_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (listener, addr) = listen().await;
        let server = tokio::spawn(serve(listener, Arc::new(Echo)));
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        stream.write_all(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]).await.expect("write");
        let mut length = [0u8; 4];
        stream.read_exact(&mut length).await.expect("answer length");
        let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
        stream.read_exact(&mut body).await.expect("answer");
        let answer: Frame<Result<Response, RpcError>> = wire::decode(&body).expect("decode");
        assert!(matches!(answer.body, Err(RpcError::BadRequest(_))), "{:?}", answer.body);
        server.abort();
    }
}
