//! Calls between servers, carried in `rpc::Request::Server` frames: forwarded
//! writes, linearizable-read index requests, the leader's eval broker and
//! plan applier as used by workers on other servers, membership pings, and
//! operator requests that only the leader can carry out.
//!
//! The `rpc` crate carries these as opaque bytes; this module owns their
//! shape and encodes them with `rpc`'s codec.

use crate::ServerError;
use serde::{Deserialize, Serialize};
use state::{Command, CommandResult};
use types::{Evaluation, Index, Plan, PlanResult};

/// What one server asks another (nearly always the leader).
// Built once and moved into the encoder.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerCall {
    /// Commit this command (it already carries its IDs and timestamps).
    Apply(Command),
    /// Confirm leadership and name the index a linearizable read needs.
    ReadIndex,
    /// Hand out an evaluation, waiting up to `wait_ms` for one.
    EvalDequeue {
        wait_ms: u64,
    },
    EvalAck {
        eval_id: String,
        token: String,
    },
    EvalNack {
        eval_id: String,
        token: String,
    },
    /// Verify and commit a plan.
    PlanSubmit {
        plan: Plan,
    },
    /// Membership: who the caller is and whom it knows.
    Ping {
        from: crate::cluster::Member,
        known: Vec<crate::cluster::Member>,
    },
    /// Remove a server from the Raft configuration (operator).
    RemovePeer {
        id: u64,
    },
    /// Hand leadership to `target`, or to the best other voter (operator).
    TransferLeadership {
        target: Option<u64>,
    },
    /// A client agent's request that only the leader serves, forwarded
    /// once: the leader handles it, anyone else answers `NotLeader`.
    Forwarded(rpc::Request),
    /// A root key's material, from any server that holds it (servers
    /// only; see `keyring.rs`).
    KeyringGet {
        key_id: String,
    },
    /// Store a new root key before its metadata is committed (servers
    /// only).
    KeyringPut {
        key_id: String,
        material: Vec<u8>,
    },
}

/// The answer to a [`PeerCall`].
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerReply {
    Applied(CommandResult),
    ReadIndex(Index),
    Eval(Option<(Evaluation, String)>),
    Done,
    Plan(PlanResult),
    Pong {
        me: crate::cluster::Member,
        known: Vec<crate::cluster::Member>,
    },
    Transferred {
        leader: u64,
    },
    Forwarded(rpc::Response),
    RootKey(Option<Vec<u8>>),
}

/// Encodes a call into the opaque `rpc` message.
pub fn encode_call(call: &PeerCall) -> Result<rpc::ServerMessage, ServerError> {
    rpc::encode(call)
        .map(|payload| rpc::ServerMessage { payload })
        .map_err(|error| ServerError::Internal(error.to_string()))
}

/// Decodes an answer from the opaque `rpc` message.
pub fn decode_reply(message: &rpc::ServerMessage) -> Result<PeerReply, ServerError> {
    rpc::decode(&message.payload).map_err(|error| ServerError::Internal(format!("peer answer: {error}")))
}
