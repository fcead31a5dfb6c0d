//! Paths a job names inside an allocation (template destinations, files a
//! template reads, artifact destinations and archive entries) are resolved
//! here: relative to a base directory, lexically, and confined to the
//! allocation's directory; a path's real location (symlinks resolved) is
//! checked again before anything is read or written through it.

use std::path::{Component, Path, PathBuf};

/// `name` relative to `base` (a leading `/` too), `..` resolved lexically;
/// the result must be strictly inside `sandbox`.
pub fn confine(sandbox: &Path, base: &Path, name: &str) -> Result<PathBuf, String> {
    if name.is_empty() {
        return Err("path is empty".to_string());
    }
    if name.contains('\0') {
        return Err(format!("path {name:?} holds a NUL byte"));
    }
    let mut path = base.to_path_buf();
    for component in Path::new(name).components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                path.pop();
            }
            Component::Normal(part) => path.push(part),
        }
    }
    if !path.starts_with(sandbox) || path == sandbox {
        return Err(format!("path {name:?} leaves the allocation directory"));
    }
    Ok(path)
}

/// An archive entry's name as a relative path with no `..`, no root and
/// no NUL: anything else is refused, not rewritten.
pub fn entry_path(name: &Path) -> Result<PathBuf, String> {
    let mut relative = PathBuf::new();
    for component in name.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!("archive entry {} leaves its destination", name.display()));
            }
        }
    }
    Ok(relative)
}

/// Whether `path`, with its symlinks resolved, is still inside `sandbox`.
pub fn still_inside(sandbox: &Path, path: &Path) -> Result<bool, std::io::Error> {
    let real_sandbox = std::fs::canonicalize(sandbox)?;
    Ok(std::fs::canonicalize(path)?.starts_with(real_sandbox))
}

/// Creates `dir` and checks that it is, symlinks resolved, inside `sandbox`.
pub fn create_dir_inside(sandbox: &Path, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|error| format!("create {}: {error}", dir.display()))?;
    match still_inside(sandbox, dir) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("{} leaves the allocation directory", dir.display())),
        Err(error) => Err(format!("{}: {error}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confine_resolves_relative_to_the_base_and_stays_inside() {
        let sandbox = Path::new("/data/alloc/a1");
        let base = Path::new("/data/alloc/a1/web");
        assert_eq!(confine(sandbox, base, "local/x"), Ok(base.join("local/x")));
        assert_eq!(confine(sandbox, base, "/local/x"), Ok(base.join("local/x")));
        assert_eq!(confine(sandbox, base, "../alloc/x"), Ok(sandbox.join("alloc/x")));
        assert!(confine(sandbox, base, "../../x").is_err());
        assert!(confine(sandbox, base, "..").is_err());
        assert!(confine(sandbox, base, "").is_err());
        assert!(confine(sandbox, base, "a\0b").is_err());
    }

    #[test]
    fn archive_entries_may_not_climb() {
        assert_eq!(entry_path(Path::new("./a/b")), Ok(PathBuf::from("a/b")));
        assert!(entry_path(Path::new("../x")).is_err());
        assert!(entry_path(Path::new("a/../../x")).is_err());
        assert!(entry_path(Path::new("/etc/passwd")).is_err());
    }
}
