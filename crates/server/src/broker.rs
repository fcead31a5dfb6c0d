//! The eval broker: pending evaluations waiting for a scheduler worker.
//!
//! Evaluations are handed out highest priority first, then oldest first, and
//! never two for the same job at once (a second one waits until the first is
//! acknowledged), so schedulers of one job never race each other. Delayed
//! evaluations (`wait_until`) become ready when their time comes.
//!
//! Every hand-out carries a token. The worker acknowledges the evaluation
//! when it is done, or nacks it when it could not finish (the leader moved,
//! a write failed); an evaluation neither acked nor nacked within the nack
//! timeout (its worker died with its server) counts as nacked. A nacked
//! evaluation is handed out again after a short delay, until it has been
//! delivered `delivery_limit` times; then it is set aside as *failed*, and
//! the leader marks it failed and schedules a follow-up evaluation, so work
//! is never silently dropped.
//!
//! The broker only runs on the leader: it is enabled when the server takes
//! leadership (and refilled from the state), and disabled, and emptied,
//! when it loses it.
//!
//! [`BrokerCore`] is the pure queue logic, tested directly; [`EvalBroker`]
//! wraps it with a lock and a notification for the async workers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use types::{Evaluation, UnixNanos};

/// How many times an evaluation is handed out before it is set aside as
/// failed (Nomad's default).
pub const DEFAULT_DELIVERY_LIMIT: u32 = 3;
/// How long a worker may hold an evaluation without acking it.
pub const DEFAULT_NACK_TIMEOUT: Duration = Duration::from_secs(60);
/// Delays before a nacked evaluation is handed out again, by delivery.
const NACK_DELAYS: [Duration; 3] = [
    Duration::from_millis(0),
    Duration::from_secs(1),
    Duration::from_secs(20),
];

/// Orders ready evaluations: higher priority first, then lower index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ReadyKey {
    neg_priority: i64,
    create_index: u64,
    id: String,
}

/// An evaluation handed out and not yet acked.
#[derive(Debug, Clone)]
struct Unacked {
    eval: Evaluation,
    token: String,
    nack_deadline: UnixNanos,
}

/// Why an ack or nack was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("evaluation {0} is not outstanding")]
    NotOutstanding(String),
    #[error("evaluation {0} was handed out again: the token is stale")]
    TokenMismatch(String),
    #[error("the eval broker is disabled (this server does not lead)")]
    Disabled,
}

/// The queue logic with no locking and no clock.
#[derive(Debug)]
pub struct BrokerCore {
    enabled: bool,
    delivery_limit: u32,
    nack_timeout: Duration,
    ready: BTreeSet<ReadyKey>,
    delayed: BTreeSet<(UnixNanos, String)>,
    evals: HashMap<String, Evaluation>,
    /// Jobs with an evaluation handed out, by (namespace, job).
    in_flight_jobs: BTreeSet<(String, String)>,
    /// Evaluations waiting because their job is in flight, in arrival order.
    blocked_on_job: BTreeMap<(String, String), Vec<String>>,
    unacked: HashMap<String, Unacked>,
    /// How many times each queued or outstanding evaluation was handed out.
    deliveries: HashMap<String, u32>,
    /// Evaluations past their delivery limit, for the leader to fail.
    failed: Vec<Evaluation>,
    next_token: u64,
}

impl Default for BrokerCore {
    fn default() -> Self {
        BrokerCore::new(DEFAULT_DELIVERY_LIMIT, DEFAULT_NACK_TIMEOUT)
    }
}

fn job_key(eval: &Evaluation) -> (String, String) {
    (eval.namespace.clone(), eval.job_id.clone())
}

fn nanos(duration: Duration) -> UnixNanos {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

impl BrokerCore {
    /// A disabled broker with these limits.
    pub fn new(delivery_limit: u32, nack_timeout: Duration) -> BrokerCore {
        BrokerCore {
            enabled: false,
            delivery_limit: delivery_limit.max(1),
            nack_timeout,
            ready: BTreeSet::new(),
            delayed: BTreeSet::new(),
            evals: HashMap::new(),
            in_flight_jobs: BTreeSet::new(),
            blocked_on_job: BTreeMap::new(),
            unacked: HashMap::new(),
            deliveries: HashMap::new(),
            failed: Vec::new(),
            next_token: 0,
        }
    }

    /// Turns the broker on (leadership gained) or off and empty (lost).
    pub fn set_enabled(&mut self, enabled: bool) {
        if !enabled {
            let (delivery_limit, nack_timeout) = (self.delivery_limit, self.nack_timeout);
            *self = BrokerCore::new(delivery_limit, nack_timeout);
        }
        self.enabled = enabled;
    }

    /// Whether the broker hands out work.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Adds an evaluation. Duplicates (same ID already queued or in flight)
    /// and anything sent to a disabled broker are ignored.
    pub fn enqueue(&mut self, eval: Evaluation, now: UnixNanos) {
        if !self.enabled || self.evals.contains_key(&eval.id) || self.unacked.contains_key(&eval.id) {
            return;
        }
        let id = eval.id.clone();
        let wait_until = eval.wait_until;
        self.evals.insert(id.clone(), eval);
        if wait_until > now {
            self.delayed.insert((wait_until, id));
        } else {
            self.make_ready(&id);
        }
    }

    fn make_ready(&mut self, id: &str) {
        let Some(eval) = self.evals.get(id) else {
            return;
        };
        let key = job_key(eval);
        if self.in_flight_jobs.contains(&key) {
            self.blocked_on_job.entry(key).or_default().push(id.to_string());
            return;
        }
        self.ready.insert(ReadyKey {
            neg_priority: -i64::from(eval.priority),
            create_index: eval.create_index,
            id: id.to_string(),
        });
    }

    /// Moves delayed evaluations whose time has come into the ready set,
    /// and counts outstanding evaluations past their nack deadline as
    /// nacked.
    pub fn tick(&mut self, now: UnixNanos) {
        let expired: Vec<(String, String)> = self
            .unacked
            .values()
            .filter(|unacked| unacked.nack_deadline <= now)
            .map(|unacked| (unacked.eval.id.clone(), unacked.token.clone()))
            .collect();
        for (id, token) in expired {
            tracing::warn!(eval_id = %id, "evaluation not acknowledged in time; redelivering");
            let _ = self.nack(&id, &token, now);
        }
        while let Some((when, id)) = self.delayed.first().cloned() {
            if when > now {
                break;
            }
            self.delayed.remove(&(when, id.clone()));
            self.make_ready(&id);
        }
    }

    /// When the broker next has something to do on its own: a delayed
    /// evaluation becoming ready or a nack deadline.
    pub fn next_wakeup(&self) -> Option<UnixNanos> {
        let delayed = self.delayed.first().map(|(when, _)| *when);
        let deadline = self.unacked.values().map(|unacked| unacked.nack_deadline).min();
        match (delayed, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Hands out the best ready evaluation with its token, marking its job
    /// in flight.
    pub fn dequeue(&mut self, now: UnixNanos) -> Option<(Evaluation, String)> {
        if !self.enabled {
            return None;
        }
        loop {
            let key = self.ready.pop_first()?;
            let Some(eval) = self.evals.remove(&key.id) else {
                continue;
            };
            let job = job_key(&eval);
            if self.in_flight_jobs.contains(&job) {
                // Another eval of this job went out since this one became ready.
                self.evals.insert(key.id.clone(), eval);
                self.blocked_on_job.entry(job).or_default().push(key.id);
                continue;
            }
            self.in_flight_jobs.insert(job);
            self.next_token += 1;
            let token = format!("{}-{}", eval.id, self.next_token);
            *self.deliveries.entry(eval.id.clone()).or_default() += 1;
            self.unacked.insert(
                eval.id.clone(),
                Unacked {
                    eval: eval.clone(),
                    token: token.clone(),
                    nack_deadline: now.saturating_add(nanos(self.nack_timeout)),
                },
            );
            return Some((eval, token));
        }
    }

    /// Checks that `token` is the outstanding delivery of `eval_id` and
    /// restarts its nack timer (a worker still making plans is alive).
    pub fn outstanding_reset(&mut self, eval_id: &str, token: &str, now: UnixNanos) -> Result<(), BrokerError> {
        if !self.enabled {
            return Err(BrokerError::Disabled);
        }
        let nack_timeout = nanos(self.nack_timeout);
        match self.unacked.get_mut(eval_id) {
            None => Err(BrokerError::NotOutstanding(eval_id.to_string())),
            Some(unacked) if unacked.token != token => Err(BrokerError::TokenMismatch(eval_id.to_string())),
            Some(unacked) => {
                unacked.nack_deadline = now.saturating_add(nack_timeout);
                Ok(())
            }
        }
    }

    fn take_outstanding(&mut self, eval_id: &str, token: &str) -> Result<Unacked, BrokerError> {
        if !self.enabled {
            return Err(BrokerError::Disabled);
        }
        match self.unacked.get(eval_id) {
            None => Err(BrokerError::NotOutstanding(eval_id.to_string())),
            Some(unacked) if unacked.token != token => Err(BrokerError::TokenMismatch(eval_id.to_string())),
            Some(_) => self
                .unacked
                .remove(eval_id)
                .ok_or_else(|| BrokerError::NotOutstanding(eval_id.to_string())),
        }
    }

    /// Releases the next evaluation of a job that is no longer in flight.
    fn release_job(&mut self, job: (String, String)) {
        self.in_flight_jobs.remove(&job);
        if let Some(mut waiting) = self.blocked_on_job.remove(&job)
            && !waiting.is_empty()
        {
            let next = waiting.remove(0);
            if !waiting.is_empty() {
                self.blocked_on_job.insert(job, waiting);
            }
            self.make_ready(&next);
        }
    }

    /// Marks an evaluation done and releases the next one of its job.
    pub fn ack(&mut self, eval_id: &str, token: &str) -> Result<(), BrokerError> {
        let unacked = self.take_outstanding(eval_id, token)?;
        self.deliveries.remove(eval_id);
        self.release_job(job_key(&unacked.eval));
        Ok(())
    }

    /// Gives an evaluation back: it is handed out again after a delay, or
    /// set aside as failed once it reached the delivery limit.
    pub fn nack(&mut self, eval_id: &str, token: &str, now: UnixNanos) -> Result<(), BrokerError> {
        let unacked = self.take_outstanding(eval_id, token)?;
        let job = job_key(&unacked.eval);
        let delivered = self.deliveries.get(eval_id).copied().unwrap_or(1);
        if delivered >= self.delivery_limit {
            self.deliveries.remove(eval_id);
            self.failed.push(unacked.eval);
        } else {
            let delay = NACK_DELAYS[(delivered.saturating_sub(1) as usize).min(NACK_DELAYS.len() - 1)];
            let mut eval = unacked.eval;
            eval.wait_until = now.saturating_add(nanos(delay));
            let id = eval.id.clone();
            self.evals.insert(id.clone(), eval);
            if delay.is_zero() {
                self.release_job(job);
                self.make_ready(&id);
                return Ok(());
            }
            self.delayed.insert((now.saturating_add(nanos(delay)), id));
        }
        self.release_job(job);
        Ok(())
    }

    /// Evaluations that reached the delivery limit since the last call.
    pub fn take_failed(&mut self) -> Vec<Evaluation> {
        std::mem::take(&mut self.failed)
    }

    /// Number of evaluations waiting (ready, delayed or behind their job).
    pub fn pending(&self) -> usize {
        self.evals.len()
    }

    /// Number handed out and not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }
}

/// The broker shared by the RPC/HTTP handlers and the workers.
#[derive(Debug, Default)]
pub struct EvalBroker {
    core: Mutex<BrokerCore>,
    notify: Notify,
}

impl EvalBroker {
    /// A disabled broker with these limits.
    pub fn new(delivery_limit: u32, nack_timeout: Duration) -> EvalBroker {
        EvalBroker {
            core: Mutex::new(BrokerCore::new(delivery_limit, nack_timeout)),
            notify: Notify::new(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut BrokerCore) -> T) -> T {
        match self.core.lock() {
            Ok(mut guard) => f(&mut guard),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn wake(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.with(|core| core.set_enabled(enabled));
        self.wake();
    }

    pub fn enabled(&self) -> bool {
        self.with(|core| core.enabled())
    }

    pub fn enqueue(&self, eval: Evaluation, now: UnixNanos) {
        self.with(|core| core.enqueue(eval, now));
        self.wake();
    }

    pub fn ack(&self, eval_id: &str, token: &str) -> Result<(), BrokerError> {
        let result = self.with(|core| core.ack(eval_id, token));
        self.wake();
        result
    }

    pub fn nack(&self, eval_id: &str, token: &str, now: UnixNanos) -> Result<(), BrokerError> {
        let result = self.with(|core| core.nack(eval_id, token, now));
        self.wake();
        result
    }

    /// See [`BrokerCore::outstanding_reset`].
    pub fn outstanding_reset(&self, eval_id: &str, token: &str, now: UnixNanos) -> Result<(), BrokerError> {
        self.with(|core| core.outstanding_reset(eval_id, token, now))
    }

    /// Evaluations past the delivery limit (the leader fails them).
    pub fn take_failed(&self) -> Vec<Evaluation> {
        self.with(BrokerCore::take_failed)
    }

    pub fn stats(&self) -> (usize, usize) {
        self.with(|core| (core.pending(), core.unacked()))
    }

    /// Waits up to `wait` for the next ready evaluation. `now` is read each
    /// time the broker looks, so delayed evaluations become ready and nack
    /// deadlines pass on time. `None` when nothing came, or the broker is
    /// disabled.
    pub async fn dequeue(&self, now: impl Fn() -> UnixNanos, wait: Duration) -> Option<(Evaluation, String)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            let (found, enabled, next_wakeup) = self.with(|core| {
                let now = now();
                core.tick(now);
                (core.dequeue(now), core.enabled(), core.next_wakeup())
            });
            if found.is_some() || !enabled {
                return found;
            }
            let mut until = deadline;
            if let Some(when) = next_wakeup {
                let wait_nanos = u64::try_from(when.saturating_sub(now())).unwrap_or(0);
                until = until.min(tokio::time::Instant::now() + Duration::from_nanos(wait_nanos));
            }
            if tokio::time::timeout_at(until, notified).await.is_err() && tokio::time::Instant::now() >= deadline {
                // One last look: a delayed evaluation may be due now.
                return self.with(|core| {
                    let now = now();
                    core.tick(now);
                    core.dequeue(now)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(id: &str, job: &str, priority: i32, create_index: u64) -> Evaluation {
        Evaluation {
            id: id.to_string(),
            namespace: "default".into(),
            job_id: job.to_string(),
            priority,
            create_index,
            ..Evaluation::default()
        }
    }

    fn enabled() -> BrokerCore {
        let mut core = BrokerCore::default();
        core.set_enabled(true);
        core
    }

    fn id_of(handed: Option<(Evaluation, String)>) -> Option<String> {
        handed.map(|(eval, _)| eval.id)
    }

    #[test]
    fn priority_then_age_and_one_per_job() {
        let mut core = enabled();
        core.enqueue(eval("a1", "a", 50, 1), 0);
        core.enqueue(eval("b1", "b", 70, 2), 0);
        core.enqueue(eval("a2", "a", 90, 3), 0);
        // Highest priority first: a2 (90) then b1 (70); a1 waits behind a2.
        let (a2, token) = core.dequeue(0).expect("a2");
        assert_eq!(a2.id, "a2");
        assert_eq!(id_of(core.dequeue(0)), Some("b1".into()));
        assert_eq!(core.dequeue(0), None);
        core.ack("a2", &token).expect("ack");
        let (a1, _) = core.dequeue(0).expect("a1");
        assert_eq!(a1.id, "a1");
        core.enqueue(eval("a1", "a", 50, 1), 0);
        assert_eq!(core.pending(), 0, "a duplicate of an unacked eval is ignored");
    }

    #[test]
    fn delayed_evals_wait_for_their_time() {
        let mut core = enabled();
        let mut delayed = eval("d", "a", 50, 1);
        delayed.wait_until = 1_000;
        core.enqueue(delayed, 0);
        assert_eq!(core.dequeue(0), None);
        assert_eq!(core.next_wakeup(), Some(1_000));
        core.tick(999);
        assert_eq!(core.dequeue(999), None);
        core.tick(1_000);
        assert_eq!(id_of(core.dequeue(1_000)), Some("d".into()));
    }

    #[test]
    fn a_disabled_broker_takes_and_gives_nothing() {
        let mut core = BrokerCore::default();
        core.enqueue(eval("x", "a", 50, 1), 0);
        assert_eq!(core.pending(), 0);
        core.set_enabled(true);
        core.enqueue(eval("x", "a", 50, 1), 0);
        let (_, token) = core.dequeue(0).expect("handed out");
        core.set_enabled(false);
        assert_eq!(core.dequeue(0), None);
        assert_eq!(core.ack("x", &token), Err(BrokerError::Disabled));
        core.set_enabled(true);
        assert_eq!((core.pending(), core.unacked()), (0, 0), "losing leadership empties it");
    }

    #[test]
    fn nacked_evals_come_back_until_the_delivery_limit() {
        let mut core = enabled();
        core.enqueue(eval("x", "a", 50, 1), 0);
        let (_, first) = core.dequeue(0).expect("first delivery");
        // A stale token cannot ack or nack.
        assert_eq!(core.ack("x", "bogus"), Err(BrokerError::TokenMismatch("x".into())));
        core.nack("x", &first, 0).expect("nack");
        let (_, second) = core.dequeue(0).expect("redelivered at once");
        core.nack("x", &second, 0).expect("nack");
        assert_eq!(core.dequeue(0), None, "the second redelivery waits");
        core.tick(1_000_000_000);
        let (_, third) = core.dequeue(1_000_000_000).expect("third delivery");
        core.nack("x", &third, 1_000_000_000).expect("nack");
        assert_eq!(core.dequeue(i64::MAX), None);
        let failed = core.take_failed();
        assert_eq!(
            failed.iter().map(|eval| eval.id.as_str()).collect::<Vec<_>>(),
            vec!["x"]
        );
        assert_eq!((core.pending(), core.unacked()), (0, 0));
        // Its job is free again.
        core.enqueue(eval("y", "a", 50, 2), 0);
        assert_eq!(id_of(core.dequeue(0)), Some("y".into()));
    }

    #[test]
    fn an_eval_not_acked_in_time_is_redelivered() {
        let mut core = BrokerCore::new(3, Duration::from_secs(60));
        core.set_enabled(true);
        core.enqueue(eval("x", "a", 50, 1), 0);
        let (_, token) = core.dequeue(0).expect("delivered");
        assert_eq!(core.next_wakeup(), Some(60_000_000_000));
        core.tick(59_999_999_999);
        assert_eq!(core.unacked(), 1);
        core.tick(60_000_000_000);
        assert_eq!(core.unacked(), 0, "timed out");
        let (_, again) = core.dequeue(60_000_000_000).expect("redelivered");
        assert_ne!(again, token);
        assert_eq!(core.ack("x", &token), Err(BrokerError::TokenMismatch("x".into())));
        core.ack("x", &again).expect("the new token acks");
    }

    /// The plan applier's check: only the outstanding delivery may
    /// commit, and a worker still planning keeps its delivery alive.
    #[test]
    fn only_the_outstanding_delivery_passes_and_it_resets_the_nack_timer() {
        let mut core = BrokerCore::new(3, Duration::from_secs(60));
        core.set_enabled(true);
        core.enqueue(eval("x", "a", 50, 1), 0);
        let (_, token) = core.dequeue(0).expect("delivered");
        core.outstanding_reset("x", &token, 50_000_000_000)
            .expect("outstanding");
        core.tick(60_000_000_000);
        assert_eq!(core.unacked(), 1, "the reset moved the deadline to 110 s");
        core.tick(110_000_000_000);
        assert_eq!(core.unacked(), 0, "timed out after all");
        let (_, again) = core.dequeue(110_000_000_000).expect("redelivered");
        assert_eq!(
            core.outstanding_reset("x", &token, 110_000_000_000),
            Err(BrokerError::TokenMismatch("x".into())),
            "the first delivery's plans are refused"
        );
        core.outstanding_reset("x", &again, 110_000_000_000)
            .expect("the new delivery commits");
        core.ack("x", &again).expect("ack");
        assert_eq!(
            core.outstanding_reset("x", &again, 110_000_000_000),
            Err(BrokerError::NotOutstanding("x".into()))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn async_dequeue_wakes_on_enqueue_and_times_out() {
        let broker = std::sync::Arc::new(EvalBroker::default());
        broker.set_enabled(true);
        let waiter = {
            let broker = std::sync::Arc::clone(&broker);
            tokio::spawn(async move { broker.dequeue(|| 0, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        broker.enqueue(eval("x", "a", 50, 1), 0);
        let got = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("join");
        assert_eq!(id_of(got), Some("x".into()));
        let nothing = broker.dequeue(|| 0, Duration::from_secs(5)).await;
        assert_eq!(nothing, None);
    }
}
