//! The collector's loop: read a stream's FIFO and write it into rotated
//! files until told to stop, then drain what is left and return.
//!
//! The FIFO is opened read-write and non-blocking: holding a write end of
//! its own means the reader never sees end-of-file when a task exits or is
//! restarted (the next run of the task writes into the same FIFO), and a
//! writer opening it never blocks.

use crate::rotate::RotatingWriter;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How long one poll waits before the stop flag is looked at again.
const POLL_MS: u16 = 100;
/// The read buffer: the size of a default pipe buffer.
const BUFFER: usize = 64 * 1024;

/// Opens a FIFO the way the pump reads it (read-write, non-blocking).
pub fn open_fifo(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

/// Copies everything readable from `fifo` into `writer`. A write error
/// (a full disk) drops the data rather than stalling the task.
fn drain(fifo: &mut File, writer: &mut RotatingWriter, buffer: &mut [u8]) -> std::io::Result<()> {
    loop {
        match fifo.read(buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => {
                if let Err(error) = writer.write_all(&buffer[..read]) {
                    tracing::warn!(%error, "writing a log file failed; output dropped");
                }
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// Pumps `fifo` into `writer` until `stop` is set, then drains and returns.
pub fn pump(mut fifo: File, mut writer: RotatingWriter, stop: &Arc<AtomicBool>) -> std::io::Result<()> {
    let mut buffer = vec![0u8; BUFFER];
    loop {
        // Read the flag before draining, so the last drain happens after
        // the stop was requested.
        let stopping = stop.load(Ordering::SeqCst);
        drain(&mut fifo, &mut writer, &mut buffer)?;
        if stopping {
            return writer.flush();
        }
        let mut fds = [nix::poll::PollFd::new(fifo.as_fd(), nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(POLL_MS)) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(error) => return Err(error.into()),
        }
    }
}
