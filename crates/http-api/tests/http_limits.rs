//! The HTTP API's limits, in-process (`oneshot`) against a real
//! single-node server: untrusted HCL is parsed off the async runtime under
//! the evaluation budget and a deadline.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_api::{AgentInfo, ApiLimits, AppState};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// Nested `for` expressions, about 10^9 iterations in a few hundred bytes:
/// two of these blocked the async runtime for 10–16 s.
const BOMB: &str = r#"
locals {
  a = range(1000)
  b = [for x in local.a : [for y in local.a : [for z in local.a : z]]]
}
job "bomb" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
        args    = [tostring(length(local.b))]
      }
    }
  }
}
"#;

async fn app(dir: &std::path::Path, limits: ApiLimits) -> (Router, server::Server) {
    let config = server::ServerConfig::dev(dir.to_path_buf(), "127.0.0.1:14647".to_string());
    let server = server::Server::start(config).await.expect("server starts");
    let state = AppState {
        server: server.clone(),
        alloc_root: None,
        agent: Arc::new(AgentInfo::default()),
        client: None,
    };
    (http_api::app_with_limits(state, limits), server)
}

fn parse_request(hcl: &str) -> Request<Body> {
    let body = serde_json::json!({ "JobHCL": hcl, "Canonicalize": false });
    Request::post("/v1/jobs/parse")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

async fn answer(router: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = router.clone().oneshot(request).await.expect("router answers");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// On a single-threaded runtime a parse that ran on the runtime would hold
/// its only thread until done: the bombs must still be running when other
/// requests are answered, and each ends in a 400 naming the budget.
#[tokio::test]
async fn parse_bombs_run_off_the_runtime_and_answer_400() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (router, server) = app(dir.path(), ApiLimits::default()).await;
    let bombs: Vec<_> = (0..2)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move { answer(&router, parse_request(BOMB)).await })
        })
        .collect();
    // Let the bombs start; had they run here, they would be done by now.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        bombs.iter().all(|bomb| !bomb.is_finished()),
        "a bomb finished on the runtime thread"
    );
    let (status, _) = answer(
        &router,
        Request::get("/v1/agent/health").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        bombs.iter().any(|bomb| !bomb.is_finished()),
        "the runtime answered while the bombs were evaluated"
    );
    for bomb in bombs {
        let (status, body) = bomb.await.expect("join");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("evaluation budget exceeded"), "{body}");
    }
    // An ordinary job still parses.
    let (status, body) = answer(&router, parse_request(&BOMB.replace("range(1000)", "range(3)"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.shutdown().await;
}

/// Work that outlasts the deadline is answered with a 400 at the deadline.
#[tokio::test]
async fn parsing_past_the_deadline_is_a_400() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = ApiLimits {
        parse_deadline: Duration::from_millis(1),
        eval_budget: jobspec::EvalBudget {
            max_steps: 200_000,
            ..jobspec::EvalBudget::DEFAULT
        },
        ..ApiLimits::default()
    };
    let (router, server) = app(dir.path(), limits).await;
    let (status, body) = answer(&router, parse_request(BOMB)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("took longer than 1ms"), "{body}");
    server.shutdown().await;
}

/// Bodies past the limit are a 413, job registrations included, whether
/// the client announces the length or streams the body in chunks.
#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (router, server) = app(dir.path(), ApiLimits::default()).await;
    let big = format!(
        "{{\"Job\": {{\"ID\": \"big\", \"Meta\": {{\"pad\": \"{}\"}}}}}}",
        "x".repeat(http_api::DEFAULT_MAX_BODY_BYTES)
    );
    for path in ["/v1/jobs", "/v1/job/big", "/v1/jobs/parse", "/v1/validate/job"] {
        let request = Request::put(path)
            .header("content-type", "application/json")
            .body(Body::from(big.clone()))
            .expect("request");
        let (status, body) = answer(&router, request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
    }
    // Streamed without a length, in 64 KiB chunks.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = big
        .as_bytes()
        .chunks(64 << 10)
        .map(|chunk| Ok(bytes::Bytes::copy_from_slice(chunk)))
        .collect();
    let request = Request::post("/v1/jobs")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .expect("request");
    let (status, _) = answer(&router, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Under the limit the body is read (and this one is an invalid job).
    let small = big.replace(&"x".repeat(http_api::DEFAULT_MAX_BODY_BYTES), "x");
    let request = Request::put("/v1/jobs").body(Body::from(small)).expect("request");
    let (status, body) = answer(&router, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    server.shutdown().await;
}
