//! Test hosts in network namespaces: each gets its own namespace, a veth
//! pair to a bridge in the test's own namespace, and an address on a /24
//! private to the test run. A host can be cut off from chosen peers (its
//! own firewall drops their packets) and healed. Everything is removed on
//! drop. Needs root, as CI and this machine have.

use std::process::Command;

fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .expect("run ip/iptables");
    assert!(status.success(), "{args:?} failed");
}

/// A set of namespaced hosts on one bridge.
pub struct Hosts {
    prefix: String,
    subnet: String,
    count: usize,
}

impl Hosts {
    /// Creates `count` namespaces, each with address `<subnet>.<n+1>`; the
    /// test's own namespace is `<subnet>.254` on the bridge.
    pub fn create(count: usize) -> Hosts {
        let id = std::process::id() % 10_000;
        let prefix = format!("dv{id}");
        let subnet = format!("10.{}.{}", 200 + (id / 250) % 50, id % 250);
        let hosts = Hosts { prefix, subnet, count };
        let bridge = hosts.bridge();
        hosts.cleanup();
        run(&["ip", "link", "add", &bridge, "type", "bridge"]);
        run(&["ip", "addr", "add", &format!("{}.254/24", hosts.subnet), "dev", &bridge]);
        run(&["ip", "link", "set", &bridge, "up"]);
        // Docker's FORWARD policy drops bridged traffic (br_netfilter):
        // let this bridge's own traffic through.
        run(&[
            "iptables", "-I", "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
        ]);
        for index in 0..count {
            let netns = hosts.netns(index);
            let host_end = format!("{}h{index}", hosts.prefix);
            let ns_end = format!("{}n{index}", hosts.prefix);
            run(&["ip", "netns", "add", &netns]);
            run(&["ip", "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end]);
            run(&["ip", "link", "set", &ns_end, "netns", &netns]);
            run(&["ip", "link", "set", &host_end, "master", &bridge]);
            run(&["ip", "link", "set", &host_end, "up"]);
            let exec = |args: &[&str]| {
                let mut full = vec!["ip", "netns", "exec", &netns];
                full.extend_from_slice(args);
                run(&full);
            };
            exec(&["ip", "addr", "add", &format!("{}/24", hosts.ip(index)), "dev", &ns_end]);
            exec(&["ip", "link", "set", &ns_end, "up"]);
            exec(&["ip", "link", "set", "lo", "up"]);
        }
        hosts
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// The namespace of host `index`.
    pub fn netns(&self, index: usize) -> String {
        format!("{}s{index}", self.prefix)
    }

    /// The address of host `index`.
    pub fn ip(&self, index: usize) -> String {
        format!("{}.{}", self.subnet, index + 1)
    }

    /// Host `index` drops every packet to and from the other hosts (the
    /// test's own address still reaches it).
    pub fn isolate(&self, index: usize) {
        let netns = self.netns(index);
        for other in (0..self.count).filter(|other| *other != index) {
            let ip = self.ip(other);
            run(&[
                "ip", "netns", "exec", &netns, "iptables", "-A", "INPUT", "-s", &ip, "-j", "DROP",
            ]);
            run(&[
                "ip", "netns", "exec", &netns, "iptables", "-A", "OUTPUT", "-d", &ip, "-j", "DROP",
            ]);
        }
    }

    /// Removes host `index`'s drop rules.
    pub fn heal(&self, index: usize) {
        let netns = self.netns(index);
        run(&["ip", "netns", "exec", &netns, "iptables", "-F"]);
    }

    fn cleanup(&self) {
        for index in 0..self.count {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.netns(index)])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let bridge = self.bridge();
        while Command::new("iptables")
            .args(["-D", "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
        {}
        let _ = Command::new("ip")
            .args(["link", "del", &bridge])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.cleanup();
    }
}
