//! A typed client for Drover's (Nomad's) HTTP API, used by the CLI, the
//! benchmarks and the tests. It speaks only HTTP and `api-types`.

use api_types::{
    AllocListStub, Allocation, Deployment, DeploymentUpdateResponse, Evaluation, JobDeregisterResponse, JobListStub,
    JobRegisterRequest, JobRegisterResponse, JobSummary, JobValidateResponse, JobsParseRequest, Namespace, Node,
    NodeListStub,
};
mod vars;

pub use vars::VarWrite;

use futures::Stream;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// Errors calling the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error status.
    #[error("{status}: {message}")]
    Status { status: u16, message: String },
    /// The server could not be reached.
    #[error("cannot reach {address}: {message}")]
    Connect { address: String, message: String },
    /// The answer was not what the API promises.
    #[error("unexpected answer from {path}: {message}")]
    Decode { path: String, message: String },
}

impl ApiError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The `X-Nomad-Index` of a response (0 without one).
fn index_of(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("X-Nomad-Index")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// A response body with the index the server reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Indexed<T> {
    pub value: T,
    /// `X-Nomad-Index`.
    pub index: u64,
}

/// Options for a log read.
#[derive(Debug, Clone, Default)]
pub struct LogsRequest {
    pub task: String,
    /// "stdout" or "stderr".
    pub log_type: String,
    pub follow: bool,
    pub offset: u64,
    /// "start" or "end".
    pub origin: String,
}

/// The API client.
#[derive(Debug, Clone)]
pub struct Client {
    address: String,
    http: reqwest::Client,
    /// The ACL token sent as `X-Nomad-Token` with every request.
    token: Option<String>,
    /// The namespace sent as `?namespace=` with every request, when set.
    namespace: Option<String>,
}

impl Client {
    /// A client of the agent at `address` (`http://127.0.0.1:4646`).
    pub fn new(address: impl Into<String>) -> Client {
        let address = address.into().trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Client {
            address,
            http,
            token: None,
            namespace: None,
        }
    }

    /// The same client, speaking HTTPS: servers are checked against the CA
    /// in `ca_pem`; `identity_pem` (a certificate and its key, PEM) is
    /// presented when the server asks for a client certificate.
    pub fn with_tls(mut self, ca_pem: &[u8], identity_pem: Option<&[u8]>) -> Result<Client, ApiError> {
        let tls_error = |message: String| ApiError::Connect {
            address: self.address.clone(),
            message,
        };
        let ca =
            reqwest::Certificate::from_pem(ca_pem).map_err(|error| tls_error(format!("CA certificate: {error}")))?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca);
        if let Some(pem) = identity_pem {
            let identity =
                reqwest::Identity::from_pem(pem).map_err(|error| tls_error(format!("client certificate: {error}")))?;
            builder = builder.identity(identity);
        }
        self.http = builder
            .build()
            .map_err(|error| tls_error(format!("TLS client: {error}")))?;
        Ok(self)
    }

    /// The same client, sending `token` (an ACL secret) with every
    /// request; an empty token sends none.
    pub fn with_token(mut self, token: impl Into<String>) -> Client {
        let token = token.into();
        self.token = (!token.trim().is_empty()).then(|| token.trim().to_string());
        self
    }

    /// The same client, asking for `namespace` (`*` for all) on every
    /// request whose path does not name one itself; empty sends none.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Client {
        let namespace = namespace.into();
        self.namespace = (!namespace.trim().is_empty()).then(|| namespace.trim().to_string());
        self
    }

    /// The namespace this client asks for, if one was set.
    pub fn namespace_asked(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The agent address.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn url(&self, path: &str) -> String {
        match &self.namespace {
            Some(namespace) if !path.contains("namespace=") => {
                let separator = if path.contains('?') { '&' } else { '?' };
                format!("{}{path}{separator}namespace={}", self.address, encode(namespace))
            }
            _ => format!("{}{path}", self.address),
        }
    }

    fn connect_error(&self, error: reqwest::Error) -> ApiError {
        ApiError::Connect {
            address: self.address.clone(),
            message: error.to_string(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ApiError> {
        let request = match &self.token {
            Some(token) => request.header("X-Nomad-Token", token),
            None => request,
        };
        let response = request.send().await.map_err(|error| self.connect_error(error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let message = response.text().await.unwrap_or_default();
        Err(ApiError::Status {
            status: status.as_u16(),
            message: message.trim().to_string(),
        })
    }

    async fn decode<T: DeserializeOwned>(path: &str, response: reqwest::Response) -> Result<Indexed<T>, ApiError> {
        let index = index_of(&response);
        let bytes = response.bytes().await.map_err(|error| ApiError::Decode {
            path: path.to_string(),
            message: error.to_string(),
        })?;
        let value = serde_json::from_slice(&bytes).map_err(|error| ApiError::Decode {
            path: path.to_string(),
            message: error.to_string(),
        })?;
        Ok(Indexed { value, index })
    }

    /// `GET path` decoded, with the index header.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Indexed<T>, ApiError> {
        let response = self.send(self.http.get(self.url(path))).await?;
        Self::decode(path, response).await
    }

    /// A blocking query: waits for the index to pass `index`, up to `wait`.
    pub async fn get_blocking<T: DeserializeOwned>(
        &self,
        path: &str,
        index: u64,
        wait: Duration,
    ) -> Result<Indexed<T>, ApiError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let full = format!("{path}{separator}index={index}&wait={}ms", wait.as_millis());
        let response = self
            .send(self.http.get(self.url(&full)).timeout(wait + Duration::from_secs(10)))
            .await?;
        Self::decode(path, response).await
    }

    /// `PUT path` with a JSON body, the answer decoded.
    pub async fn put_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let response = self.send(self.http.put(self.url(path)).json(body)).await?;
        Ok(Self::decode(path, response).await?.value)
    }

    /// `PUT path` with a JSON body, the answer decoded.
    pub async fn put_json_value<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.put_json(path, body).await
    }

    /// `PUT path` with an empty body, the answer as JSON.
    pub async fn put_empty(&self, path: &str) -> Result<Value, ApiError> {
        let response = self.send(self.http.put(self.url(path))).await?;
        Ok(Self::decode(path, response).await?.value)
    }

    /// `DELETE path`, the answer as JSON.
    pub async fn delete(&self, path: &str) -> Result<Value, ApiError> {
        let response = self.send(self.http.delete(self.url(path))).await?;
        Ok(Self::decode(path, response).await?.value)
    }

    /// `GET /v1/operator/snapshot`: the state as a snapshot file.
    pub async fn snapshot_save(&self) -> Result<Vec<u8>, ApiError> {
        let path = "/v1/operator/snapshot";
        let response = self.send(self.http.get(self.url(path))).await?;
        let bytes = response.bytes().await.map_err(|error| ApiError::Decode {
            path: path.to_string(),
            message: error.to_string(),
        })?;
        Ok(bytes.to_vec())
    }

    /// `PUT /v1/operator/snapshot`: replaces the state with a snapshot file.
    pub async fn snapshot_restore(&self, snapshot: Vec<u8>) -> Result<Value, ApiError> {
        let path = "/v1/operator/snapshot";
        let response = self.send(self.http.put(self.url(path)).body(snapshot)).await?;
        Ok(Self::decode(path, response).await?.value)
    }

    /// `GET /v1/deployments?prefix=`.
    pub async fn deployments(&self, prefix: &str) -> Result<Vec<Deployment>, ApiError> {
        Ok(self
            .get(&format!("/v1/deployments?prefix={}", encode(prefix)))
            .await?
            .value)
    }

    /// `GET /v1/deployment/:id` (ID or unique prefix).
    pub async fn deployment(&self, id: &str) -> Result<Deployment, ApiError> {
        Ok(self.get(&format!("/v1/deployment/{}", encode(id))).await?.value)
    }

    /// `GET /v1/job/:id/deployments`, newest first.
    pub async fn job_deployments(&self, job_id: &str) -> Result<Vec<Deployment>, ApiError> {
        Ok(self
            .get(&format!("/v1/job/{}/deployments", encode(job_id)))
            .await?
            .value)
    }

    /// `GET /v1/job/:id/deployment`: the newest deployment, if any.
    pub async fn job_latest_deployment(&self, job_id: &str) -> Result<Option<Deployment>, ApiError> {
        Ok(self.get(&format!("/v1/job/{}/deployment", encode(job_id))).await?.value)
    }

    /// `GET /v1/deployment/allocations/:id`.
    pub async fn deployment_allocations(&self, id: &str) -> Result<Vec<AllocListStub>, ApiError> {
        Ok(self
            .get(&format!("/v1/deployment/allocations/{}", encode(id)))
            .await?
            .value)
    }

    /// `POST /v1/deployment/promote/:id` for every group.
    pub async fn promote_deployment(&self, id: &str) -> Result<DeploymentUpdateResponse, ApiError> {
        let body = serde_json::json!({ "DeploymentID": id, "All": true });
        self.put_json(&format!("/v1/deployment/promote/{}", encode(id)), &body)
            .await
    }

    /// `POST /v1/deployment/fail/:id`.
    pub async fn fail_deployment(&self, id: &str) -> Result<DeploymentUpdateResponse, ApiError> {
        let body = serde_json::json!({ "DeploymentID": id });
        self.put_json(&format!("/v1/deployment/fail/{}", encode(id)), &body)
            .await
    }

    /// `POST /v1/deployment/pause/:id` (`pause = false` resumes).
    pub async fn pause_deployment(&self, id: &str, pause: bool) -> Result<DeploymentUpdateResponse, ApiError> {
        let body = serde_json::json!({ "DeploymentID": id, "Pause": pause });
        self.put_json(&format!("/v1/deployment/pause/{}", encode(id)), &body)
            .await
    }

    /// Registers a job given as Nomad API JSON (the bare job).
    pub async fn register_job(&self, job: Value) -> Result<JobRegisterResponse, ApiError> {
        self.register_job_checked(job, None).await
    }

    /// Registers a job only if the stored job's `JobModifyIndex` is
    /// `check_index` (Nomad's `EnforceIndex`; 0: the job must not exist).
    pub async fn register_job_checked(
        &self,
        job: Value,
        check_index: Option<u64>,
    ) -> Result<JobRegisterResponse, ApiError> {
        let request = JobRegisterRequest {
            job,
            enforce_index: check_index.is_some(),
            job_modify_index: check_index.unwrap_or(0),
            ..JobRegisterRequest::default()
        };
        self.put_json("/v1/jobs", &request).await
    }

    /// `POST /v1/job/:id/scale`: sets a group's count.
    pub async fn scale_job(
        &self,
        job_id: &str,
        group: &str,
        count: i64,
        message: &str,
    ) -> Result<JobRegisterResponse, ApiError> {
        let body = serde_json::json!({
            "Count": count,
            "Target": { "Job": job_id, "Group": group },
            "Message": message,
        });
        self.put_json(&format!("/v1/job/{}/scale", encode(job_id)), &body).await
    }

    /// `PUT /v1/job/:id/dispatch`: dispatches a parameterized job with a
    /// payload (sent as base64) and meta.
    pub async fn dispatch_job(
        &self,
        job_id: &str,
        payload: &[u8],
        meta: &std::collections::BTreeMap<String, String>,
        idempotency_token: &str,
    ) -> Result<api_types::JobDispatchResponse, ApiError> {
        use base64::Engine;
        let body = serde_json::json!({
            "JobID": job_id,
            "Payload": base64::engine::general_purpose::STANDARD.encode(payload),
            "Meta": meta,
            "IdempotencyToken": idempotency_token,
        });
        self.put_json(&format!("/v1/job/{}/dispatch", encode(job_id)), &body)
            .await
    }

    /// `PUT /v1/job/:id/periodic/force`: launches a periodic job now.
    pub async fn force_periodic(&self, job_id: &str) -> Result<api_types::PeriodicForceResponse, ApiError> {
        self.put_json(
            &format!("/v1/job/{}/periodic/force", encode(job_id)),
            &serde_json::json!({}),
        )
        .await
    }

    /// `PUT /v1/job/:id/plan` with the diff: the scheduler's dry run.
    pub async fn plan_job(&self, job_id: &str, job: Value) -> Result<Value, ApiError> {
        let body = serde_json::json!({ "Job": job, "Diff": true });
        self.put_json(&format!("/v1/job/{}/plan", encode(job_id)), &body).await
    }

    /// Parses HCL on the agent.
    pub async fn parse_job(&self, hcl: &str) -> Result<Value, ApiError> {
        let request = JobsParseRequest {
            job_hcl: hcl.to_string(),
            canonicalize: true,
            variables: String::new(),
        };
        let response = self
            .send(self.http.post(self.url("/v1/jobs/parse")).json(&request))
            .await?;
        Ok(Self::decode("/v1/jobs/parse", response).await?.value)
    }

    /// Validates a job on the agent.
    pub async fn validate_job(&self, job: Value) -> Result<JobValidateResponse, ApiError> {
        self.put_json("/v1/validate/job", &serde_json::json!({ "Job": job }))
            .await
    }

    pub async fn jobs(&self, prefix: &str) -> Result<Vec<JobListStub>, ApiError> {
        Ok(self.get(&format!("/v1/jobs?prefix={}", encode(prefix))).await?.value)
    }

    /// A job as Nomad API JSON.
    pub async fn job(&self, id: &str) -> Result<Value, ApiError> {
        Ok(self.get(&format!("/v1/job/{}", encode(id))).await?.value)
    }

    pub async fn job_summary(&self, id: &str) -> Result<JobSummary, ApiError> {
        Ok(self.get(&format!("/v1/job/{}/summary", encode(id))).await?.value)
    }

    pub async fn job_allocations(&self, id: &str) -> Result<Vec<AllocListStub>, ApiError> {
        Ok(self.get(&format!("/v1/job/{}/allocations", encode(id))).await?.value)
    }

    pub async fn job_evaluations(&self, id: &str) -> Result<Vec<Evaluation>, ApiError> {
        Ok(self.get(&format!("/v1/job/{}/evaluations", encode(id))).await?.value)
    }

    pub async fn stop_job(&self, id: &str, purge: bool) -> Result<JobDeregisterResponse, ApiError> {
        let path = format!("/v1/job/{}?purge={purge}", encode(id));
        let response = self.send(self.http.delete(self.url(&path))).await?;
        Ok(Self::decode(&path, response).await?.value)
    }

    pub async fn allocations(&self, prefix: &str) -> Result<Vec<AllocListStub>, ApiError> {
        Ok(self
            .get(&format!("/v1/allocations?prefix={}", encode(prefix)))
            .await?
            .value)
    }

    pub async fn allocation(&self, id: &str) -> Result<Allocation, ApiError> {
        Ok(self.get(&format!("/v1/allocation/{}", encode(id))).await?.value)
    }

    pub async fn evaluations(&self, prefix: &str) -> Result<Vec<Evaluation>, ApiError> {
        Ok(self
            .get(&format!("/v1/evaluations?prefix={}", encode(prefix)))
            .await?
            .value)
    }

    pub async fn evaluation(&self, id: &str) -> Result<Evaluation, ApiError> {
        Ok(self.get(&format!("/v1/evaluation/{}", encode(id))).await?.value)
    }

    pub async fn nodes(&self, prefix: &str) -> Result<Vec<NodeListStub>, ApiError> {
        Ok(self.get(&format!("/v1/nodes?prefix={}", encode(prefix))).await?.value)
    }

    pub async fn node(&self, id: &str) -> Result<Node, ApiError> {
        Ok(self.get(&format!("/v1/node/{}", encode(id))).await?.value)
    }

    pub async fn node_allocations(&self, id: &str) -> Result<Vec<AllocListStub>, ApiError> {
        Ok(self.get(&format!("/v1/node/{}/allocations", encode(id))).await?.value)
    }

    /// Every namespace whose name starts with `prefix`.
    pub async fn namespaces(&self, prefix: &str) -> Result<Vec<Namespace>, ApiError> {
        Ok(self
            .get(&format!("/v1/namespaces?prefix={}", encode(prefix)))
            .await?
            .value)
    }

    /// One namespace.
    pub async fn namespace(&self, name: &str) -> Result<Namespace, ApiError> {
        Ok(self.get(&format!("/v1/namespace/{}", encode(name))).await?.value)
    }

    /// Creates or updates a namespace; returns the index of the write.
    pub async fn apply_namespace(&self, namespace: &Namespace) -> Result<u64, ApiError> {
        let path = format!("/v1/namespace/{}", encode(&namespace.name));
        let response = self.send(self.http.put(self.url(&path)).json(namespace)).await?;
        Ok(index_of(&response))
    }

    /// Deletes a namespace; returns the index of the write.
    pub async fn delete_namespace(&self, name: &str) -> Result<u64, ApiError> {
        let path = format!("/v1/namespace/{}", encode(name));
        let response = self.send(self.http.delete(self.url(&path))).await?;
        Ok(index_of(&response))
    }

    pub async fn leader(&self) -> Result<String, ApiError> {
        Ok(self.get("/v1/status/leader").await?.value)
    }

    pub async fn agent_self(&self) -> Result<Value, ApiError> {
        Ok(self.get("/v1/agent/self").await?.value)
    }

    /// Sends a signal to one task of an allocation, or to all of them.
    pub async fn alloc_signal(&self, alloc_id: &str, task: Option<&str>, signal: &str) -> Result<Value, ApiError> {
        let body = serde_json::json!({ "Signal": signal, "Task": task.unwrap_or_default() });
        self.put_json(&format!("/v1/client/allocation/{}/signal", encode(alloc_id)), &body)
            .await
    }

    /// Restarts one task of an allocation in place, or all of them.
    pub async fn alloc_restart(&self, alloc_id: &str, task: Option<&str>) -> Result<Value, ApiError> {
        let body = serde_json::json!({ "TaskName": task.unwrap_or_default(), "AllTasks": task.is_none() });
        self.put_json(&format!("/v1/client/allocation/{}/restart", encode(alloc_id)), &body)
            .await
    }

    /// `stat` of a path in an allocation's directory (Nomad's `AllocFileInfo`).
    pub async fn alloc_fs_stat(&self, alloc_id: &str, path: &str) -> Result<Value, ApiError> {
        Ok(self
            .get(&format!(
                "/v1/client/fs/stat/{}?path={}",
                encode(alloc_id),
                encode(path)
            ))
            .await?
            .value)
    }

    /// The entries of a directory in an allocation's directory.
    pub async fn alloc_fs_ls(&self, alloc_id: &str, path: &str) -> Result<Vec<Value>, ApiError> {
        Ok(self
            .get(&format!("/v1/client/fs/ls/{}?path={}", encode(alloc_id), encode(path)))
            .await?
            .value)
    }

    /// Streams a file of an allocation's directory.
    pub async fn alloc_fs_cat(
        &self,
        alloc_id: &str,
        path: &str,
    ) -> Result<impl Stream<Item = Result<bytes::Bytes, ApiError>> + use<>, ApiError> {
        let path = format!("/v1/client/fs/cat/{}?path={}", encode(alloc_id), encode(path));
        let response = self.send(self.http.get(self.url(&path))).await?;
        use futures::StreamExt;
        Ok(response.bytes_stream().map(move |chunk| {
            chunk.map_err(|error| ApiError::Decode {
                path: path.clone(),
                message: error.to_string(),
            })
        }))
    }

    /// Streams a task's log as plain bytes.
    pub async fn logs(
        &self,
        alloc_id: &str,
        request: &LogsRequest,
    ) -> Result<impl Stream<Item = Result<bytes::Bytes, ApiError>> + use<>, ApiError> {
        let path = format!(
            "/v1/client/fs/logs/{}?task={}&type={}&follow={}&offset={}&origin={}&plain=true",
            encode(alloc_id),
            encode(&request.task),
            encode(&request.log_type),
            request.follow,
            request.offset,
            encode(if request.origin.is_empty() {
                "start"
            } else {
                &request.origin
            }),
        );
        let response = self.send(self.http.get(self.url(&path))).await?;
        use futures::StreamExt;
        Ok(response.bytes_stream().map(move |chunk| {
            chunk.map_err(|error| ApiError::Decode {
                path: path.clone(),
                message: error.to_string(),
            })
        }))
    }

    /// `GET path` as a stream of body chunks (the event stream, the
    /// agent monitor): the request's answer arrives as it is written.
    pub async fn get_stream(
        &self,
        path: &str,
    ) -> Result<impl Stream<Item = Result<bytes::Bytes, ApiError>> + use<>, ApiError> {
        let response = self.send(self.http.get(self.url(path))).await?;
        let path = path.to_string();
        use futures::StreamExt;
        Ok(response.bytes_stream().map(move |chunk| {
            chunk.map_err(|error| ApiError::Decode {
                path: path.clone(),
                message: error.to_string(),
            })
        }))
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_characters() {
        assert_eq!(encode("web/api v1"), "web%2Fapi%20v1");
        assert_eq!(encode("abc-123_x.y~"), "abc-123_x.y~");
    }

    #[tokio::test]
    async fn unreachable_agent_is_a_connect_error() {
        // Port 1 on loopback refuses connections.
        let client = Client::new("http://127.0.0.1:1/");
        assert_eq!(client.address(), "http://127.0.0.1:1");
        let error = client.leader().await.expect_err("nothing listens on port 1");
        assert!(matches!(error, ApiError::Connect { .. }), "{error:?}");
        assert_eq!(error.status(), None);
    }
}
