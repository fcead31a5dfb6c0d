//! The service registrations table (native service discovery): reads by
//! name, allocation, job and node, and the parts of `apply` that write it.
//!
//! Registrations follow their allocations: an upsert for an allocation
//! that is unknown, terminal or on a node that is down is dropped, and an
//! allocation turning terminal (client report, a plan marking it lost, GC)
//! or its node going down removes its registrations in the same `apply`,
//! so no stale instance outlives what it points at.

use crate::store::StateSnapshot;
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use types::{Allocation, Index, NodeStatus, ServiceRegistration};

/// Registrations by ID with their secondary indexes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ServiceTables {
    by_id: OrdMap<String, Arc<ServiceRegistration>>,
    /// (namespace, service name) → IDs.
    by_name: OrdMap<(String, String), OrdSet<String>>,
    by_alloc: OrdMap<String, OrdSet<String>>,
    by_node: OrdMap<String, OrdSet<String>>,
}

/// The persisted form: the registrations only (indexes are derived).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PersistedServices {
    #[serde(default)]
    registrations: Vec<ServiceRegistration>,
}

fn unlink(index: &mut OrdMap<String, OrdSet<String>>, owner: &str, id: &str) {
    if let Some(set) = index.get_mut(owner) {
        set.remove(id);
        if set.is_empty() {
            index.remove(owner);
        }
    }
}

impl ServiceTables {
    pub(crate) fn persisted(&self) -> PersistedServices {
        PersistedServices {
            registrations: self
                .by_id
                .values()
                .map(|registration| (**registration).clone())
                .collect(),
        }
    }

    pub(crate) fn from_persisted(persisted: PersistedServices) -> ServiceTables {
        let mut tables = ServiceTables::default();
        for registration in persisted.registrations {
            tables.put(registration);
        }
        tables
    }

    fn put(&mut self, registration: ServiceRegistration) {
        self.remove(&registration.id);
        let id = registration.id.clone();
        self.by_name
            .entry((registration.namespace.clone(), registration.service_name.clone()))
            .or_default()
            .insert(id.clone());
        self.by_alloc
            .entry(registration.alloc_id.clone())
            .or_default()
            .insert(id.clone());
        self.by_node
            .entry(registration.node_id.clone())
            .or_default()
            .insert(id.clone());
        self.by_id.insert(id, Arc::new(registration));
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(old) = self.by_id.remove(id) else {
            return false;
        };
        let name_key = (old.namespace.clone(), old.service_name.clone());
        if let Some(set) = self.by_name.get_mut(&name_key) {
            set.remove(id);
            if set.is_empty() {
                self.by_name.remove(&name_key);
            }
        }
        unlink(&mut self.by_alloc, &old.alloc_id, id);
        unlink(&mut self.by_node, &old.node_id, id);
        true
    }

    fn ids_of(index: &OrdMap<String, OrdSet<String>>, owner: &str) -> Vec<String> {
        index
            .get(owner)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl StateSnapshot {
    // ----- reads -------------------------------------------------------

    pub fn service_registration(&self, id: &str) -> Option<Arc<ServiceRegistration>> {
        self.services.by_id.get(id).cloned()
    }

    /// Every registration (in one namespace, or all with `None`), by ID.
    pub fn service_registrations(&self, namespace: Option<&str>) -> Vec<Arc<ServiceRegistration>> {
        self.services
            .by_id
            .values()
            .filter(|registration| namespace.is_none_or(|wanted| wanted == registration.namespace))
            .cloned()
            .collect()
    }

    /// The instances of one service, by ID.
    pub fn service_registrations_by_name(&self, namespace: &str, name: &str) -> Vec<Arc<ServiceRegistration>> {
        self.services
            .by_name
            .get(&(namespace.to_string(), name.to_string()))
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.services.by_id.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn service_registrations_by_alloc(&self, alloc_id: &str) -> Vec<Arc<ServiceRegistration>> {
        ServiceTables::ids_of(&self.services.by_alloc, alloc_id)
            .iter()
            .filter_map(|id| self.services.by_id.get(id).cloned())
            .collect()
    }

    pub fn service_registrations_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<ServiceRegistration>> {
        self.service_registrations(Some(namespace))
            .into_iter()
            .filter(|registration| registration.job_id == job_id)
            .collect()
    }

    pub fn service_registrations_by_node(&self, node_id: &str) -> Vec<Arc<ServiceRegistration>> {
        ServiceTables::ids_of(&self.services.by_node, node_id)
            .iter()
            .filter_map(|id| self.services.by_id.get(id).cloned())
            .collect()
    }

    // ----- apply -------------------------------------------------------

    /// Whether `alloc` may hold registrations: it exists, is not terminal
    /// on the client, and its node is not down.
    fn may_register(&self, alloc: Option<&Arc<Allocation>>) -> bool {
        alloc.is_some_and(|alloc| {
            !alloc.client_status.is_terminal()
                && self
                    .node_ref(&alloc.node_id)
                    .is_some_and(|node| node.status != NodeStatus::Down)
        })
    }

    pub(crate) fn apply_service_upsert(&mut self, index: Index, registrations: Vec<ServiceRegistration>) {
        for mut registration in registrations {
            let alloc = self.allocs.get(&registration.alloc_id).cloned();
            if !self.may_register(alloc.as_ref()) {
                continue;
            }
            if let Some(alloc) = &alloc {
                // The allocation says where it runs, not the sender.
                registration.node_id = alloc.node_id.clone();
                registration.namespace = alloc.namespace.clone();
                registration.job_id = alloc.job_id.clone();
            }
            match self.services.by_id.get(&registration.id) {
                Some(existing) if existing.same_content(&registration) => continue,
                Some(existing) => registration.create_index = existing.create_index,
                None => registration.create_index = index,
            }
            registration.modify_index = index;
            self.services.put(registration);
            self.tables.services = index;
        }
        // Dropped ones are not an error: the allocation went terminal
        // between the client's send and this apply, and its registrations
        // must not come back.
    }

    pub(crate) fn apply_service_delete(&mut self, index: Index, ids: Vec<String>) {
        for id in ids {
            if self.services.remove(&id) {
                self.tables.services = index;
            }
        }
    }

    /// Removes the registrations of an allocation that turned terminal or
    /// went away.
    pub(crate) fn drop_alloc_services(&mut self, index: Index, alloc_id: &str) {
        for id in ServiceTables::ids_of(&self.services.by_alloc, alloc_id) {
            self.services.remove(&id);
            self.tables.services = index;
        }
    }

    /// Removes the registrations of a node that went down.
    pub(crate) fn drop_node_services(&mut self, index: Index, node_id: &str) {
        for id in ServiceTables::ids_of(&self.services.by_node, node_id) {
            self.services.remove(&id);
            self.tables.services = index;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::command::Command;
    use crate::store::StateSnapshot;
    use types::{AllocClientStatus, AllocClientUpdate, Allocation, Node, NodeStatus, ServiceRegistration};

    fn registration(id: &str, alloc_id: &str) -> ServiceRegistration {
        ServiceRegistration {
            id: id.into(),
            service_name: "web".into(),
            namespace: "forged".into(),
            node_id: "forged".into(),
            alloc_id: alloc_id.into(),
            address: "127.0.0.1".into(),
            port: 8080,
            ..ServiceRegistration::default()
        }
    }

    fn setup() -> StateSnapshot {
        let mut state = StateSnapshot::new();
        for node_id in ["n1", "n2"] {
            state.apply(
                1,
                Command::NodeRegister {
                    node: Node {
                        id: node_id.into(),
                        ..Node::default()
                    },
                    now: 1,
                },
            );
        }
        let allocs = ["a1", "a2", "a3"]
            .iter()
            .zip(["n1", "n1", "n2"])
            .map(|(id, node)| Allocation {
                id: (*id).into(),
                namespace: "default".into(),
                job_id: "web".into(),
                node_id: node.into(),
                ..Allocation::default()
            })
            .collect();
        state.apply(
            2,
            Command::PlanApply {
                allocs,
                eval_update: None,
                created_evals: Vec::new(),
                now: 2,
                deployment: None,
                deployment_updates: Vec::new(),
            },
        );
        state
    }

    fn ids(state: &StateSnapshot) -> Vec<String> {
        state
            .service_registrations(None)
            .iter()
            .map(|registration| registration.id.clone())
            .collect()
    }

    #[test]
    fn registrations_follow_their_allocations_and_nodes() {
        let mut state = setup();
        state.apply(
            3,
            Command::ServiceRegistrationUpsert {
                services: vec![
                    registration("r1", "a1"),
                    registration("r2", "a2"),
                    registration("r3", "a3"),
                    registration("r4", "nope"),
                ],
            },
        );
        assert_eq!(ids(&state), ["r1", "r2", "r3"]);
        let stored = state.service_registration("r1").expect("r1 stored");
        // Where it runs comes from the allocation, not the request.
        assert_eq!((stored.namespace.as_str(), stored.node_id.as_str()), ("default", "n1"));
        assert_eq!((stored.create_index, stored.modify_index), (3, 3));
        assert_eq!(state.table_indexes().services, 3);
        assert_eq!(state.service_registrations_by_name("default", "web").len(), 3);
        assert_eq!(state.service_registrations_by_job("default", "web").len(), 3);

        // The same content again changes nothing, not even the index.
        state.apply(
            4,
            Command::ServiceRegistrationUpsert {
                services: vec![registration("r1", "a1")],
            },
        );
        assert_eq!(state.table_indexes().services, 3);
        // A changed check status is a change.
        let mut changed = registration("r1", "a1");
        changed.checks.push(types::CheckResult {
            name: "c".into(),
            status: "critical".into(),
            ..types::CheckResult::default()
        });
        state.apply(
            5,
            Command::ServiceRegistrationUpsert {
                services: vec![changed],
            },
        );
        let stored = state.service_registration("r1").expect("r1 stored");
        assert_eq!((stored.create_index, stored.modify_index), (3, 5));

        // A terminal allocation loses its registrations.
        state.apply(
            6,
            Command::AllocClientUpdate {
                updates: vec![AllocClientUpdate {
                    alloc_id: "a2".into(),
                    client_status: AllocClientStatus::Complete,
                    ..AllocClientUpdate::default()
                }],
                evals: Vec::new(),
                now: 6,
            },
        );
        assert_eq!(ids(&state), ["r1", "r3"]);
        // And cannot register again.
        state.apply(
            7,
            Command::ServiceRegistrationUpsert {
                services: vec![registration("r2", "a2")],
            },
        );
        assert_eq!(ids(&state), ["r1", "r3"]);

        // A node going down takes its registrations with it.
        state.apply(
            8,
            Command::NodeUpdateStatus {
                node_id: "n2".into(),
                status: NodeStatus::Down,
                now: 8,
                evals: Vec::new(),
            },
        );
        assert_eq!(ids(&state), ["r1"]);
        assert_eq!(state.table_indexes().services, 8);

        // Deletes, and survival through the snapshot encoding.
        let bytes = serde_json::to_vec(&state).expect("encode");
        let restored: StateSnapshot = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(ids(&restored), ["r1"]);
        assert_eq!(restored.service_registrations_by_alloc("a1").len(), 1);
        state.apply(9, Command::ServiceRegistrationDelete { ids: vec!["r1".into()] });
        assert!(ids(&state).is_empty());
        assert!(state.service_registrations_by_name("default", "web").is_empty());

        // GC of the allocation removes what is left.
        state.apply(
            10,
            Command::ServiceRegistrationUpsert {
                services: vec![registration("r1", "a1")],
            },
        );
        state.apply(
            11,
            Command::GcDelete {
                eval_ids: Vec::new(),
                alloc_ids: vec!["a1".into()],
                jobs: Vec::new(),
                node_ids: Vec::new(),
            },
        );
        assert!(ids(&state).is_empty());
    }
}
