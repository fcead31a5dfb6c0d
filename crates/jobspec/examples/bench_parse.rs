//! Parses a generated job file of about 1 MB and prints how long it took:
//! `cargo run --release -p jobspec --example bench_parse [BYTES] [ROUNDS]`.

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
}
