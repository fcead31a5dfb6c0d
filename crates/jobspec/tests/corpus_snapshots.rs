//! Corpus tests: every `tests/corpus/*.nomad.hcl` parses, its canonical
//! JSON matches the snapshot beside it (`UPDATE_EXPECT=1` refreshes), and
//! the JSON route gives back the same job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A hundredth of the default evaluation budget: every corpus job fits in
/// it, so the defaults are far above what job files use.
const CORPUS_BUDGET: jobspec::EvalBudget = jobspec::EvalBudget {
    max_steps: jobspec::EvalBudget::DEFAULT.max_steps / 100,
    max_bytes: jobspec::EvalBudget::DEFAULT.max_bytes / 100,
    max_collection: jobspec::EvalBudget::DEFAULT.max_collection / 100,
};

/// The instant `timestamp()` sees in every corpus test: 2024-03-01T12:00:00Z.
const NOW: i64 = 1_709_294_400_000_000_000;

fn corpus_files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("corpus directory exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.to_string_lossy().ends_with(".nomad.hcl"))
        .collect();
    files.sort();
    files
}

/// Side files next to a job: `NAME.vars` (k=v lines) and `NAME.varfile.hcl`.
fn options_for(path: &Path) -> (BTreeMap<String, String>, Vec<(String, String)>) {
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
    (variables, var_files)
}

fn parse_with_fixtures(path: &Path) -> Result<types::Job, (String, jobspec::Diagnostics)> {
    let source = std::fs::read_to_string(path).expect("corpus file reads");
    let (variables, var_files) = options_for(path);
    let files_dir = path.parent().expect("has a parent").join("files");
    let read_file = move |name: &str| -> Result<String, String> {
        std::fs::read_to_string(files_dir.join(name)).map_err(|err| err.to_string())
    };
    let counter = std::cell::Cell::new(0u128);
    let random = || {
        counter.set(counter.get() + 1);
        counter.get().wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
    };
    let opts = jobspec::ParseOptions {
        variables,
        var_files,
        now: NOW,
        read_file: Some(&read_file),
        random: Some(&random),
        budget: CORPUS_BUDGET,
    };
    let name = path.file_name().expect("has a name").to_string_lossy().to_string();
    jobspec::parse(&source, &name, &opts).map_err(|diags| (source, diags))
}

#[test]
fn corpus_parses_and_matches_snapshots() {
    let files = corpus_files("corpus");
    assert!(!files.is_empty());
    for path in files {
        let name = path.file_name().expect("has a name").to_string_lossy().to_string();
        let job = match parse_with_fixtures(&path) {
            Ok(job) => job,
            Err((source, diags)) => panic!("{name} failed:\n{}", diags.render(&source, &name)),
        };
        let rendered = jobspec::render_json(&job);
        let snapshot = path.with_file_name(name.replace(".nomad.hcl", ".json"));
        expect_test::expect_file![snapshot].assert_eq(&format!("{rendered}\n"));
        let again = jobspec::parse_json(&rendered).unwrap_or_else(|diags| panic!("{name} JSON route failed: {diags}"));
        assert_eq!(again, job, "{name}: the JSON route gives a different job");
    }
}

#[test]
fn diagnostics_match_snapshots() {
    let files = corpus_files("diagnostics");
    assert!(!files.is_empty());
    for path in files {
        let name = path.file_name().expect("has a name").to_string_lossy().to_string();
        let rendered = match parse_with_fixtures(&path) {
            Ok(_) => panic!("{name} should fail to parse"),
            Err((source, diags)) => diags.render(&source, &name),
        };
        let snapshot = path.with_file_name(name.replace(".nomad.hcl", ".txt"));
        expect_test::expect_file![snapshot].assert_eq(&rendered);
    }
}
