//! Three Raft servers on loopback: bootstrap, replication, failover,
//! membership changes, leadership transfer, linearizable reads, and the
//! refusal of Raft messages from servers outside the cluster.

mod common;

use common::{Peer, job};
use rpc::{PeerInfo, RaftRequest};
use state::Command;
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn cluster(dirs: &[tempfile::TempDir]) -> Vec<Peer> {
    let mut peers = Vec::new();
    for dir in dirs {
        peers.push(Peer::start(dir.path(), "127.0.0.1:0", 1000).await);
    }
    let members: BTreeMap<u64, String> = peers
        .iter()
        .map(|peer| (peer.node.node_id(), peer.addr.clone()))
        .collect();
    peers[0].node.initialize(members).await.expect("initialize");
    for peer in &peers {
        peer.node.wait_for_leader(WAIT).await.expect("leader");
    }
    peers
}

fn leader(peers: &[Peer]) -> usize {
    peers.iter().position(|peer| peer.node.is_leader()).expect("a leader")
}

async fn write(peer: &Peer, id: &str) -> u64 {
    peer.node
        .write(Command::JobRegister {
            job: job(id),
            eval: None,
            now: 1,
            enforce_index: None,
        })
        .await
        .expect("write")
        .index
}

fn tempdirs(count: usize) -> Vec<tempfile::TempDir> {
    (0..count).map(|_| tempfile::tempdir().expect("tempdir")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_replicate_and_survive_the_loss_of_the_leader() {
    let dirs = tempdirs(3);
    let mut peers = cluster(&dirs).await;
    let first = leader(&peers);
    let index = write(&peers[first], "before").await;
    for peer in &peers {
        assert!(peer.node.wait_applied(index, WAIT).await, "replicated");
        assert!(peer.node.snapshot().job("default", "before").is_some());
    }
    // A follower refuses writes and names the leader.
    let follower = (first + 1) % 3;
    let refused = peers[follower]
        .node
        .write(Command::JobRegister {
            job: job("refused"),
            eval: None,
            now: 1,
            enforce_index: None,
        })
        .await
        .expect_err("followers do not write");
    assert!(
        matches!(&refused, raft::RaftNodeError::NotLeader { leader: Some(addr) } if *addr == peers[first].addr),
        "{refused}"
    );
    // The leader confirms its leadership for a linearizable read.
    assert!(peers[first].node.read_index().await.expect("read index") >= index);
    assert!(peers[follower].node.read_index().await.is_err());

    let old = peers.remove(first);
    old.stop().await;
    let new_leader = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(position) = peers.iter().position(|peer| peer.node.is_leader()) {
                return position;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a new leader within 10s");
    let after = write(&peers[new_leader], "after").await;
    for peer in &peers {
        assert!(peer.node.wait_applied(after, WAIT).await);
        let state = peer.node.snapshot();
        assert!(state.job("default", "before").is_some(), "the committed write survived");
        assert!(state.job("default", "after").is_some());
    }
    for peer in peers {
        peer.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_added_removed_and_leadership_moves_on_request() {
    let dirs = tempdirs(4);
    let mut peers = cluster(&dirs[..3]).await;
    let lead = leader(&peers);
    let index = write(&peers[lead], "one").await;
    let fourth = Peer::start(dirs[3].path(), "127.0.0.1:0", 1000).await;
    assert!(!fourth.node.is_initialized().await);
    peers[lead]
        .node
        .add_voter(fourth.node.node_id(), &fourth.addr)
        .await
        .expect("add voter");
    assert!(fourth.node.wait_applied(index, WAIT).await, "the new server caught up");
    let members = peers[lead].node.members();
    assert_eq!(members.iter().filter(|peer| peer.voter).count(), 4, "{members:?}");
    // Adding it again changes nothing.
    peers[lead]
        .node
        .add_voter(fourth.node.node_id(), &fourth.addr)
        .await
        .expect("idempotent");
    peers[lead]
        .node
        .remove_server(fourth.node.node_id())
        .await
        .expect("remove");
    assert_eq!(peers[lead].node.members().len(), 3);
    fourth.stop().await;
    // A member that moved is found at its new address.
    let moved = peers[(lead + 2) % 3].node.node_id();
    peers[lead]
        .node
        .update_address(moved, "127.0.0.9:1")
        .await
        .expect("update address");
    let entry = peers[lead]
        .node
        .members()
        .into_iter()
        .find(|peer| peer.id == moved)
        .expect("member");
    assert_eq!(entry.addr, "127.0.0.9:1");
    let back = peers[(lead + 2) % 3].addr.clone();
    peers[lead].node.update_address(moved, &back).await.expect("move back");

    let target = peers[(lead + 1) % 3].node.node_id();
    let rpc = std::sync::Arc::clone(&peers[lead].rpc);
    let moved = peers[lead]
        .node
        .transfer_leadership(Some(target), &rpc)
        .await
        .expect("transfer");
    assert_eq!(moved, target);
    let new_lead = peers
        .iter()
        .position(|peer| peer.node.node_id() == target)
        .expect("target");
    tokio::time::timeout(WAIT, async {
        while !peers[new_lead].node.is_leader() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the target leads");
    write(&peers[new_lead], "two").await;
    for peer in peers.drain(..) {
        peer.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_messages_from_outsiders_are_refused() {
    let dirs = tempdirs(2);
    let member = Peer::start_single(dirs[0].path(), 1000).await;
    let index = write(&member, "kept").await;
    // A second, separate single-server cluster plays the outsider: its
    // votes and entries name a server the member's cluster does not know.
    let outsider = Peer::start_single(dirs[1].path(), 1000).await;
    let outsider_id = outsider.node.node_id();
    let peer = PeerInfo::anonymous("127.0.0.1:9".parse().expect("addr"));
    let vote = openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(1_000, outsider_id), None);
    let error = member
        .node
        .handle_rpc(
            RaftRequest {
                kind: "vote".into(),
                payload: rpc::encode(&vote).expect("encode"),
            },
            &peer,
        )
        .await
        .expect_err("an outsider's vote");
    assert!(matches!(error, rpc::RpcError::PermissionDenied(_)), "{error}");
    // Claiming to be the member itself does not help.
    let spoofed = openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(1_000, member.node.node_id()), None);
    let error = member
        .node
        .handle_rpc(
            RaftRequest {
                kind: "vote".into(),
                payload: rpc::encode(&spoofed).expect("encode"),
            },
            &peer,
        )
        .await
        .expect_err("a spoofed vote");
    assert!(matches!(error, rpc::RpcError::PermissionDenied(_)), "{error}");
    // A hand-over request from a server that is not the leader is refused.
    let error = member
        .node
        .handle_rpc(
            RaftRequest {
                kind: "elect".into(),
                payload: rpc::encode(&outsider_id).expect("encode"),
            },
            &peer,
        )
        .await
        .expect_err("elect from an outsider");
    assert!(matches!(error, rpc::RpcError::PermissionDenied(_)), "{error}");
    // The member still leads, and its state is untouched.
    assert!(member.node.is_leader());
    assert!(member.node.wait_applied(index, WAIT).await);
    let next = write(&member, "still-writable").await;
    assert!(next > index);
    member.stop().await;
    outsider.stop().await;
}
