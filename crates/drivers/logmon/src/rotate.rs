//! A writer that spreads a stream over numbered files the way Nomad names
//! them (`<prefix>.0`, `<prefix>.1`…), starting a new file when the current
//! one reaches `max_file_size` and deleting the oldest so that at most
//! `max_files` remain. No file ever grows past the limit: a write that
//! crosses it is split.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One stream's rotated files.
#[derive(Debug)]
pub struct RotatingWriter {
    dir: PathBuf,
    prefix: String,
    max_files: u32,
    max_file_size: u64,
    index: u32,
    size: u64,
    file: Option<File>,
}

/// The indexes of `<prefix>.N` files in `dir`, ascending.
pub fn existing_indexes(dir: &Path, prefix: &str) -> Vec<u32> {
    let mut indexes: Vec<u32> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name();
                    let rest = name.to_str()?.strip_prefix(prefix)?.strip_prefix('.')?;
                    rest.parse::<u32>().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    indexes.sort_unstable();
    indexes
}

impl RotatingWriter {
    /// Continues where an earlier writer stopped: appends to the highest
    /// existing file while it has room.
    pub fn new(
        dir: impl Into<PathBuf>,
        prefix: impl Into<String>,
        max_files: u32,
        max_file_size: u64,
    ) -> RotatingWriter {
        let dir = dir.into();
        let prefix = prefix.into();
        let index = existing_indexes(&dir, &prefix).last().copied().unwrap_or(0);
        let size = std::fs::metadata(dir.join(format!("{prefix}.{index}")))
            .map(|meta| meta.len())
            .unwrap_or(0);
        let mut writer = RotatingWriter {
            dir,
            prefix,
            max_files: max_files.max(1),
            max_file_size: max_file_size.max(1),
            index,
            size,
            file: None,
        };
        // The file exists from the start, as Nomad's do: reading the logs
        // of a task that printed nothing yet gives nothing, not an error.
        // A failure here is met again, and reported, at the first write.
        let _ = writer.current();
        writer
    }

    fn path(&self, index: u32) -> PathBuf {
        self.dir.join(format!("{}.{index}", self.prefix))
    }

    fn current(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path(self.index))?;
            self.file = Some(file);
        }
        // Just opened above when it was missing.
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("log file not open"))
    }

    /// Moves to the next file and deletes those beyond `max_files`.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        self.index = self.index.saturating_add(1);
        self.size = 0;
        let keep_from = self.index.saturating_sub(self.max_files - 1);
        for old in existing_indexes(&self.dir, &self.prefix) {
            if old < keep_from {
                match std::fs::remove_file(self.path(old)) {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

impl Write for RotatingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.size >= self.max_file_size {
            self.rotate()?;
        }
        let room = usize::try_from(self.max_file_size - self.size).unwrap_or(usize::MAX);
        let chunk = &buf[..buf.len().min(room)];
        let written = self.current()?.write(chunk)?;
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(dir: &Path, prefix: &str) -> Vec<(u32, u64)> {
        existing_indexes(dir, prefix)
            .into_iter()
            .map(|index| {
                let len = std::fs::metadata(dir.join(format!("{prefix}.{index}")))
                    .expect("meta")
                    .len();
                (index, len)
            })
            .collect()
    }

    #[test]
    fn rotates_splits_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = RotatingWriter::new(dir.path(), "web.stdout", 3, 10);
        writer.write_all(b"0123456789abcdefghij-and-then-some").expect("write");
        writer.flush().expect("flush");
        // 34 bytes over 10-byte files: .0 .1 .2 .3, and .0 deleted.
        assert_eq!(sizes(dir.path(), "web.stdout"), vec![(1, 10), (2, 10), (3, 4)]);
        let last = std::fs::read_to_string(dir.path().join("web.stdout.3")).expect("read");
        assert_eq!(last, "some");
    }

    #[test]
    fn a_new_writer_continues_the_last_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut writer = RotatingWriter::new(dir.path(), "t.stderr", 5, 8);
            writer.write_all(b"abcdefghijk").expect("write");
        }
        let mut writer = RotatingWriter::new(dir.path(), "t.stderr", 5, 8);
        writer.write_all(b"lmnopq").expect("write");
        assert_eq!(sizes(dir.path(), "t.stderr"), vec![(0, 8), (1, 8), (2, 1)]);
        // Other prefixes and stray names are left alone.
        std::fs::write(dir.path().join("t.stderr.fifo"), b"").expect("write");
        assert_eq!(existing_indexes(dir.path(), "t.stderr"), vec![0, 1, 2]);
        assert!(existing_indexes(dir.path(), "t.stdout").is_empty());
    }

    #[test]
    fn zero_limits_are_treated_as_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = RotatingWriter::new(dir.path(), "x", 0, 0);
        writer.write_all(b"ab").expect("write");
        assert_eq!(sizes(dir.path(), "x"), vec![(1, 1)]);
    }
}
