//! The collector on threads of this process: a writer's output reaches the
//! rotated files, stopping drains what is left, a process writing 1 GB
//! leaves at most `max_files × max_file_size` on disk, and a second
//! collector continues the files of the first.

use driver_api::LogPaths;
use logmon::{Collector, Launcher};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use types::LogConfig;

fn logs(dir: &Path, max_files: u32, max_file_size_mb: u32) -> LogPaths {
    LogPaths::for_task(
        dir,
        "web",
        LogConfig {
            max_files,
            max_file_size_mb,
            disabled: false,
        },
    )
}

fn log_files(dir: &Path, stream: &str) -> Vec<(String, u64)> {
    let prefix = format!("web.{stream}.");
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.starts_with(&prefix)
                .then(|| (name, entry.metadata().expect("meta").len()))
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn output_reaches_the_files_and_stop_drains_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = logs(dir.path(), 2, 1);
    let collector = Collector::ensure(&Launcher::InProcess, &logs).await.expect("start");
    let mut stdout = driver_api::open_output(collector.stdout_fifo()).expect("open stdout fifo");
    let mut stderr = driver_api::open_output(collector.stderr_fifo()).expect("open stderr fifo");
    stdout.write_all(b"hello\n").expect("write");
    stderr.write_all(b"oops\n").expect("write");
    drop((stdout, stderr));
    let fifo = collector.stdout_fifo().to_path_buf();
    collector.stop().await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("web.stdout.0")).expect("read"),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("web.stderr.0")).expect("read"),
        "oops\n"
    );
    assert!(!fifo.exists(), "the FIFO is removed with the collector");
}

#[tokio::test]
async fn a_gigabyte_of_stdout_stays_within_the_rotation_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (max_files, max_file_size_mb) = (3u32, 1u32);
    let logs = logs(dir.path(), max_files, max_file_size_mb);
    let collector = Collector::ensure(&Launcher::InProcess, &logs).await.expect("start");
    let stdout = driver_api::open_output(collector.stdout_fifo()).expect("open fifo");
    let status = tokio::task::spawn_blocking(move || {
        Command::new("/bin/sh")
            .args(["-c", "head -c 1000000000 /dev/zero; echo end"])
            .stdout(Stdio::from(stdout))
            .status()
    })
    .await
    .expect("join")
    .expect("run writer");
    assert!(status.success());
    collector.stop().await;
    let files = log_files(dir.path(), "stdout");
    let total: u64 = files.iter().map(|(_, len)| len).sum();
    let limit = u64::from(max_files) * (u64::from(max_file_size_mb) << 20);
    assert!(files.len() <= max_files as usize, "{files:?}");
    assert!(total <= limit, "{total} bytes on disk, limit {limit}: {files:?}");
    // 1 GB in 1 MiB files: the newest is number 953 (1_000_000_004 / 2^20).
    let newest = files.last().expect("files").0.clone();
    assert_eq!(newest, "web.stdout.953");
    let tail = std::fs::read(dir.path().join(&newest)).expect("read");
    assert!(tail.ends_with(b"\0end\n"), "the last bytes were written last");
}

#[tokio::test]
async fn a_new_collector_continues_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = logs(dir.path(), 5, 1);
    for line in ["first\n", "second\n"] {
        let collector = Collector::ensure(&Launcher::InProcess, &logs).await.expect("start");
        let mut stdout = driver_api::open_output(collector.stdout_fifo()).expect("open");
        stdout.write_all(line.as_bytes()).expect("write");
        drop(stdout);
        collector.stop().await;
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("web.stdout.0")).expect("read"),
        "first\nsecond\n"
    );
}

#[test]
fn opening_a_fifo_without_a_collector_fails_instead_of_hanging() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("lonely.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let error = driver_api::open_output(&fifo).expect_err("no reader");
    assert_eq!(error.raw_os_error(), Some(libc::ENXIO));
}
