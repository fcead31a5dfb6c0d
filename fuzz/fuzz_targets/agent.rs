//! The in-process dev server both targets drive: started once per fuzzing
//! process, with its RPC port served exactly as `drover agent` serves it
//! (`rpc::serve_with` over `server::RpcService`) and its HTTP router built
//! by `http_api::app`, as the agent builds it.
// Each target uses only some of the fields.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub struct Agent {
    pub runtime: tokio::runtime::Runtime,
    pub router: axum::Router,
    pub rpc_addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// The agent, started on first use.
pub fn agent() -> &'static Agent {
    static AGENT: OnceLock<Agent> = OnceLock::new();
    AGENT.get_or_init(start)
}

fn start() -> Agent {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("data dir");
    let (router, rpc_addr) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind rpc");
        let rpc_addr = listener.local_addr().expect("rpc addr");
        let config = server::ServerConfig::dev(dir.path().to_path_buf(), rpc_addr.to_string());
        let started = server::Server::start(config).await.expect("server starts");
        tokio::spawn(rpc::serve_with(
            listener,
            Arc::new(server::RpcService::new(started.clone())),
            rpc::ServeConfig::default(),
        ));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !started.is_leader() {
            assert!(Instant::now() < deadline, "the dev server never led");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let state = http_api::AppState {
            server: started,
            alloc_root: None,
            agent: Arc::new(http_api::AgentInfo::default()),
            client: None,
        };
        (http_api::app(state), rpc_addr)
    });
    Agent {
        runtime,
        router,
        rpc_addr,
        _dir: dir,
    }
}
