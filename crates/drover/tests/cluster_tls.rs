//! Mutual TLS between real agent processes: certificates made with `drover
//! tls`, three servers that form a cluster over TLS, and a TLS client that
//! registers and runs a job. On a server's RPC port, a plain TCP peer, a
//! peer with a certificate from another CA, and a client certificate
//! sending Raft or server-to-server messages are all refused.

mod common;

use common::cluster::{Cluster, Shape, eventually, sleep_job};
use rpc::{ClientOptions, RaftRequest, Request, RpcClient, RpcError, RpcTls, ServerMessage};
use std::path::Path;
use std::time::Duration;

fn drover(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .args(["--dir", dir.to_str().expect("utf-8 path")])
        .output()
        .expect("drover runs");
    assert!(
        output.status.success(),
        "drover {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn tls_block(dir: &Path, role: &str) -> String {
    format!(
        "tls {{\n  rpc = true\n  ca_file = \"{ca}\"\n  cert_file = \"{cert}\"\n  key_file = \"{key}\"\n  verify_server_hostname = true\n}}\n",
        ca = dir.join("nomad-agent-ca.pem").display(),
        cert = dir.join(format!("global-{role}-nomad.pem")).display(),
        key = dir.join(format!("global-{role}-nomad-key.pem")).display(),
    )
}

fn rpc_client(addr: &str, tls: Option<RpcTls>) -> RpcClient {
    RpcClient::with_servers(
        vec![addr.to_string()],
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            tls,
        },
    )
}

fn load(dir: &Path, role: &str) -> RpcTls {
    RpcTls::load(
        &dir.join("nomad-agent-ca.pem"),
        &dir.join(format!("global-{role}-nomad.pem")),
        &dir.join(format!("global-{role}-nomad-key.pem")),
        "global",
        true,
    )
    .expect("TLS files load")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_forms_runs_a_job_and_refuses_outsiders() {
    let pki = tempfile::tempdir().expect("tempdir");
    drover(pki.path(), &["tls", "ca", "create"]);
    for role in ["-server", "-client", "-cli"] {
        drover(pki.path(), &["tls", "cert", "create", role]);
    }
    // Another CA, with a client certificate of the right name.
    let other = tempfile::tempdir().expect("tempdir");
    drover(other.path(), &["tls", "ca", "create"]);
    drover(other.path(), &["tls", "cert", "create", "-client"]);

    let mut cluster = Cluster::start(&Shape {
        servers: 3,
        clients: 1,
        server_config: tls_block(pki.path(), "server"),
        client_config: tls_block(pki.path(), "client"),
        ..Shape::default()
    });
    let leader = cluster.leader(Duration::from_secs(30)).await;
    cluster.wait_nodes(leader, 1, Duration::from_secs(30)).await;
    let api = cluster.servers[leader].api();
    api.register_job(sleep_job("over-tls", 1, 32)).await.expect("register");
    eventually(
        Duration::from_secs(30),
        "the allocation running on the TLS client",
        async || {
            let allocs = api.job_allocations("over-tls").await.ok()?;
            allocs
                .iter()
                .any(|alloc| alloc.client_status == "running")
                .then_some(())
        },
    )
    .await;

    let addr = cluster.servers[leader].rpc.clone().expect("server RPC address");
    let heartbeat = || {
        Request::NodeHeartbeat(rpc::NodeHeartbeatRequest {
            node_id: "outsider".to_string(),
            secret_id: String::new(),
            status: types::NodeStatus::Ready,
        })
    };
    // Plain TCP.
    let plain = rpc_client(&addr, None);
    let error = plain.call(heartbeat()).await.expect_err("plain TCP refused");
    assert!(
        matches!(error, RpcError::Transport(_) | RpcError::Timeout(_)),
        "{error:?}"
    );
    // A certificate from another CA.
    let outsider = rpc_client(&addr, Some(load(other.path(), "client")));
    let error = outsider.call(heartbeat()).await.expect_err("another CA refused");
    assert!(matches!(error, RpcError::Transport(_)), "{error:?}");
    // A CLI certificate from the right CA is no agent.
    let cli = rpc_client(&addr, Some(load(pki.path(), "cli")));
    assert!(cli.call(heartbeat()).await.is_err(), "a CLI certificate is refused");
    // A client certificate from the right CA: served as a client, never
    // given Raft or server-to-server calls.
    let client = rpc_client(&addr, Some(load(pki.path(), "client")));
    let error = client.call(heartbeat()).await.expect_err("unknown node");
    assert!(matches!(error, RpcError::NotFound(_)), "a client is served: {error:?}");
    for request in [
        Request::Raft(RaftRequest {
            kind: "vote".to_string(),
            payload: Vec::new(),
        }),
        Request::Raft(RaftRequest {
            kind: "append".to_string(),
            payload: Vec::new(),
        }),
        Request::Server(ServerMessage { payload: Vec::new() }),
    ] {
        let error = client.call(request).await.expect_err("refused");
        assert!(
            matches!(&error, RpcError::PermissionDenied(message) if message.contains("servers only")),
            "{error:?}"
        );
    }
    cluster.kill_all();
}
