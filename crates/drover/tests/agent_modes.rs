//! File modes of what a real dev agent keeps: the data dir and the client
//! dir are the owner's only, the node secret is 0600, and every task's
//! `secrets/` is 0700 with 0600 files; a data dir left with loose modes (an
//! older version's) is tightened when the agent starts.

use api_client::Client;
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

const JOB: &str = r#"
job "modes" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["60"]
      }
      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
"#;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("stat {}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_owner_only_and_loose_modes_are_fixed_on_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let agent = common::start_agent(&data).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    let job = jobspec::parse(JOB, "modes.nomad.hcl", &jobspec::ParseOptions::default()).expect("parses");
    client.register_job(jobspec::job_to_api(&job)).await.expect("register");
    let alloc_id = common::running_alloc(&client, "modes").await;
    let secrets = data.join(format!("alloc/{alloc_id}/t/secrets"));
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&data.join("client")), 0o700, "client dir");
    assert_eq!(mode(&data.join("client/secret-id")), 0o600, "node secret");
    assert_eq!(mode(&data.join("alloc")), 0o711, "allocation root");
    assert_eq!(mode(&secrets), 0o700, "task secrets");
    agent.shutdown().await;

    // What an older version left behind: everything world-readable.
    chmod(&data, 0o755);
    chmod(&data.join("client"), 0o755);
    chmod(&data.join("client/secret-id"), 0o644);
    chmod(&secrets, 0o755);
    std::fs::write(secrets.join("token"), b"t").expect("write a secret");
    chmod(&secrets.join("token"), 0o644);
    let agent = common::start_agent(&data).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&data.join("client")), 0o700, "client dir");
    assert_eq!(mode(&data.join("client/secret-id")), 0o600, "node secret");
    // The allocation is rebuilt as the client reattaches to it.
    let started = Instant::now();
    while mode(&secrets) != 0o700 {
        assert!(started.elapsed() < DEADLINE, "secrets dir still {:o}", mode(&secrets));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mode(&secrets.join("token")), 0o600, "a secret file");
    common::stop_job_and_wait(&client, "modes").await;
    agent.shutdown().await;
}
