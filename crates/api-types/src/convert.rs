//! Conversions from the domain model to Nomad's JSON shapes.

use crate::time::format_rfc3339;
use crate::*;
use serde_json::json;

impl From<&types::TaskEvent> for TaskEvent {
    fn from(event: &types::TaskEvent) -> TaskEvent {
        TaskEvent {
            event_type: event.event_type.clone(),
            time: event.time,
            message: event.message.clone(),
            display_message: event.display_message.clone(),
            details: event.details.clone(),
            exit_code: event.exit_code,
            signal: event.signal,
            fails_task: event.fails_task,
            restart_reason: event.restart_reason.clone(),
            driver_error: event.driver_error.clone(),
            kill_timeout: event.kill_timeout,
            start_delay: event.start_delay,
        }
    }
}

impl From<&types::TaskState> for TaskState {
    fn from(state: &types::TaskState) -> TaskState {
        TaskState {
            state: state.state.as_str().to_string(),
            failed: state.failed,
            restarts: state.restarts,
            last_restart: format_rfc3339(state.last_restart),
            started_at: format_rfc3339(state.started_at),
            finished_at: format_rfc3339(state.finished_at),
            events: state.events.iter().map(TaskEvent::from).collect(),
        }
    }
}

impl From<&types::AllocMetric> for AllocationMetric {
    fn from(metric: &types::AllocMetric) -> AllocationMetric {
        AllocationMetric {
            nodes_evaluated: metric.nodes_evaluated,
            nodes_filtered: metric.nodes_filtered,
            nodes_in_pool: metric.nodes_in_pool,
            nodes_available: metric.nodes_available.clone(),
            class_filtered: metric.class_filtered.clone(),
            constraint_filtered: metric.constraint_filtered.clone(),
            nodes_exhausted: metric.nodes_exhausted,
            class_exhausted: metric.class_exhausted.clone(),
            dimension_exhausted: metric.dimension_exhausted.clone(),
            quota_exhausted: metric.quota_exhausted.clone(),
            scores: metric.scores.clone(),
            allocation_time: metric.allocation_time_ns,
            coalesced_failures: metric.coalesced_failures,
        }
    }
}

fn reschedule_tracker(tracker: &Option<types::RescheduleTracker>) -> Option<RescheduleTracker> {
    tracker.as_ref().map(|tracker| RescheduleTracker {
        events: tracker
            .events
            .iter()
            .map(|event| RescheduleEvent {
                reschedule_time: event.reschedule_time,
                prev_alloc_id: event.prev_alloc_id.clone(),
                prev_node_id: event.prev_node_id.clone(),
                delay: event.delay,
            })
            .collect(),
    })
}

fn task_states(states: &BTreeMap<String, types::TaskState>) -> BTreeMap<String, TaskState> {
    states
        .iter()
        .map(|(name, state)| (name.clone(), TaskState::from(state)))
        .collect()
}

/// The list row for an allocation; `job_type` comes from its job.
pub fn alloc_stub(alloc: &types::Allocation, job_type: Option<types::JobType>) -> AllocListStub {
    AllocListStub {
        id: alloc.id.clone(),
        eval_id: alloc.eval_id.clone(),
        name: alloc.name.clone(),
        namespace: alloc.namespace.clone(),
        node_id: alloc.node_id.clone(),
        node_name: alloc.node_name.clone(),
        job_id: alloc.job_id.clone(),
        job_type: job_type.map(|t| t.as_str().to_string()).unwrap_or_default(),
        job_version: alloc.job_version,
        task_group: alloc.task_group.clone(),
        desired_status: alloc.desired_status.as_str().to_string(),
        desired_description: alloc.desired_description.clone(),
        client_status: alloc.client_status.as_str().to_string(),
        client_description: alloc.client_description.clone(),
        task_states: task_states(&alloc.task_states),
        followup_eval_id: alloc.followup_eval_id.clone(),
        reschedule_tracker: reschedule_tracker(&alloc.reschedule_tracker),
        deployment_status: alloc.deployment_status.as_ref().map(AllocDeploymentStatus::from),
        preempted_allocations: alloc.preempted_allocations.clone(),
        preempted_by_allocation: alloc.preempted_by_allocation.clone(),
        create_index: alloc.create_index,
        modify_index: alloc.modify_index,
        create_time: alloc.create_time,
        modify_time: alloc.modify_time,
    }
}

fn ports_value(ports: &[types::Port]) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|port| {
                json!({
                    "Label": port.label,
                    "Value": port.value,
                    "To": port.to,
                    "HostNetwork": if port.host_network.is_empty() { "default" } else { port.host_network.as_str() },
                })
            })
            .collect(),
    )
}

fn networks_value(networks: &[types::NetworkResource]) -> Value {
    Value::Array(
        networks
            .iter()
            .map(|network| {
                json!({
                    "Mode": network.mode,
                    "Device": network.device,
                    "IP": network.ip,
                    "Hostname": network.hostname,
                    "MBits": network.mbits,
                    "ReservedPorts": ports_value(&network.reserved_ports),
                    "DynamicPorts": ports_value(&network.dynamic_ports),
                })
            })
            .collect(),
    )
}

/// Nomad's `AllocatedResources` object.
pub fn allocated_resources_value(resources: &types::AllocatedResources) -> Value {
    let tasks: serde_json::Map<String, Value> = resources
        .tasks
        .iter()
        .map(|(name, task)| {
            (
                name.clone(),
                json!({
                    "Cpu": { "CpuShares": task.cpu_mhz, "ReservedCores": task.reserved_cores },
                    "Memory": { "MemoryMB": task.memory_mb, "MemoryMaxMB": task.memory_max_mb },
                    "Networks": null,
                    "Devices": task.devices.iter().map(|(name, ids)| json!({"Name": name, "DeviceIDs": ids})).collect::<Vec<_>>(),
                }),
            )
        })
        .collect();
    let ports: Vec<Value> = resources
        .networks
        .iter()
        .flat_map(|network| network.reserved_ports.iter().chain(network.dynamic_ports.iter()))
        .map(|port| json!({"Label": port.label, "Value": port.value, "To": port.to, "HostIP": ""}))
        .collect();
    json!({
        "Tasks": tasks,
        "Shared": {
            "DiskMB": resources.disk_mb,
            "Networks": networks_value(&resources.networks),
            "Ports": ports,
        },
    })
}

/// The full allocation, with the job it runs already rendered as JSON.
pub fn allocation(alloc: &types::Allocation, job: Option<Value>) -> Allocation {
    Allocation {
        id: alloc.id.clone(),
        namespace: alloc.namespace.clone(),
        eval_id: alloc.eval_id.clone(),
        name: alloc.name.clone(),
        node_id: alloc.node_id.clone(),
        node_name: alloc.node_name.clone(),
        job_id: alloc.job_id.clone(),
        job,
        task_group: alloc.task_group.clone(),
        allocated_resources: allocated_resources_value(&alloc.allocated_resources),
        metrics: alloc.metrics.as_ref().map(AllocationMetric::from),
        desired_status: alloc.desired_status.as_str().to_string(),
        desired_description: alloc.desired_description.clone(),
        client_status: alloc.client_status.as_str().to_string(),
        client_description: alloc.client_description.clone(),
        task_states: task_states(&alloc.task_states),
        previous_allocation: alloc.previous_allocation.clone(),
        next_allocation: alloc.next_allocation.clone(),
        reschedule_tracker: reschedule_tracker(&alloc.reschedule_tracker),
        followup_eval_id: alloc.followup_eval_id.clone(),
        deployment_id: alloc.deployment_id.clone(),
        deployment_status: alloc.deployment_status.as_ref().map(AllocDeploymentStatus::from),
        preempted_allocations: alloc.preempted_allocations.clone(),
        preempted_by_allocation: alloc.preempted_by_allocation.clone(),
        job_version: alloc.job_version,
        create_index: alloc.create_index,
        modify_index: alloc.modify_index,
        alloc_modify_index: alloc.alloc_modify_index,
        create_time: alloc.create_time,
        modify_time: alloc.modify_time,
    }
}

impl From<&types::Evaluation> for Evaluation {
    fn from(eval: &types::Evaluation) -> Evaluation {
        Evaluation {
            id: eval.id.clone(),
            namespace: eval.namespace.clone(),
            priority: eval.priority,
            job_type: eval.job_type.map(|t| t.as_str().to_string()).unwrap_or_default(),
            triggered_by: eval.triggered_by.clone(),
            job_id: eval.job_id.clone(),
            job_modify_index: eval.job_modify_index,
            node_id: eval.node_id.clone(),
            node_modify_index: eval.node_modify_index,
            deployment_id: eval.deployment_id.clone(),
            status: eval.status.as_str().to_string(),
            status_description: eval.status_description.clone(),
            wait_until: (eval.wait_until > 0).then(|| format_rfc3339(eval.wait_until)),
            next_eval: eval.next_eval.clone(),
            previous_eval: eval.previous_eval.clone(),
            blocked_eval: eval.blocked_eval.clone(),
            failed_tg_allocs: (!eval.failed_tg_allocs.is_empty()).then(|| {
                eval.failed_tg_allocs
                    .iter()
                    .map(|(group, metric)| (group.clone(), AllocationMetric::from(metric)))
                    .collect()
            }),
            class_eligibility: (!eval.class_eligibility.is_empty()).then(|| eval.class_eligibility.clone()),
            escaped_computed_class: eval.escaped_computed_class,
            queued_allocations: (!eval.queued_allocations.is_empty()).then(|| eval.queued_allocations.clone()),
            snapshot_index: eval.snapshot_index,
            create_index: eval.create_index,
            modify_index: eval.modify_index,
            create_time: eval.create_time,
            modify_time: eval.modify_time,
        }
    }
}

fn drivers(node: &types::Node) -> BTreeMap<String, DriverInfo> {
    node.drivers
        .iter()
        .map(|(name, driver)| {
            (
                name.clone(),
                DriverInfo {
                    attributes: driver.attributes.clone(),
                    detected: driver.detected,
                    healthy: driver.healthy,
                    health_description: driver.health_description.clone(),
                    update_time: format_rfc3339(driver.update_time),
                },
            )
        })
        .collect()
}

/// The list row for a node.
pub fn node_stub(node: &types::Node) -> NodeListStub {
    let summary_attributes = ["os.name", "kernel.name", "cpu.arch", "nomad.version", "os.version"];
    NodeListStub {
        address: node
            .http_addr
            .rsplit_once(':')
            .map(|(host, _)| host.to_string())
            .unwrap_or_default(),
        id: node.id.clone(),
        attributes: node
            .attributes
            .iter()
            .filter(|(key, _)| summary_attributes.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        datacenter: node.datacenter.clone(),
        name: node.name.clone(),
        node_class: node.node_class.clone(),
        node_pool: node.node_pool.clone(),
        version: node.attributes.get("nomad.version").cloned().unwrap_or_default(),
        drain: node.drain.is_some(),
        scheduling_eligibility: node.scheduling_eligibility.as_str().to_string(),
        status: node.status.as_str().to_string(),
        status_description: node.status_description.clone(),
        drivers: drivers(node),
        create_index: node.create_index,
        modify_index: node.modify_index,
    }
}

/// The full node. The secret ID is never included.
pub fn node(node: &types::Node) -> Node {
    let resources = &node.resources;
    Node {
        id: node.id.clone(),
        datacenter: node.datacenter.clone(),
        name: node.name.clone(),
        http_addr: node.http_addr.clone(),
        attributes: node.attributes.clone(),
        node_resources: json!({
            "Cpu": {
                "CpuShares": resources.cpu_mhz,
                "TotalCpuCores": resources.cores,
                "ReservableCpuCores": (0..resources.cores).collect::<Vec<_>>(),
            },
            "Memory": { "MemoryMB": resources.memory_mb },
            "Disk": { "DiskMB": resources.disk_mb },
            "Networks": resources.networks.iter().map(|network| json!({
                "Mode": network.mode, "Device": network.device, "IP": network.ip, "MBits": network.mbits,
            })).collect::<Vec<_>>(),
            "Devices": resources.devices.iter().map(|device| json!({
                "Vendor": device.vendor, "Type": device.device_type, "Name": device.name,
                "Instances": device.instance_ids.iter().map(|id| json!({"ID": id, "Healthy": true})).collect::<Vec<_>>(),
                "Attributes": device.attributes,
            })).collect::<Vec<_>>(),
            "MinDynamicPort": resources.min_dynamic_port,
            "MaxDynamicPort": resources.max_dynamic_port,
        }),
        reserved_resources: json!({
            "Cpu": { "CpuShares": node.reserved.cpu_mhz },
            "Memory": { "MemoryMB": node.reserved.memory_mb },
            "Disk": { "DiskMB": node.reserved.disk_mb },
            "Networks": { "ReservedHostPorts": node.reserved_ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",") },
        }),
        resources: json!({
            "CPU": resources.cpu_mhz,
            "MemoryMB": resources.memory_mb,
            "DiskMB": resources.disk_mb,
        }),
        meta: node.meta.clone(),
        node_class: node.node_class.clone(),
        node_pool: node.node_pool.clone(),
        computed_class: node.computed_class.clone(),
        drain: node.drain.is_some(),
        drain_strategy: node.drain.as_ref().map(|drain| crate::DrainStrategy {
            drain_spec: crate::DrainSpec {
                deadline: drain.deadline,
                ignore_system_jobs: drain.ignore_system_jobs,
            },
            deadline: drain.deadline,
            ignore_system_jobs: drain.ignore_system_jobs,
            force_deadline: format_rfc3339(drain.force_deadline),
            started_at: format_rfc3339(drain.started_at),
        }),
        last_drain: node.last_drain.as_ref().map(|last| crate::DrainMetadata {
            started_at: format_rfc3339(last.started_at),
            updated_at: format_rfc3339(last.updated_at),
            status: last.status.clone(),
        }),
        scheduling_eligibility: node.scheduling_eligibility.as_str().to_string(),
        status: node.status.as_str().to_string(),
        status_description: node.status_description.clone(),
        status_updated_at: node.status_updated_at / 1_000_000_000,
        drivers: drivers(node),
        create_index: node.create_index,
        modify_index: node.modify_index,
    }
}

/// Converts the state's job summary.
pub fn job_summary(summary: &state_summary::JobSummaryView) -> JobSummary {
    JobSummary {
        job_id: summary.job_id.clone(),
        namespace: summary.namespace.clone(),
        summary: summary.groups.clone(),
        children: Some(JobChildrenSummary::default()),
        create_index: summary.create_index,
        modify_index: summary.modify_index,
    }
}

/// A neutral carrier for a job summary, so this crate need not know the
/// state crate: the HTTP layer fills it in.
pub mod state_summary {
    use super::TaskGroupSummary;
    use std::collections::BTreeMap;

    /// Summary fields as the HTTP layer collects them.
    #[derive(Debug, Clone, Default)]
    pub struct JobSummaryView {
        pub job_id: String,
        pub namespace: String,
        pub groups: BTreeMap<String, TaskGroupSummary>,
        pub create_index: u64,
        pub modify_index: u64,
    }
}

/// The list row for a job.
pub fn job_stub(job: &types::Job, summary: Option<JobSummary>) -> JobListStub {
    JobListStub {
        id: job.id.clone(),
        parent_id: job.parent_id.clone(),
        name: job.name.clone(),
        namespace: job.namespace.clone(),
        datacenters: job.datacenters.clone(),
        node_pool: job.node_pool.clone(),
        job_type: job.job_type.as_str().to_string(),
        priority: job.priority,
        periodic: job.periodic.is_some(),
        parameterized_job: job.parameterized.is_some(),
        stop: job.stop,
        status: job.status.as_str().to_string(),
        status_description: job.status_description.clone(),
        job_summary: summary,
        version: job.version,
        submit_time: job.submit_time,
        create_index: job.create_index,
        modify_index: job.modify_index,
        job_modify_index: job.job_modify_index,
    }
}

/// The operator's scheduler configuration in Nomad's JSON shape.
pub fn scheduler_config(config: &types::SchedulerConfiguration) -> SchedulerConfiguration {
    let preemption = &config.preemption_config;
    SchedulerConfiguration {
        scheduler_algorithm: config.scheduler_algorithm.as_str().to_string(),
        preemption_config: PreemptionConfig {
            system_scheduler_enabled: preemption.system_scheduler_enabled,
            sysbatch_scheduler_enabled: preemption.sysbatch_scheduler_enabled,
            batch_scheduler_enabled: preemption.batch_scheduler_enabled,
            service_scheduler_enabled: preemption.service_scheduler_enabled,
        },
        memory_oversubscription_enabled: config.memory_oversubscription_enabled,
        reject_job_registration: config.reject_job_registration,
        pause_eval_broker: config.pause_eval_broker,
        create_index: config.create_index,
        modify_index: config.modify_index,
    }
}

/// A scheduler configuration sent by a client, or why it is invalid. The
/// indexes are the server's to set and are ignored.
pub fn scheduler_config_from_api(config: &SchedulerConfiguration) -> Result<types::SchedulerConfiguration, String> {
    let algorithm = match config.scheduler_algorithm.as_str() {
        "" => types::SchedulerAlgorithm::Binpack,
        other => types::SchedulerAlgorithm::parse(other)
            .ok_or_else(|| format!("invalid SchedulerAlgorithm {other:?}: expected \"binpack\" or \"spread\""))?,
    };
    let preemption = &config.preemption_config;
    Ok(types::SchedulerConfiguration {
        scheduler_algorithm: algorithm,
        preemption_config: types::PreemptionConfig {
            system_scheduler_enabled: preemption.system_scheduler_enabled,
            sysbatch_scheduler_enabled: preemption.sysbatch_scheduler_enabled,
            batch_scheduler_enabled: preemption.batch_scheduler_enabled,
            service_scheduler_enabled: preemption.service_scheduler_enabled,
        },
        memory_oversubscription_enabled: config.memory_oversubscription_enabled,
        reject_job_registration: config.reject_job_registration,
        pause_eval_broker: config.pause_eval_broker,
        create_index: 0,
        modify_index: 0,
    })
}

/// A namespace in Nomad's shape (`Meta` null when empty, as Nomad's nil map).
pub fn namespace(namespace: &types::Namespace) -> Namespace {
    Namespace {
        name: namespace.name.clone(),
        description: namespace.description.clone(),
        quota: namespace.quota.clone(),
        capabilities: None,
        node_pool_configuration: None,
        meta: (!namespace.meta.is_empty()).then(|| namespace.meta.clone()),
        create_index: namespace.create_index,
        modify_index: namespace.modify_index,
    }
}

/// A namespace written by a client. The indexes are the server's and are
/// ignored, as Nomad ignores them; settings Drover does not carry out
/// (`Capabilities`, `NodePoolConfiguration`) are refused by name.
pub fn namespace_from_api(namespace: &Namespace) -> Result<types::Namespace, String> {
    if namespace.capabilities.as_ref().is_some_and(|value| !value.is_null()) {
        return Err("namespace Capabilities are not supported by Drover yet".to_string());
    }
    if namespace
        .node_pool_configuration
        .as_ref()
        .is_some_and(|value| !value.is_null())
    {
        return Err(
            "namespace NodePoolConfiguration is not supported by Drover (a Nomad Enterprise feature)".to_string(),
        );
    }
    Ok(types::Namespace {
        name: namespace.name.clone(),
        description: namespace.description.clone(),
        quota: namespace.quota.clone(),
        meta: namespace.meta.clone().unwrap_or_default(),
        create_index: 0,
        modify_index: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_json_uses_nomad_field_names() {
        let mut alloc = types::Allocation {
            id: "a1".into(),
            job_id: "web".into(),
            node_id: "n1".into(),
            create_index: 7,
            ..types::Allocation::default()
        };
        alloc.task_states.insert(
            "server".into(),
            types::TaskState {
                state: types::TaskStateKind::Running,
                started_at: 1_000_000_000,
                ..types::TaskState::default()
            },
        );
        let value = serde_json::to_value(allocation(&alloc, None)).expect("encode");
        assert_eq!(value["ID"], "a1");
        assert_eq!(value["JobID"], "web");
        assert_eq!(value["NodeID"], "n1");
        assert_eq!(value["CreateIndex"], 7);
        assert_eq!(value["ClientStatus"], "pending");
        assert_eq!(value["TaskStates"]["server"]["State"], "running");
        assert_eq!(value["TaskStates"]["server"]["StartedAt"], "1970-01-01T00:00:01Z");
        assert_eq!(value["TaskStates"]["server"]["FinishedAt"], "0001-01-01T00:00:00Z");
    }

    #[test]
    fn node_json_hides_the_secret() {
        let node_value = serde_json::to_value(node(&types::Node {
            id: "n1".into(),
            secret_id: "s3cret".into(),
            ..types::Node::default()
        }))
        .expect("encode");
        assert!(!node_value.to_string().contains("s3cret"));
        assert_eq!(node_value["Status"], "initializing");
    }

    #[test]
    fn namespaces_in_nomads_shape_and_back() {
        let stored = types::Namespace {
            name: "prod".into(),
            description: "production".into(),
            create_index: 3,
            modify_index: 4,
            ..types::Namespace::default()
        };
        let json = serde_json::to_value(namespace(&stored)).expect("encode");
        assert_eq!(
            json,
            serde_json::json!({
                "Name": "prod", "Description": "production", "Quota": "", "Capabilities": null,
                "NodePoolConfiguration": null, "Meta": null, "CreateIndex": 3, "ModifyIndex": 4
            })
        );
        let written: Namespace =
            serde_json::from_value(serde_json::json!({"Name": "prod", "Meta": {"team": "a"}, "CreateIndex": 99}))
                .expect("decode");
        let back = namespace_from_api(&written).expect("valid");
        assert_eq!(back.meta["team"], "a");
        assert_eq!(back.create_index, 0, "indexes are the server's");
        let with_capabilities = Namespace {
            capabilities: Some(serde_json::json!({"EnabledTaskDrivers": ["docker"]})),
            ..written
        };
        assert!(namespace_from_api(&with_capabilities).is_err());
        assert!(serde_json::from_value::<Namespace>(serde_json::json!({"Name": "x", "Owner": "me"})).is_err());
    }
}
