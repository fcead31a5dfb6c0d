//! The deployments table: reads, and the parts of `apply` that keep a
//! deployment's counters in step with its allocations (placements, health,
//! canaries, the progress deadline), change its status and promote it.
//!
//! Counters move only on transitions (an allocation joining the
//! deployment, its health judged the first time), so replaying the log
//! gives the same numbers on every server.

use crate::command::CommandResult;
use crate::store::{StateSnapshot, key};
use std::sync::Arc;
use types::{
    AllocDeploymentStatus, Allocation, Deployment, DeploymentStatus, DeploymentStatusUpdate, EvalStatus, Evaluation,
    Index, Job, UnixNanos, deployment_description,
};

type NsKey = (String, String);

impl StateSnapshot {
    // ----- reads -------------------------------------------------------

    pub fn deployment(&self, id: &str) -> Option<Arc<Deployment>> {
        self.deployments.get(id).cloned()
    }

    /// Every deployment (in one namespace, or all with `None`), newest first.
    pub fn deployments(&self, namespace: Option<&str>) -> Vec<Arc<Deployment>> {
        let mut found: Vec<Arc<Deployment>> = self
            .deployments
            .values()
            .filter(|deployment| namespace.is_none_or(|wanted| wanted == deployment.namespace))
            .cloned()
            .collect();
        found.sort_by(|left, right| right.create_index.cmp(&left.create_index).then(left.id.cmp(&right.id)));
        found
    }

    /// A job's deployments, newest first.
    pub fn deployments_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Deployment>> {
        let mut found: Vec<Arc<Deployment>> = self
            .deployments_by_job
            .get(&key(namespace, job_id))
            .into_iter()
            .flatten()
            .filter_map(|id| self.deployments.get(id).cloned())
            .collect();
        found.sort_by(|left, right| right.create_index.cmp(&left.create_index).then(left.id.cmp(&right.id)));
        found
    }

    /// A job's newest deployment.
    pub fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<Arc<Deployment>> {
        self.deployments_by_job(namespace, job_id).into_iter().next()
    }

    /// The deployment whose ID is `prefix`, or the one whose ID starts with it.
    pub fn deployment_by_prefix(&self, prefix: &str) -> Result<Option<Arc<Deployment>>, crate::StateError> {
        crate::store::by_prefix(&self.deployments, prefix)
    }

    /// A task group's scaling events, oldest first.
    pub fn scaling_events(&self, namespace: &str, job_id: &str, group: &str) -> Vec<types::ScalingEvent> {
        self.scaling_events
            .get(&(namespace.to_string(), job_id.to_string(), group.to_string()))
            .map(|events| (**events).clone())
            .unwrap_or_default()
    }

    /// The allocations of a deployment.
    pub fn deployment_allocs(&self, deployment: &Deployment) -> Vec<Arc<Allocation>> {
        self.allocs_by_job(&deployment.namespace, &deployment.job_id)
            .into_iter()
            .filter(|alloc| alloc.deployment_id == deployment.id)
            .collect()
    }

    // ----- writes (from `apply`) ----------------------------------------

    pub(crate) fn put_deployment(&mut self, deployment: Deployment) {
        self.deployments_by_job
            .entry(key(&deployment.namespace, &deployment.job_id))
            .or_default()
            .insert(deployment.id.clone());
        self.deployments.insert(deployment.id.clone(), Arc::new(deployment));
    }

    pub(crate) fn upsert_deployment(&mut self, index: Index, mut deployment: Deployment) {
        deployment.create_index = self
            .deployments
            .get(&deployment.id)
            .map_or(index, |existing| existing.create_index);
        deployment.modify_index = index;
        self.put_deployment(deployment);
        self.tables.deployments = index;
    }

    /// Removes every deployment of a purged job.
    pub(crate) fn purge_deployments(&mut self, index: Index, job_key: &NsKey) {
        if let Some(ids) = self.deployments_by_job.remove(job_key) {
            for id in ids {
                self.deployments.remove(&id);
            }
            self.tables.deployments = index;
        }
    }

    pub(crate) fn check_deployment_active(&self, deployment_id: &str) -> Result<(), String> {
        match self.deployments.get(deployment_id) {
            None => Err(format!("deployment {deployment_id:?} not found")),
            Some(deployment) if !deployment.active() => Err(format!(
                "deployment {deployment_id:?} is {} and can no longer change",
                deployment.status.as_str()
            )),
            Some(_) => Ok(()),
        }
    }

    /// Sets a deployment's status; a terminal deployment stays as it is.
    /// Success marks the deployment's job version stable.
    pub(crate) fn set_deployment_status(&mut self, index: Index, update: &DeploymentStatusUpdate, now: UnixNanos) {
        let Some(existing) = self.deployments.get(&update.deployment_id).cloned() else {
            return;
        };
        if !existing.active() {
            return;
        }
        let mut deployment = (*existing).clone();
        deployment.status = update.status;
        deployment.status_description = update.status_description.clone();
        deployment.modify_time = now;
        if update.status == DeploymentStatus::Successful {
            self.mark_stable(index, &deployment.namespace, &deployment.job_id, deployment.job_version);
        }
        self.upsert_deployment(index, deployment);
    }

    /// Marks one job version stable (the current job too, when it is that
    /// version).
    pub(crate) fn mark_stable(&mut self, index: Index, namespace: &str, job_id: &str, version: u64) {
        self.set_stable(index, namespace, job_id, version, true);
    }

    /// Sets one job version's stable flag (the current job too, when it is
    /// that version).
    pub(crate) fn set_stable(&mut self, index: Index, namespace: &str, job_id: &str, version: u64, flag: bool) {
        let version_key = (namespace.to_string(), job_id.to_string(), version);
        if let Some(job) = self.job_versions.get(&version_key).cloned()
            && job.stable != flag
        {
            let mut changed = (*job).clone();
            changed.stable = flag;
            self.job_versions.insert(version_key, Arc::new(changed));
            self.tables.jobs = index;
        }
        let job_key = key(namespace, job_id);
        if let Some(job) = self.jobs.get(&job_key).cloned()
            && job.version == version
            && job.stable != flag
        {
            let mut changed = (*job).clone();
            changed.stable = flag;
            changed.modify_index = index;
            self.jobs.insert(job_key, Arc::new(changed));
            self.tables.jobs = index;
        }
    }

    /// Keeps the counters of the deployment an allocation joins, and keeps
    /// the health the servers recorded (a plan's copy may be older).
    pub(crate) fn count_placement(
        &mut self,
        index: Index,
        existing: Option<&Allocation>,
        alloc: &mut Allocation,
        now: UnixNanos,
    ) {
        if let Some(existing) = existing
            && existing.deployment_id == alloc.deployment_id
        {
            alloc.deployment_status = existing.deployment_status.clone();
            return;
        }
        if alloc.deployment_id.is_empty() {
            return;
        }
        let Some(stored) = self.deployments.get(&alloc.deployment_id).cloned() else {
            return;
        };
        let mut deployment = (*stored).clone();
        let Some(group) = deployment.task_groups.get_mut(&alloc.task_group) else {
            return;
        };
        group.placed_allocs = group.placed_allocs.saturating_add(1);
        if alloc.deployment_status.as_ref().is_some_and(|status| status.canary) {
            group.placed_canaries.push(alloc.id.clone());
        }
        if group.require_progress_by == 0 && group.progress_deadline > 0 {
            group.require_progress_by = now.saturating_add(group.progress_deadline);
        }
        self.upsert_deployment(index, deployment);
    }

    /// Records health judgements; each allocation is judged once.
    pub(crate) fn apply_alloc_health(
        &mut self,
        index: Index,
        deployment_id: &str,
        healthy: &[String],
        unhealthy: &[String],
        now: UnixNanos,
    ) -> Result<(), String> {
        let Some(stored) = self.deployments.get(deployment_id).cloned() else {
            return Err(format!("deployment {deployment_id:?} not found"));
        };
        let mut deployment = (*stored).clone();
        let judged = healthy
            .iter()
            .map(|id| (id, true))
            .chain(unhealthy.iter().map(|id| (id, false)));
        let mut changed = false;
        for (alloc_id, is_healthy) in judged {
            let Some(existing) = self.allocs.get(alloc_id).cloned() else {
                continue;
            };
            if existing.deployment_id != deployment_id
                || existing
                    .deployment_status
                    .as_ref()
                    .is_some_and(|status| status.healthy.is_some())
            {
                continue;
            }
            let Some(group) = deployment.task_groups.get_mut(&existing.task_group) else {
                continue;
            };
            if is_healthy {
                group.healthy_allocs = group.healthy_allocs.saturating_add(1);
                if group.progress_deadline > 0 {
                    group.require_progress_by = now.saturating_add(group.progress_deadline);
                }
            } else {
                group.unhealthy_allocs = group.unhealthy_allocs.saturating_add(1);
            }
            let mut alloc = (*existing).clone();
            let canary = alloc.deployment_status.as_ref().is_some_and(|status| status.canary);
            alloc.deployment_status = Some(AllocDeploymentStatus {
                healthy: Some(is_healthy),
                timestamp: now,
                canary,
                modify_index: index,
            });
            alloc.modify_index = index;
            self.allocs.insert(alloc.id.clone(), Arc::new(alloc));
            self.tables.allocs = index;
            changed = true;
        }
        if changed {
            deployment.modify_time = now;
            self.upsert_deployment(index, deployment);
        }
        Ok(())
    }

    /// Promotes canaries: refused unless the deployment is active and every
    /// placed canary of the promoted groups is healthy and as many as wanted.
    pub(crate) fn promote(
        &mut self,
        index: Index,
        deployment_id: &str,
        groups: &[String],
        now: UnixNanos,
    ) -> Result<(), String> {
        self.check_deployment_active(deployment_id)?;
        let stored = self
            .deployments
            .get(deployment_id)
            .cloned()
            .ok_or_else(|| format!("deployment {deployment_id:?} not found"))?;
        let mut deployment = (*stored).clone();
        for group in groups {
            if !deployment.task_groups.contains_key(group) {
                return Err(format!("deployment has no task group {group:?}"));
            }
        }
        let mut promoted_any = false;
        for (name, state) in deployment.task_groups.iter_mut() {
            if (!groups.is_empty() && !groups.contains(name)) || state.desired_canaries == 0 || state.promoted {
                continue;
            }
            let healthy = state
                .placed_canaries
                .iter()
                .filter(|id| {
                    self.allocs.get(*id).is_some_and(|alloc| {
                        alloc
                            .deployment_status
                            .as_ref()
                            .is_some_and(|status| status.healthy == Some(true))
                    })
                })
                .count();
            if healthy < state.desired_canaries as usize {
                return Err(format!(
                    "task group {name:?} has {healthy}/{} healthy canaries; promote once they are healthy",
                    state.desired_canaries
                ));
            }
            state.promoted = true;
            promoted_any = true;
        }
        if !promoted_any {
            return Err(format!("deployment {deployment_id:?} has no canaries to promote"));
        }
        if !deployment.requires_promotion() {
            deployment.status_description = deployment_description::RUNNING.to_string();
        }
        deployment.modify_time = now;
        self.upsert_deployment(index, deployment);
        Ok(())
    }

    /// Registers a job (an automatic revert) and stores an evaluation, as
    /// a deployment command asks.
    pub(crate) fn register_and_evaluate(
        &mut self,
        index: Index,
        job: Option<Job>,
        eval: Option<Evaluation>,
        now: UnixNanos,
        result: &mut CommandResult,
    ) {
        if let Some(job) = job {
            result.job_version = Some(self.upsert_job(index, job, now));
        }
        if let Some(eval) = eval {
            if eval.status == EvalStatus::Pending {
                result.evals_to_enqueue.push(eval.id.clone());
            }
            self.upsert_eval(index, eval);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Command, StateSnapshot};
    use types::{
        AllocDeploymentStatus, Allocation, Deployment, DeploymentState, DeploymentStatus, DeploymentStatusUpdate, Job,
    };

    fn deployment() -> Deployment {
        Deployment {
            id: "d1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            task_groups: [(
                "api".to_string(),
                DeploymentState {
                    desired_total: 2,
                    desired_canaries: 1,
                    progress_deadline: 100,
                    ..DeploymentState::default()
                },
            )]
            .into(),
            ..Deployment::default()
        }
    }

    fn alloc(id: &str, canary: bool) -> Allocation {
        Allocation {
            id: id.into(),
            namespace: "default".into(),
            job_id: "web".into(),
            task_group: "api".into(),
            node_id: "n1".into(),
            deployment_id: "d1".into(),
            deployment_status: canary.then(|| AllocDeploymentStatus {
                canary: true,
                ..AllocDeploymentStatus::default()
            }),
            ..Allocation::default()
        }
    }

    fn plan(allocs: Vec<Allocation>, deployment: Option<Deployment>, now: i64) -> Command {
        Command::PlanApply {
            allocs,
            eval_update: None,
            created_evals: Vec::new(),
            now,
            deployment,
            deployment_updates: Vec::new(),
        }
    }

    #[test]
    fn counters_follow_placements_health_and_promotion() {
        let mut state = StateSnapshot::new();
        state.apply(
            1,
            Command::JobRegister {
                job: Job {
                    id: "web".into(),
                    namespace: "default".into(),
                    ..Job::default()
                },
                eval: None,
                now: 0,
                enforce_index: None,
            },
        );
        state.apply(2, plan(vec![alloc("c1", true)], Some(deployment()), 10));
        // The same allocation again (an update) is not a second placement,
        // and keeps the health the servers recorded.
        state.apply(3, plan(vec![alloc("c1", false)], None, 20));
        let stored = state.deployment("d1").expect("deployment");
        let group = &stored.task_groups["api"];
        assert_eq!(group.placed_allocs, 1);
        assert_eq!(group.placed_canaries, vec!["c1".to_string()]);
        assert_eq!(group.require_progress_by, 110);
        assert!(
            state
                .alloc("c1")
                .expect("c1")
                .deployment_status
                .as_ref()
                .expect("kept")
                .canary
        );
        let promote = Command::DeploymentPromote {
            deployment_id: "d1".into(),
            groups: Vec::new(),
            eval: None,
            now: 30,
        };
        let refused = state.apply(4, promote.clone());
        assert!(refused.error.expect("refused").contains("0/1 healthy canaries"));
        let health = Command::DeploymentAllocHealth {
            deployment_id: "d1".into(),
            healthy: vec!["c1".into()],
            unhealthy: vec!["c1".into()],
            status: None,
            job: None,
            eval: None,
            now: 40,
        };
        state.apply(5, health.clone());
        state.apply(6, health);
        let stored = state.deployment("d1").expect("deployment");
        let group = &stored.task_groups["api"];
        assert_eq!((group.healthy_allocs, group.unhealthy_allocs), (1, 0), "judged once");
        assert_eq!(group.require_progress_by, 140);
        assert_eq!(state.apply(7, promote).error, None);
        assert!(state.deployment("d1").expect("deployment").task_groups["api"].promoted);
        // Terminal deployments no longer change.
        let fail = Command::DeploymentStatusSet {
            update: DeploymentStatusUpdate {
                deployment_id: "d1".into(),
                status: DeploymentStatus::Failed,
                status_description: "failed".into(),
            },
            job: None,
            eval: None,
            now: 50,
        };
        assert_eq!(state.apply(8, fail.clone()).error, None);
        assert!(state.apply(9, fail).error.expect("refused").contains("is failed"));
        // Deployments survive a snapshot round trip, with their job index.
        let bytes = serde_json::to_vec(&state).expect("encode");
        let restored: StateSnapshot = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(restored.deployment("d1"), state.deployment("d1"));
        assert_eq!(restored.latest_deployment("default", "web"), state.deployment("d1"));
        assert_eq!(restored.table_indexes(), state.table_indexes());
    }
}
