//! Blocks a Drover client cannot carry out are refused at submission, with
//! the field path and the reason, by a real single-node server behind the
//! router: nothing is accepted and then silently ignored.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_api::{AgentInfo, AppState};
use std::sync::Arc;
use tower::ServiceExt;

async fn app(dir: &std::path::Path) -> (Router, server::Server) {
    let config = server::ServerConfig::dev(dir.to_path_buf(), "127.0.0.1:14648".to_string());
    let server = server::Server::start(config).await.expect("server starts");
    let state = AppState {
        server: server.clone(),
        alloc_root: None,
        agent: Arc::new(AgentInfo::default()),
        client: None,
    };
    (http_api::app(state), server)
}

async fn answer(router: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = router.clone().oneshot(request).await.expect("router answers");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn job_json(task_extra: serde_json::Value) -> String {
    let mut task = serde_json::json!({
        "Name": "t",
        "Driver": "raw_exec",
        "Config": {"command": "/bin/true"},
    });
    if let (Some(task), Some(extra)) = (task.as_object_mut(), task_extra.as_object()) {
        for (key, value) in extra {
            task.insert(key.clone(), value.clone());
        }
    }
    serde_json::json!({
        "Job": {
            "ID": "secrets",
            "Type": "batch",
            "Datacenters": ["dc1"],
            "TaskGroups": [{"Name": "g", "Tasks": [task]}],
        }
    })
    .to_string()
}

#[tokio::test]
async fn a_job_using_vault_is_refused_naming_the_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (router, server) = app(dir.path()).await;
    let body = job_json(serde_json::json!({"Vault": {"Policies": ["db-read"], "ChangeMode": "restart"}}));
    let request = Request::put("/v1/jobs")
        .header("content-type", "application/json")
        .body(Body::from(body.clone()))
        .expect("request");
    let (status, text) = answer(&router, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains(
            "job \"secrets\" → group \"g\" → task \"t\" → vault: Vault integration is not supported by Drover"
        ),
        "{text}"
    );
    // Nothing was registered.
    let (status, _) = answer(
        &router,
        Request::get("/v1/job/secrets").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The validate endpoint says the same, as a 200 with the errors listed.
    let request = Request::put("/v1/validate/job")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let (status, text) = answer(&router, request).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let reply: serde_json::Value = serde_json::from_str(&text).expect("json");
    let errors = reply["ValidationErrors"].as_array().expect("a list of errors");
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].as_str().unwrap_or_default().contains("→ vault:"), "{text}");

    // The same job without the block registers.
    let request = Request::put("/v1/jobs")
        .header("content-type", "application/json")
        .body(Body::from(job_json(serde_json::json!({}))))
        .expect("request");
    let (status, text) = answer(&router, request).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    server.shutdown().await;
}
