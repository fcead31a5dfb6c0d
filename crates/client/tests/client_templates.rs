//! Templates on a real client with real raw_exec processes: a task does
//! not start until its templates render, a rendered file and an `env`
//! template reach the task, and a changed input re-renders the template and
//! applies its change mode (restart, signal).

mod common;

use common::{Agent, alloc_for, poll_until, start_server, test_config};
use std::time::Duration;
use types::{AllocClientStatus, Job, JobType, Task, TaskGroup, TaskStateKind, Template, task_event};

fn job(id: &str, script: &str, templates: Vec<Template>) -> Job {
    let mut job = Job {
        id: id.into(),
        job_type: JobType::Service,
        task_groups: vec![TaskGroup {
            name: "g".into(),
            tasks: vec![Task {
                name: "t".into(),
                driver: "raw_exec".into(),
                config: serde_json::json!({"command": "/bin/sh", "args": ["-c", script]}),
                kill_timeout: Duration::from_secs(2),
                templates,
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    job.canonicalize();
    job
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn a_template_renders_a_file_and_env_then_a_changed_input_restarts_the_task() {
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(data.path());
    config.template_poll_interval = Duration::from_millis(100);
    let agent = Agent::start(&addr, config).await;
    let templates = vec![
        Template {
            embedded_tmpl: "greeting={{ file \"../alloc/input.txt\" | trimSpace }}\n".into(),
            dest_path: "local/app.conf".into(),
            change_mode: "restart".into(),
            perms: "640".into(),
            ..Template::default()
        },
        Template {
            embedded_tmpl:
                "GREETING={{ file \"../alloc/input.txt\" | trimSpace | toUpper }}\nTASK={{ env \"NOMAD_TASK_NAME\" }}\n"
                    .into(),
            dest_path: "secrets/app.env".into(),
            change_mode: "restart".into(),
            env: true,
            ..Template::default()
        },
    ];
    let script =
        "echo \"start $GREETING $TASK $(cat local/app.conf)\" >> \"$NOMAD_ALLOC_DIR/starts.log\"; exec sleep 600";
    let job = job("templated", script, templates);
    let alloc = alloc_for(&job, &agent.node_id);
    let alloc_id = alloc.id.clone();
    server.place(alloc, job);

    // The input is missing: the task waits, saying why, and does not start.
    let waiting = server
        .wait_for_alloc(&alloc_id, "a Template event", |alloc| {
            alloc.task_states.get("t").is_some_and(|state| {
                state
                    .events
                    .iter()
                    .any(|event| event.event_type == task_event::TEMPLATE && event.display_message.contains("Missing:"))
            })
        })
        .await;
    assert!(
        !waiting.task_states["t"]
            .events
            .iter()
            .any(|event| event.event_type == task_event::STARTED),
        "the task started before its template rendered"
    );
    let shared = data.path().join(format!("alloc/{alloc_id}/alloc"));
    std::fs::write(shared.join("input.txt"), "one\n").expect("write the input");
    server.wait_for_status(&alloc_id, AllocClientStatus::Running).await;
    let starts = shared.join("starts.log");
    poll_until("the first start", || read(&starts).lines().count() == 1).await;
    assert_eq!(read(&starts), "start ONE t greeting=one\n");
    let conf = data.path().join(format!("alloc/{alloc_id}/t/local/app.conf"));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&conf).expect("rendered").permissions());
    assert_eq!(mode & 0o777, 0o640);

    // A changed input re-renders both templates and restarts the task once.
    std::fs::write(shared.join("input.txt"), "two\n").expect("write the input");
    poll_until("the restart", || read(&starts).lines().count() == 2).await;
    assert_eq!(read(&starts), "start ONE t greeting=one\nstart TWO t greeting=two\n");
    assert_eq!(read(&conf), "greeting=two\n");
    let restarted = server
        .wait_for_alloc(&alloc_id, "the task running again", |alloc| {
            alloc.task_states["t"].state == TaskStateKind::Running && alloc.task_states["t"].restarts == 1
        })
        .await;
    let events: Vec<&str> = restarted.task_states["t"]
        .events
        .iter()
        .map(|event| event.event_type.as_str())
        .collect();
    assert!(events.contains(&task_event::RESTART_SIGNAL), "{events:?}");
    // Not a failure: the restart policy was not consulted.
    assert!(!restarted.task_states["t"].failed);
    // The same input again changes nothing: four more polls, no restart.
    // (A negative check needs a wait; it is short and cannot flake green.)
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(read(&starts).lines().count(), 2);

    server.stop(&alloc_id);
    server.wait_for_status(&alloc_id, AllocClientStatus::Complete).await;
    agent.stop().await;
}

#[tokio::test]
async fn a_signal_template_signals_the_running_task() {
    let (server, addr) = start_server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(data.path());
    config.template_poll_interval = Duration::from_millis(100);
    let agent = Agent::start(&addr, config).await;
    let templates = vec![Template {
        embedded_tmpl: "{{ file \"../alloc/input.txt\" }}".into(),
        dest_path: "local/conf".into(),
        change_mode: "signal".into(),
        change_signal: "SIGHUP".into(),
        ..Template::default()
    }];
    let script = "trap 'echo hup >> \"$NOMAD_ALLOC_DIR/hups\"' HUP; echo started >> \"$NOMAD_ALLOC_DIR/starts\"; while true; do sleep 0.05; done";
    let job = job("signalled", script, templates);
    let alloc = alloc_for(&job, &agent.node_id);
    let alloc_id = alloc.id.clone();
    let shared = data.path().join(format!("alloc/{alloc_id}/alloc"));
    server.place(alloc, job);
    poll_until("the allocation directory", || shared.exists()).await;
    std::fs::write(shared.join("input.txt"), "a").expect("write");
    server.wait_for_status(&alloc_id, AllocClientStatus::Running).await;
    poll_until("the task to start", || shared.join("starts").exists()).await;
    std::fs::write(shared.join("input.txt"), "b").expect("write");
    poll_until("the signal", || read(&shared.join("hups")) == "hup\n").await;
    let alloc = server
        .wait_for_alloc(&alloc_id, "a Signaling event", |alloc| {
            alloc.task_states["t"]
                .events
                .iter()
                .any(|event| event.event_type == task_event::SIGNALING)
        })
        .await;
    assert_eq!(alloc.task_states["t"].restarts, 0);
    assert_eq!(read(&shared.join("starts")), "started\n");
    server.stop(&alloc_id);
    server.wait_for_status(&alloc_id, AllocClientStatus::Complete).await;
    agent.stop().await;
}
