//! Operator snapshots: the whole cluster state saved to a file
//! (`drover operator snapshot save`) and restored from one (`restore`).
//!
//! A snapshot file is `DRVSTATE1`, the SHA-256 of the rest, and the state
//! in the wire encoding. Restoring goes through Raft as one command, so
//! every server replaces its state at the same index; objects keep their
//! own indexes and every table's index moves on, so watchers wake.

use crate::{Server, ServerError};
use sha2::{Digest, Sha256};
use state::{Command, StateSnapshot};

const MAGIC: &[u8; 9] = b"DRVSTATE1";

/// Encodes a state as a snapshot file.
pub fn encode_snapshot(state: &StateSnapshot) -> Result<Vec<u8>, ServerError> {
    let body = rpc::encode(state).map_err(|error| ServerError::Internal(error.to_string()))?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 32 + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&Sha256::digest(&body));
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Checks and decodes a snapshot file.
pub fn decode_snapshot(bytes: &[u8]) -> Result<StateSnapshot, ServerError> {
    let bad = |reason: &str| ServerError::BadRequest(format!("not a usable Drover snapshot: {reason}"));
    if bytes.len() < MAGIC.len() + 32 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("wrong header"));
    }
    let (checksum, body) = bytes[MAGIC.len()..].split_at(32);
    if Sha256::digest(body).as_slice() != checksum {
        return Err(bad("checksum mismatch"));
    }
    rpc::decode(body).map_err(|error| bad(&error.to_string()))
}

impl Server {
    /// The cluster state as of now (a consistent read), as a snapshot file.
    pub async fn snapshot_save(&self) -> Result<(u64, Vec<u8>), ServerError> {
        let state = self.read_state(false).await?;
        let index = state.index();
        let bytes = tokio::task::spawn_blocking(move || encode_snapshot(&state))
            .await
            .map_err(|error| ServerError::Internal(error.to_string()))??;
        Ok((index, bytes))
    }

    /// Replaces the cluster state with a snapshot file's; returns the index.
    pub async fn snapshot_restore(&self, bytes: Vec<u8>) -> Result<u64, ServerError> {
        let state = tokio::task::spawn_blocking(move || decode_snapshot(&bytes))
            .await
            .map_err(|error| ServerError::Internal(error.to_string()))??;
        let result = self.write(Command::StateRestore { state: Box::new(state) }).await?;
        Ok(result.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_damage_is_refused() {
        let mut state = StateSnapshot::new();
        state.apply(
            3,
            Command::NodeRegister {
                node: types::Node {
                    id: "n1".into(),
                    ..types::Node::default()
                },
                now: 1,
            },
        );
        let bytes = encode_snapshot(&state).expect("encode");
        assert_eq!(decode_snapshot(&bytes).expect("decode"), state);
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(decode_snapshot(&flipped), Err(ServerError::BadRequest(_))));
        assert!(decode_snapshot(b"hello").is_err());
    }
}
