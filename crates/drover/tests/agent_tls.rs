//! HTTPS on a real dev agent whose RPC also runs over mutual TLS: with
//! `verify_https_client`, only callers with a certificate from the CA are
//! answered (plain HTTP, no certificate, and another CA's certificate are
//! refused), the CLI reaches it with --ca-cert/--client-cert/--client-key
//! or Nomad's environment variables, and the agent's own client registers
//! over TLS. Without `verify_https_client`, the CA alone is enough.

mod common;

use drover::agent::{Agent, AgentConfig, TlsSettings};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

fn drover_tls(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .args(["--dir", dir.to_str().expect("utf-8 path")])
        .output()
        .expect("drover runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

async fn start(data: &Path, pki: &Path, verify_https_client: bool) -> Agent {
    Agent::start(AgentConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        rpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: Some(data.to_path_buf()),
        drover_binary: Some(env!("CARGO_BIN_EXE_drover").into()),
        docker: common::no_image_gc(),
        tls: TlsSettings {
            http: true,
            rpc: true,
            ca_file: Some(pki.join("nomad-agent-ca.pem")),
            cert_file: Some(pki.join("global-server-nomad.pem")),
            key_file: Some(pki.join("global-server-nomad-key.pem")),
            verify_server_hostname: true,
            verify_https_client,
        },
        ..AgentConfig::default()
    })
    .await
    .expect("agent starts")
}

fn identity(dir: &Path, role: &str) -> Vec<u8> {
    let mut pem = std::fs::read(dir.join(format!("global-{role}-nomad.pem"))).expect("cert");
    pem.extend(std::fs::read(dir.join(format!("global-{role}-nomad-key.pem"))).expect("key"));
    pem
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_client_certificates() {
    let pki = tempfile::tempdir().expect("tempdir");
    drover_tls(pki.path(), &["tls", "ca", "create"]);
    for role in ["-server", "-cli"] {
        drover_tls(pki.path(), &["tls", "cert", "create", role]);
    }
    let other = tempfile::tempdir().expect("tempdir");
    drover_tls(other.path(), &["tls", "ca", "create"]);
    drover_tls(other.path(), &["tls", "cert", "create", "-cli"]);
    let ca = std::fs::read(pki.path().join("nomad-agent-ca.pem")).expect("CA");

    let data = tempfile::tempdir().expect("tempdir");
    let agent = start(data.path(), pki.path(), true).await;
    let address = format!("https://localhost:{}", agent.http_addr.port());

    // Plain HTTP gets no answer.
    let plain = api_client::Client::new(format!("http://{}", agent.http_addr));
    assert!(plain.leader().await.is_err(), "plain HTTP answered");
    // No client certificate, or one from another CA: refused.
    let anonymous = api_client::Client::new(address.clone())
        .with_tls(&ca, None)
        .expect("client");
    assert!(anonymous.leader().await.is_err(), "no client certificate, yet answered");
    let outsider = api_client::Client::new(address.clone())
        .with_tls(&ca, Some(&identity(other.path(), "cli")))
        .expect("client");
    assert!(
        outsider.leader().await.is_err(),
        "another CA's certificate, yet answered"
    );
    // The CLI certificate: answered; the agent's own client registered
    // over the TLS RPC.
    let cli = api_client::Client::new(address.clone())
        .with_tls(&ca, Some(&identity(pki.path(), "cli")))
        .expect("client");
    assert!(!cli.leader().await.expect("leader").is_empty());
    let started = Instant::now();
    while cli.nodes("").await.expect("nodes").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the client never registered over TLS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The CLI binary, with flags and with Nomad's variables.
    let file = |name: &str| pki.path().join(name).display().to_string();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["--address", &address, "--ca-cert", &file("nomad-agent-ca.pem")])
        .args(["--client-cert", &file("global-cli-nomad.pem")])
        .args(["--client-key", &file("global-cli-nomad-key.pem"), "node", "status"])
        .output()
        .await
        .expect("drover runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("ready"));
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["--address", &address, "node", "status"])
        .env("NOMAD_CACERT", file("nomad-agent-ca.pem"))
        .env("NOMAD_CLIENT_CERT", file("global-cli-nomad.pem"))
        .env("NOMAD_CLIENT_KEY", file("global-cli-nomad-key.pem"))
        .output()
        .await
        .expect("drover runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args([
            "--address",
            &address,
            "--ca-cert",
            &file("nomad-agent-ca.pem"),
            "node",
            "status",
        ])
        .env_remove("NOMAD_CLIENT_CERT")
        .env_remove("NOMAD_CLIENT_KEY")
        .output()
        .await
        .expect("drover runs");
    assert!(
        !output.status.success(),
        "the CLI without a client certificate was answered"
    );
    agent.shutdown().await;

    // Without verify_https_client, the CA is enough.
    let data = tempfile::tempdir().expect("tempdir");
    let agent = start(data.path(), pki.path(), false).await;
    let open = api_client::Client::new(format!("https://localhost:{}", agent.http_addr.port()))
        .with_tls(&ca, None)
        .expect("client");
    assert!(!open.leader().await.expect("leader").is_empty());
    agent.shutdown().await;
}
