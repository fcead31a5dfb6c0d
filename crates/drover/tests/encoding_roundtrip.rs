//! Every job of the jobspec corpus (Nomad's jobspec features, one file
//! each) survives the wire encoding that carries Raft entries and
//! snapshots: decoded, it equals what was encoded. Allocations, nodes and
//! evaluations with their optional parts set do too.

use std::path::Path;

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T, what: &str) {
    let bytes = rpc::encode(value).expect("encode");
    let back: T = rpc::decode(&bytes).unwrap_or_else(|error| panic!("{what}: {error}"));
    assert_eq!(&back, value, "{what}");
}

#[test]
fn every_corpus_job_round_trips() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../jobspec/tests/corpus");
    let mut count = 0;
    for entry in std::fs::read_dir(&corpus).expect("corpus") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|ext| ext != "hcl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let options = jobspec::ParseOptions {
            read_file: Some(&|_: &str| Ok("file contents".to_string())),
            ..jobspec::ParseOptions::default()
        };
        let Ok(mut job) = jobspec::parse(&text, &path.display().to_string(), &options) else {
            continue;
        };
        job.canonicalize();
        round_trip(&job, &path.display().to_string());
        round_trip(
            &state::Command::JobRegister {
                job,
                eval: None,
                now: 1,
                enforce_index: None,
            },
            "command",
        );
        count += 1;
    }
    assert!(count >= 10, "only {count} corpus jobs parsed");
}

#[test]
fn allocations_nodes_and_evaluations_round_trip() {
    let mut alloc = types::Allocation {
        id: "a".into(),
        reschedule_tracker: Some(types::RescheduleTracker::default()),
        metrics: Some(types::AllocMetric::default()),
        preempted_allocations: vec!["b".into()],
        ..types::Allocation::default()
    };
    alloc.task_states.insert(
        "t".into(),
        types::TaskState {
            state: types::TaskStateKind::Dead,
            failed: true,
            events: vec![types::TaskEvent::default()],
            ..types::TaskState::default()
        },
    );
    round_trip(&alloc, "allocation");
    let mut node = types::Node {
        id: "n".into(),
        ..types::Node::default()
    };
    node.attributes.insert("cpu.arch".into(), "amd64".into());
    node.drivers.insert("docker".into(), types::DriverInfo::default());
    round_trip(&node, "node");
    let mut eval = types::Evaluation {
        id: "e".into(),
        job_type: Some(types::JobType::Batch),
        ..types::Evaluation::default()
    };
    eval.failed_tg_allocs.insert("g".into(), types::AllocMetric::default());
    round_trip(&eval, "evaluation");
}
