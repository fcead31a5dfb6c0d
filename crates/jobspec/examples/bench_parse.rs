//! Parses a generated job file of about 1 MB and prints how long it took:
//! `cargo run --release -p jobspec --example bench_parse [BYTES] [ROUNDS]`.
//! Also times the same job through the JSON route (`parse_json` of its
//! `job run -output` JSON) and `format_hcl` of the HCL text.

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let bytes: usize = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(1 << 20);
    let rounds: usize = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(5);
    let source = jobspec::generate_large_job(bytes);
    let opts = jobspec::ParseOptions::default();
    let mut best = f64::MAX;
    let mut groups = 0;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        match jobspec::parse_hcl(&source, "bench.nomad.hcl", &opts) {
            Ok(job) => groups = job.task_groups.len(),
            Err(diags) => {
                eprintln!("{}", diags.render(&source, "bench.nomad.hcl"));
                std::process::exit(1);
            }
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "jobspec parse_hcl: {} bytes, {groups} groups, best of {rounds}: {:.1} ms ({:.1} MB/s)",
        source.len(),
        best * 1e3,
        source.len() as f64 / best / 1e6
    );
    let Ok(job) = jobspec::parse_hcl(&source, "bench.nomad.hcl", &opts) else {
        std::process::exit(1);
    };
    let json = jobspec::render_json(&job);
    report("parse_json", json.len(), rounds, || jobspec::parse_json(&json).is_ok());
    report("format_hcl", source.len(), rounds, || {
        jobspec::format_hcl(&source).is_ok()
    });
}

/// Times `run` (best of `rounds`) and prints one line like the one above.
fn report(what: &str, bytes: usize, rounds: usize, run: impl Fn() -> bool) {
    let mut best = f64::MAX;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        if !run() {
            eprintln!("{what} failed");
            std::process::exit(1);
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "jobspec {what}: {bytes} bytes, best of {rounds}: {:.1} ms ({:.1} MB/s)",
        best * 1e3,
        bytes as f64 / best / 1e6
    );
}
