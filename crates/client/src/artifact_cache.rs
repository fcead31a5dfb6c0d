//! The node's content-addressed artifact cache (Drover's own; Nomad
//! downloads every artifact once per allocation). An artifact whose job
//! names its checksum is stored once under that checksum, so the same
//! source and checksum is downloaded once per node however many
//! allocations use it.
//!
//! - Concurrency: one lock per key. The first allocation to ask downloads
//!   while the others wait on the lock, then find the blob; a blob is held
//!   by whoever uses it (the lock guard) and is never evicted under it.
//! - Only verified content enters: the download is written to `tmp/`,
//!   checked against the checksum, then renamed into `blobs/`.
//! - Size: past `max_bytes`, the least recently used blobs that nobody
//!   holds are deleted.
//! - Hits and misses are counted.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters and size of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    pub bytes: u64,
    pub evictions: u64,
}

#[derive(Debug)]
struct Entry {
    size: u64,
    last_used: u64,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Entry>,
    total: u64,
    clock: u64,
}

/// A blob in the cache, held: it is not evicted while this lives.
pub struct CachedBlob {
    path: PathBuf,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl CachedBlob {
    /// The blob's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The cache under `<data_dir>/client/artifacts`.
pub struct ArtifactCache {
    root: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    temp_counter: AtomicU64,
}

/// Whether `key` is a cache key: `<algorithm>-<lowercase hex>`, so that it
/// is a safe file name.
pub fn is_key(key: &str) -> bool {
    match key.split_once('-') {
        Some((algorithm, hex)) => {
            matches!(algorithm, "md5" | "sha1" | "sha256" | "sha512")
                && !hex.is_empty()
                && hex
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        }
        None => false,
    }
}

impl ArtifactCache {
    /// Opens the cache at `root`, taking in the blobs a previous run left
    /// (least recently modified first) and removing unfinished downloads.
    pub fn open(root: &Path, max_bytes: u64) -> std::io::Result<ArtifactCache> {
        let blobs = root.join("blobs");
        let temp = root.join("tmp");
        std::fs::create_dir_all(&blobs)?;
        let _ = std::fs::remove_dir_all(&temp);
        std::fs::create_dir_all(&temp)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&blobs)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let metadata = entry.metadata()?;
            if !is_key(&name) || !metadata.is_file() {
                continue;
            }
            let modified = metadata.modified().ok();
            found.push((modified, name, metadata.len()));
        }
        found.sort();
        let mut index = Index::default();
        for (_, name, size) in found {
            index.clock += 1;
            index.total += size;
            index.entries.insert(
                name,
                Entry {
                    size,
                    last_used: index.clock,
                },
            );
        }
        let cache = ArtifactCache {
            root: root.to_path_buf(),
            max_bytes,
            index: Mutex::new(index),
            locks: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            temp_counter: AtomicU64::new(0),
        };
        cache.evict(None);
        Ok(cache)
    }

    /// The most bytes the cache keeps.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Hits, misses, entries and bytes.
    pub fn stats(&self) -> CacheStats {
        let index = self.index.lock().expect("cache index lock");
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: index.entries.len() as u64,
            bytes: index.total,
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    fn key_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().expect("cache locks lock");
        Arc::clone(locks.entry(key.to_string()).or_default())
    }

    fn blob_path(&self, key: &str) -> PathBuf {
        self.root.join("blobs").join(key)
    }

    /// A fresh path under `tmp/` for a download that is not cached.
    pub fn temp_path(&self) -> PathBuf {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{}-{n}", crate::clock::unix_nanos()))
    }

    /// The blob of `key`, fetched with `fetch` on a miss. `fetch` writes
    /// verified content to the path it is given and returns its size; a
    /// failed fetch leaves nothing in the cache.
    pub async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<CachedBlob, String>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: Future<Output = Result<u64, String>>,
    {
        let guard = self.key_lock(key).lock_owned().await;
        let path = self.blob_path(key);
        let cached = {
            let mut index = self.index.lock().expect("cache index lock");
            index.clock += 1;
            let clock = index.clock;
            match index.entries.get_mut(key) {
                Some(entry) if path.is_file() => {
                    entry.last_used = clock;
                    true
                }
                Some(_) => {
                    // Deleted behind our back: forget it.
                    if let Some(entry) = index.entries.remove(key) {
                        index.total = index.total.saturating_sub(entry.size);
                    }
                    false
                }
                None => false,
            }
        };
        if cached {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(CachedBlob { path, _guard: guard });
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let temp = self.temp_path();
        let size = match fetch(temp.clone()).await {
            Ok(size) => size,
            Err(error) => {
                let _ = std::fs::remove_file(&temp);
                return Err(error);
            }
        };
        if let Err(error) = std::fs::rename(&temp, &path) {
            let _ = std::fs::remove_file(&temp);
            return Err(format!("keep the artifact in the cache at {}: {error}", path.display()));
        }
        {
            let mut index = self.index.lock().expect("cache index lock");
            index.clock += 1;
            let clock = index.clock;
            index.total += size;
            index.entries.insert(key.to_string(), Entry { size, last_used: clock });
        }
        self.evict(Some(key));
        Ok(CachedBlob { path, _guard: guard })
    }

    /// Deletes least recently used blobs nobody holds until the cache fits,
    /// never `keep` (the blob just added).
    fn evict(&self, keep: Option<&str>) {
        loop {
            let victim = {
                let index = self.index.lock().expect("cache index lock");
                if index.total <= self.max_bytes {
                    return;
                }
                let locks = self.locks.lock().expect("cache locks lock");
                let mut candidates: Vec<(&String, &Entry)> = index
                    .entries
                    .iter()
                    .filter(|(key, _)| Some(key.as_str()) != keep)
                    .filter(|(key, _)| locks.get(*key).is_none_or(|lock| lock.try_lock().is_ok()))
                    .collect();
                candidates.sort_by_key(|(_, entry)| entry.last_used);
                candidates.first().map(|(key, _)| (*key).clone())
            };
            let Some(victim) = victim else { return };
            // Take the victim's lock so that nobody starts using it while it
            // goes; if someone just did, look again.
            let lock = self.key_lock(&victim);
            let Ok(_held) = lock.try_lock() else { continue };
            let _ = std::fs::remove_file(self.blob_path(&victim));
            let mut index = self.index.lock().expect("cache index lock");
            if let Some(entry) = index.entries.remove(&victim) {
                index.total = index.total.saturating_sub(entry.size);
            }
            self.evictions.fetch_add(1, Ordering::Relaxed);
            drop(index);
            self.locks.lock().expect("cache locks lock").remove(&victim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    async fn write(path: PathBuf, bytes: usize) -> Result<u64, String> {
        std::fs::write(&path, vec![b'x'; bytes]).map_err(|error| error.to_string())?;
        Ok(bytes as u64)
    }

    #[test]
    fn keys_are_safe_file_names() {
        assert!(is_key("sha256-0123abcd"));
        assert!(!is_key("sha256-../../x"));
        assert!(!is_key("sha256-ABCD"));
        assert!(!is_key("crc32-00"));
        assert!(!is_key("sha256-"));
    }

    #[tokio::test]
    async fn concurrent_askers_cause_one_fetch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Arc::new(ArtifactCache::open(dir.path(), 1 << 20).expect("open"));
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let cache = Arc::clone(&cache);
            let fetches = Arc::clone(&fetches);
            tasks.push(tokio::spawn(async move {
                let blob = cache
                    .get_or_fetch("sha256-aa", |path| {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        async move {
                            // Let the others pile up on the lock.
                            tokio::task::yield_now().await;
                            write(path, 10).await
                        }
                    })
                    .await
                    .expect("fetched");
                std::fs::read(blob.path()).expect("blob readable").len()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("join"), 10);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.entries, stats.bytes), (4, 1, 1, 10));
    }

    #[tokio::test]
    async fn a_failed_fetch_caches_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ArtifactCache::open(dir.path(), 1 << 20).expect("open");
        let failed = cache
            .get_or_fetch("sha256-bb", |path| async move {
                std::fs::write(&path, b"bad").map_err(|error| error.to_string())?;
                Err("checksum mismatch".to_string())
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0);
        // The next ask fetches again.
        cache
            .get_or_fetch("sha256-bb", |path| write(path, 3))
            .await
            .expect("fetched");
        assert_eq!(cache.stats().misses, 2);
    }

    #[tokio::test]
    async fn least_recently_used_blobs_go_first_but_never_a_held_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ArtifactCache::open(dir.path(), 25).expect("open");
        drop(
            cache
                .get_or_fetch("sha256-01", |path| write(path, 10))
                .await
                .expect("a"),
        );
        drop(
            cache
                .get_or_fetch("sha256-02", |path| write(path, 10))
                .await
                .expect("b"),
        );
        // Use 01 again: 02 is now the least recently used.
        drop(
            cache
                .get_or_fetch("sha256-01", |_| write(PathBuf::new(), 0))
                .await
                .expect("hit"),
        );
        drop(
            cache
                .get_or_fetch("sha256-03", |path| write(path, 10))
                .await
                .expect("c"),
        );
        assert!(dir.path().join("blobs/sha256-01").exists());
        assert!(!dir.path().join("blobs/sha256-02").exists());
        assert!(dir.path().join("blobs/sha256-03").exists());
        assert_eq!(cache.stats().bytes, 20);
        assert_eq!(cache.stats().evictions, 1);
        // A held blob survives even when it is the oldest.
        let held = cache
            .get_or_fetch("sha256-01", |_| write(PathBuf::new(), 0))
            .await
            .expect("hit");
        drop(
            cache
                .get_or_fetch("sha256-03", |_| write(PathBuf::new(), 0))
                .await
                .expect("hit"),
        );
        drop(
            cache
                .get_or_fetch("sha256-04", |path| write(path, 10))
                .await
                .expect("d"),
        );
        assert!(held.path().exists());
        assert!(!dir.path().join("blobs/sha256-03").exists());
        drop(held);
        // A restarted agent finds what is left.
        drop(cache);
        let reopened = ArtifactCache::open(dir.path(), 25).expect("reopen");
        assert_eq!(reopened.stats().entries, 2);
        assert_eq!(reopened.stats().bytes, 20);
    }
}
