//! The docker task `config` block and the driver's plugin options.
//!
//! Only what the driver carries out is accepted: unknown keys are errors
//! (`deny_unknown_fields`), and jobspec's schema for the docker driver
//! lists the same keys. HCL blocks (`auth {}`, `mount {}`, `labels {}`)
//! arrive as a list of objects, one per block, or as a single object from
//! JSON jobs; both are taken.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::time::Duration;

/// Options of the docker plugin on the client (Nomad's `plugin "docker"
/// { config { … } }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerPluginConfig {
    /// Whether tasks may run `privileged` containers.
    pub allow_privileged: bool,
    /// Whether tasks may mount host paths outside their allocation.
    pub volumes_enabled: bool,
    /// Image and container garbage collection.
    pub gc: GcConfig,
    /// The image of the pause container that holds a `bridge` group's
    /// network namespace (Nomad's `infra_image`).
    pub infra_image: String,
    /// The pause container's command; empty runs the image's own (a
    /// pause image's entrypoint).
    pub infra_command: Vec<String>,
}

/// The plugin's `gc { image, image_delay, container }` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcConfig {
    /// Remove an image once no task uses it (after `image_delay`).
    pub image: bool,
    /// How long an unused image is kept.
    pub image_delay: Duration,
    /// Remove a task's container once the task is destroyed.
    pub container: bool,
}

impl Default for DockerPluginConfig {
    fn default() -> Self {
        DockerPluginConfig {
            allow_privileged: false,
            volumes_enabled: false,
            gc: GcConfig {
                image: true,
                image_delay: Duration::from_secs(180),
                container: true,
            },
            infra_image: "registry.k8s.io/pause-amd64:3.3".to_string(),
            infra_command: Vec::new(),
        }
    }
}

/// A block that may come as one object or as a list of them.
fn blocks<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        One(T),
        Many(Vec<T>),
    }
    Ok(match Option::<OneOrMany<T>>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(one)) => vec![one],
        Some(OneOrMany::Many(many)) => many,
    })
}

/// At most one block.
fn block<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let mut all: Vec<T> = blocks(deserializer)?;
    if all.len() > 1 {
        return Err(serde::de::Error::custom("the block may appear only once"));
    }
    Ok(all.pop())
}

/// A map written as `labels { a = "b" }` (a list of maps) or as an object.
fn string_map<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    let maps: Vec<BTreeMap<String, String>> = blocks(deserializer)?;
    Ok(maps.into_iter().flatten().collect())
}

/// A command line: one string or a list.
fn words<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Words {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Words>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(Words::One(one)) => vec![one],
        Some(Words::Many(many)) => many,
    })
}

/// Registry credentials (`auth {}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub server_address: String,
}

/// `bind_options {}` of a mount.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindOptions {
    #[serde(default)]
    pub propagation: String,
}

/// `tmpfs_options {}` of a mount.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmpfsOptions {
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub mode: i64,
}

/// A `mount {}` block.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// `bind`, `volume` or `tmpfs` (Nomad's default: `volume`).
    #[serde(default, rename = "type")]
    pub mount_type: String,
    pub target: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default, deserialize_with = "block")]
    pub bind_options: Option<BindOptions>,
    #[serde(default, deserialize_with = "block")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

/// `healthchecks {}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthchecks {
    #[serde(default)]
    pub disable: bool,
}

/// The task `config` block the docker driver carries out.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerTaskConfig {
    pub image: String,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default, deserialize_with = "words")]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub work_dir: Option<String>,
    #[serde(default, deserialize_with = "string_map")]
    pub labels: BTreeMap<String, String>,
    /// Port labels of the group network to publish.
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub network_mode: Option<String>,
    /// `host:container[:ro]` binds; relative host paths are in the task dir.
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default, deserialize_with = "blocks")]
    pub mount: Vec<MountConfig>,
    #[serde(default, deserialize_with = "blocks")]
    pub mounts: Vec<MountConfig>,
    #[serde(default, deserialize_with = "block")]
    pub auth: Option<Auth>,
    #[serde(default)]
    pub auth_soft_fail: bool,
    #[serde(default)]
    pub force_pull: bool,
    /// How long a pull may take (`"5m"`); Nomad's default is 5 minutes.
    #[serde(default)]
    pub image_pull_timeout: Option<String>,
    #[serde(default)]
    pub cpu_hard_limit: bool,
    /// The CFS period in microseconds (100000 by default).
    #[serde(default)]
    pub cpu_cfs_period: Option<i64>,
    #[serde(default)]
    pub memory_hard_limit: Option<i64>,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub dns_servers: Vec<String>,
    #[serde(default)]
    pub dns_search_domains: Vec<String>,
    #[serde(default)]
    pub dns_options: Vec<String>,
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    #[serde(default)]
    pub readonly_rootfs: bool,
    #[serde(default)]
    pub oom_score_adj: Option<i64>,
    #[serde(default)]
    pub pids_limit: Option<i64>,
    #[serde(default)]
    pub init: bool,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub interactive: bool,
    #[serde(default)]
    pub shm_size: Option<i64>,
    #[serde(default, deserialize_with = "string_map")]
    pub sysctl: BTreeMap<String, String>,
    #[serde(default)]
    pub security_opt: Vec<String>,
    #[serde(default)]
    pub group_add: Vec<String>,
    #[serde(default, deserialize_with = "block")]
    pub healthchecks: Option<Healthchecks>,
}

/// The default `image_pull_timeout`.
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(300);

impl DockerTaskConfig {
    /// Decodes a task's config block.
    pub fn decode(value: &serde_json::Value) -> Result<DockerTaskConfig, String> {
        let config: DockerTaskConfig = serde_json::from_value(value.clone()).map_err(|error| error.to_string())?;
        if config.image.trim().is_empty() {
            return Err("image is empty".to_string());
        }
        if let Some(timeout) = &config.image_pull_timeout {
            types::duration::parse_duration(timeout).map_err(|error| format!("image_pull_timeout: {error}"))?;
        }
        Ok(config)
    }

    /// The pull timeout.
    pub fn pull_timeout(&self) -> Duration {
        self.image_pull_timeout
            .as_deref()
            .and_then(|text| types::duration::parse_duration(text).ok())
            .unwrap_or(DEFAULT_PULL_TIMEOUT)
    }
}

/// Splits an image reference into the repository and the tag (or digest)
/// for a pull: `redis` → (`redis`, `latest`), `reg:5000/a/b:1` →
/// (`reg:5000/a/b`, `1`), `a@sha256:…` → (`a@sha256:…`, ``).
pub fn split_image(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_string(), String::new());
    }
    let last_slash = image.rfind('/').map_or(0, |at| at + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (image[..at].to_string(), image[at + 1..].to_string())
        }
        None => (image.to_string(), "latest".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hcl_blocks_and_json_objects_both_decode() {
        let from_hcl = DockerTaskConfig::decode(&json!({
            "image": "redis:7",
            "labels": [{"team": "a"}, {"tier": "db"}],
            "auth": [{"username": "u", "password": "p"}],
            "mount": [{"type": "tmpfs", "target": "/scratch", "tmpfs_options": [{"size": 1024}]}],
            "entrypoint": ["/bin/sh", "-c"],
        }))
        .expect("decode");
        assert_eq!(from_hcl.labels.len(), 2);
        assert_eq!(from_hcl.auth.as_ref().map(|auth| auth.username.as_str()), Some("u"));
        assert_eq!(from_hcl.mount[0].tmpfs_options.as_ref().map(|t| t.size), Some(1024));
        let from_json = DockerTaskConfig::decode(&json!({
            "image": "redis:7",
            "labels": {"team": "a"},
            "auth": {"username": "u"},
            "entrypoint": "/bin/sh",
        }))
        .expect("decode");
        assert_eq!(from_json.labels["team"], "a");
        assert_eq!(from_json.entrypoint, vec!["/bin/sh".to_string()]);
    }

    #[test]
    fn unknown_or_bad_keys_are_refused() {
        let error = DockerTaskConfig::decode(&json!({"image": "x", "port_map": []})).expect_err("unknown");
        assert!(error.contains("port_map"), "{error}");
        assert!(DockerTaskConfig::decode(&json!({"image": " "})).is_err());
        assert!(DockerTaskConfig::decode(&json!({"image": "x", "image_pull_timeout": "soon"})).is_err());
        assert!(DockerTaskConfig::decode(&json!({"image": "x", "auth": [{}, {}]})).is_err());
    }

    #[test]
    fn image_references_split_into_repository_and_tag() {
        assert_eq!(split_image("redis"), ("redis".into(), "latest".into()));
        assert_eq!(split_image("redis:7"), ("redis".into(), "7".into()));
        assert_eq!(split_image("reg:5000/a/b"), ("reg:5000/a/b".into(), "latest".into()));
        assert_eq!(split_image("reg:5000/a/b:1.2"), ("reg:5000/a/b".into(), "1.2".into()));
        assert_eq!(split_image("a@sha256:00"), ("a@sha256:00".into(), String::new()));
    }
}
