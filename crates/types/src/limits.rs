//! Drover's limits on what a job may ask for. Nomad leaves most of these
//! unbounded; Drover bounds them so that no input can make the servers
//! reserve unbounded memory, overflow a resource sum or store an object
//! that can no longer be addressed in a URL. [`crate::Job::validate`]
//! enforces them, and README.md lists them for users.

/// Most allocations one task group may ask for (`count`). The scheduler's
/// memory grows with the placements it makes, so an unbounded count could
/// exhaust a server.
pub const MAX_GROUP_COUNT: u32 = 100_000;

/// Longest job ID (and job name), in bytes. Job IDs are URL path segments
/// (`/v1/job/<id>`); the bound leaves room for the suffixes of dispatched
/// and periodic children within what HTTP servers accept in a path.
pub const MAX_JOB_ID_LEN: usize = 256;

/// Largest payload `job dispatch` takes, in bytes (Nomad's limit: 16 KiB).
pub const MAX_DISPATCH_PAYLOAD: usize = 16 * 1024;

/// Most meta entries one dispatch may carry, and the longest key or value.
pub const MAX_DISPATCH_META: usize = 64;
pub const MAX_DISPATCH_META_LEN: usize = 1024;

/// Most children of one parameterized or periodic job that may wait in its
/// `max_concurrent` queue; a dispatch beyond it is refused.
pub const MAX_QUEUED_CHILDREN: usize = 10_000;

/// Longest task group, task or namespace name, in bytes (Nomad's
/// namespace limit). Task names become directory names on clients.
pub const MAX_NAME_LEN: usize = 128;

/// Largest CPU ask of one task, in MHz (about a million 1 GHz cores).
pub const MAX_CPU_MHZ: i64 = 1 << 30;

/// Most reserved cores one task may ask for (core IDs are 16-bit).
pub const MAX_CORES: i64 = 1 << 16;

/// Largest memory (and `memory_max`) of one task, in MiB (1 PiB).
pub const MAX_MEMORY_MB: i64 = 1 << 30;

/// Largest ephemeral disk of one group, in MiB (1 PiB).
pub const MAX_DISK_MB: i64 = 1 << 30;

/// Largest network bandwidth ask, in Mbit/s.
pub const MAX_MBITS: i64 = 1 << 30;

/// Most instances one device request may ask for.
pub const MAX_DEVICE_COUNT: u64 = 1 << 16;

/// Most networks, ports and device requests one task or group may list.
pub const MAX_LIST_LEN: usize = 1024;

/// Whether `name` may name a task or task group: not empty, at most
/// [`MAX_NAME_LEN`] bytes, no `/` or NUL, and not `.` or `..` (task names
/// become directory names under an allocation's directory). Returns what
/// is wrong with it.
pub fn check_path_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".to_string());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "name is {} bytes long, more than Drover's limit of {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("name may not be {name:?}"));
    }
    if name.contains('/') {
        return Err("name may not contain '/'".to_string());
    }
    if name.contains('\0') {
        return Err("name may not contain a null character".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_names_refuse_what_could_leave_a_directory() {
        assert_eq!(check_path_name("web"), Ok(()));
        assert_eq!(check_path_name("..web"), Ok(()));
        assert_eq!(check_path_name(&"a".repeat(MAX_NAME_LEN)), Ok(()));
        for bad in ["", ".", "..", "a/b", "/", "a\0b"] {
            assert!(check_path_name(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_path_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }
}
