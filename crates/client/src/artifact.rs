//! Artifacts: files and archives fetched into a task's directory before it
//! first starts.
//!
//! Sources are `http://` URLs and `file://` paths (relative to the task
//! directory, inside the allocation's). `https://` needs TLS, which this
//! build's HTTP client does not have, and `git::`, `s3::`, `gcs::` and
//! `hg::` have no getter: those are refused at registration
//! ([`types::Job::check_supported`]) and here.
//!
//! An artifact with `options { checksum = "type:hex" }` is verified before
//! use and kept in the node's [`ArtifactCache`] under that checksum, so
//! every allocation of the node after the first takes it from there.
//! Archives (`.tar`, `.tar.gz`/`.tgz`, `.zip`) are unpacked unless
//! `options { archive = false }`; entries may not leave the destination
//! (no `..`, no absolute names, no links), and the number of entries and
//! the unpacked bytes are bounded, as is every download.

use crate::artifact_cache::{ArtifactCache, is_key};
use crate::sandbox::{confine, create_dir_inside, entry_path, still_inside};
use futures::StreamExt as _;
use sha2::Digest as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The bounds every artifact is fetched under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactLimits {
    /// Longest download (or copied file), in bytes.
    pub max_download_bytes: u64,
    /// Most bytes an archive may unpack to.
    pub max_unpacked_bytes: u64,
    /// Most entries an archive may hold.
    pub max_entries: usize,
    /// Longest a download may take.
    pub download_timeout: Duration,
}

impl Default for ArtifactLimits {
    fn default() -> Self {
        ArtifactLimits {
            max_download_bytes: 1 << 30,
            max_unpacked_bytes: 4 << 30,
            max_entries: 100_000,
            download_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// Why an artifact could not be fetched. The message is the task event's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("artifact {source_name:?}: {reason}")]
pub struct FetchArtifactError {
    pub source_name: String,
    pub reason: String,
}

/// A checksum an artifact must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: String,
    pub hex: String,
}

impl Checksum {
    /// Reads `type:hex` (md5, sha1, sha256, sha512).
    pub fn parse(text: &str) -> Result<Checksum, String> {
        let (algorithm, hex) = text
            .split_once(':')
            .ok_or_else(|| format!("checksum {text:?} is not type:value"))?;
        let algorithm = algorithm.to_ascii_lowercase();
        let hex = hex.to_ascii_lowercase();
        let length = match algorithm.as_str() {
            "md5" => 32,
            "sha1" => 40,
            "sha256" => 64,
            "sha512" => 128,
            other => {
                return Err(format!(
                    "checksum type {other:?} is not one of md5, sha1, sha256, sha512"
                ));
            }
        };
        if hex.len() != length || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(format!("checksum {text:?} is not {length} hex digits of {algorithm}"));
        }
        Ok(Checksum { algorithm, hex })
    }

    /// The cache key.
    pub fn key(&self) -> String {
        format!("{}-{}", self.algorithm, self.hex)
    }
}

/// A running digest of one of the checksum types.
enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algorithm: &str) -> Hasher {
        match algorithm {
            "md5" => Hasher::Md5(md5::Md5::new()),
            "sha1" => Hasher::Sha1(sha1::Sha1::new()),
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(hasher) => hasher.update(data),
            Hasher::Sha1(hasher) => hasher.update(data),
            Hasher::Sha256(hasher) => hasher.update(data),
            Hasher::Sha512(hasher) => hasher.update(data),
        }
    }

    fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Md5(hasher) => hasher.finalize().to_vec(),
            Hasher::Sha1(hasher) => hasher.finalize().to_vec(),
            Hasher::Sha256(hasher) => hasher.finalize().to_vec(),
            Hasher::Sha512(hasher) => hasher.finalize().to_vec(),
        };
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Where an artifact comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Http(String),
    /// A path relative to the task directory.
    File(String),
}

impl Source {
    /// Reads a go-getter style source, refusing the getters Drover lacks.
    pub fn parse(text: &str) -> Result<Source, String> {
        let lower = text.to_ascii_lowercase();
        if let Some((getter, _)) = text.split_once("::") {
            return Err(format!("the {getter:?} getter is not supported by Drover yet"));
        }
        if lower.starts_with("http://") {
            Ok(Source::Http(text.to_string()))
        } else if lower.starts_with("https://") {
            Err("https sources are not supported by Drover yet (its HTTP client has no TLS)".to_string())
        } else if let Some(path) = text.strip_prefix("file://") {
            Ok(Source::File(path.to_string()))
        } else if text.contains("://") {
            Err(format!("source {text:?} has a scheme Drover cannot fetch"))
        } else if text.is_empty() {
            Err("source is empty".to_string())
        } else {
            Ok(Source::File(text.to_string()))
        }
    }

    /// The name the fetched file gets: the last path segment, without a
    /// query.
    fn file_name(&self) -> String {
        let text = match self {
            Source::Http(url) => {
                let without_query = url.split(['?', '#']).next().unwrap_or(url);
                without_query.split_once("://").map_or(without_query, |(_, rest)| rest)
            }
            Source::File(path) => path.as_str(),
        };
        let name = text
            .rsplit('/')
            .find(|segment| !segment.is_empty())
            .unwrap_or("artifact");
        if name == ".." || name == "." {
            "artifact".to_string()
        } else {
            name.to_string()
        }
    }
}

/// The archive formats unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    TarGz,
    Zip,
}

impl ArchiveKind {
    fn of(name: &str) -> Option<ArchiveKind> {
        let name = name.to_ascii_lowercase();
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(ArchiveKind::TarGz)
        } else if name.ends_with(".tar") {
            Some(ArchiveKind::Tar)
        } else if name.ends_with(".zip") {
            Some(ArchiveKind::Zip)
        } else {
            None
        }
    }
}

/// Fetches artifacts for every task of the node, through one cache.
pub struct ArtifactFetcher {
    http: reqwest::Client,
    cache: Arc<ArtifactCache>,
    limits: ArtifactLimits,
}

impl ArtifactFetcher {
    /// A fetcher with its cache under `cache_root`.
    pub fn new(cache_root: &Path, cache_max_bytes: u64, limits: ArtifactLimits) -> std::io::Result<ArtifactFetcher> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(ArtifactFetcher {
            http,
            cache: Arc::new(ArtifactCache::open(cache_root, cache_max_bytes)?),
            limits,
        })
    }

    /// The node's cache (for its counters).
    pub fn cache(&self) -> &ArtifactCache {
        &self.cache
    }

    /// Fetches one artifact (its fields interpolated) into the task
    /// directory `task_dir` of the allocation directory `sandbox`.
    pub async fn fetch(
        &self,
        artifact: &types::Artifact,
        sandbox: &Path,
        task_dir: &Path,
    ) -> Result<(), FetchArtifactError> {
        let failed = |reason: String| FetchArtifactError {
            source_name: artifact.source.clone(),
            reason,
        };
        let source = Source::parse(&artifact.source).map_err(failed)?;
        let checksum = artifact
            .options
            .get("checksum")
            .map(|text| Checksum::parse(text))
            .transpose()
            .map_err(failed)?;
        let archive = match artifact.options.get("archive").map(String::as_str) {
            Some("false") => None,
            _ => ArchiveKind::of(&source.file_name()),
        };
        let mode = if artifact.mode.is_empty() {
            "any"
        } else {
            artifact.mode.as_str()
        };
        let destination = if artifact.destination.is_empty() {
            "local/"
        } else {
            artifact.destination.as_str()
        };
        let destination = confine(sandbox, task_dir, destination).map_err(failed)?;
        let install = Install {
            sandbox: sandbox.to_path_buf(),
            destination,
            archive,
            mode: mode.to_string(),
            file_name: source.file_name(),
            limits: self.limits,
        };
        let fetch_into = |path: PathBuf| {
            let source = source.clone();
            let checksum = checksum.clone();
            async move {
                let hasher = checksum.as_ref().map(|checksum| Hasher::new(&checksum.algorithm));
                let (size, digest) = match &source {
                    Source::Http(url) => self.download(url, &artifact.headers, &path, hasher).await?,
                    Source::File(name) => {
                        let from = confine(sandbox, task_dir, name)?;
                        let limit = self.limits.max_download_bytes;
                        let sandbox = sandbox.to_path_buf();
                        tokio::task::spawn_blocking(move || copy_file(&sandbox, &from, &path, limit, hasher))
                            .await
                            .map_err(|error| error.to_string())??
                    }
                };
                if let (Some(checksum), Some(digest)) = (&checksum, digest)
                    && digest != checksum.hex
                {
                    return Err(format!(
                        "checksum mismatch: expected {}:{}, got {}:{digest}",
                        checksum.algorithm, checksum.hex, checksum.algorithm
                    ));
                }
                Ok(size)
            }
        };
        match &checksum {
            Some(checksum) if is_key(&checksum.key()) => {
                let blob = self
                    .cache
                    .get_or_fetch(&checksum.key(), fetch_into)
                    .await
                    .map_err(failed)?;
                let path = blob.path().to_path_buf();
                // The blob stays held (not evicted) until it is installed.
                let installed = tokio::task::spawn_blocking(move || install.run(&path))
                    .await
                    .map_err(|error| failed(error.to_string()))?;
                drop(blob);
                installed.map_err(failed)
            }
            _ => {
                let temp = self.cache.temp_path();
                let result = match fetch_into(temp.clone()).await {
                    Ok(_) => {
                        let path = temp.clone();
                        tokio::task::spawn_blocking(move || install.run(&path))
                            .await
                            .map_err(|error| error.to_string())
                            .and_then(|installed| installed)
                    }
                    Err(error) => Err(error),
                };
                let _ = std::fs::remove_file(&temp);
                result.map_err(failed)
            }
        }
    }

    /// Downloads `url` into `path`, bounded in size and time; returns the
    /// size and the digest when asked for one.
    async fn download(
        &self,
        url: &str,
        headers: &std::collections::BTreeMap<String, String>,
        path: &Path,
        mut hasher: Option<Hasher>,
    ) -> Result<(u64, Option<String>), String> {
        let limit = self.limits.max_download_bytes;
        let work = async {
            let mut request = self.http.get(url);
            for (name, value) in headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let response = request.send().await.map_err(|error| format!("GET failed: {error}"))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("GET returned {status}"));
            }
            if response.content_length().is_some_and(|length| length > limit) {
                return Err(format!("the download is larger than the limit of {limit} bytes"));
            }
            let mut file =
                std::fs::File::create(path).map_err(|error| format!("create {}: {error}", path.display()))?;
            let mut size = 0u64;
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|error| format!("download interrupted: {error}"))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(format!("the download is larger than the limit of {limit} bytes"));
                }
                if let Some(hasher) = hasher.as_mut() {
                    hasher.update(&chunk);
                }
                file.write_all(&chunk)
                    .map_err(|error| format!("write {}: {error}", path.display()))?;
            }
            file.sync_all()
                .map_err(|error| format!("write {}: {error}", path.display()))?;
            Ok((size, hasher.take().map(Hasher::hex)))
        };
        tokio::time::timeout(self.limits.download_timeout, work)
            .await
            .map_err(|_| format!("the download took longer than {:?}", self.limits.download_timeout))?
    }
}

/// Copies a file of the allocation (`file://` source) into `to`.
fn copy_file(
    sandbox: &Path,
    from: &Path,
    to: &Path,
    limit: u64,
    mut hasher: Option<Hasher>,
) -> Result<(u64, Option<String>), String> {
    match still_inside(sandbox, from) {
        Ok(true) => {}
        Ok(false) => return Err(format!("{} leaves the allocation directory", from.display())),
        Err(error) => return Err(format!("{}: {error}", from.display())),
    }
    let mut input = std::fs::File::open(from).map_err(|error| format!("open {}: {error}", from.display()))?;
    let mut output = std::fs::File::create(to).map_err(|error| format!("create {}: {error}", to.display()))?;
    let mut buffer = vec![0u8; 64 << 10];
    let mut size = 0u64;
    loop {
        let read = input
            .read(&mut buffer)
            .map_err(|error| format!("read {}: {error}", from.display()))?;
        if read == 0 {
            break;
        }
        size += read as u64;
        if size > limit {
            return Err(format!("{} is larger than the limit of {limit} bytes", from.display()));
        }
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&buffer[..read]);
        }
        output
            .write_all(&buffer[..read])
            .map_err(|error| format!("write {}: {error}", to.display()))?;
    }
    Ok((size, hasher.map(Hasher::hex)))
}

/// Puts a fetched file where the artifact says.
struct Install {
    sandbox: PathBuf,
    destination: PathBuf,
    archive: Option<ArchiveKind>,
    mode: String,
    file_name: String,
    limits: ArtifactLimits,
}

impl Install {
    fn run(&self, fetched: &Path) -> Result<(), String> {
        match (self.archive, self.mode.as_str()) {
            (_, "file") => {
                let parent = self
                    .destination
                    .parent()
                    .ok_or_else(|| "destination has no directory".to_string())?;
                create_dir_inside(&self.sandbox, parent)?;
                place_file(fetched, &self.destination, 0o644, self.limits.max_download_bytes)
            }
            (Some(kind), _) => {
                create_dir_inside(&self.sandbox, &self.destination)?;
                let file = std::fs::File::open(fetched).map_err(|error| format!("open the download: {error}"))?;
                match kind {
                    ArchiveKind::Tar => self.unpack_tar(file),
                    ArchiveKind::TarGz => self.unpack_tar(flate2::read::GzDecoder::new(file)),
                    ArchiveKind::Zip => self.unpack_zip(file),
                }
            }
            (None, "dir") => Err("mode \"dir\" needs an archive".to_string()),
            (None, _) => {
                create_dir_inside(&self.sandbox, &self.destination)?;
                place_file(
                    fetched,
                    &self.destination.join(&self.file_name),
                    0o644,
                    self.limits.max_download_bytes,
                )
            }
        }
    }

    /// The path of an archive entry inside the destination, its directory
    /// created and checked.
    fn entry_target(&self, name: &Path) -> Result<PathBuf, String> {
        let relative = entry_path(name)?;
        if relative.as_os_str().is_empty() {
            return Ok(self.destination.clone());
        }
        let target = self.destination.join(relative);
        if let Some(parent) = target.parent() {
            create_dir_inside(&self.sandbox, parent)?;
        }
        Ok(target)
    }

    fn unpack_tar(&self, reader: impl Read) -> Result<(), String> {
        let mut archive = tar::Archive::new(reader);
        let mut count = 0usize;
        let mut unpacked = 0u64;
        let entries = archive
            .entries()
            .map_err(|error| format!("read the archive: {error}"))?;
        for entry in entries {
            let mut entry = entry.map_err(|error| format!("read the archive: {error}"))?;
            count += 1;
            if count > self.limits.max_entries {
                return Err(format!("the archive has more than {} entries", self.limits.max_entries));
            }
            let name = entry
                .path()
                .map_err(|error| format!("read the archive: {error}"))?
                .into_owned();
            let target = self.entry_target(&name)?;
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                create_dir_inside(&self.sandbox, &target)?;
            } else if kind.is_file() {
                let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
                let remaining = self.limits.max_unpacked_bytes.saturating_sub(unpacked);
                unpacked += write_entry(&mut entry, &target, mode, remaining).map_err(|error| {
                    if error.is_empty() {
                        format!(
                            "the archive unpacks to more than the limit of {} bytes",
                            self.limits.max_unpacked_bytes
                        )
                    } else {
                        error
                    }
                })?;
            } else if kind.is_symlink() || kind.is_hard_link() {
                return Err(format!(
                    "archive entry {} is a link; Drover does not unpack links",
                    name.display()
                ));
            } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() || kind.is_gnu_longname() {
                continue;
            } else {
                return Err(format!("archive entry {} is not a file or a directory", name.display()));
            }
        }
        Ok(())
    }

    fn unpack_zip(&self, file: std::fs::File) -> Result<(), String> {
        let mut archive = zip::ZipArchive::new(file).map_err(|error| format!("read the archive: {error}"))?;
        if archive.len() > self.limits.max_entries {
            return Err(format!("the archive has more than {} entries", self.limits.max_entries));
        }
        let mut unpacked = 0u64;
        for index in 0..archive.len() {
            let mut entry = archive
                .by_index(index)
                .map_err(|error| format!("read the archive: {error}"))?;
            let name = PathBuf::from(
                entry
                    .name()
                    .map_err(|error| format!("read the archive: {error}"))?
                    .into_owned(),
            );
            let target = self.entry_target(&name)?;
            if entry.is_symlink() {
                return Err(format!(
                    "archive entry {} is a link; Drover does not unpack links",
                    name.display()
                ));
            }
            if entry.is_dir() {
                create_dir_inside(&self.sandbox, &target)?;
                continue;
            }
            let mode = entry.unix_mode().unwrap_or(0o644) & 0o777;
            let remaining = self.limits.max_unpacked_bytes.saturating_sub(unpacked);
            unpacked += write_entry(&mut entry, &target, mode, remaining).map_err(|error| {
                if error.is_empty() {
                    format!(
                        "the archive unpacks to more than the limit of {} bytes",
                        self.limits.max_unpacked_bytes
                    )
                } else {
                    error
                }
            })?;
        }
        Ok(())
    }
}

/// Writes one file fresh (whatever was at `target`, a symlink included, is
/// replaced, not followed), at most `remaining` bytes: past that it fails
/// with an empty message, which the caller words.
fn write_entry(reader: &mut impl Read, target: &Path, mode: u32, remaining: u64) -> Result<u64, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Ok(metadata) = std::fs::symlink_metadata(target) {
        if metadata.is_dir() {
            return Err(format!("{} is a directory", target.display()));
        }
        std::fs::remove_file(target).map_err(|error| format!("replace {}: {error}", target.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode.max(0o400))
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)
        .map_err(|error| format!("create {}: {error}", target.display()))?;
    let written = std::io::copy(&mut reader.take(remaining.saturating_add(1)), &mut file)
        .map_err(|error| format!("write {}: {error}", target.display()))?;
    if written > remaining {
        let _ = std::fs::remove_file(target);
        return Err(String::new());
    }
    Ok(written)
}

/// Copies a fetched, non-archive file to `target`.
fn place_file(fetched: &Path, target: &Path, mode: u32, limit: u64) -> Result<(), String> {
    let mut input = std::fs::File::open(fetched).map_err(|error| format!("open the download: {error}"))?;
    write_entry(&mut input, target, mode, limit)
        .map(|_| ())
        .map_err(|error| {
            if error.is_empty() {
                "the file is too large".to_string()
            } else {
                error
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_checksums_parse() {
        assert_eq!(
            Source::parse("http://h/a.tgz"),
            Ok(Source::Http("http://h/a.tgz".into()))
        );
        assert_eq!(Source::parse("file://local/x"), Ok(Source::File("local/x".into())));
        assert_eq!(Source::parse("../alloc/x"), Ok(Source::File("../alloc/x".into())));
        assert!(
            Source::parse("git::https://example.com/r")
                .expect_err("no git")
                .contains("\"git\" getter")
        );
        assert!(Source::parse("https://example.com/x").is_err());
        assert!(Source::parse("ftp://example.com/x").is_err());
        assert_eq!(
            Source::Http("http://h/dir/app.tar.gz?x=1".into()).file_name(),
            "app.tar.gz"
        );
        assert_eq!(Source::Http("http://h/".into()).file_name(), "h");
        let checksum = Checksum::parse(&format!("sha256:{}", "A".repeat(64))).expect("valid");
        assert_eq!(checksum.key(), format!("sha256-{}", "a".repeat(64)));
        assert!(Checksum::parse("sha256:abc").is_err());
        assert!(Checksum::parse("crc:00").is_err());
        assert!(Checksum::parse("nocolon").is_err());
        let mut hasher = Hasher::new("sha256");
        hasher.update(b"abc");
        assert_eq!(
            hasher.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn install(dir: &Path, archive: ArchiveKind, limits: ArtifactLimits) -> Install {
        let sandbox = dir.join("alloc-id");
        std::fs::create_dir_all(sandbox.join("t/local")).expect("dirs");
        Install {
            destination: sandbox.join("t/local"),
            sandbox,
            archive: Some(archive),
            mode: "any".into(),
            file_name: "a.tar".into(),
            limits,
        }
    }

    fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o755);
            header.set_entry_type(tar::EntryType::Regular);
            // Written raw, so that hostile names reach the unpacker.
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            header.set_cksum();
            builder.append(&header, *data).expect("append");
        }
        builder.into_inner().expect("finish")
    }

    #[test]
    fn tar_archives_unpack_and_keep_modes() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let install = install(dir.path(), ArchiveKind::Tar, ArtifactLimits::default());
        let archive = dir.path().join("a.tar");
        std::fs::write(&archive, tar_with(&[("bin/run.sh", b"#!/bin/sh\n"), ("conf", b"x")])).expect("write");
        install.run(&archive).expect("unpacks");
        let run = install.destination.join("bin/run.sh");
        assert_eq!(std::fs::read(&run).expect("file"), b"#!/bin/sh\n");
        assert_eq!(
            std::fs::metadata(&run).expect("meta").permissions().mode() & 0o777,
            0o755
        );
        // Unpacking again over the same files works.
        install.run(&archive).expect("unpacks again");
    }

    #[test]
    fn hostile_archives_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let install = install(dir.path(), ArchiveKind::Tar, ArtifactLimits::default());
        let archive = dir.path().join("a.tar");
        std::fs::write(&archive, tar_with(&[("../../../escape", b"x")])).expect("write");
        let error = install.run(&archive).expect_err("refused");
        assert!(error.contains("leaves its destination"), "{error}");
        assert!(!dir.path().join("escape").exists());

        // A link entry.
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "link", "/etc").expect("link");
        std::fs::write(&archive, builder.into_inner().expect("finish")).expect("write");
        assert!(install.run(&archive).expect_err("refused").contains("is a link"));

        // A symlink planted in the destination is replaced, not followed.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "keep").expect("write");
        std::os::unix::fs::symlink(&outside, install.destination.join("conf")).expect("symlink");
        std::fs::write(&archive, tar_with(&[("conf", b"new")])).expect("write");
        install.run(&archive).expect("unpacks");
        assert_eq!(std::fs::read_to_string(&outside).expect("outside"), "keep");
        assert_eq!(
            std::fs::read_to_string(install.destination.join("conf")).expect("conf"),
            "new"
        );
    }

    #[test]
    fn archive_sizes_and_counts_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = ArtifactLimits {
            max_unpacked_bytes: 100,
            max_entries: 3,
            ..ArtifactLimits::default()
        };
        let install = install(dir.path(), ArchiveKind::TarGz, limits);
        let archive = dir.path().join("a.tar.gz");
        let gz = |tar: Vec<u8>| {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(&tar).expect("compress");
            encoder.finish().expect("finish")
        };
        // A compression bomb in miniature: 1000 zeros unpack past 100 bytes.
        std::fs::write(&archive, gz(tar_with(&[("zeros", &[0u8; 1000])]))).expect("write");
        let error = install.run(&archive).expect_err("too big");
        assert!(error.contains("more than the limit of 100 bytes"), "{error}");
        assert!(!install.destination.join("zeros").exists());
        std::fs::write(
            &archive,
            gz(tar_with(&[("a", b"1"), ("b", b"2"), ("c", b"3"), ("d", b"4")])),
        )
        .expect("write");
        assert!(
            install
                .run(&archive)
                .expect_err("too many")
                .contains("more than 3 entries")
        );
    }

    #[test]
    fn zip_archives_unpack_and_refuse_escapes() {
        use zip::write::SimpleFileOptions;
        let dir = tempfile::tempdir().expect("tempdir");
        let install = install(dir.path(), ArchiveKind::Zip, ArtifactLimits::default());
        let archive = dir.path().join("a.zip");
        let build = |names: &[&str]| {
            let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for name in names {
                writer
                    .start_file(*name, SimpleFileOptions::default().unix_permissions(0o600))
                    .expect("start");
                writer.write_all(b"zipped").expect("write");
            }
            writer.finish().expect("finish").into_inner()
        };
        std::fs::write(&archive, build(&["dir/file.txt"])).expect("write");
        install.run(&archive).expect("unpacks");
        assert_eq!(
            std::fs::read_to_string(install.destination.join("dir/file.txt")).expect("file"),
            "zipped"
        );
        std::fs::write(&archive, build(&["../../evil"])).expect("write");
        assert!(install.run(&archive).is_err());
        assert!(!dir.path().join("evil").exists());
    }
}
