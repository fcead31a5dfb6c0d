//! The Raft node persists every acknowledged write: after a restart on the
//! same data dir the state is identical and indexes keep rising.

use raft::{RaftNode, RaftNodeConfig};
use state::Command;
use std::collections::BTreeMap;
use std::time::Duration;
use types::{Job, Task, TaskGroup};

fn config(port: u16) -> RaftNodeConfig {
    RaftNodeConfig {
        node_id: 1,
        rpc_addr: format!("127.0.0.1:{port}"),
        bootstrap: BTreeMap::from([(1, format!("127.0.0.1:{port}"))]),
        snapshot_every: 5,
    }
}

fn job(id: &str) -> Job {
    let mut job = Job {
        id: id.to_string(),
        task_groups: vec![TaskGroup {
            name: "g".into(),
            tasks: vec![Task {
                name: "t".into(),
                driver: "raw_exec".into(),
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    job.canonicalize();
    job
}

async fn open(dir: &std::path::Path) -> RaftNode {
    let node = RaftNode::open(dir, config(1)).await.expect("open raft");
    node.wait_for_leader(Duration::from_secs(10)).await.expect("leader");
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_restart_with_rising_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path()).await;
    assert!(node.is_leader());
    let mut last_index = 0;
    // Enough writes to cross the snapshot threshold (5) and trim the log.
    for n in 0..12 {
        let result = node
            .write(Command::JobRegister {
                job: job(&format!("job-{n}")),
                eval: None,
                now: n,
            })
            .await
            .expect("write");
        assert!(result.index > last_index);
        last_index = result.index;
    }
    let before = node.snapshot();
    assert_eq!(before.jobs(None).len(), 12);
    node.shutdown().await;
    drop(node);

    let node = open(dir.path()).await;
    // Wait until the committed log has been re-applied.
    let mut applied = node.subscribe();
    tokio::time::timeout(Duration::from_secs(10), applied.wait_for(|index| *index >= last_index))
        .await
        .expect("re-applied in time")
        .expect("watch open");
    let after = node.snapshot();
    assert_eq!(after.jobs(None).len(), 12);
    for job in before.jobs(None) {
        let restored = after.job(&job.namespace, &job.id).expect("job restored");
        assert_eq!(restored.create_index, job.create_index);
        assert_eq!(restored.modify_index, job.modify_index);
    }
    let next = node
        .write(Command::JobRegister {
            job: job("after-restart"),
            eval: None,
            now: 99,
        })
        .await
        .expect("write after restart");
    assert!(next.index > last_index, "{} <= {last_index}", next.index);
    node.shutdown().await;
}
