//! The reschedule policy: whether a failed allocation may be replaced, and
//! when. Pure arithmetic over the policy, the allocation's reschedule
//! tracker and the `now` the caller passed in.

use std::time::Duration;
use types::{Allocation, RescheduleEvent, ReschedulePolicy, UnixNanos};

/// What to do with one failed allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Attempts are used up (or the job never reschedules): leave it failed.
    Never,
    /// Replace it in this evaluation, after waiting `delay`.
    Now { delay: i64 },
    /// Replace it at `at`; a follow-up evaluation must wake the scheduler.
    Later { at: UnixNanos, delay: i64 },
}

/// Slack for a reschedule time that has just passed (or is about to):
/// follow-up evaluations may run a little early or late.
const RESCHEDULE_WINDOW_NANOS: i64 = 1_000_000_000;

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The time the allocation failed: the latest task finish, else its last
/// modification.
pub(crate) fn fail_time(alloc: &Allocation) -> UnixNanos {
    alloc
        .task_states
        .values()
        .map(|state| state.finished_at)
        .filter(|finished| *finished > 0)
        .max()
        .unwrap_or(alloc.modify_time)
}

/// How many reschedules the tracker records inside the policy interval.
fn attempts_in_interval(policy: &ReschedulePolicy, events: &[RescheduleEvent], now: UnixNanos) -> u32 {
    let interval = nanos(policy.interval);
    events
        .iter()
        .filter(|event| interval == 0 || event.reschedule_time > now.saturating_sub(interval))
        .count() as u32
}

/// The delay before the next attempt, from the delay function and the
/// delays used so far, capped by `max_delay` when one is set.
pub(crate) fn next_delay(policy: &ReschedulePolicy, events: &[RescheduleEvent]) -> i64 {
    let base = nanos(policy.delay);
    let delay = match policy.delay_function.as_str() {
        "exponential" => match events.last() {
            Some(last) if last.delay > 0 => last.delay.saturating_mul(2),
            _ => base,
        },
        "fibonacci" => match events {
            [.., before, last] if last.delay > 0 => before.delay.saturating_add(last.delay),
            [.., last] if last.delay > 0 => last.delay,
            _ => base,
        },
        _ => base,
    };
    let max_delay = nanos(policy.max_delay);
    if max_delay > 0 { delay.min(max_delay) } else { delay }
}

/// Decides whether and when a failed allocation is replaced.
pub(crate) fn decide(policy: Option<&ReschedulePolicy>, alloc: &Allocation, now: UnixNanos) -> Decision {
    let Some(policy) = policy else {
        return Decision::Never;
    };
    let events: &[RescheduleEvent] = alloc
        .reschedule_tracker
        .as_ref()
        .map(|tracker| tracker.events.as_slice())
        .unwrap_or(&[]);
    if !policy.unlimited && (policy.attempts == 0 || attempts_in_interval(policy, events, now) >= policy.attempts) {
        return Decision::Never;
    }
    let delay = next_delay(policy, events);
    let at = fail_time(alloc).saturating_add(delay);
    if at <= now.saturating_add(RESCHEDULE_WINDOW_NANOS) {
        Decision::Now { delay }
    } else {
        Decision::Later { at, delay }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::{AllocClientStatus, JobType, RescheduleTracker};

    const SEC: i64 = 1_000_000_000;

    fn failed_at(time: UnixNanos, delays: &[i64]) -> Allocation {
        Allocation {
            client_status: AllocClientStatus::Failed,
            modify_time: time,
            reschedule_tracker: Some(RescheduleTracker {
                events: delays
                    .iter()
                    .enumerate()
                    .map(|(index, delay)| RescheduleEvent {
                        reschedule_time: time - 10 * SEC + index as i64,
                        prev_alloc_id: format!("a{index}"),
                        prev_node_id: "n".into(),
                        delay: *delay,
                    })
                    .collect(),
            }),
            ..Allocation::default()
        }
    }

    fn policy(function: &str, attempts: u32, unlimited: bool) -> ReschedulePolicy {
        ReschedulePolicy {
            attempts,
            interval: Duration::from_secs(3600),
            delay: Duration::from_secs(5),
            delay_function: function.into(),
            max_delay: Duration::from_secs(60),
            unlimited,
        }
    }

    #[test]
    fn delay_functions() {
        let exponential = policy("exponential", 0, true);
        assert_eq!(next_delay(&exponential, &[]), 5 * SEC);
        let events = failed_at(0, &[5 * SEC, 10 * SEC])
            .reschedule_tracker
            .expect("tracker")
            .events;
        assert_eq!(next_delay(&exponential, &events), 20 * SEC);
        let events = failed_at(0, &[40 * SEC]).reschedule_tracker.expect("tracker").events;
        assert_eq!(next_delay(&exponential, &events), 60 * SEC, "capped at max_delay");
        let fibonacci = policy("fibonacci", 0, true);
        assert_eq!(next_delay(&fibonacci, &[]), 5 * SEC);
        let events = failed_at(0, &[5 * SEC]).reschedule_tracker.expect("tracker").events;
        assert_eq!(next_delay(&fibonacci, &events), 5 * SEC);
        let events = failed_at(0, &[5 * SEC, 5 * SEC, 10 * SEC])
            .reschedule_tracker
            .expect("tracker")
            .events;
        assert_eq!(next_delay(&fibonacci, &events), 15 * SEC);
        let constant = policy("constant", 0, true);
        assert_eq!(next_delay(&constant, &events), 5 * SEC);
    }

    #[test]
    fn attempts_and_timing() {
        let now = 1_000 * SEC;
        let limited = policy("constant", 2, false);
        assert_eq!(
            decide(Some(&limited), &failed_at(now - 30 * SEC, &[]), now),
            Decision::Now { delay: 5 * SEC }
        );
        assert_eq!(
            decide(Some(&limited), &failed_at(now, &[]), now),
            Decision::Later {
                at: now + 5 * SEC,
                delay: 5 * SEC
            }
        );
        assert_eq!(
            decide(Some(&limited), &failed_at(now - 30 * SEC, &[5 * SEC, 5 * SEC]), now),
            Decision::Never
        );
        assert_eq!(decide(None, &failed_at(now, &[]), now), Decision::Never);
        let default_batch = ReschedulePolicy::default_for(JobType::Batch);
        assert!(matches!(
            decide(default_batch.as_ref(), &failed_at(now - 30 * SEC, &[]), now),
            Decision::Now { .. }
        ));
        let unlimited = policy("exponential", 0, true);
        let many = vec![5 * SEC; 50];
        assert!(matches!(
            decide(Some(&unlimited), &failed_at(now - 3600 * SEC, &many), now),
            Decision::Now { .. }
        ));
    }
}
