//! Native service discovery (`provider = "nomad"`): the registrations the
//! servers keep in Raft, the typed reading of a service's opaque check
//! options (`check_restart`, `header`, thresholds), the pure check state
//! machine a client drives, and rendezvous selection (`?choose=N|key`).

use crate::job::{Service, ServiceCheck};
use crate::{Index, UnixNanos};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Most registrations one request (or one allocation) may carry.
pub const MAX_REGISTRATIONS_PER_REQUEST: usize = 256;
/// Longest check output kept in a registration.
pub const MAX_CHECK_OUTPUT_BYTES: usize = 1024;

/// A check's status, as Nomad names them.
pub mod check_status {
    pub const PASSING: &str = "passing";
    pub const WARNING: &str = "warning";
    pub const CRITICAL: &str = "critical";
    /// Not yet run and no `initial_status` given.
    pub const PENDING: &str = "pending";
}

/// The latest result of one check of a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CheckResult {
    /// The check's name (Nomad's default: `service: "<name>" check`).
    pub name: String,
    /// One of [`check_status`].
    pub status: String,
    /// What the last run said (an HTTP status line, an error), truncated.
    pub output: String,
    /// When it last ran (Unix nanoseconds; 0 if never).
    pub timestamp: UnixNanos,
}

/// One instance of a service, registered by the client that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ServiceRegistration {
    /// `_nomad-task-<alloc>-<group or task>-<service>-<port label>`, as Nomad.
    pub id: String,
    pub service_name: String,
    pub namespace: String,
    pub node_id: String,
    pub datacenter: String,
    pub job_id: String,
    pub alloc_id: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u16,
    /// Drover's own: the service's `meta` (or `canary_meta` for canaries).
    pub meta: BTreeMap<String, String>,
    /// Drover's own: the checks' latest results (empty: no checks).
    pub checks: Vec<CheckResult>,
    pub create_index: Index,
    pub modify_index: Index,
}

impl ServiceRegistration {
    /// Whether DNS and `nomadService` should hand this instance out: every
    /// check passing (warnings count as passing, as Consul's DNS does), or
    /// no checks at all.
    pub fn is_healthy(&self) -> bool {
        self.checks
            .iter()
            .all(|check| matches!(check.status.as_str(), check_status::PASSING | check_status::WARNING))
    }

    /// The registration without its server-set indexes, for comparing what
    /// a client sends with what is stored.
    pub fn same_content(&self, other: &ServiceRegistration) -> bool {
        let mut left = self.clone();
        let mut right = other.clone();
        for registration in [&mut left, &mut right] {
            registration.create_index = 0;
            registration.modify_index = 0;
            for check in &mut registration.checks {
                check.timestamp = 0;
            }
        }
        left == right
    }
}

/// The registration ID Nomad gives a service instance. `owner` is the
/// group's name for group services and the task's for task services.
pub fn registration_id(alloc_id: &str, owner: &str, service_name: &str, port_label: &str) -> String {
    format!("_nomad-task-{alloc_id}-{owner}-{service_name}-{port_label}")
}

/// `check_restart { limit, grace, ignore_warnings }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckRestart {
    /// Consecutive failures before the task is restarted (0: never).
    pub limit: u32,
    /// How long after a (re)start failures are not counted.
    pub grace: Duration,
    /// Whether a `warning` counts as passing.
    pub ignore_warnings: bool,
}

/// Reads a duration written as Go text (`"10s"`) or as nanoseconds.
fn duration_value(value: &serde_json::Value) -> Result<Duration, String> {
    match value {
        serde_json::Value::Number(number) => number
            .as_u64()
            .map(Duration::from_nanos)
            .ok_or_else(|| format!("{number} is not a duration")),
        serde_json::Value::String(text) => crate::duration::parse_duration(text),
        other => Err(format!("{other} is not a duration")),
    }
}

fn field<'a>(object: &'a serde_json::Map<String, serde_json::Value>, names: &[&str]) -> Option<&'a serde_json::Value> {
    names
        .iter()
        .find_map(|name| object.get(*name))
        .filter(|value| !value.is_null())
}

/// Parses a `check_restart` block's API JSON.
pub fn parse_check_restart(value: &serde_json::Value) -> Result<CheckRestart, String> {
    let serde_json::Value::Object(object) = value else {
        return Err("check_restart must be a block".to_string());
    };
    for key in object.keys() {
        if !matches!(
            key.as_str(),
            "Limit" | "Grace" | "IgnoreWarnings" | "limit" | "grace" | "ignore_warnings"
        ) {
            return Err(format!("unknown check_restart field {key:?}"));
        }
    }
    let mut restart = CheckRestart::default();
    if let Some(limit) = field(object, &["Limit", "limit"]) {
        restart.limit = limit
            .as_u64()
            .and_then(|limit| u32::try_from(limit).ok())
            .filter(|limit| *limit <= 1000)
            .ok_or_else(|| format!("limit {limit} is not a count from 0 to 1000"))?;
    }
    if let Some(grace) = field(object, &["Grace", "grace"]) {
        restart.grace = duration_value(grace).map_err(|error| format!("grace: {error}"))?;
        if restart.grace > Duration::from_secs(3600) {
            return Err("grace is longer than Drover's limit of 1h".to_string());
        }
    }
    if let Some(ignore) = field(object, &["IgnoreWarnings", "ignore_warnings"]) {
        restart.ignore_warnings = ignore
            .as_bool()
            .ok_or_else(|| "ignore_warnings must be true or false".to_string())?;
    }
    Ok(restart)
}

/// The `check_restart` that applies to `check`: its own, else its
/// service's. Errors name the problem, not the path.
pub fn effective_check_restart(service: &Service, check: &ServiceCheck) -> Result<Option<CheckRestart>, String> {
    match check
        .extra
        .get("CheckRestart")
        .or_else(|| service.extra.get("CheckRestart"))
    {
        Some(value) if !value.is_null() => parse_check_restart(value).map(Some),
        _ => Ok(None),
    }
}

/// Most headers (names times values) an http check may send.
pub const MAX_CHECK_HEADERS: usize = 32;

/// An http check's headers (`header { Name = ["value"] }`).
pub fn check_headers(check: &ServiceCheck) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    let Some(value) = check.extra.get("Header").filter(|value| !value.is_null()) else {
        return Ok(headers);
    };
    let serde_json::Value::Object(object) = value else {
        return Err("header must be a block of name = [values]".to_string());
    };
    for (name, values) in object {
        if name.is_empty()
            || !name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_".contains(&byte))
        {
            return Err(format!("header name {name:?} is not a valid HTTP header name"));
        }
        let values: Vec<&serde_json::Value> = match values {
            serde_json::Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for value in values {
            let text = value
                .as_str()
                .ok_or_else(|| format!("header {name:?} values must be strings"))?;
            if text.bytes().any(|byte| byte == b'\r' || byte == b'\n') {
                return Err(format!("header {name:?} has a line break in its value"));
            }
            headers.push((name.clone(), text.to_string()));
        }
    }
    if headers.len() > MAX_CHECK_HEADERS {
        return Err(format!("more than Drover's limit of {MAX_CHECK_HEADERS} header values"));
    }
    Ok(headers)
}

/// A count option of a check (`success_before_passing`…), 0 if absent.
pub fn check_count(check: &ServiceCheck, api_name: &str) -> Result<u32, String> {
    match check.extra.get(api_name) {
        None | Some(serde_json::Value::Null) => Ok(0),
        Some(value) => value
            .as_u64()
            .and_then(|count| u32::try_from(count).ok())
            .filter(|count| *count <= 1000)
            .ok_or_else(|| format!("{value} is not a count from 0 to 1000")),
    }
}

/// The name a check goes by: its own, or Nomad's default.
pub fn check_name(service: &Service, check: &ServiceCheck) -> String {
    if check.name.is_empty() {
        format!("service: {:?} check", service.name)
    } else {
        check.name.clone()
    }
}

/// What one run of a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passing,
    Warning,
    Critical,
}

/// What the client should do after a check result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckAction {
    Nothing,
    /// `check_restart.limit` consecutive failures: restart the task.
    RestartTask,
}

/// The pure state of one running check: its reported status with the
/// `success_before_passing` / `failures_before_critical` thresholds, and
/// the `check_restart` failure count. Time comes in as an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckState {
    /// The reported status (one of [`check_status`]).
    pub status: String,
    successes: u32,
    failures: u32,
    /// Failures counted toward `check_restart`.
    restart_failures: u32,
    success_before_passing: u32,
    failures_before_critical: u32,
    restart: Option<CheckRestart>,
    /// Failures before this instant do not count toward a restart.
    grace_until: Duration,
}

impl CheckState {
    /// A check that has not run yet; `now` is the task's start (the grace
    /// period runs from it), as time since any fixed origin.
    pub fn new(
        initial_status: &str,
        success_before_passing: u32,
        failures_before_critical: u32,
        restart: Option<CheckRestart>,
        now: Duration,
    ) -> CheckState {
        let status = match initial_status {
            "" => check_status::PENDING,
            other => other,
        };
        CheckState {
            status: status.to_string(),
            successes: 0,
            failures: 0,
            restart_failures: 0,
            success_before_passing,
            failures_before_critical,
            restart,
            grace_until: now + restart.map_or(Duration::ZERO, |restart| restart.grace),
        }
    }

    /// The task was (re)started at `now`: counts start again, and the
    /// grace period with them.
    pub fn task_restarted(&mut self, now: Duration) {
        self.restart_failures = 0;
        self.grace_until = now + self.restart.map_or(Duration::ZERO, |restart| restart.grace);
    }

    /// Takes one result at `now`.
    pub fn observe(&mut self, outcome: Outcome, now: Duration) -> CheckAction {
        match outcome {
            Outcome::Passing | Outcome::Warning => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if self.successes > self.success_before_passing || self.status == check_status::PASSING {
                    self.status = if outcome == Outcome::Passing {
                        check_status::PASSING
                    } else {
                        check_status::WARNING
                    }
                    .to_string();
                }
            }
            Outcome::Critical => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.failures > self.failures_before_critical || self.status != check_status::PASSING {
                    self.status = check_status::CRITICAL.to_string();
                }
            }
        }
        let Some(restart) = self.restart.filter(|restart| restart.limit > 0) else {
            return CheckAction::Nothing;
        };
        let failed = match outcome {
            Outcome::Passing => false,
            Outcome::Warning => !restart.ignore_warnings,
            Outcome::Critical => true,
        };
        if !failed {
            self.restart_failures = 0;
            return CheckAction::Nothing;
        }
        if now < self.grace_until {
            return CheckAction::Nothing;
        }
        self.restart_failures += 1;
        if self.restart_failures >= restart.limit {
            self.restart_failures = 0;
            CheckAction::RestartTask
        } else {
            CheckAction::Nothing
        }
    }
}

/// FNV-1a, 64 bits: a stable hash for rendezvous selection (the same
/// answer on every server and every release).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Parses `choose=N|key`.
pub fn parse_choose(text: &str) -> Result<(usize, String), String> {
    let (count, key) = text
        .split_once('|')
        .ok_or_else(|| format!("choose {text:?} is not N|key"))?;
    let count: usize = count
        .parse()
        .ok()
        .filter(|count| *count > 0)
        .ok_or_else(|| format!("choose count {count:?} is not a positive number"))?;
    if key.is_empty() {
        return Err("choose needs a key after '|'".to_string());
    }
    Ok((count, key.to_string()))
}

/// Rendezvous (highest random weight) selection: the `count` registrations
/// whose hash with `key` is highest. A given key keeps its instances while
/// they exist, and losing one instance moves only the keys that had it.
pub fn rendezvous_choose(
    mut registrations: Vec<ServiceRegistration>,
    count: usize,
    key: &str,
) -> Vec<ServiceRegistration> {
    registrations.sort_by_cached_key(|registration| {
        std::cmp::Reverse((
            fnv1a(&[key.as_bytes(), registration.id.as_bytes()]),
            registration.id.clone(),
        ))
    });
    registrations.truncate(count);
    registrations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(id: &str) -> ServiceRegistration {
        ServiceRegistration {
            id: id.to_string(),
            ..ServiceRegistration::default()
        }
    }

    #[test]
    fn rendezvous_is_stable_and_moves_only_what_it_must() {
        let all: Vec<ServiceRegistration> = (0..10).map(|idx| registration(&format!("r{idx}"))).collect();
        let ids = |chosen: Vec<ServiceRegistration>| chosen.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let first = ids(rendezvous_choose(all.clone(), 3, "client-a"));
        assert_eq!(first.len(), 3);
        // The order of the input does not matter.
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(ids(rendezvous_choose(reversed, 3, "client-a")), first);
        // Another key picks (very likely) another set.
        assert_ne!(ids(rendezvous_choose(all.clone(), 3, "client-b")), first);
        // Removing an instance that was not chosen changes nothing.
        let unchosen = all.iter().find(|r| !first.contains(&r.id)).map(|r| r.id.clone());
        let without: Vec<ServiceRegistration> = all
            .iter()
            .filter(|r| Some(&r.id) != unchosen.as_ref())
            .cloned()
            .collect();
        assert_eq!(ids(rendezvous_choose(without, 3, "client-a")), first);
        // Removing a chosen one keeps the other two.
        let without_first: Vec<ServiceRegistration> = all.iter().filter(|r| r.id != first[0]).cloned().collect();
        let again = ids(rendezvous_choose(without_first, 3, "client-a"));
        assert_eq!(&again[..2], &first[1..]);
        assert!(!again.contains(&first[0]));
        // More than there are gives all of them.
        assert_eq!(rendezvous_choose(all, 50, "k").len(), 10);
    }

    #[test]
    fn choose_parses_count_and_key() {
        assert_eq!(parse_choose("2|abc"), Ok((2, "abc".to_string())));
        assert!(parse_choose("0|abc").is_err());
        assert!(parse_choose("x|abc").is_err());
        assert!(parse_choose("2").is_err());
        assert!(parse_choose("2|").is_err());
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    #[test]
    fn check_status_follows_thresholds() {
        let mut check = CheckState::new("", 1, 2, None, secs(0));
        assert_eq!(check.status, check_status::PENDING);
        check.observe(Outcome::Passing, secs(1));
        // One success is not enough with success_before_passing = 1.
        assert_eq!(check.status, check_status::PENDING);
        check.observe(Outcome::Passing, secs(2));
        assert_eq!(check.status, check_status::PASSING);
        check.observe(Outcome::Critical, secs(3));
        check.observe(Outcome::Critical, secs(4));
        // Two failures are tolerated with failures_before_critical = 2.
        assert_eq!(check.status, check_status::PASSING);
        check.observe(Outcome::Critical, secs(5));
        assert_eq!(check.status, check_status::CRITICAL);
        check.observe(Outcome::Warning, secs(6));
        assert_eq!(check.status, check_status::CRITICAL);
        check.observe(Outcome::Warning, secs(7));
        assert_eq!(check.status, check_status::WARNING);
        let plain = CheckState::new("critical", 0, 0, None, secs(0));
        assert_eq!(plain.status, check_status::CRITICAL);
    }

    #[test]
    fn check_restart_counts_consecutive_failures_after_grace() {
        let restart = CheckRestart {
            limit: 3,
            grace: secs(10),
            ignore_warnings: false,
        };
        let mut check = CheckState::new("", 0, 0, Some(restart), secs(0));
        // Failures inside the grace period do not count.
        for at in 1..10 {
            assert_eq!(check.observe(Outcome::Critical, secs(at)), CheckAction::Nothing);
        }
        assert_eq!(check.observe(Outcome::Critical, secs(10)), CheckAction::Nothing);
        assert_eq!(check.observe(Outcome::Critical, secs(11)), CheckAction::Nothing);
        // A pass resets the count.
        assert_eq!(check.observe(Outcome::Passing, secs(12)), CheckAction::Nothing);
        assert_eq!(check.observe(Outcome::Critical, secs(13)), CheckAction::Nothing);
        assert_eq!(check.observe(Outcome::Critical, secs(14)), CheckAction::Nothing);
        // Warnings count unless ignored.
        assert_eq!(check.observe(Outcome::Warning, secs(15)), CheckAction::RestartTask);
        check.task_restarted(secs(16));
        assert_eq!(check.observe(Outcome::Critical, secs(17)), CheckAction::Nothing);
        let mut lenient = CheckState::new(
            "",
            0,
            0,
            Some(CheckRestart {
                ignore_warnings: true,
                limit: 1,
                grace: Duration::ZERO,
            }),
            secs(0),
        );
        assert_eq!(lenient.observe(Outcome::Warning, secs(1)), CheckAction::Nothing);
        assert_eq!(lenient.observe(Outcome::Critical, secs(2)), CheckAction::RestartTask);
    }

    #[test]
    fn check_restart_and_headers_parse_from_api_json() {
        let parsed = parse_check_restart(&serde_json::json!({"Limit": 3, "Grace": "10s", "IgnoreWarnings": true}));
        assert_eq!(
            parsed,
            Ok(CheckRestart {
                limit: 3,
                grace: secs(10),
                ignore_warnings: true
            })
        );
        let nanos = parse_check_restart(&serde_json::json!({"Limit": 1, "Grace": 5_000_000_000u64}));
        assert_eq!(nanos.map(|restart| restart.grace), Ok(secs(5)));
        assert!(parse_check_restart(&serde_json::json!({"Limit": -1})).is_err());
        assert!(parse_check_restart(&serde_json::json!({"Bogus": 1})).is_err());
        let mut check = ServiceCheck::default();
        check.extra.insert(
            "Header".into(),
            serde_json::json!({"X-Probe": ["a", "b"], "Host": ["web"]}),
        );
        assert_eq!(
            check_headers(&check),
            Ok(vec![
                ("Host".to_string(), "web".to_string()),
                ("X-Probe".to_string(), "a".to_string()),
                ("X-Probe".to_string(), "b".to_string()),
            ])
        );
        check
            .extra
            .insert("Header".into(), serde_json::json!({"X": ["a\r\nEvil: 1"]}));
        assert!(check_headers(&check).is_err());
    }

    #[test]
    fn health_counts_warnings_as_passing() {
        let mut registration = registration("r");
        assert!(registration.is_healthy());
        registration.checks.push(CheckResult {
            status: check_status::WARNING.into(),
            ..CheckResult::default()
        });
        assert!(registration.is_healthy());
        registration.checks.push(CheckResult {
            status: check_status::PENDING.into(),
            ..CheckResult::default()
        });
        assert!(!registration.is_healthy());
    }
}
