//! The JSON route: Nomad's API JSON, wrapped or bare, gives the same job as
//! HCL, and malformed input gives diagnostics rather than panics.

const HCL: &str = r#"
job "api" {
  datacenters = ["dc1"]
  group "web" {
    count = 2
    update {
      max_parallel = 3
    }
    task "server" {
      driver = "docker"
      config {
        image = "example/api:1"
      }
      resources {
        memory = 512
      }
    }
  }
}
"#;

/// The same job as Nomad's CLI would submit it, only the fields it sets.
const JSON: &str = r#"{
  "Job": {
    "ID": "api",
    "Datacenters": ["dc1"],
    "TaskGroups": [{
      "Name": "web",
      "Count": 2,
      "Update": { "MaxParallel": 3 },
      "Tasks": [{
        "Name": "server",
        "Driver": "docker",
        "Config": { "image": "example/api:1" },
        "Resources": { "MemoryMB": 512 }
      }]
    }]
  }
}"#;

#[test]
fn json_and_hcl_give_the_same_job() {
    let from_hcl = jobspec::parse_hcl(HCL, "api.nomad.hcl", &jobspec::ParseOptions::default()).expect("hcl parses");
    let from_json = jobspec::parse_json(JSON).expect("json parses");
    assert_eq!(from_hcl, from_json);
    let bare: serde_json::Value = serde_json::from_str(JSON).expect("valid json");
    let bare_text = serde_json::to_string(&bare["Job"]).expect("serializes");
    let detected = jobspec::parse(&bare_text, "api.json", &jobspec::ParseOptions::default()).expect("bare job parses");
    assert_eq!(detected, from_json);
    assert_eq!(
        from_json.task_groups[0].update.as_ref().map(|u| u.max_parallel),
        Some(3)
    );
}

#[test]
fn json_errors_are_reported() {
    let err = jobspec::parse_json("{\"Job\": {\"ID\": 5,,}}").expect_err("syntax error");
    assert_eq!((err.0[0].line, err.0[0].column), (1, 18));
    let err = jobspec::parse_json(r#"{"ID": "x", "TaskGroups": [{"Name": "g", "Count": "three", "Tasks": [{"Name": "t", "Driver": "exec", "KillTimeout": -1, "Config": {"command": "x"}}]}]}"#)
        .expect_err("type errors");
    let rendered: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        vec![
            "1:42: job \"x\" → group \"g\" → count: count must be a whole number, not a string",
            "1:102: job \"x\" → group \"g\" → task \"t\" → kill_timeout: kill_timeout must be between 0 and 9223372036854775807, not -1",
        ]
    );
    assert!(jobspec::parse_json("[1, 2]").is_err());
    assert!(jobspec::parse_json(r#"{"Job": "nope"}"#).is_err());
}

/// Every `tests/json_diagnostics/*.json` fails, and its rendered diagnostics
/// (each with the line:column of the offending JSON key) match the `.txt`
/// snapshot beside it (`UPDATE_EXPECT=1` refreshes).
#[test]
fn json_diagnostics_match_snapshots() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/json_diagnostics");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&root)
        .expect("json_diagnostics exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for path in files {
        let name = path.file_name().expect("has a name").to_string_lossy().to_string();
        let source = std::fs::read_to_string(&path).expect("reads");
        let diags = jobspec::parse_json(&source).expect_err(&format!("{name} should fail"));
        for diag in &diags.0 {
            assert!(diag.line > 0, "{name}: no position for {diag}");
        }
        let snapshot = path.with_extension("txt");
        expect_test::expect_file![snapshot].assert_eq(&diags.render(&source, &name));
    }
}
