//! Known-key schemas for the task `config` of Nomad's built-in drivers
//! (raw_exec, exec, docker, qemu, java), so that a misspelt option is an
//! error at validation instead of a silent drop. Only the shape is checked
//! (which keys may appear, which are required, which hold nested blocks);
//! the driver decodes and checks the values itself. A driver not listed here
//! is a plugin, and its config is left alone.

use serde_json::Value;

/// What a config key holds.
#[derive(Debug, Clone, Copy)]
enum Spec {
    /// A value the schema does not look into (a string, list or free map).
    Any,
    /// A nested block (or a list of them) with its own known keys.
    Block(&'static [(&'static str, Spec)]),
    /// An option Nomad has and Drover does not carry out yet: an error
    /// that says so, rather than a silent drop.
    NotYet,
}

use Spec::{Any, Block, NotYet};

/// The schema of one driver: its known keys and the ones it requires.
struct Schema {
    keys: &'static [(&'static str, Spec)],
    required: &'static [&'static str],
}

const RAW_EXEC: Schema = Schema {
    keys: &[
        ("command", Any),
        ("args", Any),
        ("work_dir", Any),
        ("oom_score_adj", Any),
        ("denied_envvars", Any),
        ("cgroup_v1_override", Any),
        ("cgroup_v2_override", Any),
    ],
    required: &["command"],
};

const EXEC: Schema = Schema {
    keys: &[
        ("command", Any),
        ("args", Any),
        ("work_dir", Any),
        ("pid_mode", Any),
        ("ipc_mode", Any),
        ("cap_add", Any),
        ("cap_drop", Any),
        ("oom_score_adj", Any),
        ("denied_envvars", Any),
    ],
    required: &["command"],
};

const JAVA: Schema = Schema {
    keys: &[
        ("class", Any),
        ("class_path", Any),
        ("jar_path", Any),
        ("args", Any),
        ("jvm_options", Any),
        ("work_dir", Any),
        ("pid_mode", Any),
        ("ipc_mode", Any),
        ("cap_add", Any),
        ("cap_drop", Any),
    ],
    required: &[],
};

const QEMU: Schema = Schema {
    keys: &[
        ("image_path", Any),
        ("accelerator", Any),
        ("drive_interface", Any),
        ("emulator", Any),
        ("graceful_shutdown", Any),
        ("guest_agent", Any),
        ("args", Any),
        ("port_map", Any),
    ],
    required: &["image_path"],
};

const DOCKER_AUTH: &[(&str, Spec)] = &[
    ("username", Any),
    ("password", Any),
    ("email", Any),
    ("server_address", Any),
];

const DOCKER_MOUNT: &[(&str, Spec)] = &[
    ("type", Any),
    ("target", Any),
    ("source", Any),
    ("readonly", Any),
    ("bind_options", Block(&[("propagation", Any)])),
    ("tmpfs_options", Block(&[("size", Any), ("mode", Any)])),
    ("volume_options", NotYet),
];

/// The docker driver's options: exactly what `crates/drivers/docker`
/// carries out; Nomad's other options are named as not supported yet.
const DOCKER: Schema = Schema {
    keys: &[
        ("image", Any),
        ("args", Any),
        ("command", Any),
        ("entrypoint", Any),
        ("work_dir", Any),
        ("auth", Block(DOCKER_AUTH)),
        ("auth_soft_fail", Any),
        ("force_pull", Any),
        ("image_pull_timeout", Any),
        ("cpu_cfs_period", Any),
        ("cpu_hard_limit", Any),
        ("dns_options", Any),
        ("dns_search_domains", Any),
        ("dns_servers", Any),
        ("extra_hosts", Any),
        ("group_add", Any),
        ("healthchecks", Block(&[("disable", Any)])),
        ("hostname", Any),
        ("init", Any),
        ("interactive", Any),
        ("labels", Any),
        ("memory_hard_limit", Any),
        ("mount", Block(DOCKER_MOUNT)),
        ("mounts", Block(DOCKER_MOUNT)),
        ("network_mode", Any),
        ("oom_score_adj", Any),
        ("pids_limit", Any),
        ("ports", Any),
        ("privileged", Any),
        ("readonly_rootfs", Any),
        ("security_opt", Any),
        ("shm_size", Any),
        ("sysctl", Any),
        ("tty", Any),
        ("volumes", Any),
        ("advertise_ipv6_address", NotYet),
        ("cap_add", NotYet),
        ("cap_drop", NotYet),
        ("cgroupns", NotYet),
        ("cpuset_cpus", NotYet),
        ("devices", NotYet),
        ("ipc_mode", NotYet),
        ("ipv4_address", NotYet),
        ("ipv6_address", NotYet),
        ("isolation", NotYet),
        ("load", NotYet),
        ("logging", NotYet),
        ("mac_address", NotYet),
        ("network_aliases", NotYet),
        ("pid_mode", NotYet),
        ("port_map", NotYet),
        ("runtime", NotYet),
        ("storage_opt", NotYet),
        ("ulimit", NotYet),
        ("userns_mode", NotYet),
        ("uts_mode", NotYet),
        ("volume_driver", NotYet),
    ],
    required: &["image"],
};

fn schema(driver: &str) -> Option<&'static Schema> {
    match driver {
        "raw_exec" => Some(&RAW_EXEC),
        "exec" => Some(&EXEC),
        "docker" => Some(&DOCKER),
        "qemu" => Some(&QEMU),
        "java" => Some(&JAVA),
        _ => None,
    }
}

/// Whether Drover knows the config schema of a driver (the built-in ones).
pub fn is_builtin_driver(driver: &str) -> bool {
    schema(driver).is_some()
}

/// Checks a task's driver `config` against the driver's known keys.
/// Returns `(path, message)` pairs, the path starting at `config`
/// (`config.mount[0].tpye`). Plugins (unknown drivers) give no problems.
pub fn check_driver_config(driver: &str, config: &Value) -> Vec<(String, String)> {
    let Some(schema) = schema(driver) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    match config {
        Value::Object(map) => {
            for key in schema.required {
                if !map.contains_key(*key) {
                    problems.push((
                        format!("config.{key}"),
                        format!("the {driver} driver needs config option {key:?}"),
                    ));
                }
            }
            check_keys(driver, "", schema.keys, map, "config", &mut problems);
        }
        Value::Null => {
            if let Some(key) = schema.required.first() {
                problems.push((
                    "config".to_string(),
                    format!("the {driver} driver needs a config block with {key:?}"),
                ));
            }
        }
        _ => problems.push(("config".to_string(), "config must be a block".to_string())),
    }
    problems
}

fn check_keys(
    driver: &str,
    block: &str,
    keys: &[(&str, Spec)],
    map: &serde_json::Map<String, Value>,
    path: &str,
    problems: &mut Vec<(String, String)>,
) {
    for (key, value) in map {
        let here = format!("{path}.{key}");
        match keys.iter().find(|(known, _)| known == key) {
            None => {
                let mut message = if block.is_empty() {
                    format!("the {driver} driver has no config option {key:?}")
                } else {
                    format!("the {driver} driver's {block} block has no option {key:?}")
                };
                if let Some(close) = closest(key, keys) {
                    message.push_str(&format!("; did you mean {close:?}?"));
                }
                problems.push((here, message));
            }
            Some((_, Any)) => {}
            Some((name, NotYet)) => problems.push((
                here,
                format!("config option {name:?} of the {driver} driver is not supported by Drover yet"),
            )),
            Some((name, Block(inner))) => check_block(driver, name, inner, value, &here, problems),
        }
    }
}

/// A nested block: an object, or a list of objects (one per HCL block).
fn check_block(
    driver: &str,
    name: &str,
    keys: &[(&str, Spec)],
    value: &Value,
    path: &str,
    problems: &mut Vec<(String, String)>,
) {
    match value {
        Value::Object(map) => check_keys(driver, name, keys, map, path, problems),
        Value::Array(items) => {
            for (idx, item) in items.iter().enumerate() {
                let here = format!("{path}[{idx}]");
                match item {
                    Value::Object(map) => check_keys(driver, name, keys, map, &here, problems),
                    Value::Null => {}
                    _ => problems.push((here, format!("{name} must be a block"))),
                }
            }
        }
        Value::Null => {}
        _ => problems.push((path.to_string(), format!("{name} must be a block"))),
    }
}

/// The known key closest to a misspelt one, if any is close enough.
fn closest<'a>(key: &str, keys: &[(&'a str, Spec)]) -> Option<&'a str> {
    let limit = if key.chars().count() <= 4 { 1 } else { 2 };
    keys.iter()
        .map(|(known, _)| (*known, distance(&key.to_ascii_lowercase(), known)))
        .filter(|(_, score)| *score <= limit)
        .min_by_key(|(_, score)| *score)
        .map(|(known, _)| known)
}

/// Edit distance over characters, counting a swap of neighbours as one
/// edit (optimal string alignment).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut table = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        table[i * width] = i;
    }
    for (j, cell) in table.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[(i - 1) * width + j] + 1)
                .min(table[i * width + j - 1] + 1)
                .min(table[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[(i - 2) * width + j - 2] + 1);
            }
            table[i * width + j] = best;
        }
    }
    table[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_keys_pass_and_unknown_keys_are_named() {
        let ok = json!({"image": "redis:7", "ports": ["db"], "mount": [{"type": "bind", "target": "/x", "bind_options": [{"propagation": "rshared"}]}], "labels": [{"anything": "goes"}]});
        assert!(check_driver_config("docker", &ok).is_empty());
        let bad = json!({"imag": "redis:7", "mount": [{}, {"tpye": "bind"}], "logging": {"type": "syslog"}});
        let problems = check_driver_config("docker", &bad);
        assert_eq!(
            problems,
            vec![
                (
                    "config.image".to_string(),
                    "the docker driver needs config option \"image\"".to_string()
                ),
                (
                    "config.imag".to_string(),
                    "the docker driver has no config option \"imag\"; did you mean \"image\"?".to_string()
                ),
                (
                    "config.logging".to_string(),
                    "config option \"logging\" of the docker driver is not supported by Drover yet".to_string()
                ),
                (
                    "config.mount[1].tpye".to_string(),
                    "the docker driver's mount block has no option \"tpye\"; did you mean \"type\"?".to_string()
                ),
            ]
        );
    }

    #[test]
    fn plugins_are_left_alone() {
        assert!(check_driver_config("podman", &json!({"whatever": 1})).is_empty());
        assert!(!is_builtin_driver("podman"));
        assert!(is_builtin_driver("raw_exec"));
    }

    #[test]
    fn missing_config_for_a_driver_that_needs_one() {
        assert_eq!(
            check_driver_config("exec", &Value::Null),
            vec![(
                "config".to_string(),
                "the exec driver needs a config block with \"command\"".to_string()
            )]
        );
        assert!(check_driver_config("java", &Value::Null).is_empty());
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("image", "image"), 0);
        assert_eq!(distance("imag", "image"), 1);
        assert_eq!(distance("tpye", "type"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
    }
}
