//! The binary as Nomad users and scripts call it: through a `nomad`
//! symlink (`nomad agent -dev`, `nomad job status`), with single-dash
//! flags, the agent found through `NOMAD_ADDR`, and `-json` / `-t` output;
//! `status PREFIX`, `eval list|status`, `version`, `ui`, shell completions,
//! and a region the cluster does not serve refused.

mod common;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Kills the agent when the test ends, however it ends.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nomad_symlink(dir: &Path) -> PathBuf {
    let link = dir.join("nomad");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_drover"), &link).expect("symlink nomad");
    link
}

/// Runs a CLI with only `NOMAD_*` variables telling it where to go.
fn run(binary: &Path, address: &str, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .env_remove("DROVER_ADDR")
        .env_remove("DROVER_TOKEN")
        .env_remove("DROVER_NAMESPACE")
        .env("NOMAD_ADDR", address)
        .output()
        .expect("the CLI runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nomad_symlink_runs_the_agent_and_the_cli_as_nomad_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nomad = nomad_symlink(dir.path());
    let http_port = common::cluster::free_port();
    let rpc_port = common::cluster::free_port();
    let address = format!("http://127.0.0.1:{http_port}");
    let log = std::fs::File::create(dir.path().join("agent.log")).expect("log file");
    let _agent = Agent(
        Command::new(&nomad)
            .args([
                "agent",
                "-dev",
                &format!("-http-addr=127.0.0.1:{http_port}"),
                &format!("-rpc-addr=127.0.0.1:{rpc_port}"),
                "-data-dir",
            ])
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("nomad agent -dev starts"),
    );
    let api = api_client::Client::new(address.clone());
    common::cluster::eventually(Duration::from_secs(20), "the dev agent's node", async || {
        api.nodes("").await.ok().filter(|nodes| !nodes.is_empty())
    })
    .await;
    let job = json!({
        "ID": "batch-web", "Name": "batch-web", "Type": "batch", "Datacenters": ["dc1"],
        "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{
            "Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"},
            "Resources": {"CPU": 20, "MemoryMB": 16}
        }]}]
    });
    let registered = api.register_job(job).await.expect("register");

    // `nomad job status` lists it, found through NOMAD_ADDR alone.
    let listing = stdout(&run(&nomad, &address, &["job", "status"]));
    assert!(listing.contains("batch-web"), "{listing}");
    // Help and errors name the binary as it was called.
    let help = stdout(&run(&nomad, &address, &["-help"]));
    assert!(help.contains("Usage: nomad"), "{help}");

    // `drover job status -json` is the API's JSON; `-t` a Go template.
    let drover = Path::new(env!("CARGO_BIN_EXE_drover"));
    let json_out = stdout(&run(drover, &address, &["job", "status", "-json"]));
    let jobs: Value = serde_json::from_str(&json_out).expect("JSON output");
    assert_eq!(jobs[0]["ID"], "batch-web", "{json_out}");
    let one: Value = serde_json::from_str(&stdout(&run(
        &nomad,
        &address,
        &["job", "status", "-json", "batch-web"],
    )))
    .expect("JSON job");
    assert_eq!(one["Type"], "batch");
    let templated = stdout(&run(
        &nomad,
        &address,
        &["job", "status", "-t", "{{ range . }}{{ .ID }}:{{ .Type }};{{ end }}"],
    ));
    assert_eq!(templated, "batch-web:batch;");

    // Namespaces from the flag or NOMAD_NAMESPACE.
    let other = stdout(&run(&nomad, &address, &["job", "status", "-json", "-namespace=*"]));
    assert!(other.contains("batch-web"), "{other}");

    // `status PREFIX` finds the one object; evaluations have their commands.
    let status = stdout(&run(&nomad, &address, &["status", "batch-w"]));
    assert!(status.contains("batch-web") && status.contains("batch"), "{status}");
    let evals = stdout(&run(&nomad, &address, &["eval", "list", "-verbose"]));
    assert!(evals.contains(&registered.eval_id), "{evals}");
    let eval = stdout(&run(&nomad, &address, &["eval", "status", &registered.eval_id[..8]]));
    assert!(eval.contains("batch-web"), "{eval}");
    let by_eval_prefix = stdout(&run(&nomad, &address, &["status", &registered.eval_id[..8]]));
    assert!(by_eval_prefix.contains("TriggeredBy"), "{by_eval_prefix}");

    assert!(stdout(&run(&nomad, &address, &["version"])).starts_with("Drover v"));
    let completion = stdout(&run(&nomad, &address, &["completion", "bash"]));
    assert!(
        completion.contains("_nomad()") && completion.contains("status"),
        "{completion}"
    );
    assert_eq!(stdout(&run(&nomad, &address, &["ui"])).trim(), format!("{address}/ui/"));

    // `-namespace` puts a job file without a namespace into that one;
    // NOMAD_NAMESPACE reads it back.
    api.apply_namespace(&api_types::Namespace {
        name: "prod".to_string(),
        ..Default::default()
    })
    .await
    .expect("namespace prod");
    let file = dir.path().join("prod.nomad.hcl");
    std::fs::write(
        &file,
        r#"job "prod-batch" {
  type = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#,
    )
    .expect("job file");
    let file = file.to_str().expect("UTF-8 path");
    stdout(&run(
        &nomad,
        &address,
        &["job", "run", "-detach", "-namespace=prod", file],
    ));
    let in_prod = Command::new(&nomad)
        .args([
            "job",
            "status",
            "-t",
            "{{ range . }}{{ .ID }}@{{ .Namespace }}{{ end }}",
        ])
        .env_remove("DROVER_ADDR")
        .env_remove("DROVER_NAMESPACE")
        .env("NOMAD_ADDR", &address)
        .env("NOMAD_NAMESPACE", "prod")
        .output()
        .expect("the CLI runs");
    assert_eq!(stdout(&in_prod), "prod-batch@prod");
    assert!(!stdout(&run(&nomad, &address, &["job", "status"])).contains("prod-batch"));
    let agent_json = run(&nomad, &address, &["agent", "-dev", "-json"]);
    assert!(!agent_json.status.success());
    assert!(String::from_utf8_lossy(&agent_json.stderr).contains("-json applies to the API commands"));

    // A region this cluster does not serve is refused, not ignored.
    let elsewhere = run(&nomad, &address, &["job", "status", "-region=mars"]);
    assert!(!elsewhere.status.success());
    assert!(String::from_utf8_lossy(&elsewhere.stderr).contains("region \"mars\""));
    assert!(stdout(&run(&nomad, &address, &["job", "status", "-region=global"])).contains("batch-web"));
    // -json applies to read commands only.
    let refused = run(&nomad, &address, &["job", "stop", "-json", "batch-web"]);
    assert!(!refused.status.success());
}
