//! Children of periodic and parameterized jobs, from the servers' side.
//!
//! The periodic dispatcher is a leader duty on the leader's tick: for each
//! periodic job it finds the next launch after the last one recorded in
//! Raft (or after the job's submission) and, once that time has come,
//! writes a `PeriodicLaunch` with the child `<parent>/periodic-<unix>`. The
//! state refuses a launch not after the recorded one, so a new leader
//! neither repeats a launch nor, since it starts from the record, skips
//! one; after more than [`CATCH_UP_WINDOW`] without a leader only the
//! latest missed launch runs (Nomad runs one too). The same tick starts
//! children queued under a parent's `max_concurrent` (Drover's extension)
//! as slots free.
//!
//! [`plan`] is pure (a snapshot, the time and an ID source in, commands
//! out); [`run_once`] writes what it decided. Forced launches and
//! dispatches are operator writes on [`Server`].

use crate::cron::{PeriodicSchedule, instant, nanos};
use crate::{Server, ServerError, new_id, now_nanos};
use state::{Command, StateSnapshot};
use std::collections::BTreeMap;
use types::{EvalStatus, Evaluation, Job, JobStatus, UnixNanos, limits, trigger};

/// Missed launches older than this are not run one by one: only the
/// latest one is.
pub const CATCH_UP_WINDOW: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// How many missed launches the catch-up looks through at most.
const MAX_CATCH_UP_STEPS: usize = 100_000;

/// Checks a periodic job's schedule at registration.
pub(crate) fn check_schedule(job: &Job) -> Result<(), String> {
    match &job.periodic {
        Some(periodic) if periodic.enabled => PeriodicSchedule::new(periodic).map(|_| ()),
        _ => Ok(()),
    }
}

/// The launch that is due now, if one is: the first scheduled time after
/// `after`, or the latest one at or before `now` when the first is older
/// than the catch-up window.
pub fn due_launch(schedule: &PeriodicSchedule, after: UnixNanos, now: UnixNanos) -> Option<UnixNanos> {
    let next = schedule.next_after(instant(after))?;
    if nanos(next) > now {
        return None;
    }
    let window = i64::try_from(CATCH_UP_WINDOW.as_nanos()).unwrap_or(i64::MAX);
    if now.saturating_sub(nanos(next)) <= window {
        return Some(nanos(next));
    }
    let mut latest = next;
    for _ in 0..MAX_CATCH_UP_STEPS {
        match schedule.next_after(latest) {
            Some(following) if nanos(following) <= now => latest = following,
            _ => break,
        }
    }
    Some(nanos(latest))
}

/// A child of `parent` named `child_id`, as Nomad derives it: the parent's
/// spec without its periodic or parameterized block.
pub(crate) fn derive_child(parent: &Job, child_id: String) -> Job {
    Job {
        name: child_id.clone(),
        id: child_id,
        parent_id: parent.id.clone(),
        periodic: None,
        parameterized: None,
        dispatched: false,
        payload: Vec::new(),
        dispatch_idempotency_token: String::new(),
        stop: false,
        status: JobStatus::Pending,
        status_description: String::new(),
        stable: false,
        version: 0,
        submit_time: 0,
        create_index: 0,
        modify_index: 0,
        job_modify_index: 0,
        ..parent.clone()
    }
}

fn child_eval(child: &Job, triggered_by: &str, id: String, now: UnixNanos) -> Evaluation {
    Evaluation {
        id,
        namespace: child.namespace.clone(),
        priority: child.priority,
        job_type: Some(child.job_type),
        triggered_by: triggered_by.to_string(),
        job_id: child.id.clone(),
        status: EvalStatus::Pending,
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    }
}

/// A periodic launch of `parent` at `launch`.
fn launch_command(
    parent: &Job,
    launch: UnixNanos,
    force: bool,
    ids: &mut dyn FnMut() -> String,
    now: UnixNanos,
) -> Command {
    let child = derive_child(
        parent,
        format!("{}/periodic-{}", parent.id, launch.div_euclid(1_000_000_000)),
    );
    let eval = child_eval(&child, trigger::PERIODIC_JOB, ids(), now);
    Command::PeriodicLaunch {
        namespace: parent.namespace.clone(),
        job_id: parent.id.clone(),
        launch,
        force,
        child: Some(child),
        eval: Some(eval),
        now,
    }
}

/// What the dispatcher decides now: due periodic launches, and queued
/// children to start.
pub fn plan(snapshot: &StateSnapshot, now: UnixNanos, ids: &mut dyn FnMut() -> String) -> Vec<Command> {
    let mut commands = Vec::new();
    for job in snapshot.jobs(None) {
        let Some(periodic) = job.periodic.as_ref().filter(|periodic| periodic.enabled) else {
            continue;
        };
        if job.stop || job.parameterized.is_some() {
            continue;
        }
        let schedule = match PeriodicSchedule::new(periodic) {
            Ok(schedule) => schedule,
            Err(error) => {
                tracing::debug!(job_id = %job.id, %error, "periodic job has no usable schedule");
                continue;
            }
        };
        let after = snapshot
            .periodic_launch(&job.namespace, &job.id)
            .unwrap_or(0)
            .max(job.submit_time);
        if let Some(launch) = due_launch(&schedule, after, now) {
            commands.push(launch_command(&job, launch, false, ids, now));
        }
    }
    for (namespace, parent_id) in snapshot.parents_with_queues() {
        let parent = snapshot.job(&namespace, &parent_id);
        let cap = parent.as_ref().map_or(0, |parent| parent.child_cap() as usize);
        let live = snapshot.live_children(&namespace, &parent_id);
        let free = if cap == 0 { usize::MAX } else { cap.saturating_sub(live) };
        if free == 0 {
            continue;
        }
        let triggered_by = if parent.as_ref().is_some_and(|parent| parent.periodic.is_some()) {
            trigger::PERIODIC_JOB
        } else {
            trigger::JOB_REGISTER
        };
        let evals: Vec<Evaluation> = snapshot
            .queued_children(&namespace, &parent_id)
            .iter()
            .filter_map(|child_id| snapshot.job(&namespace, child_id))
            .filter(|child| !child.stop && child.status != JobStatus::Dead)
            .take(free)
            .map(|child| child_eval(&child, triggered_by, ids(), now))
            .collect();
        commands.push(Command::ChildRelease {
            namespace,
            parent_id,
            evals,
        });
    }
    commands
}

/// One pass of the dispatcher on the leader.
pub(crate) async fn run_once(server: &Server) {
    let commands = plan(&server.state(), now_nanos(), &mut new_id);
    server.write_duty("periodic launch", commands).await;
}

/// A dispatch request (Nomad's `JobDispatchRequest`).
#[derive(Debug, Clone, Default)]
pub struct DispatchRequest {
    pub payload: Vec<u8>,
    pub meta: BTreeMap<String, String>,
    pub idempotency_token: String,
}

/// What a dispatch or a forced launch made.
#[derive(Debug, Clone, Default)]
pub struct LaunchResult {
    pub job_id: String,
    /// Empty when the child waits for a slot, or the dispatch repeated an
    /// earlier one.
    pub eval_id: String,
    pub eval_create_index: types::Index,
    pub job_create_index: types::Index,
    pub index: types::Index,
}

/// Checks a dispatch against the parent's `parameterized` block.
pub(crate) fn check_dispatch(parent: &Job, request: &DispatchRequest) -> Result<(), String> {
    let Some(parameterized) = &parent.parameterized else {
        return Err(format!("job {:?} is not a parameterized job", parent.id));
    };
    if request.payload.len() > limits::MAX_DISPATCH_PAYLOAD {
        return Err(format!(
            "payload exceeds maximum size; {} bytes > {} bytes",
            request.payload.len(),
            limits::MAX_DISPATCH_PAYLOAD
        ));
    }
    match parameterized.payload.as_str() {
        "forbidden" if !request.payload.is_empty() => {
            return Err(format!(
                "job {:?} does not allow a payload (payload = \"forbidden\")",
                parent.id
            ));
        }
        "required" if request.payload.is_empty() => {
            return Err(format!(
                "job {:?} requires a payload (payload = \"required\")",
                parent.id
            ));
        }
        _ => {}
    }
    if request.meta.len() > limits::MAX_DISPATCH_META {
        return Err(format!(
            "dispatch carries {} meta entries, more than Drover's limit of {}",
            request.meta.len(),
            limits::MAX_DISPATCH_META
        ));
    }
    if let Some((key, _)) = request
        .meta
        .iter()
        .find(|(key, value)| key.len() > limits::MAX_DISPATCH_META_LEN || value.len() > limits::MAX_DISPATCH_META_LEN)
    {
        return Err(format!(
            "dispatch meta {:?} is longer than Drover's limit of {} bytes",
            types::validate::shorten(key),
            limits::MAX_DISPATCH_META_LEN
        ));
    }
    if request.idempotency_token.len() > limits::MAX_DISPATCH_META_LEN {
        return Err(format!(
            "idempotency token is longer than Drover's limit of {} bytes",
            limits::MAX_DISPATCH_META_LEN
        ));
    }
    let missing: Vec<&str> = parameterized
        .meta_required
        .iter()
        .filter(|key| !request.meta.contains_key(*key))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!("dispatch did not provide required meta keys: {missing:?}"));
    }
    let unpermitted: Vec<&str> = request
        .meta
        .keys()
        .filter(|key| !parameterized.meta_required.contains(key) && !parameterized.meta_optional.contains(key))
        .map(String::as_str)
        .collect();
    if !unpermitted.is_empty() {
        return Err(format!("dispatch included unpermitted meta keys: {unpermitted:?}"));
    }
    Ok(())
}

impl Server {
    /// Launches a periodic job's child now (`job periodic force`).
    pub async fn force_periodic(&self, namespace: &str, job_id: &str) -> Result<LaunchResult, ServerError> {
        let snapshot = self.read_state(false).await?;
        let parent = snapshot
            .job(namespace, job_id)
            .ok_or_else(|| ServerError::NotFound(format!("job {job_id:?}")))?;
        if !parent.periodic.as_ref().is_some_and(|periodic| periodic.enabled) {
            return Err(ServerError::BadRequest(format!(
                "can't force launch non-periodic job {job_id:?}"
            )));
        }
        if parent.stop {
            return Err(ServerError::BadRequest(format!(
                "can't force launch stopped job {job_id:?}"
            )));
        }
        let now = now_nanos();
        let mut ids = new_id;
        let command = launch_command(&parent, now, true, &mut ids, now);
        let eval_id = match &command {
            Command::PeriodicLaunch { eval: Some(eval), .. } => eval.id.clone(),
            _ => String::new(),
        };
        let result = self.write(command).await?;
        if let Some(error) = result.error {
            return Err(ServerError::BadRequest(error));
        }
        let started = result.evals_to_enqueue.contains(&eval_id);
        Ok(LaunchResult {
            job_id: result.job_id.unwrap_or_default(),
            eval_id: if started { eval_id } else { String::new() },
            eval_create_index: if started { result.index } else { 0 },
            job_create_index: result.index,
            index: result.index,
        })
    }

    /// Dispatches a parameterized job: a child with the payload and meta,
    /// started at once or queued under the parent's `max_concurrent`.
    pub async fn dispatch_job(
        &self,
        namespace: &str,
        job_id: &str,
        request: DispatchRequest,
    ) -> Result<LaunchResult, ServerError> {
        let snapshot = self.read_state(false).await?;
        let parent = snapshot
            .job(namespace, job_id)
            .ok_or_else(|| ServerError::NotFound(format!("job {job_id:?}")))?;
        if parent.stop {
            return Err(ServerError::BadRequest(format!(
                "can't dispatch stopped job {job_id:?}"
            )));
        }
        check_dispatch(&parent, &request).map_err(ServerError::BadRequest)?;
        let now = now_nanos();
        let suffix: String = new_id().chars().filter(char::is_ascii_hexdigit).take(8).collect();
        let child_id = format!("{}/dispatch-{}-{suffix}", parent.id, now.div_euclid(1_000_000_000));
        let mut child = derive_child(&parent, child_id);
        child.dispatched = true;
        child.payload = request.payload;
        child.meta.extend(request.meta);
        child.dispatch_idempotency_token = request.idempotency_token;
        let eval = child_eval(&child, trigger::JOB_REGISTER, new_id(), now);
        let eval_id = eval.id.clone();
        let result = self.write(Command::JobDispatch { child, eval, now }).await?;
        if let Some(error) = result.error {
            return Err(ServerError::BadRequest(error));
        }
        let started = result.evals_to_enqueue.contains(&eval_id);
        Ok(LaunchResult {
            job_id: result.job_id.unwrap_or_default(),
            eval_id: if started { eval_id } else { String::new() },
            eval_create_index: if started { result.index } else { 0 },
            job_create_index: result.index,
            index: result.index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::{JobType, PeriodicConfig, Task, TaskGroup};

    const SECOND: i64 = 1_000_000_000;
    /// 2026-12-05T10:00:00Z.
    const T0: i64 = 1_796_464_800 * SECOND;

    fn periodic_job(spec: &str) -> Job {
        let mut job = Job {
            id: "report".into(),
            job_type: JobType::Batch,
            periodic: Some(PeriodicConfig {
                specs: vec![spec.into()],
                ..PeriodicConfig::default()
            }),
            task_groups: vec![TaskGroup {
                name: "g".into(),
                tasks: vec![Task {
                    name: "t".into(),
                    driver: "raw_exec".into(),
                    ..Task::default()
                }],
                ..TaskGroup::default()
            }],
            ..Job::default()
        };
        job.canonicalize();
        job
    }

    /// Applies what the dispatcher decides at `now`, and returns the
    /// children it launched.
    fn tick(state: &mut StateSnapshot, now: UnixNanos) -> Vec<String> {
        let mut counter = 0;
        let mut ids = || {
            counter += 1;
            format!("eval-{now}-{counter}")
        };
        let mut launched = Vec::new();
        for command in plan(state, now, &mut ids) {
            let index = state.index() + 1;
            let result = state.apply(index, command);
            assert_eq!(result.error, None);
            launched.extend(result.job_id);
        }
        launched
    }

    fn registered(spec: &str, submitted: UnixNanos) -> StateSnapshot {
        let mut state = StateSnapshot::new();
        let result = state.apply(
            1,
            Command::JobRegister {
                job: periodic_job(spec),
                eval: None,
                now: submitted,
                enforce_index: None,
            },
        );
        assert_eq!(result.error, None);
        state
    }

    #[test]
    fn launches_follow_the_schedule_once_each() {
        // Every 15 minutes; submitted at 10:00:00 exactly, so the first
        // launch is 10:15.
        let mut state = registered("*/15 * * * *", T0);
        assert!(tick(&mut state, T0 + 14 * 60 * SECOND).is_empty());
        let first = tick(&mut state, T0 + 15 * 60 * SECOND);
        assert_eq!(first, vec![format!("report/periodic-{}", T0 / SECOND + 900)]);
        // The same instant again, or a tick a moment later: nothing new.
        assert!(tick(&mut state, T0 + 15 * 60 * SECOND).is_empty());
        assert!(tick(&mut state, T0 + 16 * 60 * SECOND).is_empty());
        assert_eq!(tick(&mut state, T0 + 30 * 60 * SECOND + SECOND).len(), 1);
        assert_eq!(state.children("default", "report").len(), 2);
    }

    #[test]
    fn a_new_leader_catches_up_without_repeating() {
        let mut state = registered("* * * * *", T0);
        assert_eq!(tick(&mut state, T0 + 60 * SECOND).len(), 1);
        // The old leader stops; a new one takes over 3 minutes later with
        // the same Raft state: it launches the missed 10:02, 10:03 and
        // 10:04 one per tick, and 10:01 never again.
        let mut launched = Vec::new();
        for _ in 0..5 {
            launched.extend(tick(&mut state, T0 + 4 * 60 * SECOND));
        }
        let expected: Vec<String> = (2..=4)
            .map(|minute| format!("report/periodic-{}", T0 / SECOND + minute * 60))
            .collect();
        assert_eq!(launched, expected);
        // Past the catch-up window only the latest missed launch runs.
        let late = tick(&mut state, T0 + 60 * 60 * SECOND);
        assert_eq!(late, vec![format!("report/periodic-{}", T0 / SECOND + 3600)]);
        assert!(tick(&mut state, T0 + 60 * 60 * SECOND).is_empty());
    }

    #[test]
    fn a_stopped_periodic_job_launches_nothing() {
        let mut state = registered("* * * * *", T0);
        state.apply(
            2,
            Command::JobDeregister {
                namespace: "default".into(),
                job_id: "report".into(),
                purge: false,
                eval: None,
                now: T0,
            },
        );
        assert!(tick(&mut state, T0 + 10 * 60 * SECOND).is_empty());
    }

    #[test]
    fn dispatch_checks_payload_and_meta() {
        let mut parent = periodic_job("@daily");
        parent.periodic = None;
        parent.parameterized = Some(types::ParameterizedConfig {
            payload: "required".into(),
            meta_required: vec!["region".into()],
            meta_optional: vec!["note".into()],
            ..types::ParameterizedConfig::default()
        });
        let request = |payload: usize, meta: &[(&str, &str)]| DispatchRequest {
            payload: vec![b'x'; payload],
            meta: meta
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            idempotency_token: String::new(),
        };
        assert_eq!(check_dispatch(&parent, &request(1, &[("region", "eu")])), Ok(()));
        assert_eq!(
            check_dispatch(&parent, &request(limits::MAX_DISPATCH_PAYLOAD, &[("region", "eu")])),
            Ok(())
        );
        let too_big = check_dispatch(&parent, &request(limits::MAX_DISPATCH_PAYLOAD + 1, &[("region", "eu")]));
        assert!(too_big.expect_err("too big").contains("maximum size"));
        assert!(
            check_dispatch(&parent, &request(0, &[("region", "eu")]))
                .expect_err("required")
                .contains("requires a payload")
        );
        assert!(
            check_dispatch(&parent, &request(1, &[]))
                .expect_err("missing")
                .contains("region")
        );
        assert!(
            check_dispatch(&parent, &request(1, &[("region", "eu"), ("colour", "red")]))
                .expect_err("unpermitted")
                .contains("colour")
        );
    }
}
