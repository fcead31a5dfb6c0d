//! The exec driver's isolation, against the real kernel: the task is
//! process 1 of its own PID namespace and cannot see the host's processes;
//! it cannot write outside its directories and sees none of the host's
//! files beyond its chroot; it runs as `nobody` with no_new_privs and a
//! cut-down bounding set; the kernel kills it at its memory limit and the
//! kill is reported as an OOM kill.

use driver_api::{Driver, ExitResult, LogPaths, TaskConfig};
use exec::ExecDriver;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use types::LogConfig;

const PATIENCE: Duration = Duration::from_secs(30);

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    id: u32,
}

static NEXT_FIXTURE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        for sub in [
            "alloc/logs",
            "alloc/data",
            "alloc/tmp",
            "web/local",
            "web/secrets",
            "web/tmp",
        ] {
            std::fs::create_dir_all(root.join(sub)).expect("dirs");
        }
        Fixture {
            _dir: dir,
            root,
            id: NEXT_FIXTURE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    fn task(&self, script: &str) -> TaskConfig {
        TaskConfig {
            // One per fixture: tests run in parallel, and the alloc ID
            // names the task's cgroup.
            alloc_id: format!("iso{}-{}", std::process::id(), self.id),
            task_name: "web".to_string(),
            config: serde_json::json!({"command": "/bin/sh", "args": ["-c", script]}),
            env: BTreeMap::from([("PATH".to_string(), "/usr/bin:/bin:/usr/sbin:/sbin".to_string())]),
            alloc_dir: self.root.join("alloc"),
            task_dir: self.root.join("web"),
            logs: LogPaths::for_task(self.root.join("alloc/logs"), "web", LogConfig::default()),
            ..TaskConfig::default()
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.root.join("alloc/logs/web.stdout.0")).unwrap_or_default()
    }
}

async fn run(driver: &ExecDriver, task: TaskConfig) -> ExitResult {
    let handle = driver.start(task).await.expect("start");
    let exit = tokio::time::timeout(PATIENCE, driver.wait(&handle))
        .await
        .expect("the task exits")
        .expect("wait");
    driver.destroy(&handle, false).await.expect("destroy");
    exit
}

#[tokio::test]
async fn the_task_cannot_see_host_processes() {
    let fixture = Fixture::new();
    let driver = ExecDriver::default();
    let host_pid = std::process::id();
    let script = format!(
        "echo pid=$$; if [ -e /proc/{host_pid} ]; then echo host-visible; else echo host-hidden; fi; \
         echo procs=$(ls /proc | grep -c '^[0-9]')"
    );
    let exit = run(&driver, fixture.task(&script)).await;
    assert!(exit.successful(), "{exit:?}: {}", fixture.stdout());
    let out = fixture.stdout();
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains("host-hidden"), "{out}");
    let procs: u32 = out
        .lines()
        .find_map(|line| line.strip_prefix("procs="))
        .and_then(|count| count.parse().ok())
        .expect("a process count");
    assert!(procs <= 4, "the task sees {procs} processes: {out}");
}

#[tokio::test]
async fn the_task_cannot_write_outside_its_directories() {
    let fixture = Fixture::new();
    let driver = ExecDriver::default();
    let script = "for path in /etc/x /usr/x /bin/x /x /proc/x /dev/x; do \
                      touch $path 2>/dev/null && echo wrote $path; done; \
                  touch /local/ok && echo local-ok; \
                  touch /alloc/data/ok && echo alloc-ok; \
                  touch /tmp/ok && echo tmp-ok; \
                  ls /work /root /home >/dev/null 2>&1 && echo sees-host; \
                  echo uid=$(id -u); \
                  grep -E '^(NoNewPrivs|CapBnd|CapEff):' /proc/self/status";
    let exit = run(&driver, fixture.task(script)).await;
    assert!(exit.successful(), "{exit:?}");
    let out = fixture.stdout();
    assert!(!out.contains("wrote"), "{out}");
    for expected in [
        "local-ok",
        "alloc-ok",
        "tmp-ok",
        "uid=65534",
        "NoNewPrivs:\t1",
        "CapEff:\t0000000000000000",
    ] {
        assert!(out.contains(expected), "{expected} missing: {out}");
    }
    assert!(!out.contains("sees-host"), "{out}");
    // Nomad's default set: chown, dac_override, fowner, fsetid, kill,
    // setgid, setuid, setpcap, net_bind_service, sys_chroot, mknod,
    // audit_write, setfcap.
    assert!(out.contains("CapBnd:\t00000000a80405fb"), "{out}");
    assert!(fixture.root.join("web/local/ok").exists());
    assert!(fixture.root.join("alloc/data/ok").exists());
    // The read-only binds were the host's own directories, untouched.
    assert!(!std::path::Path::new("/etc/x").exists());
}

#[tokio::test]
async fn the_task_is_killed_at_its_memory_limit() {
    let fixture = Fixture::new();
    let driver = ExecDriver::default();
    let mut task = fixture.task("exec tail /dev/zero");
    task.resources.memory_mb = 32;
    let exit = run(&driver, task).await;
    assert_eq!(exit.signal, 9, "{exit:?}");
    assert!(exit.oom_killed, "{exit:?}");
}

#[tokio::test]
async fn unknown_users_and_config_keys_are_refused() {
    let fixture = Fixture::new();
    let driver = ExecDriver::default();
    let mut task = fixture.task("true");
    task.user = "no-such-user-here".to_string();
    assert!(driver.start(task).await.is_err());
    let mut task = fixture.task("true");
    task.config["volumes"] = serde_json::json!(["/:/host"]);
    let error = driver.start(task).await.expect_err("unknown key");
    assert!(error.to_string().contains("volumes"), "{error}");
    let mut task = fixture.task("true");
    task.config["cap_add"] = serde_json::json!(["sys_admin"]);
    assert!(driver.start(task).await.is_err());
}

/// A host volume mounted read-only: the task reads the host's files at the
/// mount point and cannot write there; a read-write one takes its writes;
/// a mount point a task turned into a symlink out of its root is refused.
#[tokio::test]
async fn host_volumes_are_mounted_with_their_mode() {
    let fixture = Fixture::new();
    let driver = ExecDriver::default();
    let shared = tempfile::tempdir().expect("host volume");
    std::fs::write(shared.path().join("hello.txt"), "from the host\n").expect("write");
    let mut task = fixture.task(
        "cat /srv/data/hello.txt; touch /srv/data/new 2>/dev/null && echo wrote-ro; \
         touch /srv/rw/new && echo wrote-rw",
    );
    let writable = tempfile::tempdir().expect("writable volume");
    std::fs::set_permissions(writable.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    task.mounts = vec![
        driver_api::Mount {
            host_path: shared.path().to_path_buf(),
            task_path: PathBuf::from("/srv/data"),
            read_only: true,
        },
        driver_api::Mount {
            host_path: writable.path().to_path_buf(),
            task_path: PathBuf::from("/srv/rw"),
            read_only: false,
        },
    ];
    let exit = run(&driver, task.clone()).await;
    assert!(exit.successful(), "{exit:?}: {}", fixture.stdout());
    let out = fixture.stdout();
    assert!(out.contains("from the host\n"), "{out}");
    assert!(!out.contains("wrote-ro"), "{out}");
    assert!(out.contains("wrote-rw"), "{out}");
    assert!(!shared.path().join("new").exists());
    assert!(writable.path().join("new").exists());

    // A symlink at the mount point, aimed out of the task's root.
    let outside = tempfile::tempdir().expect("outside");
    std::fs::remove_dir_all(fixture.root.join("web/srv/data")).expect("remove the mount point");
    std::os::unix::fs::symlink(outside.path(), fixture.root.join("web/srv/data")).expect("symlink");
    let error = driver.start(task.clone()).await.expect_err("refused");
    assert!(error.to_string().contains("leaves the task's root"), "{error}");
    // Under a directory the chroot takes from the host: refused, not hidden.
    task.mounts.truncate(1);
    task.mounts[0].task_path = PathBuf::from("/etc/app");
    let error = driver.start(task).await.expect_err("refused");
    assert!(
        error.to_string().contains("which the chroot takes from the host"),
        "{error}"
    );
}
