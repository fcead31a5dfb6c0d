//! The client's HTTP API against a real single-node cluster in one
//! process: a server (Raft on disk, real RPC over TCP), a client with the
//! raw_exec driver running real processes, and the router on a real socket.
//! A job registered over HTTP runs; then `fs`, `signal`, `restart`, the
//! stats endpoints and the client's GC are exercised against it.

use http_api::{AgentInfo, AppState};
use std::sync::Arc;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(30);

struct Cluster {
    base: String,
    server: server::Server,
    data: tempfile::TempDir,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    client_run: tokio::task::JoinHandle<()>,
}

async fn cluster() -> Cluster {
    let data = tempfile::tempdir().expect("tempdir");
    let rpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind rpc");
    let rpc_addr = rpc_listener.local_addr().expect("addr").to_string();
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let http_addr = http_listener.local_addr().expect("addr").to_string();
    let mut config = server::ServerConfig::dev(data.path().join("server"), rpc_addr.clone());
    config.http_addr = http_addr.clone();
    let server = server::Server::start(config).await.expect("server starts");
    tokio::spawn(rpc::serve(
        rpc_listener,
        Arc::new(server::RpcService::new(server.clone())),
    ));
    let mut client_config = client::ClientConfig::new(data.path().join("client"));
    client_config.node_name = "api-node".into();
    client_config.http_addr = http_addr.clone();
    client_config.stop_tasks_on_shutdown = true;
    client_config.update_batch_window = Duration::from_millis(5);
    let client = client::Client::new(
        client_config.clone(),
        vec![Arc::new(raw_exec::RawExecDriver::new())],
        Arc::new(rpc::RpcClient::new(rpc_addr)),
    )
    .await
    .expect("client");
    let state = AppState {
        server: server.clone(),
        alloc_root: Some(client_config.alloc_root()),
        agent: Arc::new(AgentInfo {
            client_node_id: Some(client.node().id.clone()),
            ..AgentInfo::default()
        }),
        client: Some(client.handle()),
    };
    let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let client_run = tokio::spawn(client.run(async move {
        let _ = shutdown_rx.await;
    }));
    tokio::spawn(async move {
        let _ = axum::serve(http_listener, http_api::app(state)).await;
    });
    Cluster {
        base: format!("http://{http_addr}"),
        server,
        data,
        http: reqwest::Client::new(),
        shutdown: Some(shutdown),
        client_run,
    }
}

impl Cluster {
    async fn get(&self, path: &str) -> (u16, String) {
        let answer = self.http.get(format!("{}{path}", self.base)).send().await.expect("GET");
        let status = answer.status().as_u16();
        (status, answer.text().await.expect("body"))
    }

    async fn put(&self, path: &str, body: serde_json::Value) -> (u16, String) {
        let answer = self
            .http
            .put(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("PUT");
        let status = answer.status().as_u16();
        (status, answer.text().await.expect("body"))
    }

    async fn poll<T>(&self, what: &str, mut check: impl FnMut(&Cluster) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn alloc_dir(&self, alloc_id: &str) -> std::path::PathBuf {
        self.data.path().join("client/alloc").join(alloc_id)
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = tokio::time::timeout(PATIENCE, &mut self.client_run).await;
        self.server.shutdown().await;
    }
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn fs_signal_restart_stats_and_gc_work_against_a_real_client() {
    let cluster = cluster().await;
    let script = "echo started >> \"$NOMAD_ALLOC_DIR/starts\"; \
                  trap 'echo hup >> \"$NOMAD_ALLOC_DIR/hups\"' HUP; \
                  printf 'hello fs' > local/greeting; \
                  while true; do sleep 0.05; done";
    let job = serde_json::json!({
        "Job": {
            "ID": "api", "Type": "service", "Datacenters": ["dc1"],
            "TaskGroups": [{
                "Name": "g",
                "Tasks": [{
                    "Name": "t", "Driver": "raw_exec", "KillTimeout": 2_000_000_000u64,
                    "Config": {"command": "/bin/sh", "args": ["-c", script]},
                    "Resources": {"CPU": 100, "MemoryMB": 64},
                }],
            }],
        }
    });
    let (status, text) = cluster.put("/v1/jobs", job).await;
    assert_eq!(status, 200, "{text}");
    let alloc_id = cluster
        .poll("a running allocation", |cluster| {
            let snapshot = cluster.server.state();
            let allocs = snapshot.allocs_by_job("default", "api");
            allocs
                .iter()
                .find(|alloc| alloc.client_status == types::AllocClientStatus::Running)
                .map(|alloc| alloc.id.clone())
        })
        .await;
    let shared = cluster.alloc_dir(&alloc_id).join("alloc");
    cluster
        .poll("the task's file", |cluster| {
            (read(&cluster.alloc_dir(&alloc_id).join("t/local/greeting")) == "hello fs").then_some(())
        })
        .await;
    let short = &alloc_id[..8];

    // fs: ls, stat, cat, readat, by a prefix of the ID, and no escape.
    let (status, text) = cluster.get(&format!("/v1/client/fs/ls/{short}?path=/t/local")).await;
    assert_eq!(status, 200, "{text}");
    let listing: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(listing[0]["Name"], "greeting");
    assert_eq!(listing[0]["Size"], 8);
    let (_, text) = cluster
        .get(&format!("/v1/client/fs/stat/{alloc_id}?path=t/local/greeting"))
        .await;
    let stat: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(stat["IsDir"], false);
    let (status, text) = cluster
        .get(&format!("/v1/client/fs/cat/{alloc_id}?path=t/local/greeting"))
        .await;
    assert_eq!((status, text.as_str()), (200, "hello fs"));
    let (_, text) = cluster
        .get(&format!(
            "/v1/client/fs/readat/{alloc_id}?path=t/local/greeting&offset=6&limit=2"
        ))
        .await;
    assert_eq!(text, "fs");
    let (status, text) = cluster
        .get(&format!("/v1/client/fs/cat/{alloc_id}?path=../../server/node-id"))
        .await;
    assert_eq!(status, 400, "{text}");

    // signal: the task's trap runs.
    let (status, text) = cluster
        .put(
            &format!("/v1/client/allocation/{short}/signal"),
            serde_json::json!({"Signal": "SIGHUP", "Task": "t"}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    cluster
        .poll("the trap", |_| (read(&shared.join("hups")) == "hup\n").then_some(()))
        .await;
    let (status, _) = cluster
        .put(
            &format!("/v1/client/allocation/{alloc_id}/signal"),
            serde_json::json!({"Signal": "SIGHUP", "Task": "nope"}),
        )
        .await;
    assert_eq!(status, 404);

    // stats: the running task's memory.
    let (status, text) = cluster.get(&format!("/v1/client/allocation/{alloc_id}/stats")).await;
    assert_eq!(status, 200, "{text}");
    let stats: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert!(
        stats["Tasks"]["t"]["ResourceUsage"]["MemoryStats"]["RSS"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{text}"
    );
    let (status, text) = cluster.get("/v1/client/stats").await;
    assert_eq!(status, 200, "{text}");
    let host: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert!(host["Memory"]["Total"].as_u64().unwrap_or(0) > 0, "{text}");
    assert_eq!(host["ArtifactCache"]["Misses"], 0);

    // restart: the task starts again, in place.
    let (status, text) = cluster
        .put(
            &format!("/v1/client/allocation/{alloc_id}/restart"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    cluster
        .poll("the second start", |_| {
            (read(&shared.join("starts")) == "started\nstarted\n").then_some(())
        })
        .await;

    // gc: refused while running, done once the allocation stopped.
    let (status, _) = cluster
        .put(&format!("/v1/client/allocation/{alloc_id}/gc"), serde_json::json!({}))
        .await;
    assert_eq!(status, 400);
    let answer = cluster
        .http
        .delete(format!("{}/v1/job/api", cluster.base))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(answer.status().as_u16(), 200);
    cluster
        .poll("the allocation to stop", |cluster| {
            let snapshot = cluster.server.state();
            snapshot
                .alloc(&alloc_id)
                .is_some_and(|alloc| alloc.client_status.is_terminal())
                .then_some(())
        })
        .await;
    let dir = cluster.alloc_dir(&alloc_id);
    let mut status = 0;
    for _ in 0..100 {
        // The runner may still be finishing its last report.
        status = cluster
            .put(&format!("/v1/client/allocation/{alloc_id}/gc"), serde_json::json!({}))
            .await
            .0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
    assert!(!dir.exists(), "the allocation directory is still there");
    cluster.stop().await;
}

/// Serves one file over HTTP/1.1 and counts the requests.
async fn serve_file(path: &'static str, body: &'static [u8]) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 << 10 {
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let wanted = String::from_utf8_lossy(&head).split_whitespace().nth(1) == Some(path);
                let reply = if wanted {
                    let mut reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    reply.extend_from_slice(body);
                    reply
                } else {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
                };
                let _ = socket.write_all(&reply).await;
            });
        }
    });
    (base, requests)
}

/// A job file's artifact and templates, through the whole path: the JSON
/// job is accepted at registration, placed, the artifact is fetched and
/// verified before the templates render from it, and the task sees both
/// the rendered file and the env template's variable.
#[tokio::test]
async fn a_job_with_an_artifact_and_templates_runs_end_to_end() {
    use sha2::Digest as _;
    const BODY: &[u8] = b"  artifact says hi  \n";
    let (base, requests) = serve_file("/hello.txt", BODY).await;
    let checksum: String = sha2::Sha256::digest(BODY)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let cluster = cluster().await;
    let job = serde_json::json!({
        "Job": {
            "ID": "hooks", "Type": "batch", "Datacenters": ["dc1"],
            "TaskGroups": [{
                "Name": "g",
                "RestartPolicy": {"Attempts": 0, "Mode": "fail", "Interval": 60_000_000_000u64, "Delay": 1_000_000u64},
                "Tasks": [{
                    "Name": "t", "Driver": "raw_exec",
                    "Config": {"command": "/bin/sh", "args": ["-c", "cat local/app.conf; echo \"env=$GREETING\""]},
                    "Resources": {"CPU": 100, "MemoryMB": 64},
                    "Artifacts": [{
                        "GetterSource": format!("{base}/hello.txt"),
                        "GetterOptions": {"checksum": format!("sha256:{checksum}")},
                    }],
                    "Templates": [
                        {
                            "EmbeddedTmpl": "said={{ file \"local/hello.txt\" | trimSpace }} job={{ env \"NOMAD_JOB_NAME\" }}\n",
                            "DestPath": "local/app.conf",
                            "ChangeMode": "noop",
                        },
                        {
                            "EmbeddedTmpl": "GREETING={{ file \"local/hello.txt\" | trimSpace | toUpper | replaceAll \" \" \"_\" }}\n",
                            "DestPath": "secrets/app.env",
                            "Envvars": true,
                        },
                    ],
                }],
            }],
        }
    });
    let (status, text) = cluster.put("/v1/jobs", job).await;
    assert_eq!(status, 200, "{text}");
    let alloc = cluster
        .poll("a finished allocation", |cluster| {
            let snapshot = cluster.server.state();
            let allocs = snapshot.allocs_by_job("default", "hooks");
            allocs.iter().find(|alloc| alloc.client_status.is_terminal()).cloned()
        })
        .await;
    assert_eq!(
        alloc.client_status,
        types::AllocClientStatus::Complete,
        "{:#?}",
        alloc.task_states
    );
    let (status, log) = cluster
        .get(&format!(
            "/v1/client/fs/logs/{}?task=t&type=stdout&plain=true",
            alloc.id
        ))
        .await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log, "said=artifact says hi job=hooks\nenv=ARTIFACT_SAYS_HI\n");
    let (_, fetched) = cluster
        .get(&format!("/v1/client/fs/cat/{}?path=t/local/hello.txt", alloc.id))
        .await;
    assert_eq!(fetched.as_bytes(), BODY);
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    cluster.stop().await;
}
