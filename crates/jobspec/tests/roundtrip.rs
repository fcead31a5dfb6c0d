//! Property test: any canonicalized job survives Job → API JSON → Job.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;
use types::*;

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_./${}\\- ]{0,12}"
}

fn duration() -> impl Strategy<Value = Duration> {
    (0u64..=i64::MAX as u64).prop_map(Duration::from_nanos)
}

fn string_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(text(), text(), 0..3)
}

fn constraint() -> impl Strategy<Value = Constraint> {
    (text(), text(), text()).prop_map(|(ltarget, rtarget, operand)| Constraint {
        ltarget,
        rtarget,
        operand,
    })
}

fn affinity() -> impl Strategy<Value = Affinity> {
    (text(), text(), text(), -100i8..=100).prop_map(|(ltarget, rtarget, operand, weight)| Affinity {
        ltarget,
        rtarget,
        operand,
        weight,
    })
}

fn spread() -> impl Strategy<Value = Spread> {
    (
        text(),
        -100i8..=100,
        prop::collection::vec(
            (text(), 0u8..=100).prop_map(|(value, percent)| SpreadTarget { value, percent }),
            0..3,
        ),
    )
        .prop_map(|(attribute, weight, targets)| Spread {
            attribute,
            weight,
            targets,
        })
}

fn port() -> impl Strategy<Value = Port> {
    (text(), any::<u16>(), any::<i32>(), text()).prop_map(|(label, value, to, host_network)| Port {
        label,
        value,
        to,
        host_network,
    })
}

fn network() -> impl Strategy<Value = NetworkResource> {
    (
        (text(), text(), text(), text(), 0i64..1_000_000),
        prop::option::of(
            (
                prop::collection::vec(text(), 0..2),
                prop::collection::vec(text(), 0..2),
                prop::collection::vec(text(), 0..2),
            )
                .prop_map(|(servers, searches, options)| DnsConfig {
                    servers,
                    searches,
                    options,
                }),
        ),
        prop::collection::vec(port(), 0..3),
        prop::collection::vec(port(), 0..3),
    )
        .prop_map(
            |((mode, device, ip, hostname, mbits), dns, reserved_ports, dynamic_ports)| NetworkResource {
                mode,
                device,
                ip,
                hostname,
                mbits,
                dns,
                reserved_ports,
                dynamic_ports,
            },
        )
}

fn service() -> impl Strategy<Value = Service> {
    (
        (text(), text(), text(), prop::collection::vec(text(), 0..3), text()),
        string_map(),
        prop::collection::vec(
            (
                (text(), text(), text(), prop::collection::vec(text(), 0..2)),
                (text(), text(), text(), duration(), duration(), text()),
            )
                .prop_map(
                    |(
                        (name, check_type, command, args),
                        (path, port_label, method, interval, timeout, initial_status),
                    )| {
                        ServiceCheck {
                            name,
                            check_type,
                            command,
                            args,
                            path,
                            protocol: "https".into(),
                            port_label,
                            method,
                            interval,
                            timeout,
                            initial_status,
                            extra: [("GRPCUseTLS".to_string(), serde_json::Value::Bool(true))]
                                .into_iter()
                                .collect(),
                        }
                    },
                ),
            0..2,
        ),
    )
        .prop_map(|((name, port_label, provider, tags, address), meta, checks)| Service {
            name,
            port_label,
            provider,
            tags,
            canary_tags: vec!["canary".into()],
            address_mode: "auto".into(),
            address,
            task_name: String::new(),
            meta,
            checks,
            extra: [(
                "Connect".to_string(),
                serde_json::json!({"SidecarService": {"Port": "http"}}),
            )]
            .into_iter()
            .collect(),
        })
}

fn restart() -> impl Strategy<Value = RestartPolicy> {
    (any::<u32>(), duration(), duration(), any::<bool>(), any::<bool>()).prop_map(
        |(attempts, interval, delay, delay_mode, render_templates)| RestartPolicy {
            attempts,
            interval,
            delay,
            mode: if delay_mode {
                RestartMode::Delay
            } else {
                RestartMode::Fail
            },
            render_templates,
        },
    )
}

fn task() -> impl Strategy<Value = Task> {
    (
        (text(), text(), text(), string_map(), string_map()),
        (
            (0i64..100_000, 0i64..64, 0i64..1_000_000, 0i64..1_000_000),
            prop::collection::vec(network(), 0..2),
            prop::collection::vec(
                (text(), 0u64..1_000, prop::collection::vec(constraint(), 0..2)).prop_map(
                    |(name, count, constraints)| RequestedDevice {
                        name,
                        count,
                        constraints,
                        affinities: Vec::new(),
                    },
                ),
                0..2,
            ),
        ),
        (
            prop::collection::vec(constraint(), 0..2),
            prop::collection::vec(affinity(), 0..2),
            prop::collection::vec(service(), 0..2),
            duration(),
            prop::option::of(duration()),
            (1u32..20, 1u32..100, any::<bool>()),
        ),
        (
            prop::option::of((text(), any::<bool>()).prop_map(|(hook, sidecar)| Lifecycle { hook, sidecar })),
            any::<bool>(),
            prop::collection::vec(
                (text(), text(), text(), string_map(), string_map()).prop_map(
                    |(source, destination, mode, options, headers)| Artifact {
                        source,
                        destination,
                        mode,
                        options,
                        headers,
                    },
                ),
                0..2,
            ),
            prop::collection::vec(
                (
                    (text(), text(), text()),
                    (text(), text(), duration(), text(), any::<bool>()),
                )
                    .prop_map(
                        |((source_path, dest_path, embedded_tmpl), (change_mode, change_signal, splay, perms, env))| {
                            Template {
                                source_path,
                                dest_path,
                                embedded_tmpl,
                                change_mode,
                                change_signal,
                                splay,
                                perms,
                                left_delim: "[[".into(),
                                right_delim: "]]".into(),
                                env,
                            }
                        },
                    ),
                0..2,
            ),
            prop::collection::vec(
                (text(), text(), any::<bool>(), text()).prop_map(
                    |(volume, destination, read_only, propagation_mode)| VolumeMount {
                        volume,
                        destination,
                        read_only,
                        propagation_mode,
                    },
                ),
                0..2,
            ),
            prop::option::of(text().prop_map(|file| DispatchPayload { file })),
            prop::option::of(restart()),
        ),
    )
        .prop_map(
            |(
                (name, driver, user, env, meta),
                ((cpu, cores, memory_mb, memory_max_mb), networks, devices),
                (
                    constraints,
                    affinities,
                    services,
                    kill_timeout,
                    shutdown_delay,
                    (max_files, max_file_size_mb, disabled),
                ),
                (lifecycle, leader, artifacts, templates, volume_mounts, dispatch_payload, restart_policy),
            )| {
                let mut extra = BTreeMap::new();
                if leader {
                    extra.insert("Vault".to_string(), serde_json::json!({"Role": name.clone()}));
                }
                Task {
                    name: name.clone(),
                    driver,
                    user,
                    config: serde_json::json!({"command": name, "args": ["a", 1, true]}),
                    env,
                    resources: Resources {
                        cpu,
                        cores,
                        memory_mb,
                        memory_max_mb,
                        networks,
                        devices,
                    },
                    constraints,
                    affinities,
                    services,
                    meta,
                    kill_timeout,
                    kill_signal: "SIGINT".into(),
                    shutdown_delay,
                    log_config: LogConfig {
                        max_files,
                        max_file_size_mb,
                        disabled,
                    },
                    lifecycle,
                    leader,
                    artifacts,
                    templates,
                    volume_mounts,
                    dispatch_payload,
                    restart_policy,
                    extra,
                }
            },
        )
}

fn group() -> impl Strategy<Value = TaskGroup> {
    (
        (text(), 0u32..100, prop::collection::vec(task(), 0..3)),
        (
            prop::collection::vec(constraint(), 0..2),
            prop::collection::vec(affinity(), 0..2),
            prop::collection::vec(spread(), 0..2),
        ),
        (
            prop::option::of(restart()),
            (any::<bool>(), any::<bool>(), 0i64..100_000),
            prop::collection::vec(network(), 0..2),
            prop::collection::vec(service(), 0..2),
            prop::collection::btree_map(
                text(),
                (text(), text(), any::<bool>()).prop_map(|(volume_type, source, per_alloc)| VolumeRequest {
                    name: source.clone(),
                    volume_type,
                    source,
                    read_only: per_alloc,
                    access_mode: "single-node-writer".into(),
                    attachment_mode: "file-system".into(),
                    per_alloc,
                }),
                0..2,
            ),
        ),
        (
            prop::option::of((prop::option::of(0u64..1_000), 0u64..1_000, any::<bool>()).prop_map(
                |(min, max, enabled)| ScalingPolicy {
                    min,
                    max,
                    enabled,
                    policy: serde_json::json!({"cooldown": "1m"}),
                },
            )),
            string_map(),
            prop::option::of(duration()),
            prop::option::of(duration()),
            prop::option::of(
                (
                    prop::option::of(duration()),
                    prop::option::of(duration()),
                    any::<bool>(),
                    text(),
                )
                    .prop_map(|(lost_after, stop_on_client_after, replace, reconcile)| {
                        DisconnectStrategy {
                            lost_after,
                            stop_on_client_after,
                            replace: Some(replace),
                            reconcile,
                        }
                    }),
            ),
        ),
    )
        .prop_map(
            |(
                (name, count, tasks),
                (constraints, affinities, spreads),
                (restart_policy, (sticky, migrate, size_mb), networks, services, volumes),
                (scaling, meta, shutdown_delay, max_client_disconnect, disconnect),
            )| TaskGroup {
                name,
                count,
                constraints,
                affinities,
                spreads,
                tasks,
                restart_policy,
                ephemeral_disk: EphemeralDisk {
                    sticky,
                    migrate,
                    size_mb,
                },
                networks,
                services,
                volumes,
                scaling,
                meta,
                shutdown_delay,
                max_client_disconnect,
                disconnect,
                ..TaskGroup::default()
            },
        )
}

fn job() -> impl Strategy<Value = Job> {
    (
        (text(), text(), text(), text(), 0usize..4, -10i32..200, any::<bool>()),
        (
            prop::collection::vec(text(), 0..3),
            prop::collection::vec(constraint(), 0..2),
            prop::collection::vec(affinity(), 0..2),
            prop::collection::vec(spread(), 0..2),
            prop::collection::vec(group(), 0..3),
        ),
        (
            prop::option::of(
                (
                    (duration(), any::<u32>(), text(), duration()),
                    (duration(), duration(), any::<bool>(), any::<bool>(), any::<u32>()),
                )
                    .prop_map(
                        |(
                            (stagger, max_parallel, health_check, min_healthy_time),
                            (healthy_deadline, progress_deadline, auto_revert, auto_promote, canary),
                        )| UpdateStrategy {
                            stagger,
                            max_parallel,
                            health_check,
                            min_healthy_time,
                            healthy_deadline,
                            progress_deadline,
                            auto_revert,
                            auto_promote,
                            canary,
                        },
                    ),
            ),
            prop::option::of(
                (
                    any::<bool>(),
                    prop::collection::vec(text(), 0..3),
                    any::<bool>(),
                    text(),
                )
                    .prop_map(|(enabled, specs, prohibit_overlap, time_zone)| PeriodicConfig {
                        enabled,
                        specs,
                        spec_type: "cron".into(),
                        prohibit_overlap,
                        time_zone,
                        max_concurrent: 0,
                    }),
            ),
            prop::option::of(
                (
                    text(),
                    prop::collection::vec(text(), 0..2),
                    prop::collection::vec(text(), 0..2),
                )
                    .prop_map(|(payload, meta_required, meta_optional)| ParameterizedConfig {
                        payload,
                        meta_required,
                        meta_optional,
                        max_concurrent: 3,
                    }),
            ),
            string_map(),
            prop::collection::vec(any::<u8>(), 0..8),
            (0u64..1 << 40, any::<i64>(), any::<bool>()),
        ),
    )
        .prop_map(
            |(
                (id, name, namespace, region, type_idx, priority, all_at_once),
                (datacenters, constraints, affinities, spreads, task_groups),
                (update, periodic, parameterized, meta, payload, (version, submit_time, stop)),
            )| {
                let job_type = [JobType::Service, JobType::Batch, JobType::System, JobType::Sysbatch][type_idx];
                Job {
                    id,
                    name,
                    namespace,
                    region,
                    job_type,
                    priority,
                    all_at_once,
                    datacenters,
                    node_pool: "pool".into(),
                    constraints,
                    affinities,
                    spreads,
                    task_groups,
                    update,
                    periodic,
                    parameterized,
                    meta,
                    ui: stop.then(|| serde_json::json!({"Description": "x"})),
                    payload,
                    version,
                    submit_time,
                    stop,
                    status: if stop { JobStatus::Dead } else { JobStatus::Running },
                    extra: BTreeMap::from([("Multiregion".to_string(), serde_json::json!({"Regions": []}))]),
                    ..Job::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn job_survives_api_json(mut job in job()) {
        job.canonicalize();
        let value = jobspec::job_to_api(&job);
        let decoded = jobspec::decode_api_job(&value).map_err(|diags| TestCaseError::fail(diags.to_string()))?;
        prop_assert_eq!(&decoded, &job);
        // Wrapped as `nomad job run -output` prints it, through text.
        let text = jobspec::render_json(&job);
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|err| TestCaseError::fail(err.to_string()))?;
        let decoded = jobspec::decode_api_job(&value).map_err(|diags| TestCaseError::fail(diags.to_string()))?;
        prop_assert_eq!(decoded, job);
    }
}
