//! The election example on a real dev agent: three replicas of
//! `drover-election-example` run by raw_exec elect one leader, which says
//! so in its log; killing the leader's process elects another replica
//! within TTL + lock-delay (plus renewal and polling slack); and the
//! fenced ledger the leaders write shows fencing tokens that only rise,
//! each token held by one replica, never a deposed leader's write after
//! its successor's.

use drover::agent::{Agent, AgentConfig};
use drover_sdk::api_client::Client;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
struct Ledger {
    token: String,
    holder: String,
}

const TTL: Duration = Duration::from_millis(1000);
const DELAY: Duration = Duration::from_millis(500);

async fn eventually<T>(within: Duration, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The process whose environment carries `NOMAD_ALLOC_ID=<alloc_id>`.
fn task_pid(alloc_id: &str) -> Option<i32> {
    let needle = format!("NOMAD_ALLOC_ID={alloc_id}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
        let environ = std::fs::read(entry.path().join("environ")).ok()?;
        environ
            .split(|byte| *byte == 0)
            .any(|var| var == needle.as_bytes())
            .then_some(pid)
    })
}

/// Whether some file under `dir` contains `needle`.
fn some_file_contains(dir: &Path, needle: &str) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && path.to_string_lossy().contains(".stdout.")
                && !path.to_string_lossy().ends_with(".fifo")
                && std::fs::read_to_string(&path).is_ok_and(|text| text.contains(needle))
            {
                return true;
            }
        }
    }
    false
}

async fn ledger(api: &Client) -> Option<(u64, Ledger)> {
    let var = api.var_get("default", "election/ledger").await.ok()??;
    let ledger = Ledger {
        token: var.items.get("token")?.clone(),
        holder: var.items.get("holder")?.clone(),
    };
    Some((var.meta.modify_index, ledger))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_elects_one_leader_and_a_new_one_when_it_dies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(AgentConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        rpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: Some(dir.path().to_path_buf()),
        ..AgentConfig::default()
    })
    .await
    .expect("agent starts");
    let address = format!("http://{}", agent.http_addr);
    let api = Client::new(address.clone());
    let hcl = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/election.nomad.hcl"
    ))
    .expect("the example job")
    .replace(
        "\"drover-election-example\"",
        &format!("{:?}", env!("CARGO_BIN_EXE_drover-election-example")),
    )
    .replace("http://127.0.0.1:4646", &address);
    let job = api.parse_job(&hcl).await.expect("parse the example");
    api.register_job(job).await.expect("register");

    // One leader, named in the lock variable and the ledger.
    let (_, first) = eventually(Duration::from_secs(20), "a first leader", async || ledger(&api).await).await;
    let lock = api
        .var_get("default", "election/leader")
        .await
        .expect("read the lock")
        .expect("the lock variable");
    assert!(lock.meta.lock.is_some(), "the election variable is locked");
    assert_eq!(lock.items.get("leader"), Some(&first.holder));
    assert_eq!(
        first.token,
        lock.meta.modify_index.to_string(),
        "the token is the lock's modify index"
    );
    eventually(Duration::from_secs(5), "the leader to say so in its log", async || {
        some_file_contains(dir.path(), &format!("elected leader {}", first.holder)).then_some(())
    })
    .await;
    let running = api.job_allocations("election").await.expect("allocations");
    assert_eq!(
        running.iter().filter(|alloc| alloc.client_status == "running").count(),
        3
    );

    // Watch the ledger from here on.
    let (stop_watching, watching) = tokio::sync::watch::channel(false);
    let watcher = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut seen: Vec<(u64, Ledger)> = Vec::new();
            let mut index = 0;
            loop {
                let Ok(Some(var)) = api
                    .var_get_blocking("default", "election/ledger", index, Duration::from_secs(2))
                    .await
                else {
                    continue;
                };
                index = var.meta.modify_index;
                let entry = Ledger {
                    token: var.items.get("token").cloned().unwrap_or_default(),
                    holder: var.items.get("holder").cloned().unwrap_or_default(),
                };
                if seen.last().is_none_or(|(_, last)| *last != entry) {
                    seen.push((index, entry));
                }
                if *watching.borrow() {
                    return seen;
                }
            }
        })
    };

    // Kill the leader's process: another replica leads within TTL + delay.
    let pid = task_pid(&first.holder).expect("the leader's process");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let killed_at = Instant::now();
    let (_, second) = eventually(Duration::from_secs(10), "a new leader", async || {
        ledger(&api).await.filter(|(_, ledger)| ledger.holder != first.holder)
    })
    .await;
    let took = killed_at.elapsed();
    // The lock lapses at most TTL after the last renewal, the delay
    // follows, then a campaign retry (TTL / 4) and the first fenced write
    // (100 ms) are needed.
    let bound = TTL + DELAY + TTL / 4 + Duration::from_millis(900);
    assert!(took <= bound, "a new leader after {took:?}, more than {bound:?}");
    assert!(took >= DELAY, "a new leader after {took:?}: before the lock-delay ran");
    let first_token: u64 = first.token.parse().expect("token");
    let second_token: u64 = second.token.parse().expect("token");
    assert!(
        second_token > first_token,
        "tokens rise: {first_token} then {second_token}"
    );

    // Let the new leader write a while, then look at what was recorded.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_watching.send_replace(true);
    let seen = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("the ledger keeps moving")
        .expect("watcher");
    assert!(seen.len() >= 2, "the ledger saw both leaders: {seen:?}");
    // Tokens never go back, and each token belongs to one replica.
    let mut holders = std::collections::BTreeMap::new();
    let mut last_token = 0u64;
    for (_, entry) in &seen {
        let token: u64 = entry.token.parse().expect("token");
        assert!(token >= last_token, "a lower token after a higher one: {seen:?}");
        last_token = token;
        let holder = holders.entry(token).or_insert_with(|| entry.holder.clone());
        assert_eq!(*holder, entry.holder, "token {token} held by two replicas: {seen:?}");
    }
    println!("election took {took:?} after the kill; ledger: {seen:?}");
    api.stop_job("election", false).await.expect("stop");
    eventually(Duration::from_secs(20), "the replicas to stop", async || {
        let allocs = api.job_allocations("election").await.ok()?;
        allocs
            .iter()
            .all(|alloc| !matches!(alloc.client_status.as_str(), "pending" | "running"))
            .then_some(())
    })
    .await;
    agent.shutdown().await;
}
