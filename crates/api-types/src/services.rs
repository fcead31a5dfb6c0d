//! Native service discovery's JSON: Nomad's `ServiceRegistration` and the
//! `/v1/services` list, plus Drover's own `Meta` and `Checks` on each
//! registration (Nomad's clients ignore fields they do not know).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One check's latest result on a registration (Drover's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct ServiceCheckResult {
    pub name: String,
    pub status: String,
    pub output: String,
    pub timestamp: i64,
}

/// Nomad's `ServiceRegistration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct ServiceRegistration {
    #[serde(rename = "ID")]
    pub id: String,
    pub service_name: String,
    pub namespace: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub datacenter: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(rename = "AllocID")]
    pub alloc_id: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    pub checks: Vec<ServiceCheckResult>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl From<&types::ServiceRegistration> for ServiceRegistration {
    fn from(registration: &types::ServiceRegistration) -> ServiceRegistration {
        ServiceRegistration {
            id: registration.id.clone(),
            service_name: registration.service_name.clone(),
            namespace: registration.namespace.clone(),
            node_id: registration.node_id.clone(),
            datacenter: registration.datacenter.clone(),
            job_id: registration.job_id.clone(),
            alloc_id: registration.alloc_id.clone(),
            tags: registration.tags.clone(),
            address: registration.address.clone(),
            port: registration.port,
            meta: registration.meta.clone(),
            checks: registration
                .checks
                .iter()
                .map(|check| ServiceCheckResult {
                    name: check.name.clone(),
                    status: check.status.clone(),
                    output: check.output.clone(),
                    timestamp: check.timestamp,
                })
                .collect(),
            create_index: registration.create_index,
            modify_index: registration.modify_index,
        }
    }
}

/// One service in a `/v1/services` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct ServiceStub {
    pub service_name: String,
    pub tags: Vec<String>,
}

/// One namespace's services in `/v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct ServiceListEntry {
    pub namespace: String,
    pub services: Vec<ServiceStub>,
}

/// Groups registrations by namespace and name, with the union of their
/// tags, as `/v1/services` answers.
pub fn service_list<'a>(
    registrations: impl IntoIterator<Item = &'a types::ServiceRegistration>,
) -> Vec<ServiceListEntry> {
    let mut by_namespace: BTreeMap<&str, BTreeMap<&str, std::collections::BTreeSet<&str>>> = BTreeMap::new();
    for registration in registrations {
        let tags = by_namespace
            .entry(&registration.namespace)
            .or_default()
            .entry(&registration.service_name)
            .or_default();
        tags.extend(registration.tags.iter().map(String::as_str));
    }
    by_namespace
        .into_iter()
        .map(|(namespace, services)| ServiceListEntry {
            namespace: namespace.to_string(),
            services: services
                .into_iter()
                .map(|(name, tags)| ServiceStub {
                    service_name: name.to_string(),
                    tags: tags.into_iter().map(str::to_string).collect(),
                })
                .collect(),
        })
        .collect()
}
