//! The root keyring: AES-256-GCM keys that encrypt variables' items.
//!
//! Raft holds each key's metadata (ID, creation time, active or inactive);
//! the key material lives only in every server's keystore,
//! `<data_dir>/server/keystore/<key-id>.json` (directory 0700, files 0600),
//! and travels between servers over the server-to-server RPC. The Raft log
//! and its snapshots (and `operator snapshot save`) therefore never carry
//! key material, and without a keystore the encrypted items they hold are
//! unreadable.
//!
//! A new key (the first one, made by the first leader, or one made by
//! `PUT /v1/operator/keyring/rotate`) is written to this server's keystore
//! and handed to the other voters *before* its metadata is committed, and
//! the commit waits until a majority of voters hold it, so a committed key
//! survives the loss of a minority of servers. Servers that missed it
//! (down, or joined later) fetch every key the state names but their
//! keystore lacks ([`run_replicator`]), and a server asked to decrypt with
//! a key it lacks fetches it first.
//!
//! Key material is handed only to servers: with mutual TLS, to callers
//! whose certificate names a server; without TLS (where the RPC port must
//! be reachable only by the cluster, as for Raft itself) to callers whose
//! address is a Raft voter's.
//!
//! Nonces and keys come from `ring`'s system RNG here, in the shell; the
//! state machine never sees a key or makes a nonce.

use crate::peer::{PeerCall, PeerReply};
use crate::{Server, ServerError, new_id, now_nanos};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use types::{EncryptedItems, ROOT_KEY_ALGORITHM, RootKeyMeta, RootKeyState};

/// Bytes of an AES-256 key.
pub const KEY_LEN: usize = 32;

/// One key's material.
type KeyBytes = Arc<[u8; KEY_LEN]>;

/// The keystore file's content.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    key_id: String,
    algorithm: String,
    /// The key, hex-encoded.
    key: String,
}

/// This server's keys, in memory and in its keystore directory.
#[derive(Debug)]
pub(crate) struct Keystore {
    dir: PathBuf,
    keys: RwLock<HashMap<String, KeyBytes>>,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile").field("key_id", &self.key_id).finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

fn valid_key_id(key_id: &str) -> bool {
    !key_id.is_empty() && key_id.len() <= 64 && key_id.chars().all(|ch| ch.is_ascii_hexdigit() || ch == '-')
}

fn aad(namespace: &str, path: &str) -> Vec<u8> {
    // Binds the ciphertext to its variable, so items copied to another
    // path do not decrypt there.
    let mut aad = Vec::with_capacity(namespace.len() + path.len() + 1);
    aad.extend_from_slice(namespace.as_bytes());
    aad.push(0);
    aad.extend_from_slice(path.as_bytes());
    aad
}

impl Keystore {
    /// Opens (creating) the keystore under `server_dir` and loads its keys.
    pub(crate) fn open(server_dir: &Path) -> Result<Keystore, ServerError> {
        let dir = server_dir.join("keystore");
        let fail = |what: &str, error: std::io::Error| {
            ServerError::Internal(format!("keystore {}: {what}: {error}", dir.display()))
        };
        std::fs::create_dir_all(&dir).map_err(|error| fail("create", error))?;
        set_mode(&dir, 0o700).map_err(|error| fail("set mode", error))?;
        let mut keys = HashMap::new();
        for entry in std::fs::read_dir(&dir).map_err(|error| fail("read", error))? {
            let entry = entry.map_err(|error| fail("read", error))?;
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|error| fail("read key", error))?;
            let file: KeyFile = serde_json::from_str(&text)
                .map_err(|error| ServerError::Internal(format!("keystore file {}: {error}", path.display())))?;
            let material = unhex(&file.key)
                .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes).ok())
                .ok_or_else(|| ServerError::Internal(format!("keystore file {}: bad key", path.display())))?;
            keys.insert(file.key_id, Arc::new(material));
        }
        Ok(Keystore {
            dir,
            keys: RwLock::new(keys),
            rng: SystemRandom::new(),
        })
    }

    fn get(&self, key_id: &str) -> Option<KeyBytes> {
        self.keys.read().ok()?.get(key_id).cloned()
    }

    /// Stores a key (file first, atomically, mode 0600).
    fn put(&self, key_id: &str, material: [u8; KEY_LEN]) -> Result<(), ServerError> {
        if !valid_key_id(key_id) {
            return Err(ServerError::BadRequest(format!("invalid root key ID {key_id:?}")));
        }
        if self.get(key_id).is_some() {
            return Ok(());
        }
        let file = KeyFile {
            key_id: key_id.to_string(),
            algorithm: ROOT_KEY_ALGORITHM.to_string(),
            key: hex(&material),
        };
        let text = serde_json::to_vec(&file).map_err(|error| ServerError::Internal(error.to_string()))?;
        let path = self.dir.join(format!("{key_id}.json"));
        let temp = self.dir.join(format!(".{key_id}.json.tmp"));
        write_private(&temp, &text)
            .and_then(|()| std::fs::rename(&temp, &path))
            .map_err(|error| ServerError::Internal(format!("keystore write {}: {error}", path.display())))?;
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(key_id.to_string(), Arc::new(material));
        }
        Ok(())
    }

    fn generate(&self) -> Result<[u8; KEY_LEN], ServerError> {
        let mut material = [0u8; KEY_LEN];
        self.rng
            .fill(&mut material)
            .map_err(|_| ServerError::Internal("the system RNG failed".to_string()))?;
        Ok(material)
    }

    /// Seals `plaintext` for the variable at (namespace, path).
    fn seal(
        &self,
        key_id: &str,
        key: &[u8; KEY_LEN],
        namespace: &str,
        path: &str,
        plaintext: &[u8],
    ) -> Result<EncryptedItems, ServerError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| ServerError::Internal("the system RNG failed".to_string()))?;
        let sealing = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, key).map_err(|_| ServerError::Internal("bad root key".to_string()))?,
        );
        let mut ciphertext = plaintext.to_vec();
        sealing
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(namespace, path)),
                &mut ciphertext,
            )
            .map_err(|_| ServerError::Internal("encryption failed".to_string()))?;
        Ok(EncryptedItems {
            key_id: key_id.to_string(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }
}

/// Opens sealed items.
fn open_sealed(
    key: &[u8; KEY_LEN],
    namespace: &str,
    path: &str,
    items: &EncryptedItems,
) -> Result<Vec<u8>, ServerError> {
    let nonce = <[u8; NONCE_LEN]>::try_from(items.nonce.as_slice())
        .map_err(|_| ServerError::Internal(format!("variable {path:?}: bad nonce")))?;
    let opening = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| ServerError::Internal("bad root key".to_string()))?,
    );
    let mut buffer = items.ciphertext.clone();
    let plaintext = opening
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(namespace, path)),
            &mut buffer,
        )
        .map_err(|_| ServerError::Internal(format!("variable {path:?} does not decrypt with key {}", items.key_id)))?;
    Ok(plaintext.to_vec())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// How long a key hand-off to one peer may take.
const PEER_KEY_DEADLINE: Duration = Duration::from_secs(5);

impl Server {
    /// Whether `peer` may be handed key material (see the module docs).
    pub(crate) fn may_receive_keys(&self, peer: &rpc::PeerInfo) -> bool {
        match &peer.identity {
            rpc::PeerIdentity::Server { .. } => true,
            rpc::PeerIdentity::Client { .. } => false,
            rpc::PeerIdentity::Anonymous => {
                if self.config().rpc_tls.is_some() {
                    return false;
                }
                let ip = peer.addr.ip();
                self.peers().iter().any(|addr| {
                    addr.parse::<std::net::SocketAddr>()
                        .map(|voter| voter.ip() == ip)
                        .unwrap_or(false)
                })
            }
        }
    }

    /// A key's material from this server's keystore (for a peer).
    pub(crate) fn root_key_material(&self, key_id: &str) -> Option<Vec<u8>> {
        self.inner().keystore.get(key_id).map(|key| key.to_vec())
    }

    /// Stores a key a peer handed over.
    pub(crate) fn store_root_key(&self, key_id: &str, material: &[u8]) -> Result<(), ServerError> {
        let material = <[u8; KEY_LEN]>::try_from(material)
            .map_err(|_| ServerError::BadRequest(format!("root key {key_id} is not {KEY_LEN} bytes")))?;
        self.inner().keystore.put(key_id, material)
    }

    /// Makes a new root key, hands it to a majority of voters, and then
    /// commits its metadata as the active key.
    pub async fn rotate_root_key(&self) -> Result<RootKeyMeta, ServerError> {
        let keystore = &self.inner().keystore;
        let key_id = new_id();
        let material = keystore.generate()?;
        keystore.put(&key_id, material)?;
        let me = self.config().rpc_addr.clone();
        let voters = self.peers();
        let others: Vec<String> = voters.iter().filter(|addr| **addr != me).cloned().collect();
        let calls = others.iter().map(|addr| {
            let call = PeerCall::KeyringPut {
                key_id: key_id.clone(),
                material: material.to_vec(),
            };
            self.call_peer(addr, call, PEER_KEY_DEADLINE)
        });
        let answers = futures::future::join_all(calls).await;
        let mut holders = 1 + answers
            .iter()
            .filter(|answer| matches!(answer, Ok(PeerReply::Done)))
            .count();
        if voters.is_empty() {
            holders = 1;
        }
        let quorum = voters.len().max(1) / 2 + 1;
        if holders < quorum {
            return Err(ServerError::Unavailable(format!(
                "root key {key_id} reached {holders} of {} servers; a majority must hold it before it is used",
                voters.len()
            )));
        }
        let key = RootKeyMeta {
            key_id,
            algorithm: ROOT_KEY_ALGORITHM.to_string(),
            create_time: now_nanos(),
            create_index: 0,
            modify_index: 0,
            state: RootKeyState::Active,
        };
        let result = self.write(state::Command::RootKeyUpsert { key: key.clone() }).await?;
        Ok(self
            .state()
            .root_keys()
            .into_iter()
            .find(|stored| stored.key_id == key.key_id)
            .map(|stored| (*stored).clone())
            .unwrap_or(RootKeyMeta {
                create_index: result.index,
                modify_index: result.index,
                ..key
            }))
    }

    /// A key's material: from the keystore, else fetched from the other
    /// servers (and stored).
    async fn root_key(&self, key_id: &str) -> Result<KeyBytes, ServerError> {
        if let Some(key) = self.inner().keystore.get(key_id) {
            return Ok(key);
        }
        self.fetch_root_key(key_id).await?;
        self.inner()
            .keystore
            .get(key_id)
            .ok_or_else(|| ServerError::Unavailable(format!("root key {key_id} is on no reachable server")))
    }

    async fn fetch_root_key(&self, key_id: &str) -> Result<(), ServerError> {
        let me = self.config().rpc_addr.clone();
        let mut sources: Vec<String> = self.leader().into_iter().collect();
        sources.extend(self.peers());
        sources.retain(|addr| *addr != me);
        sources.dedup();
        let mut last_error = ServerError::Unavailable(format!("root key {key_id}: no other server known"));
        for addr in sources {
            let call = PeerCall::KeyringGet {
                key_id: key_id.to_string(),
            };
            match self.call_peer(&addr, call, PEER_KEY_DEADLINE).await {
                Ok(PeerReply::RootKey(Some(material))) => return self.store_root_key(key_id, &material),
                Ok(PeerReply::RootKey(None)) => {
                    last_error = ServerError::Unavailable(format!("root key {key_id} is not on {addr}"));
                }
                Ok(other) => last_error = ServerError::Internal(format!("{addr} answered {other:?}")),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// Encrypts a variable's items with the active root key.
    pub(crate) async fn seal_items(
        &self,
        namespace: &str,
        path: &str,
        items: &BTreeMap<String, String>,
    ) -> Result<EncryptedItems, ServerError> {
        let plaintext = types::encode_variable_items(items).map_err(ServerError::BadRequest)?;
        let Some(active) = self.state().active_root_key() else {
            return Err(ServerError::Unavailable(
                "the keyring has no active root key yet (the leader makes one when it is elected)".to_string(),
            ));
        };
        let key = self.root_key(&active.key_id).await?;
        self.inner()
            .keystore
            .seal(&active.key_id, &key, namespace, path, &plaintext)
    }

    /// Decrypts a variable's items.
    pub(crate) async fn open_items(
        &self,
        namespace: &str,
        path: &str,
        items: &EncryptedItems,
    ) -> Result<BTreeMap<String, String>, ServerError> {
        if items.ciphertext.is_empty() && items.key_id.is_empty() {
            // A variable made by a lock acquisition without items.
            return Ok(BTreeMap::new());
        }
        let key = self.root_key(&items.key_id).await?;
        let plaintext = open_sealed(&key, namespace, path, items)?;
        serde_json::from_slice(&plaintext).map_err(|error| ServerError::Internal(format!("variable {path:?}: {error}")))
    }

    /// The leader's duty: make the first root key when there is none.
    pub(crate) async fn ensure_root_key(&self) {
        if !self.state().root_keys().is_empty() {
            return;
        }
        match self.rotate_root_key().await {
            Ok(key) => tracing::info!(key_id = %key.key_id, "made the cluster's first root key"),
            Err(error) => tracing::warn!(%error, "could not make the first root key yet"),
        }
    }
}

/// On every server: fetch each key the state names that this keystore
/// lacks (a server that was down or joined after a rotation).
pub(crate) async fn run_replicator(server: Server) {
    let mut applied = server.subscribe();
    let mut shutdown = server.inner().shutdown.subscribe();
    loop {
        let missing: Vec<String> = server
            .state()
            .root_keys()
            .iter()
            .map(|key| key.key_id.clone())
            .filter(|key_id| server.inner().keystore.get(key_id).is_none())
            .collect();
        let mut failed = false;
        for key_id in missing {
            if let Err(error) = server.fetch_root_key(&key_id).await {
                tracing::debug!(%key_id, %error, "root key not replicated yet");
                failed = true;
            }
        }
        let retry = if failed {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(30)
        };
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(retry) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_items_open_only_with_their_key_and_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keystore = Keystore::open(dir.path()).expect("open");
        let material = keystore.generate().expect("key");
        keystore.put("0a-1", material).expect("put");
        let sealed = keystore
            .seal("0a-1", &material, "default", "app/db", b"{\"password\":\"hunter2\"}")
            .expect("seal");
        assert!(!sealed.ciphertext.windows(7).any(|window| window == b"hunter2"));
        assert_eq!(
            open_sealed(&material, "default", "app/db", &sealed).expect("open"),
            b"{\"password\":\"hunter2\"}"
        );
        assert!(open_sealed(&material, "default", "app/other", &sealed).is_err());
        let other = keystore.generate().expect("key");
        assert!(open_sealed(&other, "default", "app/db", &sealed).is_err());
        // Two seals of the same items differ (random nonces).
        let again = keystore
            .seal("0a-1", &material, "default", "app/db", b"{\"password\":\"hunter2\"}")
            .expect("seal");
        assert_ne!(again.nonce, sealed.nonce);
        // The keystore survives a reopen, with private files.
        let reopened = Keystore::open(dir.path()).expect("reopen");
        assert_eq!(reopened.get("0a-1").map(|key| *key), Some(material));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("keystore/0a-1.json"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(keystore.put("../x", material).is_err());
    }
}
