//! The reconciler for service and batch jobs: compares the job with its
//! allocations and the health of their nodes, and decides what to stop,
//! place, update in place, replace destructively or reschedule later.
//!
//! It touches no resources: it only says *what* should change. Placement
//! (which node) happens afterwards in the engine.
//!
//! Names: every allocation of a group has an index (`job.group[i]`). Live
//! allocations, failed ones that will not be rescheduled, finished batch
//! allocations and replacements all hold their index; new placements take
//! the lowest free indexes, and a smaller count stops the highest ones.
//! Canaries reuse the index of an old allocation they will replace.

use crate::engine::{PlaceKind, PlaceRequest};
use crate::reschedule::{self, Decision};
use crate::util::FxHashMap;
use crate::{ClusterView, DeploymentInfo};
use std::collections::BTreeSet;
use types::{AllocClientStatus, AllocDesiredStatus, Allocation, Job, JobType, Node, NodeStatus, TaskGroup, UnixNanos};

/// Stop descriptions, as shown in `desired_description`.
pub(crate) mod why {
    pub const JOB_STOPPED: &str = "alloc not needed since the job was stopped";
    pub const JOB_GONE: &str = "alloc not needed since the job was deregistered";
    pub const GROUP_REMOVED: &str = "alloc not needed since its task group was removed";
    pub const COUNT_REDUCED: &str = "alloc not needed since the group count was reduced";
    pub const NODE_LOST: &str = "alloc lost since its node is down";
    pub const MIGRATING: &str = "alloc migrating off a draining node";
    pub const RESCHEDULED: &str = "alloc rescheduled after failure";
    pub const UPDATED: &str = "alloc replaced by a newer job version";
    pub const CANARY_PROMOTED: &str = "alloc replaced by a promoted canary";
    pub const NODE_INFEASIBLE: &str = "alloc not needed since its node no longer fits the job";
    pub const DUPLICATE: &str = "alloc not needed since its node already runs one";
}

/// An unconditional stop.
#[derive(Debug, Clone)]
pub(crate) struct Stop<'v> {
    pub alloc: &'v Allocation,
    pub why: &'static str,
    pub lost: bool,
}

/// New allocations for one group, kept as a count rather than one request
/// each: a group may ask for many more allocations than the cluster can
/// take, so requests are made one at a time as placement consumes them and
/// memory grows only with what is placed.
#[derive(Debug, Clone)]
pub(crate) struct NewPlacements {
    pub group: usize,
    /// How many allocations to add.
    pub missing: usize,
    /// Indexes already held in the group, sorted; new allocations take the
    /// lowest indexes not in it.
    pub occupied: Vec<u32>,
}

impl NewPlacements {
    /// The requests, lowest free index first.
    pub(crate) fn requests<'v>(&self) -> impl Iterator<Item = PlaceRequest<'v>> + '_ {
        let mut occupied = self.occupied.iter().copied().peekable();
        let group = self.group;
        (0..=u32::MAX)
            .filter(move |index| {
                while occupied.next_if(|held| held < index).is_some() {}
                occupied.peek() != Some(index)
            })
            .take(self.missing)
            .map(move |index| PlaceRequest {
                group,
                index,
                previous: None,
                kind: PlaceKind::New,
                node: None,
            })
    }
}

/// What the reconciler decided for a job.
#[derive(Debug, Default)]
pub(crate) struct Reconciled<'v> {
    pub stops: Vec<Stop<'v>>,
    /// Replacements, canaries and destructive updates (as many as there
    /// are allocations already).
    pub places: Vec<PlaceRequest<'v>>,
    /// New allocations, per group.
    pub new_places: Vec<NewPlacements>,
    pub inplace: Vec<&'v Allocation>,
    /// Failed allocations to replace later, with the time.
    pub delayed: Vec<(&'v Allocation, UnixNanos)>,
}

/// How a node affects the allocations on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeHealth {
    Ok,
    Lost,
    Draining,
    Disconnected,
}

pub(crate) fn node_health(node: Option<&Node>) -> NodeHealth {
    match node {
        None => NodeHealth::Lost,
        Some(node) => match node.status {
            NodeStatus::Down => NodeHealth::Lost,
            NodeStatus::Disconnected => NodeHealth::Disconnected,
            _ if node.drain.is_some() => NodeHealth::Draining,
            _ => NodeHealth::Ok,
        },
    }
}

/// Whether an allocation is wanted and not finished.
pub(crate) fn is_live(alloc: &Allocation) -> bool {
    alloc.desired_status == AllocDesiredStatus::Run && !alloc.client_status.is_terminal()
}

/// Stops every live allocation (job stopped or deregistered).
pub(crate) fn stop_all<'v>(allocs: &[&'v Allocation], why: &'static str) -> Reconciled<'v> {
    let mut result = Reconciled::default();
    for alloc in allocs {
        if is_live(alloc) {
            result.stops.push(Stop {
                alloc,
                why,
                lost: false,
            });
        }
    }
    result
}

/// Whether a new allocation of the job's version counts as healthy for
/// rolling-update pacing.
pub(crate) fn is_healthy(alloc: &Allocation, deployment: Option<&DeploymentInfo>) -> bool {
    match deployment {
        Some(deployment) if deployment.tracks_health && alloc.deployment_id == deployment.id => {
            deployment.healthy_allocs.contains(&alloc.id)
                || alloc
                    .deployment_status
                    .as_ref()
                    .is_some_and(|status| status.healthy == Some(true))
        }
        Some(deployment) if !deployment.healthy_allocs.is_empty() => deployment.healthy_allocs.contains(&alloc.id),
        _ => alloc.client_status == AllocClientStatus::Running,
    }
}

/// Whether an allocation of an older version can be updated in place.
pub(crate) fn can_update_in_place<V: ClusterView + ?Sized>(view: &V, job: &Job, alloc: &Allocation) -> bool {
    view.job_version(&job.namespace, &job.id, alloc.job_version)
        .is_some_and(|old| !old.tasks_differ(job, &alloc.task_group))
}

fn index_of(alloc: &Allocation) -> u32 {
    alloc.index().unwrap_or(0)
}

/// Reconciles a service or batch job.
pub(crate) fn reconcile<'v, V: ClusterView + ?Sized>(
    view: &'v V,
    job: &'v Job,
    allocs: &[&'v Allocation],
    now: UnixNanos,
) -> Reconciled<'v> {
    let mut result = Reconciled::default();
    let mut health_cache: FxHashMap<&str, NodeHealth> = FxHashMap::default();
    let mut health = |node_id: &'v str| -> NodeHealth {
        *health_cache
            .entry(node_id)
            .or_insert_with(|| node_health(view.node(node_id)))
    };
    let deployment = view
        .latest_deployment(&job.namespace, &job.id)
        .filter(|deployment| deployment.job_version == job.version);
    for alloc in allocs {
        if job.group(&alloc.task_group).is_none() && is_live(alloc) {
            result.stops.push(Stop {
                alloc,
                why: why::GROUP_REMOVED,
                lost: false,
            });
        }
    }
    let mut groups: FxHashMap<&str, Vec<&'v Allocation>> = FxHashMap::default();
    for alloc in allocs {
        groups.entry(alloc.task_group.as_str()).or_default().push(alloc);
    }
    for (group_index, group) in job.task_groups.iter().enumerate() {
        let group_allocs = groups.remove(group.name.as_str()).unwrap_or_default();
        reconcile_group(
            view,
            job,
            group_index,
            group,
            &group_allocs,
            now,
            deployment.as_ref(),
            &mut health,
            &mut result,
        );
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn reconcile_group<'v, V: ClusterView + ?Sized>(
    view: &'v V,
    job: &'v Job,
    group_index: usize,
    group: &'v TaskGroup,
    allocs: &[&'v Allocation],
    now: UnixNanos,
    deployment: Option<&DeploymentInfo>,
    health: &mut dyn FnMut(&'v str) -> NodeHealth,
    result: &mut Reconciled<'v>,
) {
    let batch = job.job_type == JobType::Batch;
    let keeps_disconnected = group.max_client_disconnect.is_some()
        || group
            .disconnect
            .as_ref()
            .is_some_and(|disconnect| disconnect.lost_after.is_some());
    let mut live: Vec<&'v Allocation> = Vec::new();
    let mut kept_terminal: Vec<&'v Allocation> = Vec::new();
    let mut replacements: Vec<(&'v Allocation, PlaceKind)> = Vec::new();
    for &alloc in allocs {
        if alloc.desired_status != AllocDesiredStatus::Run {
            continue;
        }
        match alloc.client_status {
            AllocClientStatus::Complete => {
                if batch {
                    kept_terminal.push(alloc);
                }
            }
            AllocClientStatus::Lost => {}
            AllocClientStatus::Failed if alloc.desired_transition.force_reschedule => {
                replacements.push((alloc, PlaceKind::Reschedule { delay: 0 }))
            }
            AllocClientStatus::Failed => match reschedule::decide(group.reschedule_policy.as_ref(), alloc, now) {
                // A new version of a service job replaces what an older one
                // left failed (reverting a failed rollout relies on it).
                Decision::Never if !batch && alloc.job_version != job.version => {
                    result.stops.push(Stop {
                        alloc,
                        why: why::UPDATED,
                        lost: false,
                    });
                    replacements.push((alloc, PlaceKind::Replace));
                }
                Decision::Never => kept_terminal.push(alloc),
                Decision::Later { at, .. } => {
                    kept_terminal.push(alloc);
                    if alloc.followup_eval_id.is_empty() {
                        result.delayed.push((alloc, at));
                    }
                }
                Decision::Now { delay } => replacements.push((alloc, PlaceKind::Reschedule { delay })),
            },
            AllocClientStatus::Pending | AllocClientStatus::Running | AllocClientStatus::Unknown => {
                match health(alloc.node_id.as_str()) {
                    NodeHealth::Ok => live.push(alloc),
                    NodeHealth::Disconnected if keeps_disconnected => live.push(alloc),
                    NodeHealth::Lost | NodeHealth::Disconnected => {
                        result.stops.push(Stop {
                            alloc,
                            why: why::NODE_LOST,
                            lost: true,
                        });
                        replacements.push((alloc, PlaceKind::Lost));
                    }
                    // Only what the drainer marked moves, so a group
                    // migrates in batches of its `migrate.max_parallel`.
                    NodeHealth::Draining if !alloc.desired_transition.migrate => live.push(alloc),
                    NodeHealth::Draining => {
                        result.stops.push(Stop {
                            alloc,
                            why: why::MIGRATING,
                            lost: false,
                        });
                        replacements.push((alloc, PlaceKind::Migrate));
                    }
                }
            }
        }
    }

    // Classify live allocations by version.
    let mut current: Vec<&'v Allocation> = Vec::new();
    let mut destructive: Vec<&'v Allocation> = Vec::new();
    for &alloc in &live {
        if alloc.job_version == job.version {
            current.push(alloc);
        } else if can_update_in_place(view, job, alloc) {
            result.inplace.push(alloc);
            current.push(alloc);
        } else {
            destructive.push(alloc);
        }
    }
    destructive.sort_by_key(|alloc| (index_of(alloc), alloc.id.as_str()));
    let update = group.update.as_ref().filter(|_| job.job_type == JobType::Service);
    let canary_count = update.map(|update| update.canary).unwrap_or(0);
    let promoted = deployment.is_some_and(|deployment| deployment.promoted_groups.contains(&group.name));
    let old_indexes: BTreeSet<u32> = destructive.iter().map(|alloc| index_of(alloc)).collect();
    // Canaries: new-version allocations sharing an index with an old one.
    let canaries: Vec<&'v Allocation> = current
        .iter()
        .copied()
        .filter(|alloc| alloc.job_version == job.version && old_indexes.contains(&index_of(alloc)))
        .collect();
    let canary_phase = canary_count > 0 && !destructive.is_empty() && !promoted;
    // A failed or paused rollout replaces nothing more of the old version.
    let halted = deployment.is_some_and(|deployment| deployment.failed || deployment.paused);
    let mut stopped: BTreeSet<&str> = BTreeSet::new();
    if canary_count > 0 && promoted {
        // Promoted: each canary takes over its index from the old allocation.
        for canary in &canaries {
            if let Some(position) = destructive.iter().position(|old| index_of(old) == index_of(canary)) {
                let old = destructive.remove(position);
                stopped.insert(old.id.as_str());
                result.stops.push(Stop {
                    alloc: old,
                    why: why::CANARY_PROMOTED,
                    lost: false,
                });
            }
        }
    }
    let counted_live: Vec<&'v Allocation> = live
        .iter()
        .copied()
        .filter(|alloc| !stopped.contains(alloc.id.as_str()))
        .filter(|alloc| !(canary_phase && canaries.iter().any(|canary| std::ptr::eq(*canary, *alloc))))
        .collect();

    // Count: stop the highest indexes when over, place the lowest free ones when under.
    let count = group.count as usize;
    let total = counted_live.len() + kept_terminal.len() + replacements.len();
    if total > count {
        let mut excess = total - count;
        // Replacements go first (their old allocation is gone anyway), then
        // live allocations, highest index first.
        replacements.sort_by_key(|(alloc, _)| std::cmp::Reverse(index_of(alloc)));
        let mut removable: Vec<(u32, bool, &'v Allocation)> = counted_live
            .iter()
            .map(|alloc| (index_of(alloc), false, *alloc))
            .chain(replacements.iter().map(|(alloc, _)| (index_of(alloc), true, *alloc)))
            .collect();
        removable.sort_by(|left, right| {
            right
                .0
                .cmp(&left.0)
                .then(right.1.cmp(&left.1))
                .then(left.2.id.cmp(&right.2.id))
        });
        for (_, is_replacement, alloc) in removable {
            if excess == 0 {
                break;
            }
            excess -= 1;
            if is_replacement {
                replacements.retain(|(replaced, _)| !std::ptr::eq(*replaced, alloc));
            } else {
                stopped.insert(alloc.id.as_str());
                destructive.retain(|old| !std::ptr::eq(*old, alloc));
                result.inplace.retain(|updated| !std::ptr::eq(*updated, alloc));
                result.stops.push(Stop {
                    alloc,
                    why: why::COUNT_REDUCED,
                    lost: false,
                });
            }
        }
    }
    replacements.sort_by_key(|(alloc, _)| (index_of(alloc), alloc.id.clone()));
    for (alloc, kind) in &replacements {
        result.places.push(PlaceRequest {
            group: group_index,
            index: index_of(alloc),
            previous: Some(alloc),
            kind: *kind,
            node: None,
        });
    }
    if total < count {
        let mut occupied: Vec<u32> = counted_live
            .iter()
            .chain(kept_terminal.iter())
            .map(|alloc| index_of(alloc))
            .chain(replacements.iter().map(|(alloc, _)| index_of(alloc)))
            .collect();
        occupied.sort_unstable();
        occupied.dedup();
        result.new_places.push(NewPlacements {
            group: group_index,
            missing: count - total,
            occupied,
        });
    }

    if halted {
        return;
    }
    if canary_phase {
        let have: BTreeSet<u32> = canaries.iter().map(|alloc| index_of(alloc)).collect();
        let wanted = (canary_count as usize).saturating_sub(canaries.len());
        for old in destructive
            .iter()
            .filter(|old| !have.contains(&index_of(old)))
            .take(wanted)
        {
            result.places.push(PlaceRequest {
                group: group_index,
                index: index_of(old),
                previous: None,
                kind: PlaceKind::Canary,
                node: None,
            });
        }
        return;
    }

    // Rolling update: at most max_parallel replacements in flight.
    let limit = match update {
        Some(update) if update.max_parallel > 0 => {
            // A failed allocation of the new version that is not being
            // replaced yet still holds its slot until its health is judged,
            // and an unhealthy one stops the rollout (the watcher then
            // fails the deployment or a replacement must prove itself).
            let tracked = |alloc: &Allocation| {
                deployment.is_some_and(|deployment| deployment.tracks_health && alloc.deployment_id == deployment.id)
            };
            let judged_unhealthy = current.iter().chain(kept_terminal.iter()).any(|alloc| {
                tracked(alloc)
                    && alloc
                        .deployment_status
                        .as_ref()
                        .is_some_and(|status| status.healthy == Some(false))
            });
            let in_flight = current
                .iter()
                .filter(|alloc| alloc.job_version == job.version && !stopped.contains(alloc.id.as_str()))
                .chain(kept_terminal.iter().filter(|alloc| {
                    alloc.job_version == job.version
                        && alloc.client_status == AllocClientStatus::Failed
                        && tracked(alloc)
                }))
                .filter(|alloc| !is_healthy(alloc, deployment))
                .count();
            if judged_unhealthy {
                0
            } else {
                (update.max_parallel as usize).saturating_sub(in_flight)
            }
        }
        _ => usize::MAX,
    };
    for old in destructive.iter().take(limit) {
        result.places.push(PlaceRequest {
            group: group_index,
            index: index_of(old),
            previous: Some(old),
            kind: PlaceKind::Destructive,
            node: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_placements_take_the_lowest_free_indexes_lazily() {
        let new = NewPlacements {
            group: 1,
            missing: 4,
            occupied: vec![0, 2, 3, 7],
        };
        let indexes: Vec<u32> = new.requests().map(|request| request.index).collect();
        assert_eq!(indexes, vec![1, 4, 5, 6]);
        assert!(
            new.requests()
                .all(|request| request.group == 1 && request.kind == PlaceKind::New)
        );
        // A huge count costs nothing until its requests are consumed.
        let huge = NewPlacements {
            group: 0,
            missing: usize::MAX,
            occupied: Vec::new(),
        };
        let first: Vec<u32> = huge.requests().take(3).map(|request| request.index).collect();
        assert_eq!(first, vec![0, 1, 2]);
    }
}
