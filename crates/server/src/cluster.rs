//! Server membership, bootstrap and the leader's membership reconcile.
//!
//! Servers find each other through `--join` addresses and then through
//! each other: every second a server pings every address it knows (its
//! join list and every member it has heard of) with its own description
//! and its member list, and merges the answers. A member answered within
//! the failure window is `alive`; one silent longer is `failed`. Joining
//! therefore retries until it succeeds, by construction.
//!
//! Bootstrap: a server that belongs to no cluster yet, once it knows at
//! least `bootstrap_expect` alive servers that belong to no cluster either,
//! bootstraps one with the `bootstrap_expect` lowest IDs among them, but
//! only if it has the lowest ID itself; the others wait to be contacted by
//! the new leader. A server that meets an existing cluster never
//! bootstraps: the leader adds every alive member that is not yet in the
//! Raft configuration as a voter (Nomad's autopilot does the same). Dead
//! servers are removed by an operator (`drover operator raft remove-peer`).
//!
//! [`plan_bootstrap`] is the pure decision, tested on its own.

use crate::peer::{PeerCall, PeerReply};
use crate::{Server, ServerError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How often a server pings what it knows.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// A member not heard from for this long is `failed`.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(5);

/// One server as the membership knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Raft ID.
    pub id: u64,
    pub name: String,
    pub region: String,
    pub datacenter: String,
    pub rpc_addr: String,
    pub http_addr: String,
    /// The `bootstrap_expect` the server was started with.
    pub bootstrap_expect: u32,
    /// Whether it belongs to a Raft cluster.
    pub initialized: bool,
    pub version: String,
}

/// A member's liveness as seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberStatus {
    Alive,
    Failed,
    Left,
}

impl MemberStatus {
    /// Nomad's spelling (`alive`, `failed`, `left`).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Alive => "alive",
            MemberStatus::Failed => "failed",
            MemberStatus::Left => "left",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    member: Member,
    /// When we last heard from the member itself (`None`: only heard of).
    last_seen: Option<Instant>,
    left: bool,
}

/// The membership table of one server.
#[derive(Debug, Default)]
pub struct Members {
    entries: Mutex<BTreeMap<u64, Entry>>,
    /// Addresses to keep pinging whether or not they answered.
    join: Mutex<BTreeSet<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Members {
    /// Adds addresses to ping until they answer (and after).
    pub fn add_join(&self, addrs: impl IntoIterator<Item = String>) {
        lock(&self.join).extend(addrs);
    }

    /// Records a member heard from directly.
    pub fn seen(&self, member: Member, now: Instant) {
        let mut entries = lock(&self.entries);
        entries.insert(
            member.id,
            Entry {
                member,
                last_seen: Some(now),
                left: false,
            },
        );
    }

    /// Records members heard of through someone else; what we heard
    /// directly wins.
    pub fn heard_of(&self, members: Vec<Member>, self_id: u64) {
        let mut entries = lock(&self.entries);
        for member in members {
            if member.id == self_id {
                continue;
            }
            match entries.get_mut(&member.id) {
                Some(entry) if entry.last_seen.is_some() => {}
                Some(entry) => entry.member = member,
                None => {
                    entries.insert(
                        member.id,
                        Entry {
                            member,
                            last_seen: None,
                            left: false,
                        },
                    );
                }
            }
        }
    }

    /// Marks a member as having left (force-leave).
    pub fn mark_left(&self, id: u64) {
        if let Some(entry) = lock(&self.entries).get_mut(&id) {
            entry.left = true;
        }
    }

    /// Every member with its status, ordered by ID.
    pub fn list(&self, now: Instant) -> Vec<(Member, MemberStatus)> {
        lock(&self.entries)
            .values()
            .map(|entry| {
                let status = if entry.left {
                    MemberStatus::Left
                } else if entry
                    .last_seen
                    .is_some_and(|seen| now.duration_since(seen) < FAILURE_WINDOW)
                {
                    MemberStatus::Alive
                } else {
                    MemberStatus::Failed
                };
                (entry.member.clone(), status)
            })
            .collect()
    }

    /// The addresses to ping: the join list and every known member.
    fn targets(&self, self_addr: &str) -> BTreeSet<String> {
        let mut targets: BTreeSet<String> = lock(&self.join).clone();
        for entry in lock(&self.entries).values() {
            if !entry.left {
                targets.insert(entry.member.rpc_addr.clone());
            }
        }
        targets.remove(self_addr);
        targets
    }

    fn known(&self) -> Vec<Member> {
        lock(&self.entries)
            .values()
            .filter(|entry| !entry.left)
            .map(|entry| entry.member.clone())
            .collect()
    }
}

/// Who should be in a new cluster, if this server should bootstrap one
/// now: `me` plus the alive, uninitialised servers it knows, with the same
/// `bootstrap_expect`. Only the server with the lowest ID among the chosen
/// bootstraps; `None` otherwise.
pub fn plan_bootstrap(me: &Member, alive: &[Member]) -> Option<BTreeMap<u64, String>> {
    if me.initialized || me.bootstrap_expect == 0 {
        return None;
    }
    if alive
        .iter()
        .any(|member| member.initialized && member.region == me.region)
    {
        // A cluster exists: its leader adds us.
        return None;
    }
    let mut candidates: Vec<&Member> = alive
        .iter()
        .filter(|member| {
            member.id != me.id
                && !member.initialized
                && member.region == me.region
                && member.bootstrap_expect == me.bootstrap_expect
        })
        .collect();
    candidates.push(me);
    let expect = me.bootstrap_expect as usize;
    if candidates.len() < expect {
        return None;
    }
    candidates.sort_by_key(|member| member.id);
    candidates.truncate(expect);
    if candidates.first().map(|member| member.id) != Some(me.id) {
        return None;
    }
    Some(
        candidates
            .into_iter()
            .map(|member| (member.id, member.rpc_addr.clone()))
            .collect(),
    )
}

impl Server {
    /// This server as the membership describes it.
    pub(crate) async fn self_member(&self) -> Member {
        let config = self.config();
        Member {
            id: self.raft().node_id(),
            name: config.name.clone(),
            region: config.region.clone(),
            datacenter: config.datacenter.clone(),
            rpc_addr: config.rpc_addr.clone(),
            http_addr: config.http_addr.clone(),
            bootstrap_expect: config.bootstrap_expect,
            initialized: self.raft().is_initialized().await,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Every server this one knows, itself included, with its status.
    pub async fn members(&self) -> Vec<(Member, MemberStatus)> {
        let me = self.self_member().await;
        let mut list = self.inner().members.list(Instant::now());
        list.retain(|(member, _)| member.id != me.id);
        list.push((me, MemberStatus::Alive));
        list.sort_by_key(|(member, _)| member.id);
        list
    }

    /// The HTTP addresses of the servers in the Raft configuration that
    /// this server has heard from, itself first.
    pub fn server_http_addrs(&self) -> Vec<String> {
        let voters: BTreeSet<u64> = self.raft().members().iter().map(|peer| peer.id).collect();
        let mut addrs = vec![self.config().http_addr.clone()];
        for (member, status) in self.inner().members.list(Instant::now()) {
            if voters.contains(&member.id) && status == MemberStatus::Alive && !member.http_addr.is_empty() {
                addrs.push(member.http_addr);
            }
        }
        addrs.retain(|addr| !addr.is_empty());
        addrs.dedup();
        addrs
    }

    /// Marks a server as having left, so it is no longer pinged
    /// (`/v1/agent/force-leave`). Its Raft membership is unchanged.
    pub fn force_leave(&self, id: u64) {
        self.inner().members.mark_left(id);
    }

    /// Adds addresses to join (`PUT /v1/agent/join`); returns how many.
    pub fn join(&self, addrs: Vec<String>) -> usize {
        let count = addrs.len();
        self.inner().members.add_join(addrs);
        count
    }

    /// Answers a membership ping.
    pub(crate) async fn answer_ping(&self, from: Member, known: Vec<Member>) -> PeerReply {
        let self_id = self.raft().node_id();
        self.inner().members.seen(from, Instant::now());
        self.inner().members.heard_of(known, self_id);
        PeerReply::Pong {
            me: self.self_member().await,
            known: self.inner().members.known(),
        }
    }

    async fn ping(&self, addr: &str, me: &Member) -> Result<(), ServerError> {
        let call = PeerCall::Ping {
            from: me.clone(),
            known: self.inner().members.known(),
        };
        match self.call_peer(addr, call, PING_INTERVAL * 2).await? {
            PeerReply::Pong { me: member, known } => {
                let self_id = me.id;
                if member.id != self_id {
                    self.inner().members.seen(member, Instant::now());
                }
                self.inner().members.heard_of(known, self_id);
                Ok(())
            }
            other => Err(ServerError::Internal(format!("unexpected ping answer {other:?}"))),
        }
    }

    /// The membership loop: ping, bootstrap when due, and (as leader) add
    /// alive members to the Raft configuration. Runs until shutdown.
    pub(crate) async fn run_membership(self) {
        let mut shutdown = self.inner().shutdown.subscribe();
        let mut ticker = tokio::time::interval(PING_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            let me = self.self_member().await;
            let targets = self.inner().members.targets(&me.rpc_addr);
            let mut pings = tokio::task::JoinSet::new();
            for addr in targets {
                let server = self.clone();
                let me = me.clone();
                pings.spawn(async move {
                    if let Err(error) = server.ping(&addr, &me).await {
                        tracing::debug!(%addr, %error, "membership ping failed");
                    }
                });
            }
            while pings.join_next().await.is_some() {}
            let alive: Vec<Member> = self
                .inner()
                .members
                .list(Instant::now())
                .into_iter()
                .filter(|(_, status)| *status == MemberStatus::Alive)
                .map(|(member, _)| member)
                .collect();
            if let Some(voters) = plan_bootstrap(&me, &alive) {
                tracing::info!(servers = voters.len(), "bootstrapping a new cluster");
                if let Err(error) = self.raft().initialize(voters).await {
                    tracing::warn!(%error, "bootstrap failed");
                }
            }
            if self.is_leader() {
                self.reconcile_members(&alive).await;
            }
        }
    }

    /// Keeps the Raft configuration in step with the membership: a server
    /// whose address changed (its own included) gets its new address, and
    /// an alive member of this region that is not in the configuration is
    /// added, one change per round.
    async fn reconcile_members(&self, alive: &[Member]) {
        let peers = self.raft().members();
        let me = self.raft().node_id();
        let own_addr = &self.config().rpc_addr;
        let moved = peers
            .iter()
            .find(|peer| peer.id == me && peer.addr != *own_addr)
            .map(|peer| (me, own_addr.clone(), peer.addr.clone()))
            .or_else(|| {
                alive.iter().find_map(|member| {
                    peers
                        .iter()
                        .find(|peer| peer.id == member.id && peer.addr != member.rpc_addr)
                        .map(|peer| (member.id, member.rpc_addr.clone(), peer.addr.clone()))
                })
            });
        if let Some((id, addr, old)) = moved {
            tracing::info!(id, %old, %addr, "a server's address changed; updating the raft configuration");
            if let Err(error) = self.raft().update_address(id, &addr).await {
                tracing::warn!(id, %error, "could not update the server's address");
            }
            return;
        }
        let in_raft: BTreeSet<u64> = peers.iter().map(|peer| peer.id).collect();
        let region = &self.config().region;
        let Some(missing) = alive
            .iter()
            .find(|member| !in_raft.contains(&member.id) && member.region == *region)
        else {
            return;
        };
        tracing::info!(id = missing.id, name = %missing.name, addr = %missing.rpc_addr, "adding server to the raft configuration");
        if let Err(error) = self.raft().add_voter(missing.id, &missing.rpc_addr).await {
            tracing::warn!(id = missing.id, %error, "could not add server");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, expect: u32, initialized: bool) -> Member {
        Member {
            id,
            name: format!("s{id}"),
            region: "global".into(),
            datacenter: "dc1".into(),
            rpc_addr: format!("127.0.0.1:{}", 4000 + id),
            http_addr: String::new(),
            bootstrap_expect: expect,
            initialized,
            version: String::new(),
        }
    }

    #[test]
    fn the_lowest_id_bootstraps_once_enough_servers_met() {
        let me = member(2, 3, false);
        assert_eq!(plan_bootstrap(&me, &[member(5, 3, false)]), None, "only two known");
        let voters = plan_bootstrap(&me, &[member(5, 3, false), member(9, 3, false)]).expect("bootstrap");
        assert_eq!(voters.keys().copied().collect::<Vec<_>>(), vec![2, 5, 9]);
        // Not the lowest: wait for the lowest to do it.
        assert_eq!(plan_bootstrap(&me, &[member(1, 3, false), member(5, 3, false)]), None);
    }

    #[test]
    fn an_existing_cluster_or_a_different_expectation_prevents_bootstrap() {
        let me = member(1, 3, false);
        assert_eq!(
            plan_bootstrap(&me, &[member(5, 3, true), member(9, 3, false), member(7, 3, false)]),
            None,
            "a cluster exists"
        );
        assert_eq!(
            plan_bootstrap(&me, &[member(5, 5, false), member(9, 5, false)]),
            None,
            "they expect five"
        );
        assert_eq!(plan_bootstrap(&member(1, 0, false), &[member(5, 0, false)]), None);
        assert_eq!(plan_bootstrap(&member(1, 3, true), &[]), None, "already in a cluster");
        assert_eq!(
            plan_bootstrap(&member(1, 1, false), &[]).map(|voters| voters.len()),
            Some(1),
            "a single server bootstraps alone"
        );
    }

    #[test]
    fn members_age_from_alive_to_failed() {
        let members = Members::default();
        let start = Instant::now();
        members.seen(member(5, 3, false), start);
        members.heard_of(vec![member(9, 3, false), member(1, 3, false)], 1);
        let list = members.list(start);
        assert_eq!(
            list.iter()
                .map(|(member, status)| (member.id, *status))
                .collect::<Vec<_>>(),
            vec![(5, MemberStatus::Alive), (9, MemberStatus::Failed)],
            "heard-of members are not alive until they answer; self is skipped"
        );
        let later = members.list(start + FAILURE_WINDOW);
        assert_eq!(later[0].1, MemberStatus::Failed);
        members.mark_left(5);
        assert_eq!(members.list(start)[0].1, MemberStatus::Left);
        assert!(
            !members.targets("x").contains("127.0.0.1:4005"),
            "left members are not pinged"
        );
    }
}
