//! What one request may cost the agent. Job files are programs: parsing
//! and validating one is CPU work of unknown size, so it runs on tokio's
//! blocking pool (never on the async workers that serve heartbeats and
//! every other request), a few at a time, under the jobspec evaluation
//! budget and a wall-clock deadline.

use crate::error::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The default request body limit: 4 MiB, far above the largest job
/// (a job with a thousand groups is well under 1 MiB of JSON).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;

/// The HTTP API's limits. [`crate::app`] uses the defaults;
/// [`crate::app_with_limits`] takes others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// What evaluating one HCL job (`/v1/jobs/parse`) may do.
    pub eval_budget: jobspec::EvalBudget,
    /// How long parsing or validating one job may take before the request
    /// is answered with a 400 (the work itself stops at the budget).
    pub parse_deadline: Duration,
    /// How many jobs are parsed or validated at once; more wait their turn
    /// (within the deadline).
    pub max_concurrent_parses: usize,
    /// The largest request body read, in bytes; a larger one is answered
    /// with 413 before it is read in full.
    pub max_body_bytes: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            eval_budget: jobspec::EvalBudget::DEFAULT,
            parse_deadline: Duration::from_secs(10),
            max_concurrent_parses: 2,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// The limits with the state they need (the parse permits), shared by the
/// handlers through an `Extension`.
#[derive(Debug)]
pub(crate) struct Limits {
    pub limits: ApiLimits,
    permits: Arc<Semaphore>,
}

impl Limits {
    pub(crate) fn new(limits: ApiLimits) -> Limits {
        Limits {
            limits,
            permits: Arc::new(Semaphore::new(limits.max_concurrent_parses.max(1))),
        }
    }

    /// Runs `work` (parsing or validating a job) on the blocking pool with
    /// one of the parse permits, and answers a 400 when it does not finish
    /// within the deadline (waiting for a permit included). The permit is
    /// held by the work itself, so a request that gave up still counts
    /// until its work has stopped.
    pub(crate) async fn parse<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    {
        let deadline = self.limits.parse_deadline;
        let permits = Arc::clone(&self.permits);
        let run = async move {
            let permit = permits
                .acquire_owned()
                .await
                .map_err(|_| ApiError::Internal("the parse permits are closed".to_string()))?;
            tokio::task::spawn_blocking(move || {
                let result = work();
                drop(permit);
                result
            })
            .await
            .map_err(|error| ApiError::Internal(format!("parsing a job failed: {error}")))?
        };
        match tokio::time::timeout(deadline, run).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::BadRequest(format!(
                "parsing the job took longer than {}; the job file does too much work",
                types::duration::format_duration(deadline)
            ))),
        }
    }
}
