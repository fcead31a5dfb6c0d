//! Host volumes on a real client: the node offers a directory as a host
//! volume (fingerprinted into the node), and an exec task whose group asks
//! for it read-only reads the host's files at its mount point and cannot
//! write there.

mod common;

use common::{Agent, alloc_for, start_server, test_config};
use std::sync::Arc;
use std::time::Duration;
use types::{
    AllocClientStatus, HostVolume, Job, JobType, RestartMode, RestartPolicy, Task, TaskGroup, VolumeMount,
    VolumeRequest,
};

#[tokio::test]
async fn a_host_volume_is_mounted_read_only_into_an_exec_task() {
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let shared = tempfile::tempdir().expect("host volume");
    std::fs::write(shared.path().join("config.txt"), "shared setting\n").expect("write");
    let mut config = test_config(data.path());
    config.host_volumes.insert(
        "shared".into(),
        HostVolume {
            path: shared.path().display().to_string(),
            read_only: false,
        },
    );
    let agent = Agent::start_with(&addr, config, vec![Arc::new(exec::ExecDriver::default())]).await;
    let node = server
        .wait_until("registration", |state| state.registrations.first().cloned())
        .await;
    assert_eq!(node.host_volumes["shared"].path, shared.path().display().to_string());

    let mut job = Job {
        id: "reader".into(),
        job_type: JobType::Batch,
        task_groups: vec![TaskGroup {
            name: "g".into(),
            restart_policy: Some(RestartPolicy {
                attempts: 0,
                interval: Duration::from_secs(60),
                delay: Duration::from_millis(10),
                mode: RestartMode::Fail,
                render_templates: false,
            }),
            volumes: [(
                "config".to_string(),
                VolumeRequest {
                    name: "config".into(),
                    volume_type: "host".into(),
                    source: "shared".into(),
                    read_only: true,
                    ..VolumeRequest::default()
                },
            )]
            .into(),
            tasks: vec![Task {
                name: "t".into(),
                driver: "exec".into(),
                config: serde_json::json!({
                    "command": "/bin/sh",
                    "args": ["-c", "cat /srv/app/config.txt; if touch /srv/app/new 2>/dev/null; then echo WROTE; else echo read-only; fi"],
                }),
                env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
                volume_mounts: vec![VolumeMount {
                    volume: "config".into(),
                    destination: "/srv/app".into(),
                    ..VolumeMount::default()
                }],
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    job.canonicalize();
    assert_eq!(job.check_supported(), Ok(()));
    let alloc = alloc_for(&job, &agent.node_id);
    let alloc_id = alloc.id.clone();
    server.place(alloc, job);
    let done = server.wait_for_status(&alloc_id, AllocClientStatus::Complete).await;
    assert!(!done.task_states["t"].failed, "{:#?}", done.task_states["t"].events);
    let log = std::fs::read_to_string(data.path().join(format!("alloc/{alloc_id}/alloc/logs/t.stdout.0")))
        .expect("stdout log");
    assert_eq!(log, "shared setting\nread-only\n");
    assert!(!shared.path().join("new").exists());
    agent.stop().await;
}
