//! Group networking for allocations, as Nomad's CNI bridge does it, with
//! iproute2 and iptables:
//!
//! - `bridge`: a network namespace per allocation (`/run/netns/drover-<id>`)
//!   joined to a host bridge (`drover`, 172.26.64.1/20 by default) through
//!   a veth pair, with an address from the bridge's subnet, a default route
//!   through the bridge, masquerading for outbound traffic, and each port
//!   `port "http" { to = 8080 }` mapped from its host port with a DNAT rule
//!   (also from the host's own loopback, with `route_localnet`).
//! - `none`: a namespace with only a loopback interface.
//!
//! Addresses are handed out from files under the manager's state directory
//! (one per address, created exclusively), so a restarted agent keeps the
//! same address for the same allocation. Every rule carries the
//! allocation's ID in a comment and sits in Drover's own chain
//! (`DROVER-PORTMAP`), so teardown removes exactly what setup added.
//! Everything is idempotent: setting up an allocation again (after an
//! agent restart) reuses its namespace and address.

use driver_api::PortMapping;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Drover's NAT chain for port mappings.
const PORTMAP_CHAIN: &str = "DROVER-PORTMAP";

/// The host bridge and its subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The bridge interface (`drover`).
    pub bridge: String,
    /// The bridge's own address, the allocations' gateway.
    pub gateway: Ipv4Addr,
    /// The subnet's prefix length (20: 4094 addresses).
    pub prefix: u8,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            bridge: "drover".to_string(),
            gateway: Ipv4Addr::new(172, 26, 64, 1),
            prefix: 20,
        }
    }
}

/// Why an allocation's network could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupNetworkError {
    #[error("run {command}: {reason}")]
    Command { command: String, reason: String },
    #[error("network mode {0:?} is not supported")]
    Mode(String),
    #[error("no free address left in the bridge subnet")]
    Exhausted,
    #[error("address state in {path}: {source}")]
    State { path: PathBuf, source: std::io::Error },
}

/// An allocation's network, ready for drivers to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocNetwork {
    /// The namespace file (`/run/netns/drover-<alloc_id>`).
    pub netns_path: PathBuf,
    /// The allocation's address on the bridge (`bridge` mode).
    pub ip: Option<Ipv4Addr>,
}

/// Sets up and tears down allocation networks.
#[derive(Debug, Clone)]
pub struct NetworkManager {
    config: BridgeConfig,
    /// Where address leases are kept.
    state_dir: PathBuf,
}

fn run(program: &str, args: &[&str]) -> Result<String, SetupNetworkError> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| SetupNetworkError::Command {
            command: command.clone(),
            reason: error.to_string(),
        })?;
    if !output.status.success() {
        return Err(SetupNetworkError::Command {
            command,
            reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether a command succeeds (for `iptables -C` and existence checks).
fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Adds an iptables rule unless it is already there.
fn ensure_rule(table: &str, chain: &str, rule: &[&str], insert: bool) -> Result<(), SetupNetworkError> {
    let mut check = vec!["-w", "-t", table, "-C", chain];
    check.extend_from_slice(rule);
    if succeeds("iptables", &check) {
        return Ok(());
    }
    let mut add = vec!["-w", "-t", table, if insert { "-I" } else { "-A" }, chain];
    add.extend_from_slice(rule);
    run("iptables", &add).map(|_| ())
}

fn write_sysctl(path: &str, value: &str) -> Result<(), SetupNetworkError> {
    std::fs::write(path, value).map_err(|source| SetupNetworkError::State {
        path: PathBuf::from(path),
        source,
    })
}

/// The namespace name of an allocation.
pub fn netns_name(alloc_id: &str) -> String {
    format!("drover-{alloc_id}")
}

/// The host side of an allocation's veth pair (at most 15 characters).
fn veth_name(alloc_id: &str) -> String {
    let hex: String = alloc_id.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
    format!("dv{hex}")
}

impl NetworkManager {
    /// A manager keeping its leases in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>, config: BridgeConfig) -> NetworkManager {
        NetworkManager {
            config,
            state_dir: state_dir.into(),
        }
    }

    fn subnet_cidr(&self) -> String {
        let mask = u32::MAX << (32 - u32::from(self.config.prefix));
        let network = Ipv4Addr::from(u32::from(self.config.gateway) & mask);
        format!("{network}/{}", self.config.prefix)
    }

    /// The bridge, forwarding and the NAT chains every allocation uses.
    fn ensure_bridge(&self) -> Result<(), SetupNetworkError> {
        let bridge = self.config.bridge.as_str();
        // Another agent (or test) may be doing the same at the same time:
        // a step that fails is fine if its result is there afterwards.
        if !succeeds("ip", &["link", "show", bridge])
            && let Err(error) = run("ip", &["link", "add", bridge, "type", "bridge"])
            && !succeeds("ip", &["link", "show", bridge])
        {
            return Err(error);
        }
        let gateway = format!("{}/{}", self.config.gateway, self.config.prefix);
        let has_gateway = || {
            run("ip", &["-4", "addr", "show", "dev", bridge])
                .is_ok_and(|text| text.contains(&format!("inet {gateway}")))
        };
        if !has_gateway()
            && let Err(error) = run("ip", &["addr", "add", &gateway, "dev", bridge])
            && !has_gateway()
        {
            return Err(error);
        }
        run("ip", &["link", "set", bridge, "up"])?;
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        // DNAT of connections made to the host's loopback address.
        write_sysctl(&format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"), "1")?;
        let has_chain = || succeeds("iptables", &["-w", "-t", "nat", "-L", PORTMAP_CHAIN, "-n"]);
        if !has_chain()
            && let Err(error) = run("iptables", &["-w", "-t", "nat", "-N", PORTMAP_CHAIN])
            && !has_chain()
        {
            return Err(error);
        }
        let local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", PORTMAP_CHAIN];
        ensure_rule("nat", "PREROUTING", &local, false)?;
        ensure_rule("nat", "OUTPUT", &local, false)?;
        let subnet = self.subnet_cidr();
        ensure_rule(
            "nat",
            "POSTROUTING",
            &["-s", &subnet, "!", "-o", bridge, "-j", "MASQUERADE"],
            false,
        )?;
        ensure_rule(
            "nat",
            "POSTROUTING",
            &["-s", "127.0.0.0/8", "-o", bridge, "-j", "MASQUERADE"],
            false,
        )?;
        // Docker's FORWARD policy is DROP: let the bridge's traffic through.
        ensure_rule("filter", "FORWARD", &["-i", bridge, "-j", "ACCEPT"], true)?;
        ensure_rule("filter", "FORWARD", &["-o", bridge, "-j", "ACCEPT"], true)?;
        Ok(())
    }

    fn leases(&self) -> PathBuf {
        self.state_dir.join("leases")
    }

    /// The allocation's address: its existing lease, or a new one.
    fn lease(&self, alloc_id: &str) -> Result<Ipv4Addr, SetupNetworkError> {
        let dir = self.leases();
        let state_error = |source| SetupNetworkError::State {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(state_error)?;
        for entry in std::fs::read_dir(&dir).map_err(state_error)?.flatten() {
            if std::fs::read_to_string(entry.path()).is_ok_and(|owner| owner.trim() == alloc_id)
                && let Some(ip) = entry.file_name().to_str().and_then(|name| name.parse().ok())
            {
                return Ok(ip);
            }
        }
        let hosts = (1u32 << (32 - u32::from(self.config.prefix))) - 2;
        let gateway = u32::from(self.config.gateway);
        let network = gateway & (u32::MAX << (32 - u32::from(self.config.prefix)));
        // Start at an offset from the ID, so allocations rarely probe the
        // same addresses.
        let offset = alloc_id
            .bytes()
            .fold(0u32, |hash, byte| hash.wrapping_mul(31).wrapping_add(u32::from(byte)));
        for step in 0..hosts {
            let host = 1 + (offset.wrapping_add(step) % hosts);
            let candidate = network + host;
            if candidate == gateway {
                continue;
            }
            let ip = Ipv4Addr::from(candidate);
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join(ip.to_string()));
            match created {
                Ok(mut file) => {
                    use std::io::Write;
                    file.write_all(alloc_id.as_bytes()).map_err(state_error)?;
                    return Ok(ip);
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(state_error(error)),
            }
        }
        Err(SetupNetworkError::Exhausted)
    }

    fn release(&self, alloc_id: &str) {
        let Ok(entries) = std::fs::read_dir(self.leases()) else {
            return;
        };
        for entry in entries.flatten() {
            if std::fs::read_to_string(entry.path()).is_ok_and(|owner| owner.trim() == alloc_id) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Sets up (or finds again) the network of `alloc_id` in `mode`
    /// (`bridge` or `none`), mapping `ports` from `host_ip`. With
    /// `existing_pid`, the namespace is that process's (a driver made it:
    /// docker's pause container) and is only named, not created.
    pub fn setup(
        &self,
        alloc_id: &str,
        mode: &str,
        ports: &[PortMapping],
        host_ip: &str,
        existing_pid: Option<u32>,
    ) -> Result<AllocNetwork, SetupNetworkError> {
        let name = netns_name(alloc_id);
        let netns_path = PathBuf::from("/run/netns").join(&name);
        if !netns_path.exists() {
            let created = match existing_pid {
                Some(pid) => run("ip", &["netns", "attach", &name, &pid.to_string()]),
                None => run("ip", &["netns", "add", &name]),
            };
            if let Err(error) = created
                && !netns_path.exists()
            {
                return Err(error);
            }
        }
        run("ip", &["-n", &name, "link", "set", "lo", "up"])?;
        match mode {
            "none" => Ok(AllocNetwork { netns_path, ip: None }),
            "bridge" => {
                self.ensure_bridge()?;
                let ip = self.lease(alloc_id)?;
                let veth = veth_name(alloc_id);
                if !succeeds("ip", &["-n", &name, "link", "show", "eth0"]) {
                    if succeeds("ip", &["link", "show", &veth]) {
                        run("ip", &["link", "del", &veth])?;
                    }
                    run(
                        "ip",
                        &[
                            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &name,
                        ],
                    )?;
                    run("ip", &["link", "set", &veth, "master", &self.config.bridge, "up"])?;
                    let address = format!("{ip}/{}", self.config.prefix);
                    run("ip", &["-n", &name, "addr", "add", &address, "dev", "eth0"])?;
                    run("ip", &["-n", &name, "link", "set", "eth0", "up"])?;
                    run(
                        "ip",
                        &[
                            "-n",
                            &name,
                            "route",
                            "add",
                            "default",
                            "via",
                            &self.config.gateway.to_string(),
                        ],
                    )?;
                }
                let comment = format!("drover:{alloc_id}");
                for port in ports {
                    for protocol in ["tcp", "udp"] {
                        let host_port = port.host_port.to_string();
                        let to = format!("{ip}:{}", port.task_port);
                        let mut rule = vec!["-p", protocol, "--dport", &host_port];
                        if !host_ip.is_empty() && host_ip != "0.0.0.0" {
                            rule.extend_from_slice(&["-d", host_ip]);
                        }
                        rule.extend_from_slice(&[
                            "-m",
                            "comment",
                            "--comment",
                            &comment,
                            "-j",
                            "DNAT",
                            "--to-destination",
                            &to,
                        ]);
                        ensure_rule("nat", PORTMAP_CHAIN, &rule, false)?;
                    }
                }
                Ok(AllocNetwork {
                    netns_path,
                    ip: Some(ip),
                })
            }
            other => Err(SetupNetworkError::Mode(other.to_string())),
        }
    }

    /// Removes the allocation's port mappings, namespace (with its veth)
    /// and address lease. Best effort: what is already gone is skipped.
    pub fn teardown(&self, alloc_id: &str) {
        let comment = format!("drover:{alloc_id}");
        if let Ok(rules) = run("iptables", &["-w", "-t", "nat", "-S", PORTMAP_CHAIN]) {
            for rule in rules.lines().filter(|rule| rule.contains(&comment)) {
                let Some(spec) = rule.strip_prefix(&format!("-A {PORTMAP_CHAIN} ")) else {
                    continue;
                };
                let mut args = vec!["-w", "-t", "nat", "-D", PORTMAP_CHAIN];
                // Rules hold no quoted spaces (the comment has none).
                args.extend(spec.split_whitespace().map(|word| word.trim_matches('"')));
                if let Err(error) = run("iptables", &args) {
                    tracing::warn!(%alloc_id, %error, "could not remove a port mapping");
                }
            }
        }
        let name = netns_name(alloc_id);
        if Path::new("/run/netns").join(&name).exists()
            && let Err(error) = run("ip", &["netns", "del", &name])
        {
            tracing::warn!(%alloc_id, %error, "could not remove the network namespace");
        }
        let veth = veth_name(alloc_id);
        if succeeds("ip", &["link", "show", &veth]) {
            let _ = run("ip", &["link", "del", &veth]);
        }
        self.release(alloc_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limits() {
        let veth = veth_name("0123abcd-4567-89ef-0123-456789abcdef");
        assert_eq!(veth, "dv0123abcd4567");
        assert!(veth.len() <= 15);
        assert_eq!(netns_name("a1"), "drover-a1");
    }

    #[test]
    fn leases_are_stable_and_exclusive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manager = NetworkManager::new(dir.path(), BridgeConfig::default());
        let first = manager.lease("alloc-1").expect("lease");
        assert_eq!(
            manager.lease("alloc-1").expect("again"),
            first,
            "same allocation, same address"
        );
        let second = manager.lease("alloc-2").expect("lease");
        assert_ne!(first, second);
        assert_ne!(first, BridgeConfig::default().gateway);
        assert_eq!(manager.subnet_cidr(), "172.26.64.0/20");
        manager.release("alloc-1");
        assert!(!dir.path().join("leases").join(first.to_string()).exists());
    }

    #[test]
    fn a_full_subnet_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manager = NetworkManager::new(
            dir.path(),
            BridgeConfig {
                bridge: "drover-test".into(),
                gateway: Ipv4Addr::new(10, 99, 0, 1),
                prefix: 30,
            },
        );
        // A /30 has two hosts, one of them the gateway.
        assert!(manager.lease("a").is_ok());
        assert!(matches!(manager.lease("b"), Err(SetupNetworkError::Exhausted)));
    }
}
