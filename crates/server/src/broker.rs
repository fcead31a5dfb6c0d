//! The eval broker: pending evaluations waiting for a scheduler worker.
//!
//! Evaluations are handed out highest priority first, then oldest first, and
//! never two for the same job at once (a second one waits until the first is
//! acknowledged), so schedulers of one job never race each other. Delayed
//! evaluations (`wait_until`) become ready when their time comes.
//!
//! [`BrokerCore`] is the pure queue logic, tested directly; [`EvalBroker`]
//! wraps it with a lock and a notification for the async workers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use tokio::sync::Notify;
use types::{Evaluation, UnixNanos};

/// Orders ready evaluations: higher priority first, then lower index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ReadyKey {
    neg_priority: i64,
    create_index: u64,
    id: String,
}

/// The queue logic with no locking and no clock.
#[derive(Debug, Default)]
pub struct BrokerCore {
    ready: BTreeSet<ReadyKey>,
    delayed: BTreeSet<(UnixNanos, String)>,
    evals: HashMap<String, Evaluation>,
    /// Jobs with an evaluation handed out, by (namespace, job).
    in_flight_jobs: BTreeSet<(String, String)>,
    /// Evaluations waiting because their job is in flight, in arrival order.
    blocked_on_job: BTreeMap<(String, String), Vec<String>>,
    unacked: HashMap<String, Evaluation>,
}

fn job_key(eval: &Evaluation) -> (String, String) {
    (eval.namespace.clone(), eval.job_id.clone())
}

impl BrokerCore {
    /// Adds an evaluation. Duplicates (same ID already queued or in flight)
    /// are ignored.
    pub fn enqueue(&mut self, eval: Evaluation, now: UnixNanos) {
        if self.evals.contains_key(&eval.id) || self.unacked.contains_key(&eval.id) {
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

    /// Moves delayed evaluations whose time has come into the ready set.
    pub fn promote_delayed(&mut self, now: UnixNanos) {
        while let Some((when, id)) = self.delayed.first().cloned() {
            if when > now {
                break;
            }
            self.delayed.remove(&(when, id.clone()));
            self.make_ready(&id);
        }
    }

    /// When the next delayed evaluation becomes ready.
    pub fn next_delayed(&self) -> Option<UnixNanos> {
        self.delayed.first().map(|(when, _)| *when)
    }

    /// Hands out the best ready evaluation, marking its job in flight.
    pub fn dequeue(&mut self) -> Option<Evaluation> {
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
            self.unacked.insert(eval.id.clone(), eval.clone());
            return Some(eval);
        }
    }

    /// Marks an evaluation done and releases the next one of its job.
    pub fn ack(&mut self, eval_id: &str) {
        let Some(eval) = self.unacked.remove(eval_id) else {
            return;
        };
        let job = job_key(&eval);
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

    /// Number of evaluations waiting (ready, delayed or behind their job).
    pub fn pending(&self) -> usize {
        self.evals.len()
    }

    /// Number handed out and not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// Forgets everything (leadership lost).
    pub fn clear(&mut self) {
        *self = BrokerCore::default();
    }
}

/// The broker shared by the RPC/HTTP handlers and the workers.
#[derive(Debug, Default)]
pub struct EvalBroker {
    core: Mutex<BrokerCore>,
    notify: Notify,
}

impl EvalBroker {
    fn with<T>(&self, f: impl FnOnce(&mut BrokerCore) -> T) -> T {
        match self.core.lock() {
            Ok(mut guard) => f(&mut guard),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    pub fn enqueue(&self, eval: Evaluation, now: UnixNanos) {
        self.with(|core| core.enqueue(eval, now));
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    pub fn ack(&self, eval_id: &str) {
        self.with(|core| core.ack(eval_id));
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    pub fn clear(&self) {
        self.with(BrokerCore::clear);
    }

    pub fn stats(&self) -> (usize, usize) {
        self.with(|core| (core.pending(), core.unacked()))
    }

    /// Waits for the next ready evaluation. `now` is read each time the
    /// broker looks, so delayed evaluations become ready on time.
    pub async fn dequeue(&self, now: impl Fn() -> UnixNanos) -> Evaluation {
        loop {
            let notified = self.notify.notified();
            let (found, next_delayed) = self.with(|core| {
                core.promote_delayed(now());
                (core.dequeue(), core.next_delayed())
            });
            if let Some(eval) = found {
                return eval;
            }
            match next_delayed {
                Some(when) => {
                    let wait_nanos = u64::try_from(when.saturating_sub(now())).unwrap_or(0);
                    let _ = tokio::time::timeout(std::time::Duration::from_nanos(wait_nanos), notified).await;
                }
                None => notified.await,
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

    #[test]
    fn priority_then_age_and_one_per_job() {
        let mut core = BrokerCore::default();
        core.enqueue(eval("a1", "a", 50, 1), 0);
        core.enqueue(eval("b1", "b", 70, 2), 0);
        core.enqueue(eval("a2", "a", 90, 3), 0);
        // Highest priority first: a2 (90) then b1 (70); a1 waits behind a2.
        assert_eq!(core.dequeue().map(|e| e.id), Some("a2".into()));
        assert_eq!(core.dequeue().map(|e| e.id), Some("b1".into()));
        assert_eq!(core.dequeue(), None);
        core.ack("a2");
        assert_eq!(core.dequeue().map(|e| e.id), Some("a1".into()));
        core.enqueue(eval("a1", "a", 50, 1), 0);
        assert_eq!(core.pending(), 0, "a duplicate of an unacked eval is ignored");
    }

    #[test]
    fn delayed_evals_wait_for_their_time() {
        let mut core = BrokerCore::default();
        let mut delayed = eval("d", "a", 50, 1);
        delayed.wait_until = 1_000;
        core.enqueue(delayed, 0);
        assert_eq!(core.dequeue(), None);
        assert_eq!(core.next_delayed(), Some(1_000));
        core.promote_delayed(999);
        assert_eq!(core.dequeue(), None);
        core.promote_delayed(1_000);
        assert_eq!(core.dequeue().map(|e| e.id), Some("d".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn async_dequeue_wakes_on_enqueue() {
        let broker = std::sync::Arc::new(EvalBroker::default());
        let waiter = {
            let broker = std::sync::Arc::clone(&broker);
            tokio::spawn(async move { broker.dequeue(|| 0).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        broker.enqueue(eval("x", "a", 50, 1), 0);
        let got = tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("join");
        assert_eq!(got.id, "x");
    }
}
