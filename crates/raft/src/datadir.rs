//! The server's data directory: its marker, its file modes, and the checks
//! that refuse damaged state instead of starting over.
//!
//! A server directory holds `raft.redb` (the log, vote and committed
//! pointer), `snapshot.bin` (the last state snapshot) and `drover-server`
//! (the marker). The marker is written once the log has been created; from
//! then on a missing or empty log, or one redb cannot read, is damage: the
//! server stops with an error naming the file, because starting as a new,
//! empty cluster would silently lose every acknowledged write.
//!
//! Everything here is private to the server's user: the directory is
//! `0700`, its files `0600`.

use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The layout version this build writes and reads.
pub const FORMAT: u32 = 2;

const MARKER: &str = "drover-server";
pub(crate) const LOG_FILE: &str = "raft.redb";

/// What the marker records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// The layout version (see [`FORMAT`]).
    pub format: u32,
    /// This server's Raft ID, fixed for the life of the directory.
    pub server_id: u64,
    /// Whether the Raft log has been created. Written after the log file
    /// exists, so a crash between the two leaves a directory that is still
    /// new rather than one that looks damaged.
    pub log_created: bool,
}

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("create data dir {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("set the mode of {path}: {source}")]
    Mode { path: PathBuf, source: std::io::Error },
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} is damaged: {reason}; refusing to start (restore the directory from a backup, or move it away to start a new cluster)"
    )]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "{path} holds Raft state but no marker (written by an older Drover, format 1); this build reads format {FORMAT} only"
    )]
    Unmarked { path: PathBuf },
    #[error("{path} has format {found}; this build reads format {FORMAT} only")]
    Format { path: PathBuf, found: u32 },
}

/// Opens (or creates) a server directory and returns its marker. A new
/// directory gets `new_server_id` as its ID.
pub fn prepare(dir: &Path, new_server_id: impl FnOnce() -> u64) -> Result<Marker, DataDirError> {
    create_private_dir(dir)?;
    let marker_path = dir.join(MARKER);
    let log_path = dir.join(LOG_FILE);
    let marker = match fs::read(&marker_path) {
        Ok(bytes) => {
            let marker: Marker = serde_json::from_slice(&bytes).map_err(|error| DataDirError::Damaged {
                path: marker_path.clone(),
                reason: format!("unreadable marker: {error}"),
            })?;
            if marker.format != FORMAT {
                return Err(DataDirError::Format {
                    path: dir.to_path_buf(),
                    found: marker.format,
                });
            }
            match fs::metadata(&log_path) {
                _ if !marker.log_created => {}
                Ok(meta) if meta.len() > 0 => {}
                Ok(_) => {
                    return Err(DataDirError::Damaged {
                        path: log_path,
                        reason: "the Raft log is empty (zero bytes)".to_string(),
                    });
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    return Err(DataDirError::Damaged {
                        path: log_path,
                        reason: "the Raft log is missing".to_string(),
                    });
                }
                Err(source) => return Err(DataDirError::Read { path: log_path, source }),
            }
            Some(marker)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(DataDirError::Read {
                path: marker_path,
                source,
            });
        }
    };
    let marker = match marker {
        Some(marker) => marker,
        None => {
            if fs::metadata(&log_path).is_ok_and(|meta| meta.len() > 0) {
                return Err(DataDirError::Unmarked {
                    path: dir.to_path_buf(),
                });
            }
            let marker = Marker {
                format: FORMAT,
                server_id: new_server_id(),
                log_created: false,
            };
            write_marker(dir, &marker)?;
            marker
        }
    };
    restrict_files(dir)?;
    Ok(marker)
}

/// Makes the server's files `0600`, whatever umask created them.
pub fn restrict_files(dir: &Path) -> Result<(), DataDirError> {
    for file in [LOG_FILE, crate::state_machine::SNAPSHOT_FILE] {
        restrict(&dir.join(file), 0o600)?;
    }
    Ok(())
}

/// Records that the log now exists (see [`Marker::log_created`]).
pub fn mark_log_created(dir: &Path, marker: &mut Marker) -> Result<(), DataDirError> {
    if !marker.log_created {
        marker.log_created = true;
        write_marker(dir, marker)?;
    }
    Ok(())
}

fn write_marker(dir: &Path, marker: &Marker) -> Result<(), DataDirError> {
    let path = dir.join(MARKER);
    let bytes = serde_json::to_vec(marker).map_err(|error| DataDirError::Write {
        path: path.clone(),
        source: std::io::Error::other(error),
    })?;
    write_private_file(&path, &bytes)
}

/// Creates `dir` (and parents) and makes it `0700`.
pub fn create_private_dir(dir: &Path) -> Result<(), DataDirError> {
    fs::create_dir_all(dir).map_err(|source| DataDirError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    restrict(dir, 0o700)
}

/// Sets `path`'s mode when it exists.
fn restrict(path: &Path, mode: u32) -> Result<(), DataDirError> {
    match fs::set_permissions(path, Permissions::from_mode(mode)) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DataDirError::Mode {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes a file `0600` atomically: a temporary file, fsync, rename, fsync
/// of the directory.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), DataDirError> {
    let write_err = |source| DataDirError::Write {
        path: path.to_path_buf(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(write_err)?;
    file.write_all(bytes).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    fs::rename(&temporary, path).map_err(write_err)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(write_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_new_dir_gets_a_marker_and_private_modes() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("server");
        let mut marker = prepare(&dir, || 42).expect("prepare");
        assert_eq!(
            marker,
            Marker {
                format: FORMAT,
                server_id: 42,
                log_created: false
            }
        );
        assert_eq!(fs::metadata(&dir).expect("dir").mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(dir.join(MARKER)).expect("marker").mode() & 0o777, 0o600);
        // The marker keeps the ID: a second start does not mint a new one.
        fs::write(dir.join(LOG_FILE), b"x").expect("log");
        mark_log_created(&dir, &mut marker).expect("mark");
        assert_eq!(prepare(&dir, || 7).expect("reopen").server_id, 42);
        assert_eq!(fs::metadata(dir.join(LOG_FILE)).expect("log").mode() & 0o777, 0o600);
    }

    #[test]
    fn a_marked_dir_without_its_log_is_damage() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut marker = prepare(root.path(), || 1).expect("prepare");
        // Before the log is recorded as created, a missing log is a new dir.
        prepare(root.path(), || 1).expect("still new");
        mark_log_created(root.path(), &mut marker).expect("mark");
        let missing = prepare(root.path(), || 1).expect_err("log missing");
        assert!(missing.to_string().contains("missing"), "{missing}");
        fs::write(root.path().join(LOG_FILE), b"").expect("empty log");
        let empty = prepare(root.path(), || 1).expect_err("empty log");
        assert!(empty.to_string().contains("zero bytes"), "{empty}");
    }

    #[test]
    fn an_unmarked_log_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::write(root.path().join(LOG_FILE), b"old").expect("log");
        let error = prepare(root.path(), || 1).expect_err("unmarked");
        assert!(matches!(error, DataDirError::Unmarked { .. }), "{error}");
    }
}
