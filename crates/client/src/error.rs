//! The client's errors, named after the operation that failed.

use std::path::PathBuf;

/// Why the client could not be set up ([`crate::Client::new`]).
#[derive(Debug, thiserror::Error)]
pub enum NewClientError {
    #[error("create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("read or write node identity {path}: {source}")]
    Identity { path: PathBuf, source: std::io::Error },
    #[error("two drivers are named {0}")]
    DuplicateDriver(String),
    #[error("open the artifact cache {path}: {source}")]
    ArtifactCache { path: PathBuf, source: std::io::Error },
}

/// Why an allocation directory could not be built.
#[derive(Debug, thiserror::Error)]
#[error("build allocation directory {path}: {source}")]
pub struct BuildAllocDirError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Why local state could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum LocalStateError {
    #[error("write local state {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("read local state {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("decode local state {path}: {source}")]
    Decode { path: PathBuf, source: serde_json::Error },
    #[error("encode local state for allocation {alloc_id}: {source}")]
    Encode {
        alloc_id: String,
        source: serde_json::Error,
    },
}
