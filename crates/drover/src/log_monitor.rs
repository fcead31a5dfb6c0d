//! The agent's logging: the usual formatted output on stderr, filtered by
//! `log_level`, plus a layer that hands each line a monitor wants
//! (`/v1/agent/monitor`) to the HTTP API's [`LogBroadcast`].
//!
//! The monitor layer's filter asks the broadcast whether any monitor
//! wants the event's level (one atomic load), so with no monitor open no
//! line is formatted for it; openraft's chatter below `warn` stays out,
//! as it does on stderr.

use http_api::{LogBroadcast, LogLevel};
use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

fn level_of(level: &Level) -> LogLevel {
    match *level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        _ => LogLevel::Trace,
    }
}

/// Formats `message` first, then the other fields as `name=value`.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

/// Publishes formatted lines to the monitors.
pub struct MonitorLayer {
    logs: LogBroadcast,
}

impl<S: Subscriber> Layer<S> for MonitorLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let level = level_of(metadata.level());
        let mut line = Line::default();
        event.record(&mut line);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let text = format!(
            "{} [{}] {}: {}{}",
            http_api::log_timestamp(now),
            metadata.level(),
            metadata.target(),
            line.message,
            line.fields
        );
        self.logs.publish(level, text);
    }
}

/// Whether the monitor layer takes an event with this metadata.
fn monitored(logs: &LogBroadcast, metadata: &tracing::Metadata<'_>) -> bool {
    let level = level_of(metadata.level());
    if metadata.target().starts_with("openraft") && level > LogLevel::Warn {
        return false;
    }
    logs.wants(level)
}

/// Installs the process's subscriber: stderr output under `filter`, and
/// the monitor layer feeding `logs`. False if the process already had
/// one (then nothing changes).
pub fn init(filter: tracing_subscriber::EnvFilter, logs: LogBroadcast) -> bool {
    let monitor_logs = logs.clone();
    let monitor =
        MonitorLayer { logs }.with_filter(tracing_subscriber::filter::dynamic_filter_fn(move |metadata, _ctx| {
            monitored(&monitor_logs, metadata)
        }));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    tracing_subscriber::registry()
        .with(stderr)
        .with(monitor)
        .try_init()
        .is_ok()
}
