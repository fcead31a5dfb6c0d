//! Cluster-wide operator settings kept in the replicated state: the
//! scheduler configuration Nomad exposes at `/v1/operator/scheduler/configuration`.

use crate::Index;
use serde::{Deserialize, Serialize};

/// How the scheduler ranks the nodes that fit (Nomad's `scheduler_algorithm`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerAlgorithm {
    /// Best fit: the fullest node that fits wins, so the nodes in use fill
    /// up and the others stay empty.
    #[default]
    Binpack,
    /// Emptiest first: the node with the most free cpu and memory wins, so
    /// work spreads over every node.
    Spread,
}

impl SchedulerAlgorithm {
    /// The name Nomad uses (`binpack`, `spread`).
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerAlgorithm::Binpack => "binpack",
            SchedulerAlgorithm::Spread => "spread",
        }
    }

    /// Parses Nomad's name; `None` for anything else.
    pub fn parse(text: &str) -> Option<SchedulerAlgorithm> {
        match text {
            "binpack" => Some(SchedulerAlgorithm::Binpack),
            "spread" => Some(SchedulerAlgorithm::Spread),
            _ => None,
        }
    }
}

/// Which job types may evict lower-priority allocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PreemptionConfig {
    pub system_scheduler_enabled: bool,
    pub sysbatch_scheduler_enabled: bool,
    pub batch_scheduler_enabled: bool,
    pub service_scheduler_enabled: bool,
}

impl Default for PreemptionConfig {
    /// Nomad's defaults: system jobs only.
    fn default() -> Self {
        PreemptionConfig {
            system_scheduler_enabled: true,
            sysbatch_scheduler_enabled: false,
            batch_scheduler_enabled: false,
            service_scheduler_enabled: false,
        }
    }
}

/// The operator's scheduler configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfiguration {
    pub scheduler_algorithm: SchedulerAlgorithm,
    pub preemption_config: PreemptionConfig,
    /// Let tasks use memory up to `memory_max` beyond what they reserve.
    pub memory_oversubscription_enabled: bool,
    /// Refuse job registrations (a maintenance switch).
    pub reject_job_registration: bool,
    /// Stop handing evaluations to schedulers.
    pub pause_eval_broker: bool,
    /// The Raft index that first stored a configuration (0: the default).
    pub create_index: Index,
    /// The Raft index of the last change (0: the default).
    pub modify_index: Index,
}
