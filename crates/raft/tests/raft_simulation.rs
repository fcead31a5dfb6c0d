//! A deterministic simulation of a Raft cluster of 3 to 5 servers, in the
//! manner of openraft's turmoil tests: real nodes (our log store, state
//! machine and message handling, on disk), joined by an in-process network
//! that drops, delays and partitions messages, driven by a seeded schedule
//! of writes, partitions, heals, crashes and restarts, under paused time.
//!
//! After every step the safety invariants are checked:
//! - at most one leader per term;
//! - no acknowledged write is ever missing from a server whose state has
//!   reached its index;
//! - two servers at the same applied index hold the same state (every state
//!   machine applies the same log).
//!
//! Then every fault is removed and the cluster must heal: one leader, a
//! final write applied everywhere, and identical states holding every
//! acknowledged write.
//!
//! The fault schedule is fixed by the seed. A fixed set of seeds runs in
//! CI; `DROVER_SIM_SEEDS=N` runs N seeds and `DROVER_SIM_STEPS=M` makes
//! each run longer. (openraft's own election jitter is not seeded, so two
//! runs of one seed may interleave differently; the invariants hold for
//! every interleaving.)

use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use raft::{RaftNode, RaftNodeConfig, TypeConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rpc::{PeerInfo, RaftRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use state::Command;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use types::{Job, Task, TaskGroup};

/// The simulated network: who can reach whom, and how lossy it is.
struct Router {
    nodes: Mutex<BTreeMap<u64, RaftNode>>,
    /// Links cut in either direction.
    cut: Mutex<BTreeSet<(u64, u64)>>,
    rng: Mutex<SmallRng>,
    drop_rate: Mutex<f64>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("lock")
}

impl Router {
    fn reachable(&self, from: u64, to: u64) -> bool {
        let cut = lock(&self.cut);
        !cut.contains(&(from, to)) && !cut.contains(&(to, from))
    }

    async fn send<Req, Resp, Err>(
        &self,
        from: u64,
        to: u64,
        kind: &str,
        request: &Req,
    ) -> Result<Resp, RPCError<u64, BasicNode, Err>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Err: std::error::Error + DeserializeOwned,
    {
        let unreachable = || RPCError::Unreachable(Unreachable::new(&std::io::Error::other("link down")));
        let (delay, dropped) = {
            let mut rng = lock(&self.rng);
            let drop_rate = *lock(&self.drop_rate);
            (rng.gen_range(0..5), rng.gen_bool(drop_rate))
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if dropped || !self.reachable(from, to) {
            return Err(unreachable());
        }
        let Some(target) = lock(&self.nodes).get(&to).cloned() else {
            return Err(unreachable());
        };
        let payload = rpc::encode(request).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let peer = PeerInfo::anonymous(format!("127.0.0.{}:1", from % 250 + 1).parse().expect("addr"));
        let answer = target
            .handle_rpc(
                RaftRequest {
                    kind: kind.to_string(),
                    payload,
                },
                &peer,
            )
            .await
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        // The answer can be lost on the way back, too.
        if !self.reachable(from, to) {
            return Err(unreachable());
        }
        let decoded: Result<Resp, Err> =
            rpc::decode(&answer.payload).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        decoded.map_err(|error| RPCError::RemoteError(RemoteError::new(to, error)))
    }
}

/// One server's side of the simulated network.
#[derive(Clone)]
struct SimNetwork {
    from: Arc<Mutex<u64>>,
    router: Arc<Router>,
}

struct SimConnection {
    from: u64,
    to: u64,
    router: Arc<Router>,
}

impl RaftNetworkFactory<TypeConfig> for SimNetwork {
    type Network = SimConnection;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> SimConnection {
        SimConnection {
            from: *lock(&self.from),
            to: target,
            router: Arc::clone(&self.router),
        }
    }
}

impl RaftNetwork<TypeConfig> for SimConnection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.router.send(self.from, self.to, "append", &request).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        self.router.send(self.from, self.to, "snapshot", &request).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.router.send(self.from, self.to, "vote", &request).await
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

/// The whole simulated cluster.
struct Sim {
    router: Arc<Router>,
    dirs: Vec<PathBuf>,
    _root: tempfile::TempDir,
    /// Server ID by position (fixed by each data dir's marker).
    ids: Vec<u64>,
    down: BTreeSet<usize>,
    /// Acknowledged writes: job ID and the index it was committed at.
    acknowledged: Vec<(String, u64)>,
    /// Who led each term.
    leaders: BTreeMap<u64, u64>,
    /// The state seen at each applied index (an encoding's hash).
    states: BTreeMap<u64, u64>,
    next_job: usize,
}

fn config(position: usize) -> RaftNodeConfig {
    let mut config = RaftNodeConfig::new(format!("sim-{position}:4647"));
    config.snapshot_every = 20;
    config.heartbeat_interval = Duration::from_millis(50);
    config
}

fn state_hash(node: &RaftNode) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    let state = node.snapshot();
    let bytes = rpc::encode(&state).expect("encode state");
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    (state.index(), hasher.finish())
}

impl Sim {
    async fn start(servers: usize, seed: u64) -> Sim {
        let root = tempfile::tempdir().expect("tempdir");
        let router = Arc::new(Router {
            nodes: Mutex::new(BTreeMap::new()),
            cut: Mutex::new(BTreeSet::new()),
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            drop_rate: Mutex::new(0.0),
        });
        let dirs: Vec<PathBuf> = (0..servers)
            .map(|index| root.path().join(format!("s{index}")))
            .collect();
        let mut sim = Sim {
            router,
            dirs,
            _root: root,
            ids: Vec::new(),
            down: BTreeSet::new(),
            acknowledged: Vec::new(),
            leaders: BTreeMap::new(),
            states: BTreeMap::new(),
            next_job: 0,
        };
        for position in 0..servers {
            let id = sim.open(position).await;
            sim.ids.push(id);
        }
        let members: BTreeMap<u64, String> = sim
            .ids
            .iter()
            .enumerate()
            .map(|(position, id)| (*id, format!("sim-{position}:4647")))
            .collect();
        sim.node(0).initialize(members).await.expect("initialize");
        sim
    }

    async fn open(&self, position: usize) -> u64 {
        let network = SimNetwork {
            from: Arc::new(Mutex::new(0)),
            router: Arc::clone(&self.router),
        };
        let from = Arc::clone(&network.from);
        let node = RaftNode::open_with_network(&self.dirs[position], config(position), network)
            .await
            .expect("open node");
        *lock(&from) = node.node_id();
        lock(&self.router.nodes).insert(node.node_id(), node.clone());
        node.node_id()
    }

    fn node(&self, position: usize) -> RaftNode {
        lock(&self.router.nodes)
            .get(&self.ids[position])
            .cloned()
            .expect("a live node")
    }

    fn live(&self) -> Vec<usize> {
        (0..self.ids.len())
            .filter(|position| !self.down.contains(position))
            .collect()
    }

    async fn crash(&mut self, position: usize) {
        let node = self.node(position);
        lock(&self.router.nodes).remove(&self.ids[position]);
        node.shutdown().await;
        self.down.insert(position);
    }

    async fn restart(&mut self, position: usize) {
        let id = self.open(position).await;
        assert_eq!(id, self.ids[position], "a restarted server kept its ID");
        self.down.remove(&position);
    }

    fn partition(&self, position: usize) {
        let id = self.ids[position];
        let mut cut = lock(&self.router.cut);
        for other in &self.ids {
            if *other != id {
                cut.insert((id, *other));
            }
        }
    }

    fn heal_all(&self) {
        lock(&self.router.cut).clear();
        *lock(&self.router.drop_rate) = 0.0;
    }

    async fn write(&mut self) {
        let Some(leader) = self
            .live()
            .into_iter()
            .find(|position| self.node(*position).is_leader())
        else {
            return;
        };
        let id = format!("job-{}", self.next_job);
        self.next_job += 1;
        let node = self.node(leader);
        let write = node.write(Command::JobRegister {
            job: job(&id),
            eval: None,
            now: 1,
            enforce_index: None,
        });
        if let Ok(Ok(result)) = tokio::time::timeout(Duration::from_secs(2), write).await {
            self.acknowledged.push((id, result.index));
        }
    }

    /// Checks the safety invariants on every live server.
    fn check(&mut self, step: usize) {
        for position in self.live() {
            let node = self.node(position);
            let stats = node.stats();
            if stats.state == "Leader" {
                let previous = self.leaders.insert(stats.term, node.node_id());
                assert!(
                    previous.is_none_or(|previous| previous == node.node_id()),
                    "step {step}: two leaders in term {}: {previous:?} and {}",
                    stats.term,
                    node.node_id()
                );
            }
            let (index, hash) = state_hash(&node);
            if let Some(seen) = self.states.insert(index, hash) {
                assert_eq!(
                    seen,
                    hash,
                    "step {step}: server {} holds another state at index {index}",
                    node.node_id()
                );
            }
            let state = node.snapshot();
            for (job_id, committed_at) in &self.acknowledged {
                if state.index() >= *committed_at {
                    assert!(
                        state.job("default", job_id).is_some(),
                        "step {step}: acknowledged {job_id} (index {committed_at}) missing on server {} at index {}",
                        node.node_id(),
                        state.index()
                    );
                }
            }
        }
    }
}

async fn run(seed: u64, steps: usize) {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xD0E5);
    let servers = [3, 5][rng.gen_range(0..2)];
    let mut sim = Sim::start(servers, seed).await;
    for step in 0..steps {
        match rng.gen_range(0..100) {
            0..=49 => sim.write().await,
            50..=59 => {
                let position = rng.gen_range(0..servers);
                sim.partition(position);
            }
            60..=69 => sim.heal_all(),
            70..=76 => {
                let live = sim.live();
                // Keep a majority's worth of data dirs able to come back.
                if live.len() > servers / 2 + 1 {
                    let position = live[rng.gen_range(0..live.len())];
                    sim.crash(position).await;
                }
            }
            77..=84 => {
                let down: Vec<usize> = sim.down.iter().copied().collect();
                if !down.is_empty() {
                    sim.restart(down[rng.gen_range(0..down.len())]).await;
                }
            }
            85..=89 => *lock(&sim.router.drop_rate) = rng.gen_range(0.0..0.3),
            _ => tokio::time::sleep(Duration::from_millis(rng.gen_range(10..800))).await,
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1..100))).await;
        sim.check(step);
    }
    // Remove every fault: the cluster must heal.
    sim.heal_all();
    let down: Vec<usize> = sim.down.iter().copied().collect();
    for position in down {
        sim.restart(position).await;
    }
    let final_index = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = sim.acknowledged.len();
        sim.write().await;
        if sim.acknowledged.len() > before {
            break sim.acknowledged.last().map(|(_, index)| *index).expect("a write");
        }
    };
    for position in sim.live() {
        assert!(
            sim.node(position)
                .wait_applied(final_index, Duration::from_secs(60))
                .await,
            "seed {seed}: server {position} did not catch up"
        );
    }
    sim.check(steps);
    let reference = state_hash(&sim.node(0));
    for position in sim.live() {
        let node = sim.node(position);
        let state = node.snapshot();
        assert_eq!(state_hash(&node), reference, "seed {seed}: server {position} diverged");
        for (job_id, _) in &sim.acknowledged {
            assert!(state.job("default", job_id).is_some(), "seed {seed}: {job_id} lost");
        }
    }
    eprintln!(
        "seed {seed}: {servers} servers, {steps} steps, {} writes acknowledged, {} terms with a leader",
        sim.acknowledged.len(),
        sim.leaders.len()
    );
    for position in sim.live() {
        sim.node(position).shutdown().await;
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_cluster_stays_safe_and_heals_under_faults() {
    let seeds: u64 = std::env::var("DROVER_SIM_SEEDS")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(3);
    let steps: usize = std::env::var("DROVER_SIM_STEPS")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(120);
    for seed in 1..=seeds {
        run(seed, steps).await;
    }
}
