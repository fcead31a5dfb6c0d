//! The jobspec endpoints over real HTTP on a dev agent: `POST /v1/jobs/parse`
//! (with and without `Canonicalize`, with `Variables` as var-file content)
//! and `PUT /v1/validate/job`, answered as Nomad documents them.

mod common;

use drover::agent::Agent;
use serde_json::{Value, json};

const JOB: &str = r#"
variable "image" {
  type    = string
  default = "busybox:1"
}

job "web" {
  datacenters = ["dc1"]
  group "api" {
    task "server" {
      driver = "docker"
      config {
        image = var.image
        args  = ["--port", "${NOMAD_PORT_http}"]
      }
    }
  }
}
"#;

struct Fixture {
    agent: Agent,
    http: reqwest::Client,
    base: String,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let agent = common::start_agent(dir.path()).await;
        let base = format!("http://{}", agent.http_addr);
        Fixture {
            agent,
            http: reqwest::Client::new(),
            base,
            _dir: dir,
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, String) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request is answered");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let (status, text) = self.send(method, path, body).await;
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).expect("JSON answer")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_parse_and_validate_behave_as_nomad_documents() {
    let fx = Fixture::start().await;
    let post = reqwest::Method::POST;
    let put = reqwest::Method::PUT;

    // Canonicalize false: the job as written, no defaults, Name from the label.
    let raw = fx
        .json(
            post.clone(),
            "/v1/jobs/parse",
            &json!({ "JobHCL": JOB, "Canonicalize": false }),
        )
        .await;
    assert_eq!(raw["ID"], "web");
    assert_eq!(raw["Name"], "web");
    assert_eq!(raw["Datacenters"], json!(["dc1"]));
    for absent in ["Region", "Namespace", "Priority", "Type", "Update"] {
        assert!(
            raw.get(absent).is_none_or(Value::is_null),
            "{absent} was defaulted: {raw}"
        );
    }
    let group = &raw["TaskGroups"][0];
    assert!(group.get("Count").is_none_or(Value::is_null), "{group}");
    let task = &group["Tasks"][0];
    assert!(task.get("Resources").is_none_or(Value::is_null), "{task}");
    assert_eq!(task["Config"]["image"], "busybox:1");
    assert_eq!(task["Config"]["args"], json!(["--port", "${NOMAD_PORT_http}"]));

    // Canonicalize true: Nomad's defaults, and Variables as var-file content.
    let canonical = fx
        .json(
            post.clone(),
            "/v1/jobs/parse",
            &json!({
                "JobHCL": JOB,
                "Canonicalize": true,
                "Variables": "image = \"redis:7\"\n",
            }),
        )
        .await;
    assert_eq!(canonical["Region"], "global");
    assert_eq!(canonical["Namespace"], "default");
    assert_eq!(canonical["Type"], "service");
    assert_eq!(canonical["Priority"], 50);
    let group = &canonical["TaskGroups"][0];
    assert_eq!(group["Count"], 1);
    let task = &group["Tasks"][0];
    assert_eq!(task["Config"]["image"], "redis:7");
    assert_eq!(task["Resources"]["CPU"], 100);
    assert_eq!(task["Resources"]["MemoryMB"], 300);
    assert_eq!(task["KillTimeout"], 5_000_000_000_i64);

    // Parse does not validate (Nomad's endpoint only parses)...
    let not_checked = fx
        .json(
            post.clone(),
            "/v1/jobs/parse",
            &json!({ "JobHCL": JOB.replace("image = var.image", "imag = var.image") }),
        )
        .await;
    assert_eq!(not_checked["TaskGroups"][0]["Tasks"][0]["Config"]["imag"], "busybox:1");

    // ...but syntax and schema errors are a 400 with line:column.
    let (status, text) = fx
        .send(
            post.clone(),
            "/v1/jobs/parse",
            &json!({ "JobHCL": "job \"x\" {\n  group \"g\" {\n    count = \n  }\n}\n" }),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("input.hcl:3:13"), "{text}");
    let (status, text) = fx
        .send(
            post.clone(),
            "/v1/jobs/parse",
            &json!({ "JobHCL": "job \"x\" {\n  group \"g\" {\n    cuont = 2\n  }\n}\n" }),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("input.hcl:3:5") && text.contains("cuont"), "{text}");
    let (status, _) = fx
        .send(post.clone(), "/v1/jobs/parse", &json!({ "JobHCL": "  " }))
        .await;
    assert_eq!(status, 400);

    // Validate: a good job.
    let good =
        jobspec::job_to_api(&jobspec::parse(JOB, "web.nomad.hcl", &jobspec::ParseOptions::default()).expect("parses"));
    let answer = fx.json(put.clone(), "/v1/validate/job", &json!({ "Job": good })).await;
    assert_eq!(answer["DriverConfigValidated"], true);
    assert_eq!(answer["ValidationErrors"], json!([]));
    assert_eq!(answer["Error"], "");

    // Validate: every problem listed with its path and line:column; still a 200.
    let body = json!({
        "Job": {
            "ID": "bad",
            "TaskGroups": [{
                "Name": "g",
                "Count": 5,
                "Scaling": { "Min": 1, "Max": 2 },
                "Tasks": [{
                    "Name": "t",
                    "Driver": "docker",
                    "Config": { "image": "redis:7", "portz": ["db"] },
                    "Resources": { "MemoryMB": 4 }
                }]
            }]
        }
    });
    let answer = fx.json(post.clone(), "/v1/validate/job", &body).await;
    let errors: Vec<String> = answer["ValidationErrors"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|error| error.as_str().expect("a string").to_string())
        .collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let expected = [
        "job \"bad\" → group \"g\" → count: count 5 is greater than scaling.max 2",
        "job \"bad\" → group \"g\" → task \"t\" → config.portz: the docker driver has no config option \"portz\"; did you mean \"ports\"?",
        "job \"bad\" → group \"g\" → task \"t\" → resources.memory: memory must be at least 10 MB, not 4",
    ];
    for want in expected {
        let found = errors.iter().find(|error| error.ends_with(want));
        let found = found.unwrap_or_else(|| panic!("{want:?} not in {errors:#?}"));
        let (position, _) = found.split_once(": ").expect("a position first");
        let (line, column) = position.split_once(':').expect("line:column");
        assert!(
            line.parse::<u32>().is_ok_and(|line| line == 1) && column.parse::<u32>().is_ok(),
            "{found}"
        );
    }
    assert!(
        answer["Error"]
            .as_str()
            .is_some_and(|error| error.starts_with("3 errors occurred"))
    );

    // Validate needs the job wrapped as {"Job": {...}}.
    let (status, text) = fx.send(put.clone(), "/v1/validate/job", &json!({ "ID": "bare" })).await;
    assert_eq!(status, 400, "{text}");
    let (status, _) = fx.send(put, "/v1/validate/job", &json!({ "Job": "nope" })).await;
    assert_eq!(status, 400);

    fx.agent.shutdown().await;
}
