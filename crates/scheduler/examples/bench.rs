//! Runs the scheduler benchmark: `cargo run -p scheduler --release --example bench -- NODES JOBS COUNT SEED`.

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|arg| arg.parse().ok()).collect();
    let nodes = args.first().copied().unwrap_or(10_000) as usize;
    let jobs = args.get(1).copied().unwrap_or(1_000) as usize;
    let count = args.get(2).copied().unwrap_or(1_000) as u32;
    let seed = args.get(3).copied().unwrap_or(1);
    let report = scheduler::bench::run(nodes, jobs, count, seed);
    println!(
        "failed={} schedule_seconds={:.3}",
        report.failed, report.schedule_seconds
    );
    println!("{report}");
}
