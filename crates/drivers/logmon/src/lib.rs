//! The log collector: a task's stdout and stderr go into two FIFOs in the
//! allocation's log directory (`.<task>.stdout.fifo`), and a collector
//! copies them into rotated files with Nomad's names (`<task>.stdout.N`),
//! honouring the task's `logs { max_files, max_file_size }`.
//!
//! The collector must outlive the agent (DESIGN.md R3: after `kill -9` of
//! the client the task's logs continue), so in production it is its own
//! process: the agent re-executes its own binary with a hidden subcommand
//! (`drover logmon <json>`, see [`run_process`]) in a new process group. A
//! pid file beside the FIFOs (`.<task>.logmon`, pid and start time) lets a
//! restarted agent find the collector again instead of starting a second
//! one; if it is gone, a new one opens the same FIFOs. Drivers only see
//! the FIFO paths ([`driver_api::TaskConfig::stdout_path`]).
//!
//! [`Launcher::InProcess`] runs the same loop on threads of the calling
//! process, for tests that have no drover binary; its logs stop with the
//! process.

#![allow(unsafe_code)]

pub mod pump;
pub mod rotate;

use driver_api::LogPaths;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a collector process may take to open its FIFOs.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping collector may take to drain and exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// What a collector process prints once both FIFOs are open.
const READY_LINE: &str = "logmon ready";

/// What one collector process is told to do (its only argument, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogmonConfig {
    pub stdout_fifo: PathBuf,
    pub stderr_fifo: PathBuf,
    pub dir: PathBuf,
    pub stdout_prefix: String,
    pub stderr_prefix: String,
    pub max_files: u32,
    pub max_file_size: u64,
}

impl LogmonConfig {
    /// The collector of the task whose logs are laid out as `logs`.
    pub fn for_logs(logs: &LogPaths) -> LogmonConfig {
        LogmonConfig {
            stdout_fifo: logs.dir.join(format!(".{}.fifo", logs.stdout_prefix)),
            stderr_fifo: logs.dir.join(format!(".{}.fifo", logs.stderr_prefix)),
            dir: logs.dir.clone(),
            stdout_prefix: logs.stdout_prefix.clone(),
            stderr_prefix: logs.stderr_prefix.clone(),
            max_files: logs.config.max_files.max(1),
            max_file_size: u64::from(logs.config.max_file_size_mb.max(1)) << 20,
        }
    }

    /// `.<task>.logmon`: the pid file of the task's collector process.
    fn pid_file(&self) -> PathBuf {
        let task = self
            .stdout_prefix
            .strip_suffix(".stdout")
            .unwrap_or(&self.stdout_prefix);
        self.dir.join(format!(".{task}.logmon"))
    }
}

/// Why a collector could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartCollectorError {
    #[error("create log FIFO {path}: {source}")]
    Fifo { path: PathBuf, source: std::io::Error },
    #[error("start log collector {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("log collector {program} did not become ready: {reason}")]
    NotReady { program: PathBuf, reason: String },
}

/// How collectors are run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Launcher {
    /// On threads of this process (tests; logs stop with the process).
    #[default]
    InProcess,
    /// As `program args… <config JSON>` (the agent: `drover logmon`).
    Process { program: PathBuf, args: Vec<String> },
}

/// Runs a collector in the current process until SIGTERM or SIGINT: the
/// body of the hidden `drover logmon <json>` subcommand. Returns the exit
/// code.
pub fn run_process(config_json: &str) -> i32 {
    use nix::sys::signal::{SigHandler, SigSet, Signal, signal};
    let config: LogmonConfig = match serde_json::from_str(config_json) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("logmon: bad config: {error}");
            return 2;
        }
    };
    // SAFETY: SIG_IGN installs no Rust code as a handler; ignoring SIGHUP
    // and SIGPIPE keeps the collector alive when the agent's terminal or a
    // reader goes away.
    unsafe {
        let _ = signal(Signal::SIGHUP, SigHandler::SigIgn);
        let _ = signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
    // Block the stop signals before any thread exists so every thread
    // inherits the mask and only `wait` below receives them.
    let mut stop_signals = SigSet::empty();
    stop_signals.add(Signal::SIGTERM);
    stop_signals.add(Signal::SIGINT);
    if let Err(error) = stop_signals.thread_block() {
        eprintln!("logmon: block signals: {error}");
        return 1;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let threads = match start_pumps(&config, &stop) {
        Ok(threads) => threads,
        Err(error) => {
            eprintln!("logmon: {error}");
            return 1;
        }
    };
    println!("{READY_LINE}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Wait for a stop signal; give up on our own once the log directory
    // is gone (the allocation was garbage-collected while no agent was
    // there to stop us).
    let timeout = libc::timespec { tv_sec: 1, tv_nsec: 0 };
    loop {
        // SAFETY: sigtimedwait reads a live signal set and timeout and
        // writes nothing (null info).
        let received = unsafe { libc::sigtimedwait(stop_signals.as_ref(), std::ptr::null_mut(), &timeout) };
        if received > 0 || !config.dir.exists() {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut code = 0;
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                eprintln!("logmon: {error}");
                code = 1;
            }
            Err(_) => code = 1,
        }
    }
    code
}

fn make_fifo(path: &Path) -> Result<(), StartCollectorError> {
    match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(error) => Err(StartCollectorError::Fifo {
            path: path.to_path_buf(),
            source: error.into(),
        }),
    }
}

type PumpThread = std::thread::JoinHandle<std::io::Result<()>>;

/// Opens both FIFOs (creating them if needed) and starts one pump thread
/// per stream.
fn start_pumps(config: &LogmonConfig, stop: &Arc<AtomicBool>) -> Result<Vec<PumpThread>, StartCollectorError> {
    let mut threads = Vec::new();
    for (fifo, prefix) in [
        (&config.stdout_fifo, &config.stdout_prefix),
        (&config.stderr_fifo, &config.stderr_prefix),
    ] {
        make_fifo(fifo)?;
        let file = pump::open_fifo(fifo).map_err(|source| StartCollectorError::Fifo {
            path: fifo.clone(),
            source,
        })?;
        let writer = rotate::RotatingWriter::new(&config.dir, prefix.clone(), config.max_files, config.max_file_size);
        let stop = Arc::clone(stop);
        threads.push(std::thread::spawn(move || pump::pump(file, writer, &stop)));
    }
    Ok(threads)
}

/// A running collector of one task.
#[derive(Debug)]
pub struct Collector {
    config: LogmonConfig,
    running: Running,
}

#[derive(Debug)]
enum Running {
    Threads {
        stop: Arc<AtomicBool>,
        threads: Vec<PumpThread>,
    },
    /// A process, ours or found through the pid file after a restart.
    Process {
        pid: i32,
        start_time: u64,
        /// Set (by the reaper) once our own child has exited.
        exited: Option<tokio::sync::watch::Receiver<bool>>,
    },
}

/// Field 22 of `/proc/<pid>/stat`: when the process started.
fn start_time(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state).
    if matches!(fields.first(), Some(&"Z" | &"X")) {
        return None;
    }
    fields.get(22 - 3)?.parse().ok()
}

impl Collector {
    /// The FIFO the task's stdout goes to.
    pub fn stdout_fifo(&self) -> &Path {
        &self.config.stdout_fifo
    }

    /// The FIFO the task's stderr goes to.
    pub fn stderr_fifo(&self) -> &Path {
        &self.config.stderr_fifo
    }

    /// Finds the task's collector left by an earlier agent (through its pid
    /// file) or starts one. Returns once both FIFOs have a reader.
    pub async fn ensure(launcher: &Launcher, logs: &LogPaths) -> Result<Collector, StartCollectorError> {
        let config = LogmonConfig::for_logs(logs);
        std::fs::create_dir_all(&config.dir).map_err(|source| StartCollectorError::Fifo {
            path: config.dir.clone(),
            source,
        })?;
        match launcher {
            Launcher::InProcess => {
                let stop = Arc::new(AtomicBool::new(false));
                let threads = start_pumps(&config, &stop)?;
                Ok(Collector {
                    config,
                    running: Running::Threads { stop, threads },
                })
            }
            Launcher::Process { program, args } => {
                if let Some((pid, start)) = read_pid_file(&config.pid_file())
                    && start_time(pid) == Some(start)
                {
                    tracing::debug!(pid, fifo = %config.stdout_fifo.display(), "reattached to log collector");
                    return Ok(Collector {
                        config,
                        running: Running::Process {
                            pid,
                            start_time: start,
                            exited: None,
                        },
                    });
                }
                spawn_process(config, program, args).await
            }
        }
    }

    /// Stops the collector after it has copied everything the task wrote,
    /// and removes the FIFOs.
    pub async fn stop(self) {
        match self.running {
            Running::Threads { stop, threads } => {
                stop.store(true, Ordering::SeqCst);
                let _ = tokio::task::spawn_blocking(move || {
                    for thread in threads {
                        let _ = thread.join();
                    }
                })
                .await;
            }
            Running::Process {
                pid,
                start_time: start,
                exited,
            } => {
                let target = nix::unistd::Pid::from_raw(pid);
                if start_time(pid) == Some(start) {
                    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM);
                }
                let gone = async {
                    match exited {
                        Some(mut exited) => {
                            let _ = exited.wait_for(|done| *done).await;
                        }
                        None => {
                            while start_time(pid) == Some(start) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                };
                if tokio::time::timeout(STOP_TIMEOUT, gone).await.is_err() && start_time(pid) == Some(start) {
                    tracing::warn!(pid, "log collector did not stop in time; killing it");
                    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
                }
                let _ = std::fs::remove_file(self.config.pid_file());
            }
        }
        for fifo in [&self.config.stdout_fifo, &self.config.stderr_fifo] {
            let _ = std::fs::remove_file(fifo);
        }
    }
}

fn read_pid_file(path: &Path) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace();
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

async fn spawn_process(
    config: LogmonConfig,
    program: &Path,
    args: &[String],
) -> Result<Collector, StartCollectorError> {
    use tokio::io::AsyncBufReadExt;
    let spawn_error = |source| StartCollectorError::Spawn {
        program: program.to_path_buf(),
        source,
    };
    let not_ready = |reason: String| StartCollectorError::NotReady {
        program: program.to_path_buf(),
        reason,
    };
    let json = serde_json::to_string(&config).map_err(|error| not_ready(error.to_string()))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .arg(json)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        // Its own group: a Ctrl-C aimed at the agent does not reach it.
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(spawn_error)?;
    let pid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .ok_or_else(|| not_ready("exited at once".to_string()))?;
    let stdout = child.stdout.take().ok_or_else(|| not_ready("no stdout".to_string()))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(READY_TIMEOUT, lines.next_line()).await;
    match ready {
        Ok(Ok(Some(line))) if line.trim() == READY_LINE => {}
        other => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(not_ready(format!("{other:?}")));
        }
    }
    let start = start_time(pid).unwrap_or(0);
    if let Err(error) = std::fs::write(config.pid_file(), format!("{pid} {start}\n")) {
        tracing::warn!(%error, "could not write the log collector's pid file");
    }
    let (exited_tx, exited_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = child.wait().await;
        let _ = exited_tx.send(true);
    });
    Ok(Collector {
        config,
        running: Running::Process {
            pid,
            start_time: start,
            exited: Some(exited_rx),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::LogConfig;

    #[test]
    fn fifo_and_pid_file_names_follow_the_task() {
        let logs = LogPaths::for_task(
            "/a/alloc/logs",
            "web",
            LogConfig {
                max_files: 3,
                max_file_size_mb: 2,
                disabled: false,
            },
        );
        let config = LogmonConfig::for_logs(&logs);
        assert_eq!(config.stdout_fifo, PathBuf::from("/a/alloc/logs/.web.stdout.fifo"));
        assert_eq!(config.stderr_fifo, PathBuf::from("/a/alloc/logs/.web.stderr.fifo"));
        assert_eq!(config.pid_file(), PathBuf::from("/a/alloc/logs/.web.logmon"));
        assert_eq!(config.max_files, 3);
        assert_eq!(config.max_file_size, 2 << 20);
    }

    #[test]
    fn a_bad_config_is_refused() {
        assert_eq!(run_process("{not json"), 2);
    }
}
