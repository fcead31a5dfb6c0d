//! File modes for what the client keeps private: the agent's data dir
//! (0700), the client dir (0700), the node secret (0600), each task's
//! `secrets/` dir (0700, files 0600). Directories and files are created with
//! these modes and existing ones are tightened on every start, so a data
//! dir from an older version is fixed too.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the agent's data dir and the client dir: the owner only.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of the allocation root: others may pass through to a path they
/// know, but not list the allocations.
pub const TRAVERSE_ONLY_DIR: u32 = 0o711;
/// Mode of secret files.
pub const PRIVATE_FILE: u32 = 0o600;

const STICKY: u32 = 0o1000;

/// Creates `dir` (and missing parents) with `mode`, or sets an existing
/// directory's permission bits to `mode`. A sticky directory (a shared one
/// such as `/tmp`, given as a data dir by mistake) is left as it is and
/// reported, since tightening it would lock other users out.
pub fn ensure_dir_mode(dir: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let current = meta.permissions().mode() & 0o7777;
            if current & STICKY != 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    mode = format!("{current:o}"),
                    "a shared (sticky) directory holds Drover's data; its mode is left alone"
                );
                return Ok(());
            }
            if current != mode {
                std::fs::set_permissions(dir, Permissions::from_mode(mode))?;
            }
            Ok(())
        }
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", dir.display()),
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(mode).create(dir)?;
            // The umask may have taken bits away from what was asked.
            std::fs::set_permissions(dir, Permissions::from_mode(mode))
        }
        Err(error) => Err(error),
    }
}

/// Writes `contents` to a new file readable by the owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE)
        .open(path)?;
    // An existing file keeps its mode through `open`: set it.
    file.set_permissions(Permissions::from_mode(PRIVATE_FILE))?;
    file.write_all(contents)
}

/// Sets an existing file's mode to owner-only, if it has other bits.
pub fn tighten_file(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_file() && meta.permissions().mode() & 0o7777 != PRIVATE_FILE {
        std::fs::set_permissions(path, Permissions::from_mode(PRIVATE_FILE))?;
    }
    Ok(())
}

/// A secrets directory: the directory 0700 and every file directly in it
/// 0600 (symlinks are not followed).
pub fn ensure_secrets_dir(dir: &Path) -> std::io::Result<()> {
    ensure_dir_mode(dir, PRIVATE_DIR)?;
    for entry in std::fs::read_dir(dir)? {
        tighten_file(&entry?.path())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn directories_are_created_and_fixed_to_the_mode_asked() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b");
        ensure_dir_mode(&dir, PRIVATE_DIR).expect("create");
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).expect("chmod");
        ensure_dir_mode(&dir, PRIVATE_DIR).expect("fix");
        assert_eq!(mode(&dir), 0o700);
        ensure_dir_mode(&dir, TRAVERSE_ONLY_DIR).expect("fix");
        assert_eq!(mode(&dir), 0o711);
        // A shared sticky directory is left alone.
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, Permissions::from_mode(0o1777)).expect("chmod");
        ensure_dir_mode(&shared, PRIVATE_DIR).expect("left alone");
        assert_eq!(mode(&shared), 0o1777);
        // A file where a directory should be is an error.
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        assert!(ensure_dir_mode(&file, PRIVATE_DIR).is_err());
    }

    #[test]
    fn private_files_and_secrets_dirs_are_owner_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, b"old").expect("write");
        std::fs::set_permissions(&secret, Permissions::from_mode(0o644)).expect("chmod");
        write_private(&secret, b"new").expect("write private");
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(std::fs::read(&secret).expect("read"), b"new");

        let secrets = tmp.path().join("secrets");
        std::fs::create_dir(&secrets).expect("mkdir");
        std::fs::set_permissions(&secrets, Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(secrets.join("token"), b"t").expect("write");
        std::fs::set_permissions(secrets.join("token"), Permissions::from_mode(0o644)).expect("chmod");
        ensure_secrets_dir(&secrets).expect("tighten");
        assert_eq!(mode(&secrets), 0o700);
        assert_eq!(mode(&secrets.join("token")), 0o600);
    }
}
