//! Children of periodic and parameterized jobs: the periodic launch table
//! (the last launch of each periodic job, so a new leader neither repeats
//! nor skips one), dispatches (with their idempotency tokens), and the
//! queue of children held back by a parent's `max_concurrent` cap (a
//! Drover extension), released in order as running children finish.
//!
//! Every decision that depends on other children (overlap, the cap, an
//! idempotency token seen before) is taken here, in `apply`, so two
//! leaders in a row cannot take it differently.

use crate::command::CommandResult;
use crate::store::{StateSnapshot, key};
use std::sync::Arc;
use types::{EvalStatus, Evaluation, Index, Job, JobStatus, UnixNanos};

type NsKey = (String, String);

impl StateSnapshot {
    // ----- reads -------------------------------------------------------

    /// The last launch of a periodic job (Unix nanoseconds), if any.
    pub fn periodic_launch(&self, namespace: &str, job_id: &str) -> Option<UnixNanos> {
        self.periodic_launches.get(&key(namespace, job_id)).copied()
    }

    /// The children of a periodic or parameterized job, by ID.
    pub fn children(&self, namespace: &str, parent_id: &str) -> Vec<Arc<Job>> {
        let prefix = format!("{parent_id}/");
        self.jobs
            .range(key(namespace, &prefix)..)
            .take_while(|((ns, id), _)| ns == namespace && id.starts_with(&prefix))
            .filter(|(_, job)| job.parent_id == parent_id)
            .map(|(_, job)| job.clone())
            .collect()
    }

    /// Children waiting for a slot under their parent's `max_concurrent`,
    /// in launch order.
    pub fn queued_children(&self, namespace: &str, parent_id: &str) -> Vec<String> {
        self.child_queues
            .get(&key(namespace, parent_id))
            .map(|queue| queue.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Parents with children waiting in their queue, as (namespace, id).
    pub fn parents_with_queues(&self) -> Vec<(String, String)> {
        self.child_queues
            .iter()
            .filter(|(_, queue)| !queue.is_empty())
            .map(|(parent, _)| parent.clone())
            .collect()
    }

    /// Children that count against the parent's cap: not finished and not
    /// waiting in the queue.
    pub fn live_children(&self, namespace: &str, parent_id: &str) -> usize {
        let queue = self.child_queues.get(&key(namespace, parent_id));
        self.children(namespace, parent_id)
            .iter()
            .filter(|child| child.status != JobStatus::Dead && !child.stop)
            .filter(|child| queue.is_none_or(|queue| !queue.contains(&child.id)))
            .count()
    }

    // ----- apply -------------------------------------------------------

    /// Stores a new child and either starts it (writes its evaluation) or,
    /// when the parent's cap is reached or others already wait, queues it.
    fn launch_child(
        &mut self,
        index: Index,
        parent: &Job,
        child: Job,
        eval: Evaluation,
        now: UnixNanos,
        result: &mut CommandResult,
    ) {
        let parent_key = key(&parent.namespace, &parent.id);
        let cap = parent.child_cap() as usize;
        let waiting = self
            .child_queues
            .get(&parent_key)
            .is_some_and(|queue| !queue.is_empty());
        let full = cap > 0 && (waiting || self.live_children(&parent.namespace, &parent.id) >= cap);
        let child_id = child.id.clone();
        self.upsert_job(index, child, now);
        if full {
            self.child_queues
                .entry(parent_key)
                .or_default()
                .push_back(child_id.clone());
        } else {
            result.evals_to_enqueue.push(eval.id.clone());
            self.upsert_eval(index, eval);
        }
        self.tables.jobs = index;
        result.job_id = Some(child_id);
    }

    /// `Command::PeriodicLaunch`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply_periodic_launch(
        &mut self,
        index: Index,
        namespace: &str,
        job_id: &str,
        launch: UnixNanos,
        force: bool,
        child: Option<Job>,
        eval: Option<Evaluation>,
        now: UnixNanos,
        result: &mut CommandResult,
    ) {
        let parent_key = key(namespace, job_id);
        let Some(parent) = self.jobs.get(&parent_key).cloned() else {
            result.error = Some(format!("job {job_id:?} not found"));
            return;
        };
        let Some(periodic) = parent.periodic.as_ref().filter(|periodic| periodic.enabled) else {
            result.error = Some(format!("job {job_id:?} is not periodic"));
            return;
        };
        let recorded = self.periodic_launches.get(&parent_key).copied();
        if !force && recorded.is_some_and(|last| launch <= last) {
            result.error = Some(format!("job {job_id:?} was already launched for this time"));
            return;
        }
        if let Some(child) = &child
            && self.jobs.contains_key(&key(namespace, &child.id))
        {
            result.error = Some(format!("job {:?} already exists", child.id));
            return;
        }
        self.periodic_launches
            .insert(parent_key, recorded.map_or(launch, |last| last.max(launch)));
        let (Some(child), Some(eval)) = (child, eval) else {
            return;
        };
        // Nomad's prohibit_overlap skips a scheduled launch (not a forced
        // one) while an earlier child still runs.
        if !force && periodic.prohibit_overlap && self.live_children(namespace, job_id) > 0 {
            return;
        }
        self.launch_child(index, &parent, child, eval, now, result);
    }

    /// `Command::JobDispatch`.
    pub(crate) fn apply_dispatch(
        &mut self,
        index: Index,
        child: Job,
        eval: Evaluation,
        now: UnixNanos,
        result: &mut CommandResult,
    ) {
        let Some(parent) = self.jobs.get(&key(&child.namespace, &child.parent_id)).cloned() else {
            result.error = Some(format!("job {:?} not found", child.parent_id));
            return;
        };
        if parent.parameterized.is_none() {
            result.error = Some(format!("job {:?} is not a parameterized job", parent.id));
            return;
        }
        if parent.stop {
            result.error = Some(format!("job {:?} is stopped", parent.id));
            return;
        }
        if !child.dispatch_idempotency_token.is_empty()
            && let Some(existing) = self
                .children(&parent.namespace, &parent.id)
                .into_iter()
                .find(|existing| existing.dispatch_idempotency_token == child.dispatch_idempotency_token)
        {
            // The same dispatch again: answer with the child made the first time.
            result.job_id = Some(existing.id.clone());
            return;
        }
        if self.jobs.contains_key(&key(&child.namespace, &child.id)) {
            result.error = Some(format!("job {:?} already exists", child.id));
            return;
        }
        let queued = self
            .child_queues
            .get(&key(&parent.namespace, &parent.id))
            .map_or(0, |queue| queue.len());
        if queued >= types::limits::MAX_QUEUED_CHILDREN {
            result.error = Some(format!(
                "job {:?} already has {queued} dispatches waiting for a slot, Drover's limit",
                parent.id
            ));
            return;
        }
        self.launch_child(index, &parent, child, eval, now, result);
    }

    /// `Command::ChildRelease`: starts queued children, in order, while the
    /// parent's cap has room. Children that were stopped or collected
    /// while waiting leave the queue.
    pub(crate) fn apply_child_release(
        &mut self,
        index: Index,
        namespace: &str,
        parent_id: &str,
        evals: Vec<Evaluation>,
        result: &mut CommandResult,
    ) {
        let parent_key = key(namespace, parent_id);
        let Some(queue) = self.child_queues.get(&parent_key).cloned() else {
            return;
        };
        let kept: imbl::Vector<String> = queue
            .into_iter()
            .filter(|child_id| {
                self.jobs
                    .get(&key(namespace, child_id))
                    .is_some_and(|child| !child.stop && child.status != JobStatus::Dead)
            })
            .collect();
        self.child_queues.insert(parent_key.clone(), kept);
        let cap = self
            .jobs
            .get(&parent_key)
            .map_or(0, |parent| parent.child_cap() as usize);
        for eval in evals {
            let Some(front) = self
                .child_queues
                .get(&parent_key)
                .and_then(|queue| queue.front().cloned())
            else {
                break;
            };
            if front != eval.job_id || eval.status != EvalStatus::Pending {
                break;
            }
            if cap > 0 && self.live_children(namespace, parent_id) >= cap {
                break;
            }
            if let Some(queue) = self.child_queues.get_mut(&parent_key) {
                queue.pop_front();
            }
            result.evals_to_enqueue.push(eval.id.clone());
            self.upsert_eval(index, eval);
        }
        if self.child_queues.get(&parent_key).is_some_and(|queue| queue.is_empty()) {
            self.child_queues.remove(&parent_key);
        }
        self.tables.jobs = index;
    }

    /// Forgets a purged job's launch record and queue.
    pub(crate) fn forget_children_of(&mut self, job_key: &NsKey) {
        self.periodic_launches.remove(job_key);
        self.child_queues.remove(job_key);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Command, StateSnapshot};
    use types::{EvalStatus, Evaluation, Job, JobType, ParameterizedConfig, PeriodicConfig, Task, TaskGroup};

    fn template(id: &str) -> Job {
        let mut job = Job {
            id: id.to_string(),
            job_type: JobType::Batch,
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

    fn child(parent: &Job, id: &str) -> Job {
        Job {
            id: id.to_string(),
            parent_id: parent.id.clone(),
            periodic: None,
            parameterized: None,
            ..parent.clone()
        }
    }

    fn eval(id: &str, job_id: &str) -> Evaluation {
        Evaluation {
            id: id.to_string(),
            namespace: "default".into(),
            job_id: job_id.to_string(),
            status: EvalStatus::Pending,
            ..Evaluation::default()
        }
    }

    fn register(state: &mut StateSnapshot, index: u64, job: Job) {
        let result = state.apply(
            index,
            Command::JobRegister {
                job,
                eval: None,
                now: 1,
                enforce_index: None,
            },
        );
        assert_eq!(result.error, None);
    }

    fn launch(state: &mut StateSnapshot, index: u64, parent: &Job, at: i64, force: bool) -> crate::CommandResult {
        let id = format!("{}/periodic-{at}", parent.id);
        state.apply(
            index,
            Command::PeriodicLaunch {
                namespace: "default".into(),
                job_id: parent.id.clone(),
                launch: at,
                force,
                child: Some(child(parent, &id)),
                eval: Some(eval(&format!("e-{id}"), &id)),
                now: at,
            },
        )
    }

    #[test]
    fn a_periodic_launch_is_recorded_and_never_repeated() {
        let mut state = StateSnapshot::new();
        let mut parent = template("cron");
        parent.periodic = Some(PeriodicConfig {
            specs: vec!["@hourly".into()],
            ..PeriodicConfig::default()
        });
        register(&mut state, 1, parent.clone());
        let first = launch(&mut state, 2, &parent, 10, false);
        assert_eq!(first.error, None);
        assert_eq!(first.job_id.as_deref(), Some("cron/periodic-10"));
        assert_eq!(first.evals_to_enqueue, vec!["e-cron/periodic-10".to_string()]);
        assert_eq!(state.periodic_launch("default", "cron"), Some(10));
        // A second leader replaying the same launch, or an older one, is refused.
        assert!(launch(&mut state, 3, &parent, 10, false).error.is_some());
        assert!(launch(&mut state, 4, &parent, 5, false).error.is_some());
        assert_eq!(state.children("default", "cron").len(), 1);
        // A forced launch runs whatever the record says, and the record survives a snapshot.
        assert_eq!(launch(&mut state, 5, &parent, 7, true).error, None);
        assert_eq!(state.children("default", "cron").len(), 2);
        let encoded = serde_json::to_string(&state).expect("encode");
        let decoded: StateSnapshot = serde_json::from_str(&encoded).expect("decode");
        assert_eq!(decoded.periodic_launch("default", "cron"), Some(10));
    }

    #[test]
    fn prohibit_overlap_skips_while_a_child_runs() {
        let mut state = StateSnapshot::new();
        let mut parent = template("cron");
        parent.periodic = Some(PeriodicConfig {
            specs: vec!["@hourly".into()],
            prohibit_overlap: true,
            ..PeriodicConfig::default()
        });
        register(&mut state, 1, parent.clone());
        assert_eq!(launch(&mut state, 2, &parent, 10, false).error, None);
        let skipped = launch(&mut state, 3, &parent, 20, false);
        assert_eq!(skipped.error, None);
        assert_eq!(skipped.job_id, None);
        assert_eq!(state.periodic_launch("default", "cron"), Some(20));
        assert_eq!(state.children("default", "cron").len(), 1);
    }

    #[test]
    fn dispatches_over_the_cap_wait_and_start_in_order() {
        let mut state = StateSnapshot::new();
        let mut parent = template("work");
        parent.parameterized = Some(ParameterizedConfig {
            max_concurrent: 2,
            ..ParameterizedConfig::default()
        });
        register(&mut state, 1, parent.clone());
        let mut index = 2;
        for n in 0..4 {
            let id = format!("work/dispatch-{n}");
            let mut dispatched = child(&parent, &id);
            dispatched.dispatch_idempotency_token = format!("token-{n}");
            let result = state.apply(
                index,
                Command::JobDispatch {
                    child: dispatched,
                    eval: eval(&format!("e{n}"), &id),
                    now: 1,
                },
            );
            index += 1;
            assert_eq!(result.error, None);
            assert_eq!(result.evals_to_enqueue.len(), usize::from(n < 2), "dispatch {n}");
        }
        assert_eq!(
            state.queued_children("default", "work"),
            vec!["work/dispatch-2", "work/dispatch-3"]
        );
        assert_eq!(state.live_children("default", "work"), 2);
        // The same token again answers with the first child.
        let mut again = child(&parent, "work/dispatch-9");
        again.dispatch_idempotency_token = "token-1".into();
        let repeated = state.apply(
            index,
            Command::JobDispatch {
                child: again,
                eval: eval("e9", "work/dispatch-9"),
                now: 1,
            },
        );
        index += 1;
        assert_eq!(repeated.job_id.as_deref(), Some("work/dispatch-1"));
        assert!(state.job("default", "work/dispatch-9").is_none());
        // No slot: nothing starts.
        let release = |state: &mut StateSnapshot, index| {
            state.apply(
                index,
                Command::ChildRelease {
                    namespace: "default".into(),
                    parent_id: "work".into(),
                    evals: vec![eval("r2", "work/dispatch-2"), eval("r3", "work/dispatch-3")],
                },
            )
        };
        assert!(release(&mut state, index).evals_to_enqueue.is_empty());
        index += 1;
        // One child stops: the front of the queue, and only it, starts.
        state.apply(
            index,
            Command::JobDeregister {
                namespace: "default".into(),
                job_id: "work/dispatch-0".into(),
                purge: false,
                eval: None,
                now: 2,
            },
        );
        index += 1;
        assert_eq!(release(&mut state, index).evals_to_enqueue, vec!["r2".to_string()]);
        assert_eq!(state.queued_children("default", "work"), vec!["work/dispatch-3"]);
    }
}
