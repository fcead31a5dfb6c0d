//! Lifecycle hooks with real raw_exec processes: prestart tasks run to
//! completion before the main task starts, a prestart sidecar runs beside
//! it and is stopped when it finishes, poststart starts once the main task
//! runs, and poststop runs after everything else is dead. The order is
//! read from the task events' timestamps and from files the tasks write.

mod common;

use common::{Agent, alloc_for, start_server, test_config};
use std::time::Duration;
use types::{
    AllocClientStatus, Allocation, Job, JobType, Lifecycle, RestartMode, RestartPolicy, Task, TaskGroup, task_event,
};

fn task(name: &str, hook: Option<(&str, bool)>, script: &str) -> Task {
    Task {
        name: name.into(),
        driver: "raw_exec".into(),
        config: serde_json::json!({"command": "/bin/sh", "args": ["-c", script]}),
        kill_timeout: Duration::from_secs(2),
        lifecycle: hook.map(|(hook, sidecar)| Lifecycle {
            hook: hook.into(),
            sidecar,
        }),
        ..Task::default()
    }
}

fn event_time(alloc: &Allocation, task: &str, event_type: &str) -> i64 {
    alloc.task_states[task]
        .events
        .iter()
        .find(|event| event.event_type == event_type)
        .unwrap_or_else(|| {
            panic!(
                "{task} has no {event_type} event: {:#?}",
                alloc.task_states[task].events
            )
        })
        .time
}

#[tokio::test]
async fn lifecycle_order_is_prestart_then_main_and_sidecar_then_poststart_then_poststop() {
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&addr, test_config(data.path())).await;
    let mut job = Job {
        id: "hooks".into(),
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
            tasks: vec![
                // The main task fails unless init finished first and the
                // sidecar is up.
                task(
                    "main",
                    None,
                    "test -f \"$NOMAD_ALLOC_DIR/init.done\" && test -f \"$NOMAD_ALLOC_DIR/sidecar.up\" && sleep 0.5 && echo main > \"$NOMAD_ALLOC_DIR/main.done\"",
                ),
                task(
                    "init",
                    Some(("prestart", false)),
                    "sleep 0.2; echo init > \"$NOMAD_ALLOC_DIR/init.done\"",
                ),
                task(
                    "sidecar",
                    Some(("prestart", true)),
                    "echo up > \"$NOMAD_ALLOC_DIR/sidecar.up\"; exec sleep 600",
                ),
                task(
                    "announce",
                    Some(("poststart", false)),
                    "test ! -f \"$NOMAD_ALLOC_DIR/main.done\" && echo announced > \"$NOMAD_ALLOC_DIR/announce.done\"",
                ),
                // Poststop sees the main task's output: it ran after it.
                task(
                    "cleanup",
                    Some(("poststop", false)),
                    "test -f \"$NOMAD_ALLOC_DIR/main.done\" && echo cleaned > \"$NOMAD_ALLOC_DIR/cleanup.done\"",
                ),
            ],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    job.canonicalize();
    let alloc = alloc_for(&job, &agent.node_id);
    let alloc_id = alloc.id.clone();
    server.place(alloc, job);
    let done = server.wait_for_status(&alloc_id, AllocClientStatus::Complete).await;
    for name in ["main", "init", "announce", "cleanup"] {
        assert!(
            !done.task_states[name].failed,
            "{name} failed: {:#?}",
            done.task_states[name]
        );
        assert!(
            done.task_states[name]
                .events
                .iter()
                .any(|e| e.event_type == task_event::TERMINATED && e.exit_code == 0),
            "{name} did not exit 0: {:#?}",
            done.task_states[name].events
        );
    }
    let shared = data.path().join(format!("alloc/{alloc_id}/alloc"));
    for file in ["init.done", "sidecar.up", "main.done", "announce.done", "cleanup.done"] {
        assert!(shared.join(file).exists(), "{file} was not written");
    }
    let init_finished = done.task_states["init"].finished_at;
    let sidecar_started = event_time(&done, "sidecar", task_event::STARTED);
    let main_started = event_time(&done, "main", task_event::STARTED);
    let main_finished = done.task_states["main"].finished_at;
    let announce_started = event_time(&done, "announce", task_event::STARTED);
    let sidecar_killed = event_time(&done, "sidecar", task_event::KILLING);
    let sidecar_finished = done.task_states["sidecar"].finished_at;
    let cleanup_started = event_time(&done, "cleanup", task_event::STARTED);
    assert!(init_finished <= main_started, "main started before init finished");
    assert!(sidecar_started <= main_started, "main started before the sidecar");
    assert!(main_started <= announce_started, "poststart started before main");
    assert!(announce_started < main_finished, "poststart waited for main to finish");
    assert!(
        main_finished <= sidecar_killed,
        "the sidecar was stopped before main finished"
    );
    assert!(
        sidecar_finished <= cleanup_started,
        "poststop started before the sidecar was dead"
    );
    assert!(
        main_finished <= cleanup_started,
        "poststop started before main finished"
    );
    // The sidecar was stopped, not failed.
    assert!(!done.task_states["sidecar"].failed);
    agent.stop().await;
}

/// Client GC: past `gc_max_allocs`, the directories of the oldest terminal
/// allocations are removed, and a collected allocation is not started
/// again.
#[tokio::test]
async fn client_gc_removes_the_oldest_terminal_allocation_dirs_past_max_allocs() {
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(data.path());
    config.gc.max_allocs = 2;
    config.gc.interval = Duration::from_millis(100);
    // Only the count matters here, whatever the test machine's disk holds.
    config.gc.disk_usage_threshold = 100.0;
    config.gc.inode_usage_threshold = 100.0;
    let agent = Agent::start(&addr, config).await;
    let mut job = Job {
        id: "short".into(),
        job_type: JobType::Batch,
        task_groups: vec![TaskGroup {
            name: "g".into(),
            tasks: vec![task("t", None, "echo done > \"$NOMAD_ALLOC_DIR/out\"")],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    job.canonicalize();
    let mut alloc_ids = Vec::new();
    // One after the other, so that their finishing order is known.
    for _ in 0..4 {
        let alloc = alloc_for(&job, &agent.node_id);
        let alloc_id = alloc.id.clone();
        server.place(alloc, job.clone());
        server.wait_for_status(&alloc_id, AllocClientStatus::Complete).await;
        alloc_ids.push(alloc_id);
    }
    let dir = |alloc_id: &str| data.path().join(format!("alloc/{alloc_id}"));
    common::poll_until("the two oldest allocation dirs to go", || {
        !dir(&alloc_ids[0]).exists() && !dir(&alloc_ids[1]).exists()
    })
    .await;
    assert!(dir(&alloc_ids[2]).exists() && dir(&alloc_ids[3]).exists());
    assert!(
        !data
            .path()
            .join(format!("client/allocs/{}.json", alloc_ids[0]))
            .exists()
    );
    // A server whose view is stale still lists a collected allocation as
    // running: it is not started again.
    let mut stale = server.with_state(|state| state.allocs[&alloc_ids[0]].alloc.clone());
    stale.client_status = AllocClientStatus::Running;
    server.place(stale, job);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!dir(&alloc_ids[0]).exists(), "a collected allocation was started again");
    agent.stop().await;
}

/// A dispatched job's payload is written where `dispatch_payload` says,
/// inside the task's `local/` directory, before the task starts.
#[tokio::test]
async fn a_dispatch_payload_is_written_into_local() {
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&addr, test_config(data.path())).await;
    let mut reader = task("t", None, "cat local/input/payload.json > \"$NOMAD_ALLOC_DIR/out\"");
    reader.dispatch_payload = Some(types::DispatchPayload {
        file: "input/payload.json".into(),
    });
    let mut job = Job {
        id: "dispatched/dispatch-1".into(),
        job_type: JobType::Batch,
        dispatched: true,
        payload: br#"{"n": 1}"#.to_vec(),
        task_groups: vec![TaskGroup {
            name: "g".into(),
            tasks: vec![reader],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    job.canonicalize();
    assert_eq!(job.check_supported(), Ok(()));
    let alloc = alloc_for(&job, &agent.node_id);
    let alloc_id = alloc.id.clone();
    server.place(alloc, job);
    server.wait_for_status(&alloc_id, AllocClientStatus::Complete).await;
    let out = std::fs::read_to_string(data.path().join(format!("alloc/{alloc_id}/alloc/out"))).expect("output");
    assert_eq!(out, r#"{"n": 1}"#);
    agent.stop().await;
}
