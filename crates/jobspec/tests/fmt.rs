//! `format_hcl`: golden files (`tests/fmt/NAME.in.hcl` → `NAME.out.hcl`,
//! `UPDATE_EXPECT=1` refreshes), and over the whole corpus: formatting is
//! stable, keeps every comment and leaves the parsed job unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const NOW: i64 = 1_709_294_400_000_000_000;

fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("directory exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// Parses a corpus job as `corpus_snapshots.rs` does (same side files).
fn parse(path: &Path, source: &str) -> Result<types::Job, jobspec::Diagnostics> {
    let stem = path.to_string_lossy().trim_end_matches(".nomad.hcl").to_string();
    let mut variables = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(format!("{stem}.vars")) {
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let (key, value) = line.split_once('=').expect("vars lines are k=v");
            variables.insert(key.to_string(), value.to_string());
        }
    }
    let mut var_files = Vec::new();
    for suffix in ["varfile.hcl", "varfile.json"] {
        if let Ok(text) = std::fs::read_to_string(format!("{stem}.{suffix}")) {
            var_files.push((format!("vars.{}", suffix.trim_start_matches("varfile.")), text));
        }
    }
    let files_dir = path.parent().expect("has a parent").join("files");
    let read_file = move |name: &str| -> Result<String, String> {
        std::fs::read_to_string(files_dir.join(name)).map_err(|err| err.to_string())
    };
    let random = || 7u128;
    let opts = jobspec::ParseOptions {
        variables,
        var_files,
        now: NOW,
        read_file: Some(&read_file),
        random: Some(&random),
        budget: jobspec::EvalBudget::DEFAULT,
    };
    jobspec::parse(source, "job.nomad.hcl", &opts)
}

fn comments(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let at = line.find('#').or_else(|| line.find("//"))?;
            Some(line[at..].trim_end().to_string())
        })
        .collect()
}

#[test]
fn golden_files() {
    let inputs = files("fmt", ".in.hcl");
    assert!(!inputs.is_empty());
    for path in inputs {
        let name = path.file_name().expect("has a name").to_string_lossy().to_string();
        let source = std::fs::read_to_string(&path).expect("reads");
        let formatted = jobspec::format_hcl(&source).unwrap_or_else(|diags| panic!("{name}: {diags}"));
        let golden = path.with_file_name(name.replace(".in.hcl", ".out.hcl"));
        expect_test::expect_file![golden].assert_eq(&formatted);
        assert_eq!(
            jobspec::format_hcl(&formatted).expect("formats again"),
            formatted,
            "{name}: not stable"
        );
    }
}

#[test]
fn corpus_formatting_is_stable_and_keeps_meaning() {
    let mut all = files("corpus", ".nomad.hcl");
    all.extend(files("fmt", ".in.hcl"));
    all.extend(files("diagnostics", ".nomad.hcl"));
    for path in all {
        let name = path.file_name().expect("has a name").to_string_lossy().to_string();
        let source = std::fs::read_to_string(&path).expect("reads");
        let formatted = match jobspec::format_hcl(&source) {
            Ok(formatted) => formatted,
            Err(diags) if name.contains("syntax") => {
                assert!(diags.0.iter().all(|diag| diag.line > 0), "{name}: {diags}");
                continue;
            }
            Err(diags) => panic!("{name}: {diags}"),
        };
        assert_eq!(
            jobspec::format_hcl(&formatted).expect("formats again"),
            formatted,
            "{name}: not stable"
        );
        assert_eq!(comments(&formatted), comments(&source), "{name}: comments changed");
        if path.to_string_lossy().contains("/corpus/") || name.ends_with(".in.hcl") {
            let before = parse(&path, &source);
            let after = parse(&path, &formatted);
            assert_eq!(before.is_ok(), after.is_ok(), "{name}");
            if let (Ok(before), Ok(after)) = (before, after) {
                assert_eq!(before, after, "{name}: formatting changed the job");
            }
        }
    }
}

#[test]
fn syntax_errors_are_diagnostics() {
    let err = jobspec::format_hcl("job \"x\" {\n  count = \n").expect_err("broken");
    assert_eq!(err.0.len(), 1);
    assert!(err.0[0].line >= 2, "{err}");
}
