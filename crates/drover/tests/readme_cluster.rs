//! The README's cluster commands work as written: the test runs the
//! `drover agent` lines between `cluster:begin` and `cluster:end` (only
//! the data-dir root moves into a temporary directory), then checks that
//! the three servers elect a leader, both clients' nodes are ready, and a
//! job submitted to a client agent runs.

mod common;

use common::cluster::{AgentProc, eventually, sleep_job};
use std::time::Duration;

/// The `drover agent` commands of the README's cluster section, with line
/// continuations joined.
fn readme_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let start = readme.find("<!-- cluster:begin -->").expect("cluster:begin marker");
    let end = readme.find("<!-- cluster:end -->").expect("cluster:end marker");
    let block = readme[start..end].replace("\\\n", " ");
    block
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("drover agent "))
        .map(|line| line.split_whitespace().skip(2).map(str::to_string).collect())
        .collect()
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|arg| arg == name)
        .and_then(|position| args.get(position + 1).cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_cluster_commands_work_as_written() {
    let commands = readme_commands();
    assert_eq!(commands.len(), 5, "three servers and two clients: {commands:?}");
    let root = tempfile::tempdir().expect("tempdir");
    let marker = format!("readme-{}", std::process::id());
    let mut agents = Vec::new();
    for args in commands {
        let args: Vec<String> = args
            .into_iter()
            .map(|arg| arg.replace("/tmp/drover", &root.path().display().to_string()))
            .collect();
        let name = flag(&args, "--node-name").expect("a node name");
        let dir = std::path::PathBuf::from(flag(&args, "--data-dir").expect("a data dir"));
        let http = flag(&args, "--http-addr").expect("an HTTP address");
        let rpc = flag(&args, "--rpc-addr");
        agents.push(AgentProc::spawn(&name, &dir, http, rpc, args, &marker));
    }
    let server = agents[1].api();
    eventually(Duration::from_secs(30), "a leader", async || {
        let leader = server.leader().await.ok()?;
        (!leader.is_empty()).then_some(())
    })
    .await;
    eventually(Duration::from_secs(30), "both clients ready", async || {
        let nodes = server.nodes("").await.ok()?;
        (nodes.iter().filter(|node| node.status == "ready").count() == 2).then_some(())
    })
    .await;
    let members: serde_json::Value = server.get("/v1/agent/members").await.expect("members").value;
    let alive = members["Members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|member| member["Status"] == "alive")
        .count();
    assert_eq!(alive, 3, "{members}");
    // A client agent's API passes the request on to a server.
    let client_agent = agents[3].api();
    let registered = eventually(
        Duration::from_secs(30),
        "the client agent to know the servers",
        async || client_agent.register_job(sleep_job("readme", 1, 32)).await.ok(),
    )
    .await;
    assert!(!registered.eval_id.is_empty());
    eventually(Duration::from_secs(30), "the job running", async || {
        let allocs = server.job_allocations("readme").await.ok()?;
        allocs
            .iter()
            .any(|alloc| alloc.client_status == "running")
            .then_some(())
    })
    .await;
    drop(agents);
    common::cluster::kill_marked(&marker);
}
