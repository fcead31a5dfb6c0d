//! Plays a client agent for the conformance suite's kill -9 test:
//! `driver-host run <TaskSpec JSON>` starts the task's log collector (this
//! binary again, as `driver-host logmon <json>`, the way the agent
//! re-executes `drover logmon`), starts the task through its driver,
//! prints the task handle as one JSON line and then waits to be killed.

use conformance::TaskSpec;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("logmon"), Some(config)) => ExitCode::from(u8::try_from(logmon::run_process(config)).unwrap_or(1)),
        (Some("run"), Some(spec)) => match run(spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("driver-host: {error}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: driver-host run <spec json> | logmon <config json>");
            ExitCode::from(2)
        }
    }
}

fn run(spec: &str) -> Result<(), String> {
    let spec: TaskSpec = serde_json::from_str(spec).map_err(|error| error.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(async move {
        let driver = spec.kind.driver();
        // As the client does: a driver that writes its own log files gets
        // no collector.
        let config = if driver.capabilities().writes_log_files {
            spec.task_config(std::path::Path::new(""), std::path::Path::new(""))
        } else {
            let program = std::env::current_exe().map_err(|error| error.to_string())?;
            let launcher = logmon::Launcher::Process {
                program,
                args: vec!["logmon".to_string()],
            };
            let collector = logmon::Collector::ensure(&launcher, &spec.logs())
                .await
                .map_err(|error| error.to_string())?;
            spec.task_config(collector.stdout_fifo(), collector.stderr_fifo())
        };
        let handle = driver.start(config).await.map_err(|error| error.to_string())?;
        let line = serde_json::to_string(&handle).map_err(|error| error.to_string())?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{line}").map_err(|error| error.to_string())?;
        stdout.flush().map_err(|error| error.to_string())?;
        // Keep the driver (and its log copy) alive until killed.
        std::future::pending::<()>().await;
        Ok(())
    })
}
