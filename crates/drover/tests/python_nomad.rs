//! Nomad's own Python client (`python-nomad`, installed from PyPI by
//! `scripts/test.sh`) drives a real dev agent: register, read, list
//! allocations, read one, deregister and purge; and the same against an
//! agent with ACLs on, through a bootstrapped token.

mod common;

use std::path::Path;
use std::time::Duration;

async fn run_script(agent: &drover::agent::Agent, extra: &[&str]) -> (String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/nomad_client.py");
    let port = agent.http_addr.port().to_string();
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .args(["127.0.0.1", &port])
        .args(extra)
        .env_remove("NOMAD_TOKEN")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("python-nomad script finishes in time")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python-nomad script failed (is python-nomad installed? scripts/test.sh installs it)\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout.into_owned(), stderr.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_nomad_client_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let (stdout, _) = run_script(&agent, &[]).await;
    assert!(stdout.contains("python-nomad: 7 checks passed"), "{stdout}");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_nomad_with_acls_and_a_bootstrapped_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent_with_acls(dir.path()).await;
    let (stdout, _) = run_script(&agent, &["acl"]).await;
    assert!(stdout.contains("python-nomad: 7 checks passed"), "{stdout}");
    assert!(stdout.contains("python-nomad ACL: 4 checks passed"), "{stdout}");
    agent.shutdown().await;
}
