//! Events: what each applied command changed, in Nomad's event-stream
//! vocabulary (topics and types), derived deterministically from the
//! command and the state around its `apply`.
//!
//! [`StateSnapshot::apply_with_events`] notes which objects a command
//! names before applying it (deleted objects are taken from the state
//! before, everything else from the state after), applies it, and returns
//! one [`Event`] per object changed. An event holds the stored object
//! itself (an `Arc`, so this costs one reference count per object); its
//! key, namespace and filter keys are read from that object. Pure: no
//! clock, no IO. A refused command produces no events.

use crate::{Command, CommandResult, StateSnapshot};
use std::sync::Arc;
use types::{AclPolicy, AclRole, AclToken, Allocation, Deployment, Evaluation, Index, Job, Node};

/// Nomad's event topics that Drover produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Job,
    Evaluation,
    Allocation,
    Deployment,
    Node,
    AclToken,
    AclPolicy,
    AclRole,
}

impl Topic {
    /// Every topic, in display order.
    pub const ALL: [Topic; 8] = [
        Topic::Job,
        Topic::Evaluation,
        Topic::Allocation,
        Topic::Deployment,
        Topic::Node,
        Topic::AclToken,
        Topic::AclPolicy,
        Topic::AclRole,
    ];

    /// Nomad's name for the topic.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Job => "Job",
            Topic::Evaluation => "Evaluation",
            Topic::Allocation => "Allocation",
            Topic::Deployment => "Deployment",
            Topic::Node => "Node",
            Topic::AclToken => "ACLToken",
            Topic::AclPolicy => "ACLPolicy",
            Topic::AclRole => "ACLRole",
        }
    }

    /// The topic named `name` (Nomad's spelling).
    pub fn parse(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|topic| topic.as_str() == name)
    }
}

/// The object an event is about, as stored.
#[derive(Debug, Clone)]
pub enum EventPayload {
    Job(Arc<Job>),
    Evaluation(Arc<Evaluation>),
    Allocation(Arc<Allocation>),
    Deployment(Arc<Deployment>),
    Node(Arc<Node>),
    AclToken(Arc<AclToken>),
    AclPolicy(Arc<AclPolicy>),
    AclRole(Arc<AclRole>),
}

/// One change, as Nomad's event stream reports it.
#[derive(Debug, Clone)]
pub struct Event {
    /// Nomad's event type (`JobRegistered`, `PlanResult`…).
    pub event_type: &'static str,
    /// The Raft index of the command that made the change.
    pub index: Index,
    pub payload: EventPayload,
}

impl Event {
    pub fn topic(&self) -> Topic {
        match &self.payload {
            EventPayload::Job(_) => Topic::Job,
            EventPayload::Evaluation(_) => Topic::Evaluation,
            EventPayload::Allocation(_) => Topic::Allocation,
            EventPayload::Deployment(_) => Topic::Deployment,
            EventPayload::Node(_) => Topic::Node,
            EventPayload::AclToken(_) => Topic::AclToken,
            EventPayload::AclPolicy(_) => Topic::AclPolicy,
            EventPayload::AclRole(_) => Topic::AclRole,
        }
    }

    /// The object's ID (a job's ID, a policy's name, a token's accessor).
    pub fn key(&self) -> &str {
        match &self.payload {
            EventPayload::Job(job) => &job.id,
            EventPayload::Evaluation(eval) => &eval.id,
            EventPayload::Allocation(alloc) => &alloc.id,
            EventPayload::Deployment(deployment) => &deployment.id,
            EventPayload::Node(node) => &node.id,
            EventPayload::AclToken(token) => &token.accessor_id,
            EventPayload::AclPolicy(policy) => &policy.name,
            EventPayload::AclRole(role) => &role.id,
        }
    }

    /// The object's namespace; empty for objects outside namespaces.
    pub fn namespace(&self) -> &str {
        match &self.payload {
            EventPayload::Job(job) => &job.namespace,
            EventPayload::Evaluation(eval) => &eval.namespace,
            EventPayload::Allocation(alloc) => &alloc.namespace,
            EventPayload::Deployment(deployment) => &deployment.namespace,
            _ => "",
        }
    }

    /// Further keys a `topic=Topic:key` filter matches: the job (and
    /// deployment) an evaluation, allocation or deployment belongs to.
    pub fn filter_keys(&self) -> Vec<&str> {
        match &self.payload {
            EventPayload::Evaluation(eval) => [eval.job_id.as_str(), eval.deployment_id.as_str()]
                .into_iter()
                .filter(|key| !key.is_empty())
                .collect(),
            EventPayload::Allocation(alloc) => [alloc.job_id.as_str(), alloc.deployment_id.as_str()]
                .into_iter()
                .filter(|key| !key.is_empty())
                .collect(),
            EventPayload::Deployment(deployment) => vec![deployment.job_id.as_str()],
            _ => Vec::new(),
        }
    }

    /// Whether `filter` (a key, or `*`) selects this event.
    pub fn matches_key(&self, filter: &str) -> bool {
        filter == "*" || self.key() == filter || self.filter_keys().contains(&filter)
    }
}

/// What a command names, noted before it is applied.
enum Named {
    /// Look the object up after apply.
    Job(String, String, &'static str),
    Eval(String, &'static str),
    /// An allocation, reported only if this command changed it.
    Alloc(String, &'static str),
    Deployment(String, &'static str),
    Node(String, &'static str),
    Token(String),
    Policy(String),
    Role(String),
    /// Gone after apply: reported as it was.
    Deleted(&'static str, EventPayload),
    /// Reported as it was if apply removed it (garbage collection keeps
    /// what is still in use).
    IfGone(&'static str, EventPayload),
}

impl StateSnapshot {
    /// [`StateSnapshot::apply`], also returning the events the command
    /// produced (none when it was refused).
    pub fn apply_with_events(&mut self, index: Index, command: Command) -> (CommandResult, Vec<Event>) {
        let named = self.named_by(&command);
        let result = self.apply(index, command);
        if result.error.is_some() {
            return (result, Vec::new());
        }
        let events = named
            .into_iter()
            .filter_map(|named| self.event_for(index, named))
            .collect();
        (result, events)
    }

    fn event_for(&self, index: Index, named: Named) -> Option<Event> {
        let event = |event_type, payload| {
            Some(Event {
                event_type,
                index,
                payload,
            })
        };
        match named {
            Named::Job(namespace, id, kind) => event(kind, EventPayload::Job(self.job(&namespace, &id)?)),
            Named::Eval(id, kind) => event(kind, EventPayload::Evaluation(self.eval(&id)?)),
            Named::Alloc(id, kind) => {
                let alloc = self.alloc(&id)?;
                // A client re-reporting what was stored changes nothing.
                (alloc.modify_index == index).then_some(())?;
                event(kind, EventPayload::Allocation(alloc))
            }
            Named::Deployment(id, kind) => event(kind, EventPayload::Deployment(self.deployment(&id)?)),
            Named::Node(id, kind) => event(kind, EventPayload::Node(self.node(&id)?)),
            Named::Token(id) => event("ACLTokenUpserted", EventPayload::AclToken(self.acl_token(&id)?)),
            Named::Policy(name) => event("ACLPolicyUpserted", EventPayload::AclPolicy(self.acl_policy(&name)?)),
            Named::Role(id) => event("ACLRoleUpserted", EventPayload::AclRole(self.acl_role(&id)?)),
            Named::Deleted(kind, payload) => event(kind, payload),
            Named::IfGone(kind, payload) => {
                let gone = match &payload {
                    EventPayload::Job(job) => self.job_ref(&job.namespace, &job.id).is_none(),
                    EventPayload::Node(node) => self.node_ref(&node.id).is_none(),
                    _ => true,
                };
                gone.then_some(())?;
                event(kind, payload)
            }
        }
    }

    /// The objects `command` will change, in the order events report them.
    fn named_by(&self, command: &Command) -> Vec<Named> {
        let eval = |eval: &Option<Evaluation>| {
            eval.as_ref()
                .map(|eval| Named::Eval(eval.id.clone(), "EvaluationUpdated"))
        };
        let evals = |evals: &[Evaluation]| -> Vec<Named> {
            evals
                .iter()
                .map(|e| Named::Eval(e.id.clone(), "EvaluationUpdated"))
                .collect()
        };
        let job = |job: &Option<Job>| {
            job.as_ref()
                .map(|job| Named::Job(job.namespace.clone(), job.id.clone(), "JobRegistered"))
        };
        let mut named = Vec::new();
        match command {
            Command::JobRegister { job, eval: e, .. } => {
                named.push(Named::Job(job.namespace.clone(), job.id.clone(), "JobRegistered"));
                named.extend(eval(e));
            }
            Command::JobDeregister {
                namespace,
                job_id,
                purge,
                eval: e,
                ..
            } => {
                if *purge {
                    if let Some(job) = self.job(namespace, job_id) {
                        named.push(Named::Deleted("JobDeregistered", EventPayload::Job(job)));
                    }
                } else {
                    named.push(Named::Job(namespace.clone(), job_id.clone(), "JobDeregistered"));
                }
                named.extend(eval(e));
            }
            Command::NodeRegister { node, .. } => named.push(Named::Node(node.id.clone(), "NodeRegistration")),
            Command::NodeUpdateStatus { node_id, evals: e, .. } => {
                named.push(Named::Node(node_id.clone(), "NodeEvent"));
                named.extend(evals(e));
            }
            Command::NodeEligibility { node_id, evals: e, .. } => {
                named.push(Named::Node(node_id.clone(), "NodeEligibility"));
                named.extend(evals(e));
            }
            Command::EvalUpsert { evals: e } => named.extend(evals(e)),
            Command::PlanApply {
                allocs,
                eval_update,
                created_evals,
                deployment,
                deployment_updates,
                ..
            } => {
                if let Some(deployment) = deployment {
                    named.push(Named::Deployment(deployment.id.clone(), "PlanResult"));
                }
                for update in deployment_updates {
                    named.push(Named::Deployment(update.deployment_id.clone(), "PlanResult"));
                }
                for alloc in allocs {
                    named.push(Named::Alloc(alloc.id.clone(), "PlanResult"));
                }
                named.extend(eval(eval_update));
                named.extend(evals(created_evals));
            }
            Command::AllocClientUpdate { updates, evals: e, .. } => {
                for update in updates {
                    named.push(Named::Alloc(update.alloc_id.clone(), "AllocationUpdated"));
                }
                named.extend(evals(e));
            }
            Command::DeploymentAllocHealth {
                deployment_id,
                healthy,
                unhealthy,
                job: j,
                eval: e,
                ..
            } => {
                named.push(Named::Deployment(deployment_id.clone(), "DeploymentAllocHealth"));
                for id in healthy.iter().chain(unhealthy) {
                    named.push(Named::Alloc(id.clone(), "AllocationUpdated"));
                }
                named.extend(job(j));
                named.extend(eval(e));
            }
            Command::DeploymentStatusSet {
                update,
                job: j,
                eval: e,
                ..
            } => {
                named.push(Named::Deployment(
                    update.deployment_id.clone(),
                    "DeploymentStatusUpdate",
                ));
                named.extend(job(j));
                named.extend(eval(e));
            }
            Command::DeploymentPromote {
                deployment_id, eval: e, ..
            } => {
                named.push(Named::Deployment(deployment_id.clone(), "DeploymentPromotion"));
                named.extend(eval(e));
            }
            Command::JobScale { job: j, eval: e, .. } => {
                named.extend(job(j));
                named.extend(eval(e));
            }
            Command::JobStability { namespace, job_id, .. } => {
                named.push(Named::Job(namespace.clone(), job_id.clone(), "JobRegistered"));
            }
            Command::AclBootstrap { token, .. } => named.push(Named::Token(token.accessor_id.clone())),
            Command::AclTokenUpsert { tokens } => {
                named.extend(tokens.iter().map(|token| Named::Token(token.accessor_id.clone())));
            }
            Command::AclTokenDelete { accessor_ids } => {
                named.extend(accessor_ids.iter().filter_map(|id| {
                    let token = self.acl_token(id)?;
                    Some(Named::Deleted("ACLTokenDeleted", EventPayload::AclToken(token)))
                }));
            }
            Command::AclPolicyUpsert { policies } => {
                named.extend(policies.iter().map(|policy| Named::Policy(policy.name.clone())));
            }
            Command::AclPolicyDelete { names } => {
                named.extend(names.iter().filter_map(|name| {
                    let policy = self.acl_policy(name)?;
                    Some(Named::Deleted("ACLPolicyDeleted", EventPayload::AclPolicy(policy)))
                }));
            }
            Command::AclRoleUpsert { roles } => named.extend(roles.iter().map(|role| Named::Role(role.id.clone()))),
            Command::AclRoleDelete { ids } => {
                named.extend(ids.iter().filter_map(|id| {
                    let role = self.acl_role(id)?;
                    Some(Named::Deleted("ACLRoleDeleted", EventPayload::AclRole(role)))
                }));
            }
            Command::GcDelete { jobs, node_ids, .. } => {
                for (namespace, job_id) in jobs {
                    if let Some(job) = self.job(namespace, job_id) {
                        named.push(Named::IfGone("JobDeregistered", EventPayload::Job(job)));
                    }
                }
                for node_id in node_ids {
                    if let Some(node) = self.node(node_id) {
                        named.push(Named::IfGone("NodeDeregistration", EventPayload::Node(node)));
                    }
                }
            }
            Command::PeriodicLaunch { child, eval: e, .. } => {
                named.extend(job(child));
                named.extend(eval(e));
            }
            Command::JobDispatch { child, eval: e, .. } => {
                named.push(Named::Job(child.namespace.clone(), child.id.clone(), "JobRegistered"));
                named.push(Named::Eval(e.id.clone(), "EvaluationUpdated"));
            }
            Command::ChildRelease { evals: e, .. } => named.extend(evals(e)),
            Command::NodeDrain { node_id, evals: e, .. } => {
                named.push(Named::Node(node_id.clone(), "NodeDrain"));
                named.extend(evals(e));
            }
            Command::NodeDrainComplete { node_id, .. } => named.push(Named::Node(node_id.clone(), "NodeDrain")),
            Command::AllocDesiredTransition { alloc_ids, evals: e, .. } => {
                for alloc_id in alloc_ids {
                    named.push(Named::Alloc(alloc_id.clone(), "AllocationUpdated"));
                }
                named.extend(evals(e));
            }
            // Not on Nomad's event stream (or no object to report).
            Command::SchedulerConfigSet { .. }
            | Command::StateRestore { .. }
            | Command::NamespaceUpsert { .. }
            | Command::NamespaceDelete { .. }
            // Variables and root keys are not streamed: a variable's
            // event would need its own ACL path check per subscriber.
            | Command::VarApply { .. }
            | Command::RootKeyUpsert { .. }
            // Nomad's Service topic is not built yet.
            | Command::ServiceRegistrationUpsert { .. }
            | Command::ServiceRegistrationDelete { .. } => {}
        }
        named
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::{AllocClientStatus, AllocClientUpdate, EvalStatus, JobType, Task, TaskGroup};

    fn job(id: &str) -> Job {
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

    fn eval(id: &str, job_id: &str) -> Evaluation {
        Evaluation {
            id: id.to_string(),
            namespace: "default".into(),
            job_id: job_id.to_string(),
            status: EvalStatus::Pending,
            ..Evaluation::default()
        }
    }

    fn summary(events: &[Event]) -> Vec<(&'static str, &'static str, String, Vec<String>)> {
        events
            .iter()
            .map(|event| {
                (
                    event.topic().as_str(),
                    event.event_type,
                    event.key().to_string(),
                    event.filter_keys().iter().map(|key| key.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_job_s_life_produces_nomad_s_events_and_refusals_produce_none() {
        let mut state = StateSnapshot::new();
        let (_, events) = state.apply_with_events(
            5,
            Command::JobRegister {
                job: job("web"),
                eval: Some(eval("e1", "web")),
                now: 1,
                enforce_index: None,
            },
        );
        assert_eq!(
            summary(&events),
            vec![
                ("Job", "JobRegistered", "web".to_string(), vec![]),
                (
                    "Evaluation",
                    "EvaluationUpdated",
                    "e1".to_string(),
                    vec!["web".to_string()]
                ),
            ]
        );
        assert!(
            events
                .iter()
                .all(|event| event.index == 5 && event.namespace() == "default")
        );

        let alloc = Allocation {
            id: "a1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            node_id: "n1".into(),
            task_group: "g".into(),
            ..Allocation::default()
        };
        let (_, events) = state.apply_with_events(
            6,
            Command::PlanApply {
                allocs: vec![alloc],
                eval_update: None,
                created_evals: Vec::new(),
                now: 2,
                deployment: None,
                deployment_updates: Vec::new(),
            },
        );
        assert_eq!(
            summary(&events),
            vec![("Allocation", "PlanResult", "a1".to_string(), vec!["web".to_string()])]
        );
        assert!(events[0].matches_key("web") && events[0].matches_key("a1") && !events[0].matches_key("db"));

        let running = AllocClientUpdate {
            alloc_id: "a1".into(),
            client_status: AllocClientStatus::Running,
            client_description: String::new(),
            task_states: Default::default(),
            modify_time: 3,
        };
        let update = Command::AllocClientUpdate {
            updates: vec![running],
            evals: Vec::new(),
            now: 3,
        };
        let (_, events) = state.apply_with_events(7, update.clone());
        assert_eq!(summary(&events)[0].1, "AllocationUpdated");
        // The same report again changes nothing, so no event.
        let (_, events) = state.apply_with_events(8, update);
        assert!(events.is_empty());

        // A refused command (no such job) produces nothing.
        let (result, events) = state.apply_with_events(
            9,
            Command::JobDeregister {
                namespace: "default".into(),
                job_id: "nope".into(),
                purge: true,
                eval: None,
                now: 4,
            },
        );
        assert!(result.error.is_some() && events.is_empty());

        // A purge reports the job as it was.
        let (_, events) = state.apply_with_events(
            10,
            Command::JobDeregister {
                namespace: "default".into(),
                job_id: "web".into(),
                purge: true,
                eval: None,
                now: 5,
            },
        );
        assert_eq!(summary(&events)[0].1, "JobDeregistered");
        assert!(state.job("default", "web").is_none());
    }
}
