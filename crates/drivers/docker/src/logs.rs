//! Copies a container's output from the Engine's log API into the task's
//! sinks (the log collector's FIFOs).
//!
//! Lines are read with their timestamps, in batches of what the stream has
//! ready; after each batch is written the newest time copied goes into a
//! small file beside the FIFOs (`.<task>.docker.since`). A restarted agent
//! resumes from it:
//! the Engine keeps the container's log (`json-file`), so nothing written
//! while the agent was down is lost, and lines at or before the mark are
//! skipped so nothing is copied twice.

use bollard::Docker;
use bollard::container::LogOutput;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The task's rotated log files, written by the driver itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotatedFiles {
    pub dir: PathBuf,
    pub stdout_prefix: String,
    pub stderr_prefix: String,
    pub max_files: u32,
    pub max_file_size: u64,
}

/// Where one container's output goes: sinks someone else reads (the log
/// collector's FIFOs, `/dev/null`), or rotated files the copy writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogTarget {
    Sinks { stdout: PathBuf, stderr: PathBuf },
    Rotated(RotatedFiles),
}

/// A container's log target and its resume mark (unix nanoseconds of the
/// last line copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSinks {
    pub target: LogTarget,
    pub mark: PathBuf,
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Parses the Engine's RFC 3339 timestamps (`2026-12-05T12:00:00.123Z`,
/// UTC) into unix nanoseconds.
pub fn parse_timestamp(text: &str) -> Option<i128> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock_parts = clock.splitn(3, ':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let second: i64 = clock_parts.next()?.parse().ok()?;
    if fraction.len() > 9 || !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let nanos: i128 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(i128::from(seconds) * 1_000_000_000 + nanos)
}

/// Splits a timestamped log line into its time and its text.
fn split_line(message: &[u8]) -> (Option<i128>, &[u8]) {
    let Some(space) = message.iter().position(|byte| *byte == b' ') else {
        return (None, message);
    };
    match std::str::from_utf8(&message[..space]).ok().and_then(parse_timestamp) {
        Some(time) => (Some(time), &message[space + 1..]),
        None => (None, message),
    }
}

/// The resume mark left by an earlier copy, if any.
pub fn read_mark(path: &std::path::Path) -> Option<i128> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The open sinks and the resume mark, moved to a blocking thread for each
/// batch of writes.
struct Writers {
    stdout: Box<dyn std::io::Write + Send>,
    stderr: Box<dyn std::io::Write + Send>,
    mark: std::fs::File,
}

impl Writers {
    /// Writes one batch, then records the newest time copied. The mark is
    /// written after the output, so a crash in between repeats at most this
    /// batch and never loses a line.
    fn write_batch(&mut self, out: &[u8], err: &[u8], newest: i128) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::FileExt;
        self.stdout.write_all(out)?;
        self.stderr.write_all(err)?;
        self.stdout.flush()?;
        self.stderr.flush()?;
        if newest > 0 {
            // Fixed width, so a shorter number never leaves stale digits.
            self.mark.write_all_at(format!("{newest:>40}\n").as_bytes(), 0)?;
        }
        Ok(())
    }
}

/// Most log frames gathered into one batch of writes.
const BATCH: usize = 512;

/// Copies the container's output until its log stream ends (the container
/// stopped, or the Engine went away). Resumes after `resume_after` (unix
/// nanoseconds) when given.
pub async fn copy_logs(docker: Docker, container_id: String, sinks: LogSinks, resume_after: Option<i128>) {
    let opened = {
        let sinks = sinks.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<Writers> {
            let (stdout, stderr): (Box<dyn std::io::Write + Send>, Box<dyn std::io::Write + Send>) = match &sinks.target
            {
                LogTarget::Sinks { stdout, stderr } => (
                    Box::new(driver_api::open_output(stdout)?),
                    Box::new(driver_api::open_output(stderr)?),
                ),
                LogTarget::Rotated(files) => {
                    std::fs::create_dir_all(&files.dir)?;
                    let writer = |prefix: &str| {
                        logmon::rotate::RotatingWriter::new(&files.dir, prefix, files.max_files, files.max_file_size)
                    };
                    (
                        Box::new(writer(&files.stdout_prefix)),
                        Box::new(writer(&files.stderr_prefix)),
                    )
                }
            };
            Ok(Writers {
                stdout,
                stderr,
                mark: std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(&sinks.mark)?,
            })
        })
        .await
    };
    let mut writers = match opened {
        Ok(Ok(writers)) => writers,
        Ok(Err(error)) => {
            tracing::warn!(container = %container_id, %error, "cannot open the task's log sinks");
            return;
        }
        Err(error) => {
            tracing::warn!(container = %container_id, %error, "cannot open the task's log sinks");
            return;
        }
    };
    let since_seconds = resume_after.map_or(0, |nanos| i32::try_from(nanos / 1_000_000_000).unwrap_or(0));
    let options = bollard::query_parameters::LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        timestamps: true,
        since: since_seconds,
        ..Default::default()
    };
    let mut stream = docker.logs(&container_id, Some(options));
    let mut newest = resume_after.unwrap_or(0);
    loop {
        let Some(first) = stream.next().await else { break };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match futures::FutureExt::now_or_never(stream.next()) {
                Some(Some(item)) => batch.push(item),
                _ => break,
            }
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut ended = false;
        for item in batch {
            let (buffer, message) = match &item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => (&mut out, message),
                Ok(LogOutput::StdErr { message }) => (&mut err, message),
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(error) => {
                    tracing::debug!(container = %container_id, %error, "log stream ended");
                    ended = true;
                    break;
                }
            };
            let (time, text) = split_line(message);
            if let Some(time) = time {
                if resume_after.is_some_and(|after| time <= after) {
                    continue;
                }
                newest = newest.max(time);
            }
            buffer.extend_from_slice(text);
        }
        let stamp = newest;
        let written = tokio::task::spawn_blocking(move || {
            let result = writers.write_batch(&out, &err, stamp);
            (writers, result)
        })
        .await;
        match written {
            Ok((back, Ok(()))) => writers = back,
            Ok((_, Err(error))) => {
                tracing::warn!(container = %container_id, %error, "writing the task's log failed");
                return;
            }
            Err(error) => {
                tracing::warn!(container = %container_id, %error, "log writer failed");
                return;
            }
        }
        if ended {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_unix_nanoseconds() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(
            parse_timestamp("2026-12-05T12:07:20.123456789Z"),
            Some(1_796_472_440_123_456_789)
        );
        assert_eq!(parse_timestamp("2000-02-29T00:00:00Z"), Some(951_782_400_000_000_000));
        for bad in [
            "",
            "garbage",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.1234567890Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_lose_their_timestamp() {
        let (time, text) = split_line(b"1970-01-01T00:00:02Z hello world\n");
        assert_eq!(time, Some(2_000_000_000));
        assert_eq!(text, b"hello world\n");
        let (time, text) = split_line(b"no timestamp here\n");
        assert_eq!(time, None);
        assert_eq!(text, b"no timestamp here\n");
    }
}
