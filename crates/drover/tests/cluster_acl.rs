//! ACLs through a client-only agent (real processes): requests it passes
//! on are checked by the servers, and its own `agent/self` needs a token
//! with `agent` read, which it asks a server to check.

mod common;

use common::cluster::{Cluster, Shape, eventually};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_agent_enforces_acls_on_its_own_and_passed_on_requests() {
    let mut cluster = Cluster::start(&Shape {
        servers: 1,
        clients: 1,
        server_config: "acl {\n  enabled = true\n}\n".to_string(),
        client_config: "acl {\n  enabled = true\n}\n".to_string(),
        ..Shape::default()
    });
    let http = reqwest::Client::new();
    let client_api = format!("http://{}", cluster.clients[0].http);
    // The client agent learns the servers' HTTP addresses from its first
    // heartbeat answer; until then it cannot pass anything on.
    let status = eventually(
        Duration::from_secs(30),
        "the client agent to reach a server",
        async || {
            let answer = http.get(format!("{client_api}/v1/jobs")).send().await.ok()?;
            (answer.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE).then_some(answer.status())
        },
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{}", cluster.logs());
    let own = http
        .get(format!("{client_api}/v1/agent/self"))
        .send()
        .await
        .expect("answer");
    assert_eq!(own.status(), reqwest::StatusCode::FORBIDDEN);
    let forged = http
        .get(format!("{client_api}/v1/agent/self"))
        .header("X-Nomad-Token", "00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .expect("answer");
    assert_eq!(forged.status(), reqwest::StatusCode::FORBIDDEN);

    let boot: serde_json::Value = http
        .post(format!("{client_api}/v1/acl/bootstrap"))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("token");
    let secret = boot["SecretID"].as_str().expect("secret").to_string();
    let own = http
        .get(format!("{client_api}/v1/agent/self"))
        .header("X-Nomad-Token", &secret)
        .send()
        .await
        .expect("answer");
    assert_eq!(own.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = own.json().await.expect("JSON");
    assert_eq!(body["config"]["Client"]["Enabled"], true, "{body}");
    let jobs = http
        .get(format!("{client_api}/v1/jobs"))
        .header("X-Nomad-Token", &secret)
        .send()
        .await
        .expect("answer");
    assert_eq!(jobs.status(), reqwest::StatusCode::OK);
    cluster.kill_all();
}
