//! Fingerprinting: what this machine offers, as a [`types::Node`] with
//! Nomad's attribute names (`cpu.numcores`, `kernel.version`,
//! `unique.hostname`…).
//!
//! The parsers of `/proc` and `/etc` files are pure functions over text so
//! they are tested with fixtures; [`fingerprint_node`] does the reading.

use crate::config::ClientConfig;
use std::collections::BTreeMap;
use std::path::Path;
use types::{DriverInfo, Node, NodeNetwork, NodeResources, NodeStatus};

/// Used when no source tells the CPU frequency (some ARM boards and VMs).
const FALLBACK_CPU_MHZ: f64 = 1000.0;

/// What `/proc/cpuinfo` says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CpuInfo {
    /// Logical processors listed.
    pub cores: u32,
    /// The first `cpu MHz` value, when present.
    pub mhz: Option<f64>,
    /// The first `model name` (or ARM `Model`/`Hardware`) value.
    pub model_name: String,
}

/// Parses `/proc/cpuinfo`.
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => info.cores += 1,
            "cpu MHz" if info.mhz.is_none() => info.mhz = value.parse().ok().filter(|mhz: &f64| *mhz > 0.0),
            "model name" | "Model" | "Hardware" | "cpu model" if info.model_name.is_empty() => {
                info.model_name = value.to_string()
            }
            _ => {}
        }
    }
    if info.mhz.is_none() {
        info.mhz = mhz_from_model_name(&info.model_name);
    }
    info
}

/// Reads a frequency out of names like `Intel(R) Xeon(R) CPU @ 2.20GHz`.
fn mhz_from_model_name(model: &str) -> Option<f64> {
    let at = model.rfind('@')?;
    let rest = model[at + 1..].trim();
    if let Some(ghz) = rest.strip_suffix("GHz") {
        return ghz.trim().parse::<f64>().ok().map(|ghz| ghz * 1000.0);
    }
    rest.strip_suffix("MHz")?.trim().parse().ok()
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `ID` and `VERSION_ID` of `/etc/os-release`, unquoted.
pub fn parse_os_release(text: &str) -> (String, String) {
    let mut name = String::new();
    let mut version = String::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').trim_matches('\'').to_string();
        match key.trim() {
            "ID" => name = value,
            "VERSION_ID" => version = value,
            _ => {}
        }
    }
    (name, version)
}

/// The device mounted at the longest mount point containing `path`, from
/// the text of `/proc/mounts`.
pub fn mount_device_for(mounts: &str, path: &Path) -> Option<String> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let mount_point = fields.next()?.replace("\\040", " ");
            path.starts_with(&mount_point)
                .then(|| (mount_point.len(), device.to_string()))
        })
        .max_by_key(|(length, _)| *length)
        .map(|(_, device)| device)
}

/// Go's name for the CPU architecture, which Nomad reports.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

/// The identity a node keeps across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The node's ID (`client/node-id`).
    pub node_id: String,
    /// The secret the node authenticates with (`client/secret-id`).
    pub secret_id: String,
}

fn read_to_string(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The frequency in MHz from cpufreq (the maximum) or cpuinfo.
fn cpu_mhz(cpuinfo: &CpuInfo) -> f64 {
    let max_khz = read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
    if let Ok(khz) = max_khz.trim().parse::<f64>()
        && khz > 0.0
    {
        return khz / 1000.0;
    }
    cpuinfo.mhz.unwrap_or(FALLBACK_CPU_MHZ)
}

/// The IP address of the interface with the default route, found without
/// sending a packet (a UDP "connect" only picks a route).
fn default_route_ip() -> Option<String> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then(|| ip.to_string())
}

/// Fingerprints this machine into a node ready to register.
pub fn fingerprint_node(
    config: &ClientConfig,
    identity: &NodeIdentity,
    drivers: &BTreeMap<String, DriverInfo>,
) -> Node {
    let cpuinfo = parse_cpuinfo(&read_to_string("/proc/cpuinfo"));
    let cores = if cpuinfo.cores > 0 {
        cpuinfo.cores
    } else {
        std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
    };
    let mhz = cpu_mhz(&cpuinfo).round() as i64;
    let total_compute = if config.cpu_total_compute > 0 {
        config.cpu_total_compute
    } else {
        i64::from(cores) * mhz
    };
    let memory_bytes = parse_meminfo_total(&read_to_string("/proc/meminfo")).unwrap_or(0);
    let memory_mb = if config.memory_total_mb > 0 {
        config.memory_total_mb
    } else {
        i64::try_from(memory_bytes / (1024 * 1024)).unwrap_or(i64::MAX)
    };
    let (disk_total, disk_free) = match nix::sys::statvfs::statvfs(&config.data_dir) {
        Ok(stat) => {
            let fragment = stat.fragment_size();
            (stat.blocks() * fragment, stat.blocks_available() * fragment)
        }
        Err(error) => {
            tracing::warn!(path = %config.data_dir.display(), %error, "statvfs of the data dir failed");
            (0, 0)
        }
    };
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string());
    let kernel_version = nix::sys::utsname::uname()
        .ok()
        .and_then(|uts| uts.release().to_str().map(str::to_string))
        .unwrap_or_default();
    let (os_name, os_version) = parse_os_release(&read_to_string("/etc/os-release"));
    let ip = if config.network_ip.is_empty() {
        default_route_ip().unwrap_or_else(|| "127.0.0.1".to_string())
    } else {
        config.network_ip.clone()
    };

    let mut attributes = BTreeMap::new();
    let mut set = |key: &str, value: String| {
        attributes.insert(key.to_string(), value);
    };
    set("kernel.name", std::env::consts::OS.to_string());
    set("kernel.version", kernel_version);
    set("os.name", os_name);
    set("os.version", os_version);
    set("cpu.arch", go_arch(std::env::consts::ARCH).to_string());
    set("cpu.numcores", cores.to_string());
    set("cpu.reservablecores", cores.to_string());
    set("cpu.frequency", mhz.to_string());
    set("cpu.totalcompute", total_compute.to_string());
    set(
        "cpu.usablecompute",
        (total_compute - config.reserved.cpu_mhz).max(0).to_string(),
    );
    set("cpu.modelname", cpuinfo.model_name.clone());
    set("memory.totalbytes", memory_bytes.to_string());
    set("unique.hostname", hostname.clone());
    set("unique.network.ip-address", ip.clone());
    set(
        "unique.storage.volume",
        mount_device_for(&read_to_string("/proc/mounts"), &config.data_dir).unwrap_or_default(),
    );
    set("unique.storage.bytestotal", disk_total.to_string());
    set("unique.storage.bytesfree", disk_free.to_string());
    set("nomad.version", env!("CARGO_PKG_VERSION").to_string());
    set("drover.version", env!("CARGO_PKG_VERSION").to_string());
    for (name, info) in drivers {
        if info.detected {
            for (key, value) in &info.attributes {
                set(key, value.clone());
            }
            set(
                &format!("driver.{name}"),
                if info.healthy { "1" } else { "0" }.to_string(),
            );
        }
    }

    let mut node = Node {
        id: identity.node_id.clone(),
        secret_id: identity.secret_id.clone(),
        name: if config.node_name.is_empty() {
            hostname
        } else {
            config.node_name.clone()
        },
        datacenter: config.datacenter.clone(),
        node_class: config.node_class.clone(),
        node_pool: config.node_pool.clone(),
        http_addr: config.http_addr.clone(),
        attributes,
        meta: config.meta.clone(),
        resources: NodeResources {
            cpu_mhz: total_compute,
            cores: i64::from(cores),
            memory_mb,
            disk_mb: i64::try_from(disk_free / (1024 * 1024)).unwrap_or(i64::MAX),
            networks: vec![NodeNetwork {
                mode: "host".to_string(),
                device: String::new(),
                ip,
                mbits: 1000,
            }],
            min_dynamic_port: config.min_dynamic_port,
            max_dynamic_port: config.max_dynamic_port,
            devices: Vec::new(),
        },
        reserved: config.reserved,
        reserved_ports: config.reserved_ports.clone(),
        drivers: drivers.clone(),
        host_volumes: config.host_volumes.clone(),
        status: NodeStatus::Initializing,
        ..Node::default()
    };
    node.compute_class();
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO_X86: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\ncpu MHz\t\t: 2199.998\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\ncpu MHz\t\t: 2200.124\n";
    const CPUINFO_ARM: &str = "processor\t: 0\nBogoMIPS\t: 48.00\n\nprocessor\t: 1\nBogoMIPS\t: 48.00\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n";

    #[test]
    fn cpuinfo_counts_cores_and_reads_the_frequency() {
        let info = parse_cpuinfo(CPUINFO_X86);
        assert_eq!(info.cores, 2);
        assert_eq!(info.mhz, Some(2199.998));
        assert_eq!(info.model_name, "Intel(R) Xeon(R) CPU @ 2.20GHz");
    }

    #[test]
    fn cpuinfo_without_mhz_falls_back_to_the_model_name_or_nothing() {
        let info = parse_cpuinfo("processor : 0\nmodel name : AMD EPYC @ 3.1GHz\n");
        assert_eq!(info.mhz, Some(3100.0));
        let arm = parse_cpuinfo(CPUINFO_ARM);
        assert_eq!(arm.cores, 2);
        assert_eq!(arm.mhz, None);
        assert_eq!(arm.model_name, "BCM2835");
    }

    #[test]
    fn meminfo_total_is_in_bytes() {
        let text = "MemTotal:        8039772 kB\nMemFree:         1234 kB\n";
        assert_eq!(parse_meminfo_total(text), Some(8_039_772 * 1024));
        assert_eq!(parse_meminfo_total("nothing"), None);
    }

    #[test]
    fn os_release_is_unquoted() {
        let text = "NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"24.04\"\n";
        assert_eq!(parse_os_release(text), ("ubuntu".to_string(), "24.04".to_string()));
    }

    #[test]
    fn the_longest_mount_point_wins() {
        let mounts = "/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /var/lib ext4 rw 0 0\ntmpfs /var/lib/x\\040y tmpfs rw 0 0\n";
        assert_eq!(
            mount_device_for(mounts, Path::new("/var/lib/drover")).as_deref(),
            Some("/dev/sdb1")
        );
        assert_eq!(
            mount_device_for(mounts, Path::new("/home")).as_deref(),
            Some("/dev/sda1")
        );
        assert_eq!(
            mount_device_for(mounts, Path::new("/var/lib/x y/z")).as_deref(),
            Some("tmpfs")
        );
    }

    #[test]
    fn this_machine_fingerprints_with_real_figures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ClientConfig::new(dir.path());
        let identity = NodeIdentity {
            node_id: "n1".into(),
            secret_id: "s1".into(),
        };
        let mut drivers = BTreeMap::new();
        drivers.insert(
            "raw_exec".to_string(),
            DriverInfo {
                detected: true,
                healthy: true,
                ..DriverInfo::default()
            },
        );
        let node = fingerprint_node(&config, &identity, &drivers);
        assert_eq!(node.id, "n1");
        assert!(node.resources.cores >= 1);
        assert!(node.resources.cpu_mhz >= node.resources.cores);
        assert!(node.resources.memory_mb > 0);
        assert_eq!(node.attributes["kernel.name"], "linux");
        assert_eq!(node.attributes["driver.raw_exec"], "1");
        assert_eq!(node.attributes["cpu.totalcompute"], node.resources.cpu_mhz.to_string());
        assert!(!node.attributes["unique.hostname"].is_empty());
        assert_eq!(node.resources.min_dynamic_port, 20000);
        assert_eq!(node.resources.max_dynamic_port, 32000);
        assert!(!node.computed_class.is_empty());
    }
}
