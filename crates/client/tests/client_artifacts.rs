//! Artifacts on a real client with real raw_exec processes, served by a
//! small HTTP server on loopback that counts the requests it answers: an
//! archive with a checksum is verified and unpacked into `local/`, five
//! allocations of it on one node cause one download (the node's cache),
//! and a bad checksum or a hostile archive fails the task with the reason.

mod common;

use common::{Agent, alloc_for, start_server, test_config};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use types::{AllocClientStatus, Artifact, Job, JobType, RestartMode, RestartPolicy, Task, TaskGroup, task_event};

/// Serves `files` over HTTP/1.1 (one request per connection) and counts
/// the requests.
async fn serve_files(files: BTreeMap<String, Vec<u8>>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let files = Arc::new(files);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let files = Arc::clone(&files);
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
                counter.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let reply = match files.get(&path) {
                    Some(body) => {
                        let mut reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        reply.extend_from_slice(body);
                        reply
                    }
                    None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                };
                let _ = socket.write_all(&reply).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (base, requests)
}

fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        let bytes = name.as_bytes();
        header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        header.set_cksum();
        builder.append(&header, *data).expect("append");
    }
    let tar = builder.into_inner().expect("finish");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&tar).expect("compress");
    encoder.finish().expect("finish")
}

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn job(id: &str, artifact: Artifact) -> Job {
    let mut job = Job {
        id: id.into(),
        job_type: JobType::Batch,
        task_groups: vec![TaskGroup {
            name: "g".into(),
            restart_policy: Some(RestartPolicy {
                attempts: 0,
                interval: Duration::from_secs(60),
                delay: Duration::from_millis(10),
                mode: RestartMode::Fail,
                render_templates: false,
            }),
            tasks: vec![Task {
                name: "t".into(),
                driver: "raw_exec".into(),
                config: serde_json::json!({
                    "command": "/bin/sh",
                    "args": ["-c", "cat local/app/hello.txt > \"$NOMAD_ALLOC_DIR/out\""],
                }),
                artifacts: vec![artifact],
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    job.canonicalize();
    job
}

fn artifact(source: String, checksum: Option<String>) -> Artifact {
    let mut options = BTreeMap::new();
    if let Some(checksum) = checksum {
        options.insert("checksum".to_string(), checksum);
    }
    Artifact {
        source,
        options,
        ..Artifact::default()
    }
}

#[tokio::test]
async fn five_allocations_of_one_artifact_cause_one_download() {
    let archive = tar_gz(&[("app/hello.txt", b"hello from the artifact\n")]);
    let checksum = format!("sha256:{}", sha256(&archive));
    let (base, requests) = serve_files(BTreeMap::from([("/app.tar.gz".to_string(), archive)])).await;
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&addr, test_config(data.path())).await;
    let job = job("fetch", artifact(format!("{base}/app.tar.gz"), Some(checksum)));
    let mut alloc_ids = Vec::new();
    for _ in 0..5 {
        let alloc = alloc_for(&job, &agent.node_id);
        alloc_ids.push(alloc.id.clone());
        server.place(alloc, job.clone());
    }
    for alloc_id in &alloc_ids {
        let done = server.wait_for_status(alloc_id, AllocClientStatus::Complete).await;
        let events: Vec<&str> = done.task_states["t"]
            .events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect();
        assert!(events.contains(&task_event::DOWNLOADING_ARTIFACTS), "{events:?}");
        let unpacked = data.path().join(format!("alloc/{alloc_id}/t/local/app/hello.txt"));
        assert_eq!(
            std::fs::read_to_string(unpacked).expect("unpacked"),
            "hello from the artifact\n"
        );
        let out = data.path().join(format!("alloc/{alloc_id}/alloc/out"));
        assert_eq!(
            std::fs::read_to_string(out).expect("task output"),
            "hello from the artifact\n"
        );
    }
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the server was asked more than once"
    );
    agent.stop().await;
}

#[tokio::test]
async fn a_bad_checksum_or_a_hostile_archive_fails_the_task_with_the_reason() {
    let archive = tar_gz(&[("app/hello.txt", b"hi\n")]);
    let hostile = tar_gz(&[("../../../../escaped.txt", b"pwned\n")]);
    let (base, requests) = serve_files(BTreeMap::from([
        ("/app.tar.gz".to_string(), archive),
        ("/evil.tar.gz".to_string(), hostile.clone()),
    ]))
    .await;
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&addr, test_config(data.path())).await;

    let wrong = format!("sha256:{}", "0".repeat(64));
    let cases = [
        (artifact(format!("{base}/app.tar.gz"), Some(wrong)), "checksum mismatch"),
        (
            artifact(
                format!("{base}/evil.tar.gz"),
                Some(format!("sha256:{}", sha256(&hostile))),
            ),
            "leaves its destination",
        ),
        (artifact(format!("{base}/missing.tar.gz"), None), "404"),
    ];
    for (index, (artifact, reason)) in cases.into_iter().enumerate() {
        let job = job(&format!("bad-{index}"), artifact);
        let alloc = alloc_for(&job, &agent.node_id);
        let alloc_id = alloc.id.clone();
        server.place(alloc, job);
        let failed = server.wait_for_status(&alloc_id, AllocClientStatus::Failed).await;
        let state = &failed.task_states["t"];
        let failure = state
            .events
            .iter()
            .find(|event| event.event_type == task_event::ARTIFACT_FAILED)
            .unwrap_or_else(|| panic!("no artifact failure event: {:#?}", state.events));
        assert!(
            failure.display_message.contains(reason),
            "{reason}: {}",
            failure.display_message
        );
        assert!(!state.events.iter().any(|event| event.event_type == task_event::STARTED));
        assert!(!data.path().join(format!("alloc/{alloc_id}/t/local/app")).exists());
    }
    assert!(!data.path().join("escaped.txt").exists());
    assert!(!data.path().join("alloc/escaped.txt").exists());
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    agent.stop().await;
}
