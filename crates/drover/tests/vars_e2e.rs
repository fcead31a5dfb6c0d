//! Variables on a real dev agent over real sockets: check-and-set answers
//! 409 with the conflicting variable, items are encrypted at rest (a byte
//! search of the whole data dir finds no plaintext, after a Raft snapshot
//! and a restart too, and the keys survive the restart), the root keyring
//! lists and rotates, limits are refused with 400, locks exclude a second
//! holder, and ACL variables path rules are enforced.

mod common;

use api_client::{Client, VarWrite};
use drover::agent::{Agent, AgentConfig, ServerSettings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// A value that must never be found on disk in plaintext.
const CANARY: &str = "plaintext-canary-5e1f0c9a";

async fn start(data_dir: &Path, acl: bool) -> Agent {
    Agent::start(AgentConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        rpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: Some(data_dir.to_path_buf()),
        drover_binary: Some(env!("CARGO_BIN_EXE_drover").into()),
        server: Some(ServerSettings {
            // Snapshot often, so the test sees one on disk.
            raft_snapshot_threshold: Some(20),
            ..ServerSettings::default()
        }),
        client: None,
        acl: server::AclConfig {
            enabled: acl,
            ..server::AclConfig::default()
        },
        ..AgentConfig::default()
    })
    .await
    .expect("agent starts")
}

fn items(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files += 1;
                if bytes.windows(needle.len()).any(|window| window == needle) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    assert!(files > 2, "the search saw only {files} files under {}", dir.display());
    found
}

async fn raw(
    client_addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String) {
    let http = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http.request(method, format!("{client_addr}{path}"));
    if let Some(token) = token {
        request = request.header("X-Nomad-Token", token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("answered");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_check_and_set_and_stay_encrypted_at_rest_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start(dir.path(), false).await;
    let address = format!("http://{}", agent.http_addr);
    let api = Client::new(address.clone());

    let keys = api.keyring_keys().await.expect("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].state, "active");

    // Check-and-set: 0 means "only if absent".
    let first = match api
        .var_put("default", "app/db", &items(&[("password", CANARY)]), Some(0), None)
        .await
        .expect("put")
    {
        VarWrite::Written(Some(var)) => var,
        other => panic!("first put: {other:?}"),
    };
    assert_eq!(first.items["password"], CANARY);
    assert_eq!(first.meta.path, "app/db");
    match api
        .var_put("default", "app/db", &items(&[("password", "other")]), Some(0), None)
        .await
        .expect("put")
    {
        VarWrite::Conflict(Some(current)) => {
            assert_eq!(current.meta.modify_index, first.meta.modify_index);
            assert_eq!(current.items["password"], CANARY);
        }
        other => panic!("a stale check-and-set must conflict: {other:?}"),
    }
    // The raw answer is Nomad's 409.
    let (status, text) = raw(
        &address,
        "PUT",
        "/v1/var/app/db?cas=1",
        None,
        Some(json!({"Items": {"a": "b"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    let second = match api
        .var_put(
            "default",
            "app/db",
            &items(&[("password", CANARY), ("user", "app")]),
            Some(first.meta.modify_index),
            None,
        )
        .await
        .expect("put")
    {
        VarWrite::Written(Some(var)) => var,
        other => panic!("a current check-and-set must succeed: {other:?}"),
    };
    assert!(second.meta.modify_index > first.meta.modify_index);
    assert_eq!(second.meta.create_index, first.meta.create_index);
    let listed = api.var_list("default", "app/").await.expect("list");
    assert_eq!(listed.len(), 1);
    let (_, list_text) = raw(&address, "GET", "/v1/vars?prefix=app", None, None).await;
    assert!(!list_text.contains(CANARY), "a list carries no items: {list_text}");

    // Limits and bad input are 400s.
    for (path, body) in [
        ("/v1/var/bad%20path", json!({"Items": {"a": "b"}})),
        ("/v1/var/nomad/other", json!({"Items": {"a": "b"}})),
        ("/v1/var/a", json!({"Items": {}})),
        ("/v1/var/a", json!({"Items": {"a": "b"}, "Unknown": 1})),
        ("/v1/var/a", json!({"Items": {"big": "x".repeat(70 * 1024)}})),
        ("/v1/var/a?lock-acquire", json!({"Lock": {"TTL": "0s"}})),
    ] {
        let (status, text) = raw(&address, "PUT", path, None, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {text}");
    }
    let long = format!("/v1/var/{}", "a".repeat(129));
    assert_eq!(
        raw(&address, "PUT", &long, None, Some(json!({"Items": {"a": "b"}})))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    // Rotation: a new active key; old items still read, new ones use it.
    let rotated = api.keyring_rotate().await.expect("rotate");
    let keys = api.keyring_keys().await.expect("keys");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|key| key.state == "active").count(), 1);
    assert!(
        keys.iter()
            .any(|key| key.key_id == rotated.key_id && key.state == "active")
    );
    let (status, _) = raw(&address, "PUT", "/v1/operator/keyring/rotate?full=true", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    api.var_put("default", "app/after", &items(&[("token", CANARY)]), None, None)
        .await
        .expect("put after rotation");

    // Enough writes for a Raft snapshot, then look for the plaintext.
    for idx in 0..30 {
        api.var_put("default", &format!("fill/{idx}"), &items(&[("v", CANARY)]), None, None)
            .await
            .expect("fill");
    }
    let snapshot_file = dir.path().join("server/snapshot.bin");
    common::cluster::eventually(Duration::from_secs(10), "a Raft snapshot on disk", async || {
        snapshot_file.exists().then_some(())
    })
    .await;
    assert_eq!(files_containing(dir.path(), CANARY.as_bytes()), Vec::<String>::new());
    let saved = api.snapshot_save().await.expect("snapshot save");
    assert!(!saved.windows(CANARY.len()).any(|window| window == CANARY.as_bytes()));
    agent.shutdown().await;

    // After a restart the keystore still opens every variable.
    let agent = start(dir.path(), false).await;
    let api = Client::new(format!("http://{}", agent.http_addr));
    let var = common::cluster::eventually(Duration::from_secs(10), "the variable after a restart", async || {
        api.var_get("default", "app/db").await.ok().flatten()
    })
    .await;
    assert_eq!(var.items["password"], CANARY);
    assert_eq!(var.meta.modify_index, second.meta.modify_index);
    let after = api.var_get("default", "app/after").await.expect("get").expect("exists");
    assert_eq!(after.items["token"], CANARY);
    assert_eq!(api.keyring_keys().await.expect("keys").len(), 2);
    assert_eq!(files_containing(dir.path(), CANARY.as_bytes()), Vec::<String>::new());

    // Delete with a stale index conflicts; with the current one it goes.
    assert!(matches!(
        api.var_delete("default", "app/db", Some(1)).await.expect("delete"),
        VarWrite::Conflict(_)
    ));
    api.var_delete("default", "app/db", Some(var.meta.modify_index))
        .await
        .expect("delete");
    assert_eq!(api.var_get("default", "app/db").await.expect("get"), None);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_has_one_holder_and_new_holders_get_higher_fencing_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start(dir.path(), false).await;
    let api = Client::new(format!("http://{}", agent.http_addr));
    let ttl = Duration::from_secs(10);
    let first = match api
        .var_lock_acquire("default", "locks/a", ttl, Duration::from_secs(1), None)
        .await
        .expect("acquire")
    {
        VarWrite::Written(Some(var)) => var,
        other => panic!("acquire: {other:?}"),
    };
    let lock_id = first.meta.lock.as_ref().map(|lock| lock.id.clone()).expect("lock ID");
    assert!(!lock_id.is_empty());
    assert!(matches!(
        api.var_lock_acquire("default", "locks/a", ttl, Duration::ZERO, None)
            .await
            .expect("second acquire"),
        VarWrite::Conflict(_)
    ));
    // Only the holder writes a locked variable.
    assert!(matches!(
        api.var_put("default", "locks/a", &items(&[("a", "b")]), None, None)
            .await
            .expect("put"),
        VarWrite::Conflict(_)
    ));
    assert!(matches!(
        api.var_put("default", "locks/a", &items(&[("a", "b")]), None, Some(&lock_id))
            .await
            .expect("put"),
        VarWrite::Written(_)
    ));
    // Others never see the lock's ID.
    let seen = api.var_get("default", "locks/a").await.expect("get").expect("exists");
    assert_eq!(seen.meta.lock.as_ref().map(|lock| lock.id.as_str()), Some(""));
    assert!(matches!(
        api.var_lock_renew("default", "locks/a", &lock_id).await.expect("renew"),
        VarWrite::Written(_)
    ));
    assert!(matches!(
        api.var_lock_release("default", "locks/a", "not-the-holder")
            .await
            .expect("release"),
        VarWrite::Conflict(_)
    ));
    assert!(matches!(
        api.var_lock_release("default", "locks/a", &lock_id)
            .await
            .expect("release"),
        VarWrite::Written(_)
    ));
    let second = match api
        .var_lock_acquire("default", "locks/a", ttl, Duration::ZERO, None)
        .await
        .expect("acquire again")
    {
        VarWrite::Written(Some(var)) => var,
        other => panic!("acquire after release: {other:?}"),
    };
    assert!(second.meta.modify_index > first.meta.modify_index);
    // A short lock lapses on the leader's clock and leaves its delay.
    let short = match api
        .var_lock_acquire(
            "default",
            "locks/short",
            Duration::from_millis(300),
            Duration::from_millis(700),
            None,
        )
        .await
        .expect("acquire")
    {
        VarWrite::Written(Some(var)) => var,
        other => panic!("acquire: {other:?}"),
    };
    let started = std::time::Instant::now();
    common::cluster::eventually(Duration::from_secs(5), "the short lock to lapse", async || {
        let var = api.var_get("default", "locks/short").await.ok().flatten()?;
        var.meta.lock.is_none().then_some(())
    })
    .await;
    let retaken = common::cluster::eventually(Duration::from_secs(5), "the lock after its delay", async || {
        match api
            .var_lock_acquire("default", "locks/short", Duration::from_secs(5), Duration::ZERO, None)
            .await
            .ok()?
        {
            VarWrite::Written(Some(var)) => Some(var),
            _ => None,
        }
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "retaken after {:?}, before TTL + lock-delay",
        started.elapsed()
    );
    assert!(retaken.meta.modify_index > short.meta.modify_index);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_variables_path_rules_are_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start(dir.path(), true).await;
    let address = format!("http://{}", agent.http_addr);
    let (status, text) = raw(&address, "PUT", "/v1/acl/bootstrap", None, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let root: Value = serde_json::from_str(&text).expect("json");
    let root = root["SecretID"].as_str().expect("secret").to_string();
    let rules = r#"namespace "default" {
  variables {
    path "app/*" { capabilities = ["read", "write", "list"] }
  }
}"#;
    let (status, text) = raw(
        &address,
        "PUT",
        "/v1/acl/policy/app-vars",
        Some(&root),
        Some(json!({"Name": "app-vars", "Rules": rules})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (_, text) = raw(
        &address,
        "PUT",
        "/v1/acl/token",
        Some(&root),
        Some(json!({"Name": "app", "Type": "client", "Policies": ["app-vars"]})),
    )
    .await;
    let token: Value = serde_json::from_str(&text).expect("json");
    let token = token["SecretID"].as_str().expect("secret").to_string();
    let admin = Client::new(address.clone()).with_token(root.clone());
    let app = Client::new(address.clone()).with_token(token.clone());
    admin
        .var_put("default", "secret/db", &items(&[("p", "s")]), None, None)
        .await
        .expect("admin writes anywhere");
    assert!(matches!(
        app.var_put("default", "app/config", &items(&[("p", "s")]), None, None)
            .await
            .expect("app writes its path"),
        VarWrite::Written(_)
    ));
    assert_eq!(
        app.var_get("default", "app/config")
            .await
            .expect("read")
            .map(|var| var.items),
        Some(items(&[("p", "s")]))
    );
    for (method, path) in [
        ("GET", "/v1/var/secret/db"),
        ("PUT", "/v1/var/secret/db"),
        ("DELETE", "/v1/var/secret/db"),
        ("DELETE", "/v1/var/app/config"),
        ("PUT", "/v1/var/secret/db?lock-acquire"),
        ("GET", "/v1/var/app/config?namespace=other"),
    ] {
        let (status, text) = raw(&address, method, path, Some(&token), Some(json!({"Items": {"a": "b"}}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {text}");
        let (status, _) = raw(&address, method, path, None, Some(json!({"Items": {"a": "b"}}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "anonymous {method} {path}");
    }
    // A list shows only what the token may list.
    let listed = app.var_list("default", "").await.expect("list");
    assert_eq!(
        listed.iter().map(|var| var.path.as_str()).collect::<Vec<_>>(),
        vec!["app/config"]
    );
    assert_eq!(admin.var_list("default", "").await.expect("list").len(), 2);
    // The keyring is the operator's.
    let (status, _) = raw(&address, "GET", "/v1/operator/keyring/keys", Some(&token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = raw(&address, "PUT", "/v1/operator/keyring/rotate", Some(&token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(admin.keyring_keys().await.expect("keys").len(), 1);
    agent.shutdown().await;
}

fn drover(address: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .env("DROVER_ADDR", address)
        .env_remove("NOMAD_TOKEN")
        .env_remove("DROVER_TOKEN")
        .output()
        .expect("run drover")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_var_commands_put_get_list_purge_and_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start(dir.path(), false).await;
    let address = format!("http://{}", agent.http_addr);
    let api = Client::new(address.clone());
    let put = drover(
        &address,
        &["var", "put", "--check-index", "0", "app/cli", "user=me", "pass=x=y"],
    );
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let get = drover(&address, &["var", "get", "--item", "pass", "app/cli"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "x=y");
    let stale = drover(&address, &["var", "put", "--check-index", "0", "app/cli", "user=other"]);
    assert!(!stale.status.success(), "a stale check-index fails");
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("Check-index"),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    let list = drover(&address, &["var", "list", "app/"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("app/cli"));
    let bad = drover(&address, &["var", "put", "app/cli", "novalue"]);
    assert!(!bad.status.success());
    let keys = drover(&address, &["operator", "keyring", "rotate"]);
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
    let keys = String::from_utf8_lossy(&drover(&address, &["operator", "keyring", "list"]).stdout).to_string();
    assert_eq!(keys.matches("inactive").count(), 1, "{keys}");
    assert_eq!(keys.lines().count(), 3, "{keys}");

    // `var lock` holds the lock while its command runs, then releases it.
    let locker = std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args([
            "var",
            "lock",
            "--ttl",
            "1s",
            "--delay",
            "0s",
            "locks/cli",
            "sh",
            "-c",
            "sleep 2; exit 3",
        ])
        .env("DROVER_ADDR", &address)
        .spawn()
        .expect("spawn var lock");
    common::cluster::eventually(Duration::from_secs(5), "the CLI to hold the lock", async || {
        let var = api.var_get("default", "locks/cli").await.ok().flatten()?;
        var.meta.lock.is_some().then_some(())
    })
    .await;
    // Held past its TTL: the CLI renews it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(matches!(
        api.var_lock_acquire("default", "locks/cli", Duration::from_secs(1), Duration::ZERO, None)
            .await
            .expect("acquire"),
        VarWrite::Conflict(_)
    ));
    let status = tokio::task::spawn_blocking(move || {
        let mut locker = locker;
        locker.wait()
    })
    .await
    .expect("join")
    .expect("wait");
    assert_eq!(status.code(), Some(3), "the command's exit code passes through");
    let var = api.var_get("default", "locks/cli").await.expect("get").expect("exists");
    assert!(var.meta.lock.is_none(), "released on exit");
    let purge = drover(&address, &["var", "purge", "app/cli"]);
    assert!(purge.status.success());
    assert_eq!(api.var_get("default", "app/cli").await.expect("get"), None);
    agent.shutdown().await;
}
