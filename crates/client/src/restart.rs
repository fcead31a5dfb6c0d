//! The restart decision: given a task's restart policy, its job type and
//! how it just ended, should it run again, and after how long?
//!
//! Pure: the caller passes the current time (a `tokio::time::Instant`, so
//! tests run under paused time) and gets a [`RestartDecision`] back.

use std::time::Duration;
use tokio::time::Instant;
use types::duration::format_duration;
use types::{JobType, RestartMode, RestartPolicy};

/// What to do after a task stopped running on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartDecision {
    /// Run the task again after `delay`.
    Restart { delay: Duration, reason: String },
    /// Give up: the task is dead and failed.
    Fail { reason: String },
    /// The task finished its work: dead, not failed.
    Complete,
}

/// How a run of the task ended, as far as restarts care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The process exited with code 0 and no signal.
    Success,
    /// The process exited otherwise.
    Failure,
    /// The driver could not start the task.
    StartFailure,
}

/// The restart reason when the policy still allows attempts.
pub const REASON_WITHIN_POLICY: &str = "Restart within policy";

/// Counts restarts within the policy's interval for one task.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    policy: RestartPolicy,
    job_type: JobType,
    /// Restarts counted in the current interval.
    count: u32,
    /// When the current interval began (at the first counted exit).
    interval_start: Option<Instant>,
}

impl RestartTracker {
    /// A tracker for a task of a job of `job_type` with `policy`.
    pub fn new(policy: RestartPolicy, job_type: JobType) -> RestartTracker {
        RestartTracker {
            policy,
            job_type,
            count: 0,
            interval_start: None,
        }
    }

    /// Restarts counted in the current interval.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Decides what follows a run that ended with `outcome` at `now`.
    pub fn next(&mut self, outcome: RunOutcome, now: Instant) -> RestartDecision {
        let batch_like = matches!(self.job_type, JobType::Batch | JobType::Sysbatch);
        if batch_like && outcome == RunOutcome::Success {
            return RestartDecision::Complete;
        }
        let interval = self.policy.interval;
        match self.interval_start {
            // A zero interval never ends: attempts are counted for good.
            Some(start) if !interval.is_zero() && now.duration_since(start) >= interval => {
                self.interval_start = Some(now);
                self.count = 0;
            }
            Some(_) => {}
            None => self.interval_start = Some(now),
        }
        self.count += 1;
        if self.count <= self.policy.attempts {
            return RestartDecision::Restart {
                delay: self.policy.delay,
                reason: REASON_WITHIN_POLICY.to_string(),
            };
        }
        let exceeded = format!(
            "Exceeded allowed attempts {} in interval {} and mode is \"{}\"",
            self.policy.attempts,
            format_duration(interval),
            match self.policy.mode {
                RestartMode::Fail => "fail",
                RestartMode::Delay => "delay",
            }
        );
        match self.policy.mode {
            RestartMode::Fail => RestartDecision::Fail { reason: exceeded },
            RestartMode::Delay => {
                // Wait for the interval to end; the next one starts then,
                // with a fresh count.
                let start = self.interval_start.unwrap_or(now);
                let interval_end = start + interval;
                let delay = interval_end.saturating_duration_since(now).max(self.policy.delay);
                self.interval_start = Some(now + delay);
                self.count = 0;
                RestartDecision::Restart {
                    delay,
                    reason: exceeded,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u32, interval_secs: u64, delay_secs: u64, mode: RestartMode) -> RestartPolicy {
        RestartPolicy {
            attempts,
            interval: Duration::from_secs(interval_secs),
            delay: Duration::from_secs(delay_secs),
            mode,
            render_templates: false,
        }
    }

    fn restart(delay_secs: u64) -> RestartDecision {
        RestartDecision::Restart {
            delay: Duration::from_secs(delay_secs),
            reason: REASON_WITHIN_POLICY.to_string(),
        }
    }

    #[test]
    fn batch_success_completes_without_restart() {
        let now = Instant::now();
        let mut tracker = RestartTracker::new(policy(3, 60, 1, RestartMode::Fail), JobType::Batch);
        assert_eq!(tracker.next(RunOutcome::Success, now), RestartDecision::Complete);
        assert_eq!(tracker.count(), 0);
    }

    #[test]
    fn service_restarts_on_any_exit() {
        let now = Instant::now();
        let mut tracker = RestartTracker::new(policy(2, 60, 5, RestartMode::Fail), JobType::Service);
        assert_eq!(tracker.next(RunOutcome::Success, now), restart(5));
        assert_eq!(tracker.next(RunOutcome::Failure, now), restart(5));
    }

    #[test]
    fn fail_mode_gives_up_after_the_attempts() {
        let now = Instant::now();
        let mut tracker = RestartTracker::new(policy(1, 86400, 1, RestartMode::Fail), JobType::Batch);
        assert_eq!(tracker.next(RunOutcome::Failure, now), restart(1));
        assert_eq!(
            tracker.next(RunOutcome::Failure, now + Duration::from_secs(2)),
            RestartDecision::Fail {
                reason: "Exceeded allowed attempts 1 in interval 24h0m0s and mode is \"fail\"".to_string()
            }
        );
    }

    #[test]
    fn zero_attempts_fail_at_once() {
        let now = Instant::now();
        let mut tracker = RestartTracker::new(policy(0, 60, 1, RestartMode::Fail), JobType::Service);
        assert!(matches!(
            tracker.next(RunOutcome::StartFailure, now),
            RestartDecision::Fail { .. }
        ));
    }

    #[test]
    fn the_count_resets_when_the_interval_has_passed() {
        let start = Instant::now();
        let mut tracker = RestartTracker::new(policy(1, 60, 1, RestartMode::Fail), JobType::Service);
        assert_eq!(tracker.next(RunOutcome::Failure, start), restart(1));
        // 61s later a new interval begins, so one more attempt is allowed.
        let later = start + Duration::from_secs(61);
        assert_eq!(tracker.next(RunOutcome::Failure, later), restart(1));
        assert!(matches!(
            tracker.next(RunOutcome::Failure, later + Duration::from_secs(1)),
            RestartDecision::Fail { .. }
        ));
    }

    #[test]
    fn delay_mode_waits_for_the_end_of_the_interval() {
        let start = Instant::now();
        let mut tracker = RestartTracker::new(policy(1, 60, 2, RestartMode::Delay), JobType::Service);
        assert_eq!(tracker.next(RunOutcome::Failure, start), restart(2));
        let second_exit = start + Duration::from_secs(10);
        match tracker.next(RunOutcome::Failure, second_exit) {
            RestartDecision::Restart { delay, reason } => {
                assert_eq!(delay, Duration::from_secs(50));
                assert!(reason.contains("mode is \"delay\""), "{reason}");
            }
            other => panic!("expected a delayed restart, got {other:?}"),
        }
        // The next interval starts when the delay ends, with a fresh count.
        assert_eq!(
            tracker.next(RunOutcome::Failure, start + Duration::from_secs(65)),
            restart(2)
        );
    }

    #[test]
    fn delay_mode_never_waits_less_than_the_delay() {
        let start = Instant::now();
        let mut tracker = RestartTracker::new(policy(0, 1, 5, RestartMode::Delay), JobType::Batch);
        match tracker.next(RunOutcome::Failure, start) {
            RestartDecision::Restart { delay, .. } => assert_eq!(delay, Duration::from_secs(5)),
            other => panic!("expected a restart, got {other:?}"),
        }
    }
}
