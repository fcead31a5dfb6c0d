//! What the child process does between `fork` and `exec` to isolate the
//! task. Everything here runs in a forked copy of a multi-threaded
//! process, so it only makes system calls on data prepared beforehand
//! ([`Plan`]): no allocation, no locks.
//!
//! The steps: join the task's cgroup and the allocation's network
//! namespace; unshare the mount, IPC, UTS and
//! (unless `pid_mode = "host"`) PID namespaces; fork once more so the task
//! is the first process of its PID namespace, the intermediate process
//! staying behind to forward signals and to exit the way the task did;
//! make every mount private; bind the chroot's host directories read-only
//! and the allocation directory read-write; mount a fresh `/proc` and a
//! minimal `/dev`; set the hostname; chroot; set no_new_privs; drop every
//! capability outside the allowed set from the bounding set; switch to the
//! task's user.

use std::ffi::CString;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

/// Signals the intermediate process forwards to the task.
const FORWARDED: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTERM,
    libc::SIGALRM,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGTSTP,
];

/// The task's pid, for the intermediate's signal handler.
static TASK_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let pid = TASK_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and takes plain integers.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// A bind mount into the chroot.
#[derive(Debug)]
pub struct Bind {
    pub source: CString,
    pub target: CString,
    pub read_only: bool,
}

/// Everything the child needs, prepared by the parent.
#[derive(Debug)]
pub struct Plan {
    /// Open `cgroup.procs` files of the task's group.
    pub cgroup_fds: Vec<i32>,
    /// The allocation's network namespace, open, when it has one.
    pub netns_fd: Option<i32>,
    /// Whether the task gets its own PID namespace.
    pub new_pid_ns: bool,
    /// Whether the task gets its own IPC namespace.
    pub new_ipc_ns: bool,
    /// The chroot (the task directory).
    pub root: CString,
    pub binds: Vec<Bind>,
    /// `<root>/proc`.
    pub proc_dir: CString,
    /// `<root>/dev`.
    pub dev_dir: CString,
    /// Host device nodes and their targets under `<root>/dev`.
    pub devices: Vec<(CString, CString)>,
    /// Symlinks under `<root>/dev`: (link text, link path).
    pub dev_links: Vec<(CString, CString)>,
    pub hostname: CString,
    /// The working directory inside the chroot.
    pub work_dir: CString,
    /// The user to become, when not root.
    pub user: Option<(u32, u32)>,
    /// Capabilities kept in the bounding set.
    pub keep_caps: Vec<u32>,
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs in the child of `fork`: isolates it, then returns so the caller
/// execs the task. The intermediate process never returns.
pub fn isolate(plan: &Plan) -> io::Result<()> {
    cgroups::join_self(&plan.cgroup_fds)?;
    if let Some(fd) = plan.netns_fd {
        // SAFETY: setns on a descriptor the parent keeps open.
        check(unsafe { libc::setns(fd, libc::CLONE_NEWNET) })?;
    }
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWUTS;
    if plan.new_ipc_ns {
        flags |= libc::CLONE_NEWIPC;
    }
    if plan.new_pid_ns {
        flags |= libc::CLONE_NEWPID;
    }
    // SAFETY: unshare takes flags only.
    check(unsafe { libc::unshare(flags) })?;
    if plan.new_pid_ns {
        split_off_the_task()?;
    }
    // SAFETY: setsid takes no arguments. The task leads its own session and
    // process group, so signals for the intermediate's group skip it.
    unsafe {
        libc::setsid();
    }
    build_root(plan)?;
    // SAFETY: sethostname reads `len` bytes of a live CString.
    check(unsafe { libc::sethostname(plan.hostname.as_ptr(), plan.hostname.as_bytes().len()) })?;
    // SAFETY: chroot and chdir read live NUL-terminated strings.
    check(unsafe { libc::chroot(plan.root.as_ptr()) })?;
    check(unsafe { libc::chdir(plan.work_dir.as_ptr()) })?;
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    for cap in 0..64u32 {
        if !plan.keep_caps.contains(&cap) {
            // SAFETY: prctl with integer arguments; EINVAL for caps beyond
            // the kernel's last one is expected and ignored.
            unsafe {
                libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0);
            }
        }
    }
    if let Some((uid, gid)) = plan.user {
        let groups = [gid];
        // SAFETY: setgroups reads one gid from a live array; setgid and
        // setuid take integers.
        check(unsafe { libc::setgroups(1, groups.as_ptr()) })?;
        check(unsafe { libc::setgid(gid) })?;
        check(unsafe { libc::setuid(uid) })?;
    }
    Ok(())
}

/// Forks the task into the new PID namespace. The intermediate process
/// closes every inherited descriptor (so the parent sees its exec succeed),
/// forwards signals to the task, waits for it and exits the same way.
fn split_off_the_task() -> io::Result<()> {
    // SAFETY: sigset operations on a local, zeroed set; sigprocmask blocks
    // the forwarded signals until the handlers are in place.
    let mut blocked: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut blocked);
        for signal in FORWARDED {
            libc::sigaddset(&mut blocked, *signal);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &blocked, std::ptr::null_mut());
    }
    // SAFETY: fork in the child of a fork: this process has one thread.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: as above; the task gets the default mask back.
        unsafe {
            libc::sigprocmask(libc::SIG_UNBLOCK, &blocked, std::ptr::null_mut());
        }
        return Ok(());
    }
    TASK_PID.store(pid, Ordering::SeqCst);
    // SAFETY: close_range and signal take integers and a handler with the
    // C signature; waitpid writes into a local; _exit never returns.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        for signal in FORWARDED {
            libc::signal(*signal, forward as *const () as libc::sighandler_t);
        }
        libc::sigprocmask(libc::SIG_UNBLOCK, &blocked, std::ptr::null_mut());
        let mut status: libc::c_int = 0;
        loop {
            let waited = libc::waitpid(pid, &mut status, 0);
            if waited == pid {
                break;
            }
            if waited < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                libc::_exit(127);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            libc::signal(signal, libc::SIG_DFL);
            let mut only: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut only);
            libc::sigaddset(&mut only, signal);
            libc::sigprocmask(libc::SIG_UNBLOCK, &only, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(127)
    }
}

fn mount(
    source: *const libc::c_char,
    target: &CString,
    fstype: *const libc::c_char,
    flags: libc::c_ulong,
    data: *const libc::c_char,
) -> io::Result<()> {
    // SAFETY: every pointer is null or a live NUL-terminated string.
    check(unsafe { libc::mount(source, target.as_ptr(), fstype, flags, data.cast()) })
}

/// Mounts the chroot's contents inside the new mount namespace.
fn build_root(plan: &Plan) -> io::Result<()> {
    let null = std::ptr::null();
    let slash = c"/";
    // Nothing mounted from here on reaches the host's namespace.
    // SAFETY: live NUL-terminated strings.
    check(unsafe { libc::mount(null, slash.as_ptr(), null, libc::MS_REC | libc::MS_PRIVATE, null.cast()) })?;
    for bind in &plan.binds {
        mount(
            bind.source.as_ptr(),
            &bind.target,
            null,
            libc::MS_BIND | libc::MS_REC,
            null,
        )?;
        if bind.read_only {
            mount(
                null,
                &bind.target,
                null,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID,
                null,
            )?;
        }
    }
    if plan.new_pid_ns {
        mount(
            c"proc".as_ptr(),
            &plan.proc_dir,
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            null,
        )?;
    } else {
        mount(
            c"/proc".as_ptr(),
            &plan.proc_dir,
            null,
            libc::MS_BIND | libc::MS_REC,
            null,
        )?;
    }
    mount(
        c"tmpfs".as_ptr(),
        &plan.dev_dir,
        c"tmpfs".as_ptr(),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        c"mode=755,size=64k".as_ptr(),
    )?;
    for (device, target) in &plan.devices {
        // SAFETY: open/close on a live path; the file is the bind target.
        let fd = unsafe { libc::open(target.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o666) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened.
        unsafe {
            libc::close(fd);
        }
        mount(device.as_ptr(), target, null, libc::MS_BIND, null)?;
    }
    for (text, path) in &plan.dev_links {
        // SAFETY: live NUL-terminated strings.
        check(unsafe { libc::symlink(text.as_ptr(), path.as_ptr()) })?;
    }
    Ok(())
}
