//! Nomad's query semantics on every list endpoint, against a real dev
//! agent (ACLs on, so the ACL lists answer too): one table walks jobs,
//! allocations, evaluations, deployments, nodes, namespaces, ACL
//! policies, tokens and roles, a job's allocations, evaluations and
//! deployments and a node's allocations, and on each checks the index headers, `filter` (and its 400),
//! pagination by `per_page` / `next_token` / `reverse`, `namespace=*`, and
//! a blocking query that a write of that table wakes. Also `pretty` and
//! gzip, and the plain-text 4xx bodies.

mod common;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Read;
use std::time::{Duration, Instant};

struct Http {
    base: String,
    token: String,
    http: reqwest::Client,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|error| panic!("JSON answer ({error}): {}", self.text))
    }

    fn index(&self) -> u64 {
        self.headers
            .get("X-Nomad-Index")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
            .expect("X-Nomad-Index")
    }

    fn next_token(&self) -> Option<String> {
        self.headers
            .get("X-Nomad-NextToken")
            .map(|value| value.to_str().expect("ASCII token").to_string())
    }
}

impl Http {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-Nomad-Token", &self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request is answered");
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap_or_default(),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        let answer = self.call("GET", path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {path}: {}", answer.text);
        answer
    }

    async fn write(&self, method: &str, path: &str, body: Value) -> Value {
        let answer = self.call(method, path, Some(body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{method} {path}: {}", answer.text);
        serde_json::from_str(&answer.text).unwrap_or(Value::Null)
    }
}

fn service_job(id: &str, namespace: &str) -> Value {
    json!({"Job": {
        "ID": id, "Name": id, "Namespace": namespace, "Type": "service", "Datacenters": ["dc1"],
        // Healthy as soon as running, so each deployment ends quickly and
        // the tables go quiet before the next blocking check.
        "Update": {"MaxParallel": 1, "MinHealthyTime": 1_000_000, "HealthCheck": "task_states"},
        "TaskGroups": [{"Name": "g", "Count": 2, "Tasks": [{
            "Name": "t", "Driver": "raw_exec",
            "Config": {"command": "/bin/sleep", "args": ["600"]},
            "Resources": {"CPU": 20, "MemoryMB": 16}
        }]}]
    }})
}

/// What wakes a blocking query on a table.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    RegisterJob,
    NodeEligibility,
    Namespace,
    Policy,
    Token,
    Role,
}

struct Endpoint {
    path: String,
    /// The field that names an object (what `filter` selects on).
    id_field: &'static str,
    /// At least this many objects in `default` (or in all, for objects
    /// without namespaces); the writes of earlier rows add more.
    default_count: usize,
    /// Objects `namespace=*` adds at least (in the namespace `other`).
    other_count: usize,
    trigger: Trigger,
}

async fn fire(api: &Http, trigger: Trigger, round: usize, node_id: &str) {
    match trigger {
        Trigger::RegisterJob => {
            // In a namespace of its own, so the lists of `default` keep
            // their content while the tables' indexes move; then wait
            // until the job's placements and deployment exist, so the next
            // row starts from a settled state.
            let id = format!("wake-{round}");
            api.write("PUT", "/v1/jobs", service_job(&id, "wake")).await;
            common::cluster::eventually(Duration::from_secs(20), "the wake job's allocations", async || {
                let allocs = api
                    .get(&format!("/v1/job/{id}/allocations?namespace=wake"))
                    .await
                    .json();
                let deployments = api
                    .get(&format!("/v1/job/{id}/deployments?namespace=wake"))
                    .await
                    .json();
                let placed =
                    allocs.as_array().map(Vec::len) == Some(2) && deployments.as_array().map(Vec::len) == Some(1);
                placed.then_some(())
            })
            .await;
        }
        Trigger::NodeEligibility => {
            // Ineligible and back, so later rows can still place.
            for eligibility in ["ineligible", "eligible"] {
                api.write(
                    "PUT",
                    &format!("/v1/node/{node_id}/eligibility"),
                    json!({"Eligibility": eligibility}),
                )
                .await;
            }
        }
        Trigger::Namespace => {
            api.write("PUT", "/v1/namespace", json!({"Name": format!("wake-{round}")}))
                .await;
        }
        Trigger::Policy => {
            let name = format!("wake-{round}");
            api.write(
                "PUT",
                &format!("/v1/acl/policy/{name}"),
                json!({"Name": name, "Rules": "namespace \"default\" { policy = \"read\" }"}),
            )
            .await;
        }
        Trigger::Token => {
            api.write(
                "PUT",
                "/v1/acl/token",
                json!({"Name": format!("wake-{round}"), "Type": "client", "Policies": ["p1"]}),
            )
            .await;
        }
        Trigger::Role => {
            api.write(
                "PUT",
                "/v1/acl/role",
                json!({"Name": format!("wake-{round}"), "Policies": [{"Name": "p1"}]}),
            )
            .await;
        }
    }
}

/// Waits until the job's deployment has succeeded: its allocations run
/// and are healthy, so nothing about it changes any more.
async fn settled(api: &Http, namespace: &str, job: &str) {
    common::cluster::eventually(Duration::from_secs(30), "the job's deployment to succeed", async || {
        let deployments = api
            .get(&format!("/v1/job/{job}/deployments?namespace={namespace}"))
            .await
            .json();
        (deployments[0]["Status"] == "successful").then_some(())
    })
    .await;
}

fn ids(items: &Value, field: &str) -> Vec<String> {
    items
        .as_array()
        .expect("a list")
        .iter()
        .map(|item| item[field].as_str().expect("an ID field").to_string())
        .collect()
}

fn with(path: &str, query: &str) -> String {
    let separator = if path.contains('?') { '&' } else { '?' };
    format!("{path}{separator}{query}")
}

/// Walks every page of `path` at `per_page`, returning the IDs in order.
async fn all_pages(api: &Http, path: &str, field: &str, per_page: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let mut query = format!("per_page={per_page}");
        if let Some(token) = &token {
            query.push_str(&format!("&next_token={token}"));
        }
        let page = api.get(&with(path, &query)).await;
        let page_ids = ids(&page.json(), field);
        assert!(
            page_ids.len() <= per_page,
            "{path}: page of {} > {per_page}",
            page_ids.len()
        );
        seen.extend(page_ids);
        token = page.next_token();
        if token.is_none() {
            return seen;
        }
    }
    panic!("{path}: pagination did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_endpoint_blocks_filters_pages_and_spans_namespaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent_with_acls(dir.path()).await;
    let mut api = Http {
        base: format!("http://{}", agent.http_addr),
        token: String::new(),
        http: reqwest::Client::new(),
    };
    let boot = api.write("PUT", "/v1/acl/bootstrap", json!({})).await;
    api.token = boot["SecretID"].as_str().expect("secret").to_string();

    // Two of everything in `default` (or overall), one more in `other`.
    for namespace in ["other", "wake"] {
        api.write("PUT", "/v1/namespace", json!({"Name": namespace})).await;
    }
    for name in ["p1", "p2"] {
        api.write(
            "PUT",
            &format!("/v1/acl/policy/{name}"),
            json!({"Name": name, "Rules": "namespace \"default\" { policy = \"read\" }"}),
        )
        .await;
    }
    for name in ["r1", "r2"] {
        api.write(
            "PUT",
            "/v1/acl/role",
            json!({"Name": name, "Policies": [{"Name": "p1"}]}),
        )
        .await;
    }
    api.write(
        "PUT",
        "/v1/acl/token",
        json!({"Name": "t1", "Type": "client", "Policies": ["p1"]}),
    )
    .await;
    for (id, namespace) in [("web-a", "default"), ("web-b", "default"), ("web-o", "other")] {
        api.write("PUT", "/v1/jobs", service_job(id, namespace)).await;
    }
    // Each job: one evaluation, one deployment, two allocations.
    common::cluster::eventually(Duration::from_secs(20), "allocations and deployments", async || {
        let allocs = api.get("/v1/allocations?namespace=*").await.json();
        let deployments = api.get("/v1/deployments?namespace=*").await.json();
        let done = allocs.as_array().map(Vec::len) == Some(6) && deployments.as_array().map(Vec::len) == Some(3);
        done.then_some(())
    })
    .await;
    for (id, namespace) in [("web-a", "default"), ("web-b", "default"), ("web-o", "other")] {
        settled(&api, namespace, id).await;
    }
    let node_id = ids(&api.get("/v1/nodes").await.json(), "ID").remove(0);

    let endpoints = [
        Endpoint {
            path: "/v1/jobs".into(),
            id_field: "ID",
            default_count: 2,
            other_count: 1,
            trigger: Trigger::RegisterJob,
        },
        Endpoint {
            path: "/v1/allocations".into(),
            id_field: "ID",
            default_count: 4,
            other_count: 2,
            trigger: Trigger::RegisterJob,
        },
        Endpoint {
            path: "/v1/evaluations".into(),
            id_field: "ID",
            default_count: 2,
            other_count: 1,
            trigger: Trigger::RegisterJob,
        },
        Endpoint {
            path: "/v1/deployments".into(),
            id_field: "ID",
            default_count: 2,
            other_count: 1,
            trigger: Trigger::RegisterJob,
        },
        Endpoint {
            path: "/v1/nodes".into(),
            id_field: "ID",
            default_count: 1,
            other_count: 0,
            trigger: Trigger::NodeEligibility,
        },
        Endpoint {
            path: "/v1/namespaces".into(),
            id_field: "Name",
            default_count: 3,
            other_count: 0,
            trigger: Trigger::Namespace,
        },
        Endpoint {
            path: "/v1/acl/policies".into(),
            id_field: "Name",
            default_count: 2,
            other_count: 0,
            trigger: Trigger::Policy,
        },
        Endpoint {
            path: "/v1/acl/tokens".into(),
            id_field: "AccessorID",
            default_count: 2,
            other_count: 0,
            trigger: Trigger::Token,
        },
        Endpoint {
            path: "/v1/acl/roles".into(),
            id_field: "ID",
            default_count: 2,
            other_count: 0,
            trigger: Trigger::Role,
        },
        Endpoint {
            path: "/v1/job/web-a/allocations".into(),
            id_field: "ID",
            default_count: 2,
            other_count: 0,
            trigger: Trigger::RegisterJob,
        },
        Endpoint {
            path: "/v1/job/web-a/evaluations".into(),
            id_field: "ID",
            default_count: 1,
            other_count: 0,
            trigger: Trigger::RegisterJob,
        },
        Endpoint {
            path: "/v1/job/web-a/deployments".into(),
            id_field: "ID",
            default_count: 1,
            other_count: 0,
            trigger: Trigger::RegisterJob,
        },
        Endpoint {
            path: format!("/v1/node/{node_id}/allocations"),
            id_field: "ID",
            default_count: 6,
            other_count: 0,
            trigger: Trigger::RegisterJob,
        },
    ];

    for (round, endpoint) in endpoints.iter().enumerate() {
        let path = endpoint.path.as_str();
        let full = api.get(path).await;
        assert_eq!(
            full.headers.get("X-Nomad-KnownLeader").map(|value| value.as_bytes()),
            Some(&b"true"[..]),
            "{path}"
        );
        assert!(full.headers.contains_key("X-Nomad-LastContact"), "{path}");
        let all = ids(&full.json(), endpoint.id_field);
        assert!(all.len() >= endpoint.default_count, "{path}: {all:?}");

        // Pages of one, followed by their tokens, give the same list; the
        // reverse order walks it backwards.
        assert_eq!(all_pages(&api, path, endpoint.id_field, 1).await, all, "{path}");
        if all.len() >= 2 {
            let first = api.get(&with(path, "per_page=1")).await;
            assert!(first.next_token().is_some(), "{path}: no X-Nomad-NextToken");
        }
        let reversed = ids(&api.get(&with(path, "reverse=true")).await.json(), endpoint.id_field);
        let mut backwards = all.clone();
        backwards.reverse();
        assert_eq!(reversed, backwards, "{path}");
        let reverse_path = with(path, "reverse=true");
        assert_eq!(
            all_pages(&api, &reverse_path, endpoint.id_field, 1).await,
            backwards,
            "{path} paged in reverse"
        );
        assert_eq!(
            api.call("GET", &with(path, "per_page=x"), None).await.status,
            StatusCode::BAD_REQUEST,
            "{path}"
        );

        // Filter: exactly the one object named, none for a missing one,
        // and a 400 with the column for a bad expression.
        let wanted = &all[all.len() - 1];
        let filter = format!("{} == \"{wanted}\"", endpoint.id_field);
        let query = format!("filter={}", urlencode(&filter));
        assert_eq!(
            ids(&api.get(&with(path, &query)).await.json(), endpoint.id_field),
            vec![wanted.clone()],
            "{path} {filter}"
        );
        let query = format!(
            "filter={}",
            urlencode(&format!("{} == nothing-here", endpoint.id_field))
        );
        assert_eq!(
            ids(&api.get(&with(path, &query)).await.json(), endpoint.id_field).len(),
            0,
            "{path}"
        );
        let bad = api.call("GET", &with(path, "filter=ID%20%3D%3D"), None).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{path}: {}", bad.text);
        assert!(bad.text.contains("column 6"), "{path}: {}", bad.text);

        // `namespace=*` adds the objects of `other` (and of `wake`, which
        // earlier rows filled); `namespace=other` has only those.
        let everywhere = ids(&api.get(&with(path, "namespace=*")).await.json(), endpoint.id_field);
        // A job's own lists name the job in one namespace.
        let job_scoped = path.starts_with("/v1/job/");
        let other = if job_scoped {
            Vec::new()
        } else {
            ids(&api.get(&with(path, "namespace=other")).await.json(), endpoint.id_field)
        };
        if endpoint.other_count > 0 {
            // (At least: a finished deployment adds an evaluation.)
            assert!(other.len() >= endpoint.other_count, "{path}: {other:?}");
            assert!(other.iter().all(|id| !all.contains(id)), "{path}");
        }
        assert!(
            everywhere.len() >= all.len() + endpoint.other_count,
            "{path}: {everywhere:?}"
        );
        assert!(all.iter().chain(&other).all(|id| everywhere.contains(id)), "{path}");

        // Blocking: with nothing new, the query waits its `wait` out; a
        // write to the table wakes it long before its wait.
        // (A change that lands meanwhile ends the wait early with a higher
        // index; then the check runs again from that index.)
        let mut index = api.get(path).await.index();
        let mut waited_out = false;
        for _ in 0..5 {
            let started = Instant::now();
            let idle = api.get(&with(path, &format!("index={index}&wait=150ms"))).await;
            if idle.index() == index {
                assert!(started.elapsed() >= Duration::from_millis(150), "{path} did not block");
                waited_out = true;
                break;
            }
            assert!(idle.index() > index, "{path}: the index went back");
            index = idle.index();
        }
        assert!(waited_out, "{path}: the table never went quiet");
        let blocked = {
            let http = Http {
                base: api.base.clone(),
                token: api.token.clone(),
                http: api.http.clone(),
            };
            let path = with(path, &format!("index={index}&wait=20s"));
            tokio::spawn(async move { (http.get(&path).await, Instant::now()) })
        };
        fire(&api, endpoint.trigger, round, &node_id).await;
        let woken_after_write = Instant::now();
        let (answer, answered) = blocked.await.expect("blocking query");
        assert!(answer.index() > index, "{path}: index did not move");
        assert!(
            answered.duration_since(woken_after_write) < Duration::from_secs(10),
            "{path}: the write did not wake the query"
        );
    }

    // Reads of one object block on that object's index.
    let rules = "namespace \"default\" { policy = \"write\" }";
    read_blocks_until_written(
        &api,
        "/v1/acl/policy/p2",
        ("PUT", "/v1/acl/policy/p2", json!({"Name": "p2", "Rules": rules})),
    )
    .await;
    read_blocks_until_written(
        &api,
        "/v1/namespace/other",
        (
            "PUT",
            "/v1/namespace/other",
            json!({"Name": "other", "Description": "changed"}),
        ),
    )
    .await;
    let mut web_a = service_job("web-a", "default");
    web_a["Job"]["Meta"] = json!({"changed": "yes"});
    read_blocks_until_written(&api, "/v1/job/web-a", ("PUT", "/v1/jobs", web_a)).await;
}

/// A read of one object at `path` blocks past its index until `write`
/// changes it.
async fn read_blocks_until_written(api: &Http, path: &str, write: (&str, &str, Value)) {
    let index = api.get(path).await.index();
    let started = std::time::Instant::now();
    let idle = api.get(&with(path, &format!("index={index}&wait=100ms"))).await;
    assert!(started.elapsed() >= Duration::from_millis(100), "{path} did not block");
    assert_eq!(idle.index(), index, "{path}");
    let blocked = {
        let http = Http {
            base: api.base.clone(),
            token: api.token.clone(),
            http: api.http.clone(),
        };
        let path = with(path, &format!("index={index}&wait=20s"));
        tokio::spawn(async move { http.get(&path).await })
    };
    let (method, write_path, body) = write;
    api.write(method, write_path, body).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), blocked)
        .await
        .expect("the write wakes the read")
        .expect("blocking read");
    assert!(answer.index() > index, "{path}: index did not move");
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_pretty_and_gzipped_on_request_and_errors_are_plain_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = common::start_agent(dir.path()).await;
    let base = format!("http://{}", agent.http_addr);
    let http = reqwest::Client::new();

    let compact = http
        .get(format!("{base}/v1/namespaces"))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    assert!(!compact.contains('\n'), "{compact}");
    let pretty = http
        .get(format!("{base}/v1/namespaces?pretty"))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    assert!(pretty.contains("\n  {\n    \""), "{pretty}");
    let same: Value = serde_json::from_str(&pretty).expect("pretty JSON");
    assert_eq!(same, serde_json::from_str::<Value>(&compact).expect("JSON"));

    let zipped = http
        .get(format!("{base}/v1/namespaces?pretty=true"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .expect("answer");
    assert_eq!(
        zipped.headers().get("Content-Encoding").map(|value| value.as_bytes()),
        Some(&b"gzip"[..])
    );
    assert!(zipped.headers().contains_key("X-Nomad-Index"));
    let bytes = zipped.bytes().await.expect("body");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .expect("gzip body");
    assert_eq!(text, pretty);

    // Errors: Nomad's status codes, plain-text bodies.
    let missing = http.get(format!("{base}/v1/job/nope")).send().await.expect("answer");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(
        missing
            .headers()
            .get("Content-Type")
            .is_some_and(|value| value.as_bytes().starts_with(b"text/plain")),
        "{:?}",
        missing.headers()
    );
    let bad = http
        .get(format!("{base}/v1/jobs?filter=(ID"))
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let text = bad.text().await.expect("text");
    assert!(text.starts_with("failed to read filter expression: column 4"), "{text}");
    // One region per cluster: another one is refused, not answered here.
    let elsewhere = http
        .get(format!("{base}/v1/jobs?region=mars"))
        .send()
        .await
        .expect("answer");
    assert_eq!(elsewhere.status(), StatusCode::BAD_REQUEST);
    assert!(
        elsewhere
            .text()
            .await
            .expect("text")
            .contains("no path to region \"mars\"")
    );
    let here = http
        .get(format!("{base}/v1/jobs?region=global"))
        .send()
        .await
        .expect("answer");
    assert_eq!(here.status(), StatusCode::OK);
    let long = format!("{base}/v1/jobs?filter={}", "a".repeat(5000));
    let refused = http.get(long).send().await.expect("answer");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}
