//! Native service discovery end to end on a real dev agent: three
//! python http servers under raw_exec register three healthy instances;
//! killing one server's process fails its http check, which takes it out
//! of the API, DNS (over a real UDP socket, and `dig`) and a template,
//! then `check_restart` restarts the task and the instance comes back;
//! stopping the job removes every registration.

mod common;

use api_client::Client;
use api_types::ServiceRegistration;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

const WEB: &str = r#"
job "web" {
  type = "service"
  group "web" {
    count = 3
    network {
      port "http" {}
    }
    service {
      name = "web"
      port = "http"
      tags = ["v1"]
      meta {
        version = "1"
      }
      check {
        type     = "http"
        path     = "/"
        interval = "300ms"
        timeout  = "1s"
        header {
          X-Probe = ["drover"]
        }
        check_restart {
          limit = 2
          grace = "5s"
        }
      }
    }
    task "server" {
      driver       = "raw_exec"
      kill_timeout = "1s"
      config {
        command = "/bin/sh"
        args    = ["-c", "python3 -m http.server $NOMAD_PORT_http --bind 127.0.0.1 >/dev/null 2>&1 & exec sleep 100000"]
      }
      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
"#;

const WATCHER: &str = r#"
job "watcher" {
  type = "service"
  group "watcher" {
    task "render" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "exec sleep 100000"]
      }
      template {
        data        = "{{ range nomadService \"web\" }}{{ .Address }}:{{ .Port }}\n{{ end }}"
        destination = "local/web.txt"
        change_mode = "noop"
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

fn job_value(hcl: &str) -> serde_json::Value {
    let job = jobspec::parse(hcl, "test.nomad.hcl", &jobspec::ParseOptions::default()).expect("test job parses");
    jobspec::job_to_api(&job)
}

async fn instances(client: &Client) -> Vec<ServiceRegistration> {
    client
        .get::<Vec<ServiceRegistration>>("/v1/service/web")
        .await
        .expect("read the service")
        .value
}

fn healthy(instance: &ServiceRegistration) -> bool {
    !instance.checks.is_empty() && instance.checks.iter().all(|check| check.status == "passing")
}

/// Polls `probe` until it gives a value, or fails after the deadline.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A hand-built query over UDP: (response code, SRV ports).
async fn srv_ports(dns: SocketAddr, name: &str) -> (ResponseCode, BTreeSet<u16>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut query = Message::new();
    query
        .set_id(4242)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    query.add_query(Query::query(Name::from_ascii(name).expect("name"), RecordType::SRV));
    socket
        .send_to(&query.to_vec().expect("encode"), dns)
        .await
        .expect("send");
    let mut buffer = vec![0u8; 4096];
    let (length, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
        .await
        .expect("a DNS answer within 5s")
        .expect("receive");
    let answer = Message::from_vec(&buffer[..length]).expect("decodable answer");
    assert_eq!(answer.id(), 4242);
    let ports = answer
        .answers()
        .iter()
        .filter_map(|record| match record.data() {
            RData::SRV(srv) => Some(srv.port()),
            _ => None,
        })
        .collect();
    (answer.response_code(), ports)
}

/// The pid of a task's python server (a child of its shell).
fn python_pid(alloc_id: &str) -> Option<u32> {
    let needle = format!("NOMAD_ALLOC_ID={alloc_id}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        if !String::from_utf8_lossy(&cmdline).contains("http.server") {
            return None;
        }
        let environ = std::fs::read(entry.path().join("environ")).ok()?;
        environ
            .split(|byte| *byte == 0)
            .any(|var| var == needle.as_bytes())
            .then_some(pid)
    })
}

/// Kills, when dropped, every process whose environment points into the
/// test's data dir, so a failed test leaves no server holding its ports.
struct Reaper(std::path::PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let needle = format!("NOMAD_ALLOC_DIR={}", self.0.display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ
                .split(|byte| *byte == 0)
                .any(|var| var.starts_with(needle.as_bytes()))
            {
                let _ = std::process::Command::new("kill")
                    .arg("-9")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
}

fn ports_of(instances: &[ServiceRegistration]) -> BTreeSet<u16> {
    instances.iter().map(|instance| instance.port).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_register_fail_their_checks_restart_and_leave_dns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _reaper = Reaper(dir.path().to_path_buf());
    let agent = common::start_agent(dir.path()).await;
    let client = Client::new(format!("http://{}", agent.http_addr));
    let dns = agent.dns_addr.expect("the agent serves DNS");
    client.register_job(job_value(WEB)).await.expect("register web");
    client.register_job(job_value(WATCHER)).await.expect("register watcher");

    // Three replicas, three healthy instances.
    let all = eventually("3 healthy instances", || async {
        let found = instances(&client).await;
        (found.len() == 3 && found.iter().all(healthy)).then_some(found)
    })
    .await;
    let all_ports = ports_of(&all);
    assert_eq!(all_ports.len(), 3, "{all:?}");
    for instance in &all {
        assert_eq!(instance.address, "127.0.0.1");
        assert_eq!(instance.tags, ["v1"]);
        assert_eq!(instance.meta.get("version").map(String::as_str), Some("1"));
        assert_eq!(instance.namespace, "default");
        assert!(
            instance
                .id
                .starts_with(&format!("_nomad-task-{}-web-web-http", instance.alloc_id))
        );
    }
    // The other endpoints agree.
    let list: Vec<api_types::ServiceListEntry> = client.get("/v1/services").await.expect("list").value;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].services[0].service_name, "web");
    assert_eq!(list[0].services[0].tags, ["v1"]);
    let by_job: Vec<ServiceRegistration> = client.get("/v1/job/web/services").await.expect("job").value;
    assert_eq!(by_job.len(), 3);
    let by_alloc: Vec<ServiceRegistration> = client
        .get(&format!("/v1/allocation/{}/services", all[0].alloc_id))
        .await
        .expect("alloc")
        .value;
    assert_eq!(by_alloc.len(), 1);
    let chosen: Vec<ServiceRegistration> = client
        .get("/v1/service/web?choose=2|client-a")
        .await
        .expect("choose")
        .value;
    let again: Vec<ServiceRegistration> = client
        .get("/v1/service/web?choose=2|client-a")
        .await
        .expect("choose")
        .value;
    assert_eq!(chosen.len(), 2);
    assert_eq!(chosen, again);
    let checks: serde_json::Value = client
        .get(&format!("/v1/client/allocation/{}/checks", all[0].alloc_id))
        .await
        .expect("checks")
        .value;
    let check = checks
        .as_object()
        .and_then(|checks| checks.values().next())
        .expect("one check");
    assert_eq!(check["Status"], "passing", "{checks}");
    assert_eq!(check["StatusCode"], 200, "{checks}");

    // DNS answers exactly the healthy instances.
    let (code, ports) = srv_ports(dns, "web.service.nomad.").await;
    assert_eq!((code, &ports), (ResponseCode::NoError, &all_ports));
    let (code, ports) = srv_ports(dns, "v1.web.service.default.nomad.").await;
    assert_eq!((code, &ports), (ResponseCode::NoError, &all_ports));
    assert_eq!(srv_ports(dns, "nope.service.nomad.").await.0, ResponseCode::NXDomain);
    assert_eq!(srv_ports(dns, "v9.web.service.nomad.").await.0, ResponseCode::NXDomain);

    // The template lists the three instances.
    let watcher = common::running_alloc(&client, "watcher").await;
    let rendered = client::AllocDir::new(&dir.path().join("alloc"), &watcher)
        .task_dir("render")
        .join("local/web.txt");
    let listed = |text: &str| -> BTreeSet<u16> {
        text.lines()
            .filter_map(|line| line.rsplit_once(':').and_then(|(_, port)| port.parse().ok()))
            .collect()
    };
    eventually("the template lists 3 instances", || async {
        let text = std::fs::read_to_string(&rendered).unwrap_or_default();
        (listed(&text) == all_ports).then_some(())
    })
    .await;

    // Kill one server: its check fails, it leaves DNS and the template...
    let victim = all[0].clone();
    let pid = python_pid(&victim.alloc_id).expect("the victim's python process");
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status();
    let others: BTreeSet<u16> = all_ports.iter().copied().filter(|port| *port != victim.port).collect();
    eventually("the victim leaves DNS", || async {
        let (code, ports) = srv_ports(dns, "web.service.nomad.").await;
        (code == ResponseCode::NoError && ports == others).then_some(())
    })
    .await;
    eventually("the template drops the victim", || async {
        let text = std::fs::read_to_string(&rendered).unwrap_or_default();
        (listed(&text) == others).then_some(())
    })
    .await;

    // ...then check_restart restarts the task and the instance comes back.
    let restarted = eventually("check_restart restarts the task", || async {
        let alloc: serde_json::Value = client
            .get(&format!("/v1/allocation/{}", victim.alloc_id))
            .await
            .expect("alloc")
            .value;
        let state = &alloc["TaskStates"]["server"];
        (state["Restarts"].as_u64().unwrap_or(0) >= 1).then(|| state.clone())
    })
    .await;
    let reasons: Vec<String> = restarted["Events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["RestartReason"].as_str().map(str::to_string))
        .collect();
    assert!(
        reasons.iter().any(|reason| reason.contains("healthcheck")),
        "the restart came from the check: {reasons:?}"
    );
    eventually("the victim is healthy again", || async {
        let found = instances(&client).await;
        (found.len() == 3 && found.iter().all(healthy)).then_some(())
    })
    .await;
    eventually("DNS answers three again", || async {
        let (_, ports) = srv_ports(dns, "web.service.nomad.").await;
        (ports == all_ports).then_some(())
    })
    .await;

    let all = instances(&client).await;
    dig_flood_and_delete(&client, dns, &all).await;

    // Stopping the job removes every instance.
    common::stop_job_and_wait(&client, "web").await;
    eventually("no instance left", || async {
        instances(&client).await.is_empty().then_some(())
    })
    .await;
    assert_eq!(srv_ports(dns, "web.service.nomad.").await.0, ResponseCode::NXDomain);
    common::stop_job_and_wait(&client, "watcher").await;
    agent.shutdown().await;
}

/// `dig` (Debian's dnsutils) sees exactly the healthy instances; hostile
/// datagrams do not stop the server; an operator's delete takes one
/// instance out. (One agent runs at a time: two dev agents would give
/// their jobs the same ports.)
async fn dig_flood_and_delete(client: &Client, dns: SocketAddr, all: &[ServiceRegistration]) {
    assert!(
        std::process::Command::new("dig").arg("-v").output().is_ok(),
        "dig is missing: install Debian's dnsutils (scripts/test.sh does)"
    );
    let dig = |name: &str, record: &str| {
        let output = std::process::Command::new("dig")
            .args([
                format!("@{}", dns.ip()),
                "-p".to_string(),
                dns.port().to_string(),
                name.to_string(),
                record.to_string(),
                "+short".to_string(),
                "+tries=1".to_string(),
                "+time=3".to_string(),
            ])
            .output()
            .expect("run dig");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    // `+short` SRV lines: priority weight port target.
    let srv = dig("web.service.nomad", "SRV");
    let ports: BTreeSet<u16> = srv
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2).and_then(|port| port.parse().ok()))
        .collect();
    assert_eq!(ports, ports_of(all), "dig said:\n{srv}");
    assert!(srv.lines().all(|line| line.ends_with("7f000001.addr.nomad.")), "{srv}");
    assert_eq!(dig("web.service.nomad", "A").lines().count(), all.len());
    assert!(dig("web.service.nomad", "A").lines().all(|line| line == "127.0.0.1"));
    assert_eq!(dig("7f000001.addr.nomad", "A").trim(), "127.0.0.1");

    // Hostile datagrams get no crash: garbage, truncations, a flood past
    // the rate limit; the server answers afterwards.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..2_000u32 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let length = (rng % 1500) as usize;
        let datagram: Vec<u8> = (0..length).map(|at| (rng >> (at % 56)) as u8 ^ round as u8).collect();
        let _ = socket.send_to(&datagram, dns);
    }
    let answered = eventually("DNS answers after the flood", || async {
        let (code, ports) = srv_ports(dns, "web.service.nomad.").await;
        (code == ResponseCode::NoError).then_some(ports)
    })
    .await;
    assert_eq!(answered, ports_of(all));

    // An operator's delete takes one instance out of the API and DNS.
    let gone = &all[0];
    let wrong = client.delete(&format!("/v1/service/other/{}", gone.id)).await;
    assert_eq!(wrong.err().and_then(|error| error.status()), Some(404));
    client
        .delete(&format!("/v1/service/web/{}", gone.id))
        .await
        .expect("delete one registration");
    let left = instances(client).await;
    assert_eq!(left.len(), all.len() - 1);
    assert_ne!(left[0].id, gone.id);
    let (_, ports) = srv_ports(dns, "web.service.nomad.").await;
    assert_eq!(ports, ports_of(&left));
}
