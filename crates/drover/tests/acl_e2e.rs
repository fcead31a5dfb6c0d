//! The R8 suite: ACLs on a real dev agent over real sockets. Every write
//! route denies the anonymous token, a read-only namespace token reads
//! and cannot write, a token for namespace A cannot see namespace B, an
//! expired or unknown token is refused, the management token can do
//! everything, bootstrap works once (and again through the reset file),
//! tokens survive a restart, and the CLI reads NOMAD_TOKEN/DROVER_TOKEN.

mod common;

use drover::agent::Agent;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

async fn start(data_dir: &Path) -> Agent {
    common::start_agent_with_acls(data_dir).await
}

struct Http {
    base: String,
    http: reqwest::Client,
}

impl Http {
    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("X-Nomad-Token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request is answered");
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }

    async fn ok(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, text) = self.call(method, path, Some(token), body).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

fn batch_job(id: &str, namespace: &str) -> Value {
    json!({"Job": {
        "ID": id, "Name": id, "Namespace": namespace, "Type": "batch", "Datacenters": ["dc1"],
        "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{
            "Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"},
            "Resources": {"CPU": 20, "MemoryMB": 16}
        }]}]
    }})
}

/// A path with every `{param}` replaced by a placeholder.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|part| if part.starts_with('{') { "placeholder" } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

/// Polls until the job has an allocation, returning its ID.
async fn first_alloc(api: &Http, token: &str, job: &str, namespace: &str) -> String {
    let started = Instant::now();
    loop {
        let allocs = api
            .ok(
                "GET",
                &format!("/v1/job/{job}/allocations?namespace={namespace}"),
                token,
                None,
            )
            .await;
        if let Some(id) = allocs
            .as_array()
            .and_then(|list| list.first())
            .and_then(|alloc| alloc["ID"].as_str())
        {
            return id.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no allocation for {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_guard_every_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start(dir.path()).await;
    let api = Http {
        base: format!("http://{}", agent.http_addr),
        http: reqwest::Client::new(),
    };

    // Before bootstrap: no token, nothing but the open routes.
    let (status, text) = api.call("GET", "/v1/jobs", None, None).await;
    assert_eq!((status, text.trim()), (StatusCode::FORBIDDEN, "Permission denied"));
    assert_eq!(api.call("GET", "/v1/status/leader", None, None).await.0, StatusCode::OK);

    // Bootstrap once; again only through the reset file.
    let boot = api.call("PUT", "/v1/acl/bootstrap", None, None).await;
    assert_eq!(boot.0, StatusCode::OK, "{}", boot.1);
    let boot: Value = serde_json::from_str(&boot.1).expect("token JSON");
    let root = boot["SecretID"].as_str().expect("secret").to_string();
    assert_eq!(boot["Type"], "management");
    let (status, text) = api.call("PUT", "/v1/acl/bootstrap", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let reset_index: u64 = text
        .split("reset index: ")
        .nth(1)
        .and_then(|rest| rest.trim().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no reset index in {text:?}"));
    std::fs::write(
        dir.path().join("server").join(server::BOOTSTRAP_RESET_FILE),
        reset_index.to_string(),
    )
    .expect("write reset file");
    let again = api.call("POST", "/v1/acl/bootstrap", None, None).await;
    assert_eq!(again.0, StatusCode::OK, "{}", again.1);
    let second: Value = serde_json::from_str(&again.1).expect("token JSON");
    assert_ne!(second["SecretID"], boot["SecretID"]);
    // The reset file names the old index, so it does not allow a third.
    assert_eq!(
        api.call("PUT", "/v1/acl/bootstrap", None, None).await.0,
        StatusCode::BAD_REQUEST
    );

    // Namespaces, policies, an anonymous policy that reads `default`.
    for namespace in ["team-a", "team-b"] {
        api.ok(
            "PUT",
            &format!("/v1/namespace/{namespace}"),
            &root,
            Some(json!({"Name": namespace})),
        )
        .await;
    }
    let policies = [
        ("anonymous", r#"namespace "default" { policy = "read" }"#),
        (
            "default-read",
            r#"namespace "default" { policy = "read" }
node { policy = "read" }"#,
        ),
        ("a-write", r#"namespace "team-a" { policy = "write" }"#),
    ];
    for (name, rules) in policies {
        api.ok(
            "PUT",
            &format!("/v1/acl/policy/{name}"),
            &root,
            Some(json!({"Name": name, "Rules": rules})),
        )
        .await;
    }
    let (status, text) = api
        .call(
            "PUT",
            "/v1/acl/policy/bad",
            Some(&root),
            Some(json!({"Rules": "namespace \"x\" { policy = \"sudo\" }"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("invalid policy \"sudo\""), "{text}");

    // Jobs in both namespaces, placed and run by the management token.
    api.ok("PUT", "/v1/jobs", &root, Some(batch_job("job-a", "team-a")))
        .await;
    api.ok("PUT", "/v1/jobs", &root, Some(batch_job("job-b", "team-b")))
        .await;
    let alloc_b = first_alloc(&api, &root, "job-b", "team-b").await;
    let alloc_a = first_alloc(&api, &root, "job-a", "team-a").await;

    // Every write route denies the anonymous token, even with an
    // anonymous policy that reads.
    let mut writes = 0;
    for (method, path, need) in acl::table::HTTP_ROUTES {
        // Parsing and validating a job are reads sent with POST (Nomad
        // grants them with `read`); bootstrap is open to anyone.
        let read_by_post = matches!(need, acl::Need::Namespace("parse-job") | acl::Need::JobBody("read-job"));
        if *method == "GET" || *need == acl::Need::Anyone || read_by_post {
            continue;
        }
        writes += 1;
        let (status, text) = api
            .call(method, &concrete(path), None, Some(batch_job("x", "default")))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "anonymous {method} {path}: {text}");
        assert_eq!(text.trim(), "Permission denied");
    }
    assert!(writes > 30, "only {writes} write routes");
    // The anonymous policy reads default, and only default.
    assert_eq!(api.call("GET", "/v1/jobs", None, None).await.0, StatusCode::OK);
    assert_eq!(
        api.call("GET", "/v1/jobs?namespace=team-a", None, None).await.0,
        StatusCode::FORBIDDEN
    );

    // A read-only token for `default`.
    let reader = api
        .ok(
            "PUT",
            "/v1/acl/token",
            &root,
            Some(json!({"Name": "reader", "Type": "client", "Policies": ["default-read"]})),
        )
        .await;
    let reader = reader["SecretID"].as_str().expect("secret").to_string();
    assert_eq!(api.call("GET", "/v1/jobs", Some(&reader), None).await.0, StatusCode::OK);
    assert_eq!(
        api.call("GET", "/v1/nodes", Some(&reader), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        api.call("GET", "/v1/job/none", Some(&reader), None).await.0,
        StatusCode::NOT_FOUND
    );
    for (method, path) in [("PUT", "/v1/jobs"), ("POST", "/v1/job/x"), ("DELETE", "/v1/job/x")] {
        let (status, _) = api
            .call(method, path, Some(&reader), Some(batch_job("x", "default")))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "reader {method} {path}");
    }
    assert_eq!(
        api.call("GET", "/v1/acl/tokens", Some(&reader), None).await.0,
        StatusCode::FORBIDDEN
    );
    let own = api.ok("GET", "/v1/acl/policies", &reader, None).await;
    assert_eq!(own.as_array().map(Vec::len), Some(1), "{own}");
    assert_eq!(own[0]["Name"], "default-read");
    assert_eq!(
        api.call("GET", "/v1/acl/policy/a-write", Some(&reader), None).await.0,
        StatusCode::FORBIDDEN
    );

    // A token for team-a, through a role, cannot see team-b.
    let role = api
        .ok(
            "PUT",
            "/v1/acl/role",
            &root,
            Some(json!({"Name": "team-a", "Policies": [{"Name": "a-write"}]})),
        )
        .await;
    assert!(role["ID"].as_str().is_some_and(|id| !id.is_empty()), "{role}");
    let team_a = api
        .ok(
            "PUT",
            "/v1/acl/token",
            &root,
            Some(json!({"Name": "a", "Roles": [{"Name": "team-a"}]})),
        )
        .await;
    let team_a = team_a["SecretID"].as_str().expect("secret").to_string();
    let jobs = api.ok("GET", "/v1/jobs?namespace=*", &team_a, None).await;
    let ids: Vec<&str> = jobs
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|job| job["ID"].as_str())
        .collect();
    assert_eq!(ids, ["job-a"]);
    let allocs = api.ok("GET", "/v1/allocations?namespace=*", &team_a, None).await;
    assert!(
        allocs
            .as_array()
            .expect("list")
            .iter()
            .all(|alloc| alloc["Namespace"] == "team-a"),
        "{allocs}"
    );
    let namespaces = api.ok("GET", "/v1/namespaces", &team_a, None).await;
    let names: Vec<&str> = namespaces
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|ns| ns["Name"].as_str())
        .collect();
    assert_eq!(names, ["team-a"]);
    for path in [
        "/v1/jobs?namespace=team-b".to_string(),
        "/v1/job/job-b?namespace=team-b".to_string(),
        "/v1/job/job-b/allocations?namespace=team-b".to_string(),
        format!("/v1/allocation/{alloc_b}"),
        "/v1/namespace/team-b".to_string(),
        format!("/v1/client/fs/logs/{alloc_b}?task=t"),
    ] {
        let (status, text) = api.call("GET", &path, Some(&team_a), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "team-a GET {path}: {text}");
    }
    assert_eq!(
        api.call("GET", &format!("/v1/allocation/{alloc_a}"), Some(&team_a), None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = api
        .call("PUT", "/v1/jobs", Some(&team_a), Some(batch_job("sneak", "team-b")))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "team-a registers into team-b");
    api.ok("PUT", "/v1/jobs", &team_a, Some(batch_job("job-a2", "team-a")))
        .await;

    // Unknown and expired tokens are refused with Nomad's reasons.
    let (status, text) = api
        .call("GET", "/v1/jobs", Some("00000000-0000-4000-8000-000000000000"), None)
        .await;
    assert_eq!((status, text.trim()), (StatusCode::FORBIDDEN, "ACL token not found"));
    let short = api
        .ok(
            "PUT",
            "/v1/acl/token",
            &root,
            Some(json!({"Name": "short", "Policies": ["default-read"], "ExpirationTTL": "1s"})),
        )
        .await;
    assert!(short["ExpirationTime"].as_str().is_some(), "{short}");
    let short = short["SecretID"].as_str().expect("secret").to_string();
    let started = Instant::now();
    loop {
        let (status, text) = api.call("GET", "/v1/jobs", Some(&short), None).await;
        if status == StatusCode::FORBIDDEN {
            assert_eq!(text.trim(), "ACL token expired");
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(10), "token never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, text) = api
        .call(
            "PUT",
            "/v1/acl/token",
            Some(&root),
            Some(json!({"Policies": ["default-read"], "ExpirationTTL": "48h"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");

    // Management does everything, with either header.
    let bearer = api
        .http
        .get(format!("{}/v1/operator/scheduler/configuration", api.base))
        .header("Authorization", format!("Bearer {root}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(bearer.status(), StatusCode::OK);
    for (method, path) in [
        ("GET", "/v1/acl/tokens"),
        ("GET", "/v1/acl/roles"),
        ("GET", "/v1/agent/self"),
        ("GET", "/v1/operator/raft/configuration"),
        ("GET", "/v1/jobs?namespace=*"),
        ("PUT", "/v1/namespace/team-c"),
        ("DELETE", "/v1/namespace/team-c"),
    ] {
        let body = (method == "PUT").then(|| json!({"Name": "team-c"}));
        let (status, text) = api.call(method, path, Some(&root), body).await;
        assert_eq!(status, StatusCode::OK, "management {method} {path}: {text}");
    }
    let me = api.ok("GET", "/v1/acl/token/self", &root, None).await;
    assert_eq!(me["SecretID"].as_str(), Some(root.as_str()));

    // Deleting a token revokes it.
    let accessor = api.ok("GET", "/v1/acl/token/self", &reader, None).await["AccessorID"]
        .as_str()
        .expect("accessor")
        .to_string();
    api.ok("DELETE", &format!("/v1/acl/token/{accessor}"), &root, None)
        .await;
    let (status, text) = api.call("GET", "/v1/jobs", Some(&reader), None).await;
    assert_eq!((status, text.trim()), (StatusCode::FORBIDDEN, "ACL token not found"));

    // Tokens and policies live in Raft: they survive a restart.
    // (The batch tasks exit at once; wait until none is live.)
    let started = Instant::now();
    loop {
        let allocs = api.ok("GET", "/v1/allocations?namespace=*", &root, None).await;
        let live = allocs
            .as_array()
            .expect("list")
            .iter()
            .any(|alloc| matches!(alloc["ClientStatus"].as_str(), Some("pending" | "running")));
        if !live && allocs.as_array().is_some_and(|list| list.len() == 3) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "allocations still live: {allocs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.shutdown().await;
    let agent = start(dir.path()).await;
    let api = Http {
        base: format!("http://{}", agent.http_addr),
        http: reqwest::Client::new(),
    };
    let jobs = api.ok("GET", "/v1/jobs?namespace=*", &team_a, None).await;
    assert!(jobs.as_array().is_some_and(|list| !list.is_empty()));
    assert_eq!(
        api.call("GET", "/v1/acl/tokens", Some(&team_a), None).await.0,
        StatusCode::FORBIDDEN
    );

    // The CLI: NOMAD_TOKEN and DROVER_TOKEN, policy apply, token create/list/self/delete.
    let rules = dir.path().join("ops.hcl");
    std::fs::write(&rules, "operator { policy = \"read\" }\n").expect("rules file");
    let cli = |env: &'static str, token: &str, args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
            .arg("--address")
            .arg(&api.base)
            .args(args)
            .env_remove("NOMAD_TOKEN")
            .env_remove("DROVER_TOKEN")
            .env(env, token)
            .output()
            .expect("drover runs");
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let (ok, out) = cli(
        "NOMAD_TOKEN",
        &root,
        &["acl", "policy", "apply", "ops", rules.to_str().expect("utf-8")],
    );
    assert!(ok, "{out}");
    assert!(out.contains("Successfully wrote \"ops\" ACL policy!"), "{out}");
    let (ok, out) = cli("DROVER_TOKEN", &root, &["acl", "policy", "list"]);
    assert!(ok && out.contains("ops") && out.contains("a-write"), "{out}");
    let (ok, out) = cli(
        "DROVER_TOKEN",
        &root,
        &["acl", "token", "create", "--name", "cli", "--policy", "ops"],
    );
    assert!(ok, "{out}");
    let secret = out
        .lines()
        .find_map(|line| line.strip_prefix("Secret ID"))
        .and_then(|rest| rest.split('=').nth(1))
        .map(|value| value.trim().to_string())
        .expect("secret printed");
    let accessor = out
        .lines()
        .find_map(|line| line.strip_prefix("Accessor ID"))
        .and_then(|rest| rest.split('=').nth(1))
        .map(|value| value.trim().to_string())
        .expect("accessor printed");
    let (ok, out) = cli("NOMAD_TOKEN", &secret, &["acl", "token", "self"]);
    assert!(
        ok && out.contains("Name         = cli") && out.contains("Policies     = ops"),
        "{out}"
    );
    let (ok, out) = cli("NOMAD_TOKEN", &secret, &["operator", "raft", "list-peers"]);
    assert!(ok, "{out}");
    let (ok, out) = cli("NOMAD_TOKEN", &secret, &["acl", "token", "list"]);
    assert!(!ok && out.contains("403"), "{out}");
    let (ok, out) = cli("NOMAD_TOKEN", &root, &["acl", "token", "list"]);
    assert!(ok && out.contains(&accessor), "{out}");
    let (ok, out) = cli("NOMAD_TOKEN", &root, &["acl", "role", "list"]);
    assert!(ok && out.contains("team-a"), "{out}");
    let (ok, out) = cli("NOMAD_TOKEN", &root, &["acl", "token", "delete", &accessor]);
    assert!(ok, "{out}");
    let (ok, out) = cli("NOMAD_TOKEN", &secret, &["acl", "token", "self"]);
    assert!(!ok && out.contains("ACL token not found"), "{out}");
    let (ok, out) = cli("NOMAD_TOKEN", &root, &["acl", "bootstrap"]);
    assert!(!ok && out.contains("already done"), "{out}");

    agent.shutdown().await;
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Runs `drover agent --dev` with `extra` arguments until its API answers,
/// and checks that it enforces ACLs: anonymous is refused, bootstrap works.
async fn binary_agent_enforces_acls(extra: &[&str]) {
    let (http, rpc) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["agent", "-dev", "--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--rpc-addr", &format!("127.0.0.1:{rpc}")])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("agent starts");
    let api = Http {
        base: format!("http://127.0.0.1:{http}"),
        http: reqwest::Client::new(),
    };
    let started = Instant::now();
    loop {
        let answer = api.http.get(format!("{}/v1/status/leader", api.base)).send().await;
        if answer.is_ok_and(|response| response.status() == StatusCode::OK) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "agent never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(api.call("GET", "/v1/jobs", None, None).await.0, StatusCode::FORBIDDEN);
    let boot = api.call("POST", "/v1/acl/bootstrap", None, None).await;
    assert_eq!(boot.0, StatusCode::OK, "{}", boot.1);
    let secret = serde_json::from_str::<Value>(&boot.1).expect("token")["SecretID"]
        .as_str()
        .expect("secret")
        .to_string();
    assert_eq!(api.call("GET", "/v1/jobs", Some(&secret), None).await.0, StatusCode::OK);
    child.kill().await.expect("stop the agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_agent_with_the_flag_or_the_config_block() {
    binary_agent_enforces_acls(&["-acl-enabled"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("acl.hcl");
    std::fs::write(&file, "acl {\n  enabled = true\n}\n").expect("config file");
    binary_agent_enforces_acls(&["-config", file.to_str().expect("utf-8 path")]).await;
}
