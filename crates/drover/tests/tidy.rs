//! Tidy checks, run by `cargo test`: every crate is on ARCHITECTURE.md's
//! map, no forbidden dependency edge appears in `cargo metadata`, the pure
//! crates pull in no runtime, network or storage library, and every source
//! file opens with a `//!` paragraph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/drover sits two levels below the root")
        .to_path_buf()
}

/// Workspace packages and their normal (non-dev) dependencies by name.
fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let mut graph = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name").to_string();
        let deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|dep| dep["kind"].is_null())
            .map(|dep| dep["name"].as_str().expect("dep name").to_string())
            .collect();
        graph.insert(name, deps);
    }
    graph
}

/// Which workspace crates each crate may depend on (DESIGN.md §3, with the
/// changes recorded in ARCHITECTURE.md).
fn allowed_internal_edges() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("types", &[][..]),
        ("acl", &["types"][..]),
        ("jobspec", &["types"][..]),
        // `workload` only as the optional dependency of the `testing` feature.
        ("scheduler", &["types", "workload"][..]),
        ("state", &["types"][..]),
        ("rpc", &["types"][..]),
        ("raft", &["types", "state", "rpc"][..]),
        ("server", &["types", "scheduler", "state", "raft", "rpc", "acl"][..]),
        ("driver-api", &["types"][..]),
        ("cgroups", &[][..]),
        ("raw_exec", &["types", "driver-api", "cgroups"][..]),
        ("logmon", &["types", "driver-api"][..]),
        ("docker", &["types", "driver-api", "logmon"][..]),
        ("exec", &["types", "driver-api", "raw_exec", "cgroups"][..]),
        ("network", &["driver-api"][..]),
        (
            "conformance",
            &["types", "driver-api", "raw_exec", "exec", "docker", "logmon"][..],
        ),
        ("client", &["types", "rpc", "driver-api", "logmon", "network"][..]),
        ("api-types", &["types"][..]),
        (
            "http-api",
            &["types", "api-types", "jobspec", "server", "client", "acl"][..],
        ),
        ("api-client", &["api-types"][..]),
        ("cli", &["types", "api-types", "api-client", "jobspec"][..]),
        ("workload", &["types"][..]),
        // The node simulator: no other crate lists it, so only `drover`
        // (for drover-bench) may depend on it.
        ("sim", &["types", "rpc", "workload"][..]),
        // The application SDK speaks only the HTTP API.
        ("drover-sdk", &["api-types", "api-client"][..]),
        // The agent's DNS server: registrations in, DNS messages out.
        ("dns", &["types"][..]),
    ])
}

/// External libraries the pure crates must never use: no async runtime,
/// no network, no storage, no clock or global RNG beyond what is passed in.
const IMPURE: &[&str] = &[
    "tokio", "reqwest", "axum", "hyper", "redb", "openraft", "tonic", "nix", "libc", "uuid",
];
const PURE_CRATES: &[&str] = &["types", "jobspec", "scheduler", "state", "acl"];

#[test]
fn no_forbidden_dependency_edges() {
    let graph = dependency_graph();
    let workspace: BTreeSet<&String> = graph.keys().collect();
    let allowed = allowed_internal_edges();
    let mut problems = Vec::new();
    for (package, deps) in &graph {
        let internal: Vec<&String> = deps.iter().filter(|dep| workspace.contains(dep)).collect();
        if package == "drover" {
            continue;
        }
        let Some(permitted) = allowed.get(package.as_str()) else {
            problems.push(format!("crate {package} has no entry in the allowed-edge table"));
            continue;
        };
        for dep in internal {
            if !permitted.contains(&dep.as_str()) {
                problems.push(format!("forbidden edge {package} -> {dep}"));
            }
        }
        if PURE_CRATES.contains(&package.as_str()) {
            for dep in deps {
                if IMPURE.contains(&dep.as_str()) {
                    problems.push(format!("pure crate {package} depends on {dep}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "dependency rules broken:\n{}", problems.join("\n"));
}

#[test]
fn every_crate_is_on_the_architecture_map() {
    let architecture =
        std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md at the root");
    let missing: Vec<String> = dependency_graph()
        .keys()
        .filter(|name| !architecture.contains(&format!("`{name}`")))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "crates missing from ARCHITECTURE.md: {missing:?}");
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if name != "target" && name != "fuzz" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates"), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let undocumented: Vec<String> = files
        .iter()
        .filter(|path| path.components().any(|part| part.as_os_str() == "src"))
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        undocumented.is_empty(),
        "files without a //! paragraph: {undocumented:#?}"
    );
}

/// Whether `line` names the path `needle` (not as the tail of a longer
/// identifier, so `sim::` does not match `xsim::`).
fn names_path(line: &str, needle: &str) -> bool {
    line.match_indices(needle).any(|(at, _)| {
        line[..at]
            .chars()
            .next_back()
            .is_none_or(|before| !(before.is_alphanumeric() || before == '_'))
    })
}

#[test]
fn names_path_matches_whole_path_segments() {
    assert!(names_path("use sim::Simulator;", "sim::"));
    assert!(names_path("let x = ::sim::SimConfig::new(a, 1, 2);", "sim::"));
    assert!(!names_path("let x = nsim::y;", "sim::"));
    assert!(!names_path("my_sim::y", "sim::"));
}

/// Test support and benchmark code stays out of what servers and clients
/// run: the scheduler's in-memory cluster, fixture DSL and benchmark
/// harness compile only for tests or under its `testing` feature, no normal
/// dependency turns that feature on, and the benchmark's `workload` crate is
/// linked only into `drover-bench` (lesson one of the first wave: no path
/// that only a benchmark or a test reaches).
#[test]
fn test_support_stays_out_of_production_builds() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let mut problems = Vec::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name");
        for dep in package["dependencies"].as_array().expect("dependencies") {
            if !dep["kind"].is_null() {
                continue;
            }
            let dep_name = dep["name"].as_str().expect("dep name");
            let features: Vec<&str> = dep["features"]
                .as_array()
                .map(|list| list.iter().filter_map(|feature| feature.as_str()).collect())
                .unwrap_or_default();
            if features.contains(&"testing") {
                problems.push(format!(
                    "{name} enables {dep_name}'s `testing` feature in a normal dependency"
                ));
            }
            if dep_name == "workload" && name != "drover" && name != "sim" && dep["optional"].as_bool() != Some(true) {
                problems.push(format!(
                    "{name} depends on the benchmark workload outside a `testing` feature"
                ));
            }
        }
        for (feature, enables) in package["features"].as_object().into_iter().flatten() {
            let pulls_workload = enables
                .as_array()
                .is_some_and(|list| list.iter().any(|item| item.as_str() == Some("dep:workload")));
            if pulls_workload && feature != "testing" {
                problems.push(format!("{name}'s feature {feature} pulls in the benchmark workload"));
            }
        }
    }
    // The gated modules are declared behind the cfg, and no other source
    // file of a production crate names them outside its own tests.
    let gate = "#[cfg(any(test, feature = \"testing\"))]";
    let lib = workspace_root().join("crates/scheduler/src/lib.rs");
    let text = std::fs::read_to_string(&lib).expect("scheduler lib.rs");
    let lines: Vec<&str> = text.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        let declared = ["mod mem_cluster;", "mod testing;", "mod bench;"]
            .iter()
            .any(|module| line.trim_start_matches("pub ").trim() == *module);
        if declared && (index == 0 || lines[index - 1].trim() != gate) {
            problems.push(format!(
                "scheduler/src/lib.rs:{}: {line} is not behind {gate}",
                index + 1
            ));
        }
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("crates"))
        .expect("crates dir")
        .flatten()
    {
        let crate_name = entry.file_name().to_string_lossy().to_string();
        if crate_name == "workload" || crate_name == "sim" {
            continue;
        }
        rust_files(&entry.path(), &mut files);
    }
    for file in files {
        let relative = file
            .strip_prefix(workspace_root())
            .unwrap_or(&file)
            .to_string_lossy()
            .to_string();
        let support = ["mem_cluster.rs", "testing.rs", "bench.rs"]
            .iter()
            .any(|name| relative == format!("crates/scheduler/src/{name}"));
        if !relative.contains("/src/") || support || relative.starts_with("crates/drover/src/bin/drover-bench/") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        let production = text.split("#[cfg(test)]").next().unwrap_or("");
        for needle in [
            "MemCluster",
            "workload::",
            "scheduler::bench",
            "scheduler::testing",
            "sim::",
        ] {
            if production
                .lines()
                .any(|line| names_path(line, needle) && !line.trim_start().starts_with("//"))
            {
                problems.push(format!("{relative} uses {needle} outside its tests"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "test support in production code:\n{}",
        problems.join("\n")
    );
}
