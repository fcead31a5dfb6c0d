//! The Raft node persists every acknowledged write: after a restart on the
//! same data dir the state is identical and indexes keep rising. A damaged
//! data dir stops the node with an error naming the file; it never starts
//! as a new, empty cluster and never panics.

mod common;

use common::{Peer, job};
use raft::RaftNode;
use state::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_restart_with_rising_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let peer = Peer::start_single(dir.path(), 5).await;
    assert!(peer.node.is_leader());
    let server_id = peer.node.node_id();
    let mut last_index = 0;
    // Enough writes to cross the snapshot threshold (5) and trim the log.
    for n in 0..12 {
        let result = peer
            .node
            .write(Command::JobRegister {
                job: job(&format!("job-{n}")),
                eval: None,
                now: n,
                enforce_index: None,
            })
            .await
            .expect("write");
        assert!(result.index > last_index);
        last_index = result.index;
    }
    let before = peer.node.snapshot();
    assert_eq!(before.jobs(None).len(), 12);
    peer.stop().await;

    let peer = Peer::start_single(dir.path(), 5).await;
    assert_eq!(peer.node.node_id(), server_id, "the server keeps its ID");
    assert!(
        peer.node.wait_applied(last_index, Duration::from_secs(10)).await,
        "re-applied in time"
    );
    let after = peer.node.snapshot();
    assert_eq!(after.jobs(None).len(), 12);
    for job in before.jobs(None) {
        let restored = after.job(&job.namespace, &job.id).expect("job restored");
        assert_eq!(restored.create_index, job.create_index);
        assert_eq!(restored.modify_index, job.modify_index);
    }
    let next = peer
        .node
        .write(Command::JobRegister {
            job: job("after-restart"),
            eval: None,
            now: 99,
            enforce_index: None,
        })
        .await
        .expect("write after restart");
    assert!(next.index > last_index, "{} <= {last_index}", next.index);
    peer.stop().await;
}

/// What a start after damage did.
#[derive(Debug)]
enum Outcome {
    /// Refused, with this error.
    Refused(String),
    /// Started, and this many of the three written jobs were there.
    Opened { jobs: usize },
}

/// Writes three jobs, stops, damages the log with `damage`, and starts
/// again.
async fn start_after(damage: impl FnOnce(&std::path::Path)) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let peer = Peer::start_single(dir.path(), 1000).await;
    let mut last = 0;
    for n in 0..3 {
        last = peer
            .node
            .write(Command::JobRegister {
                job: job(&format!("job-{n}")),
                eval: None,
                now: n,
                enforce_index: None,
            })
            .await
            .expect("write")
            .index;
    }
    peer.stop().await;
    damage(&dir.path().join("raft.redb"));
    let rpc = std::sync::Arc::new(rpc::RpcClient::new("127.0.0.1:1"));
    match RaftNode::open(dir.path(), raft::RaftNodeConfig::new("127.0.0.1:1"), rpc).await {
        Ok(node) => {
            node.wait_applied(last, Duration::from_secs(5)).await;
            let jobs = node.snapshot().jobs(None).len();
            node.shutdown().await;
            Outcome::Opened { jobs }
        }
        Err(error) => Outcome::Refused(error.to_string()),
    }
}

fn refused(outcome: Outcome) -> String {
    match outcome {
        Outcome::Refused(error) => error,
        opened => panic!("a damaged data dir was opened: {opened:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_log_file_is_refused_not_started_as_a_new_cluster() {
    let error = refused(start_after(|path| std::fs::write(path, b"").expect("truncate")).await);
    assert!(error.contains("raft.redb") && error.contains("zero bytes"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_truncated_log_file_is_an_error() {
    let error = refused(
        start_after(|path| {
            let bytes = std::fs::read(path).expect("read");
            std::fs::write(path, &bytes[..bytes.len() / 2]).expect("truncate");
        })
        .await,
    );
    assert!(error.contains("raft.redb"), "{error}");
}

/// A flipped byte anywhere in the first page either stops the server with
/// an error naming the file, or hits a byte redb does not use and loses
/// nothing. It never panics and never starts with fewer writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_first_page_is_an_error_or_harmless() {
    let mut refusals = 0;
    for offset in [
        0usize, 5, 9, 12, 16, 20, 24, 32, 48, 64, 72, 96, 128, 160, 200, 256, 512, 1024, 4095,
    ] {
        let outcome = start_after(|path| {
            let mut bytes = std::fs::read(path).expect("read");
            bytes[offset] ^= 0xff;
            std::fs::write(path, &bytes).expect("flip");
        })
        .await;
        match outcome {
            Outcome::Refused(error) => {
                assert!(error.contains("raft.redb"), "offset {offset}: {error}");
                refusals += 1;
            }
            Outcome::Opened { jobs } => assert_eq!(jobs, 3, "offset {offset}: started with lost writes"),
        }
    }
    assert!(refusals >= 8, "only {refusals} flips were noticed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_its_files_are_private() {
    use std::os::unix::fs::MetadataExt;
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("server");
    let peer = Peer::start_single(&dir, 1).await;
    peer.node
        .write(Command::JobRegister {
            job: job("one"),
            eval: None,
            now: 1,
            enforce_index: None,
        })
        .await
        .expect("write");
    peer.node.trigger_snapshot().await.expect("snapshot");
    let snapshot = dir.join("snapshot.bin");
    let written = tokio::time::timeout(Duration::from_secs(10), async {
        while !snapshot.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(written.is_ok(), "no snapshot file");
    peer.stop().await;
    assert_eq!(std::fs::metadata(&dir).expect("dir").mode() & 0o777, 0o700);
    for file in ["raft.redb", "snapshot.bin", "drover-server"] {
        let mode = std::fs::metadata(dir.join(file)).expect(file).mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
}
