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
    let err = jobspec::parse_json(r#"{"ID": "x", "TaskGroups": [{"Name": "g", "Count": "three", "Tasks": [{"Name": "t", "Driver": "exec", "KillTimeout": -1}]}]}"#)
        .expect_err("type errors");
    let rendered: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        vec![
            "job \"x\" → group \"g\" → count: count must be a whole number, not a string",
            "job \"x\" → group \"g\" → task \"t\" → kill_timeout: kill_timeout must be between 0 and 9223372036854775807, not -1",
        ]
    );
    assert!(jobspec::parse_json("[1, 2]").is_err());
    assert!(jobspec::parse_json(r#"{"Job": "nope"}"#).is_err());
}
