//! Group networking against the real kernel: an allocation's namespace on
//! the host bridge answers on its own address and, through the DNAT port
//! mapping, on the host's loopback port; teardown removes the namespace,
//! the rules and the lease; `none` gives a namespace with only loopback.

use driver_api::PortMapping;
use network::{BridgeConfig, NetworkManager, netns_name};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("free port")
}

fn get(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

fn eventually_get(addr: &str) -> String {
    let started = Instant::now();
    loop {
        if let Some(answer) = get(addr) {
            return answer;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "nothing answers on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_bridge_namespace_answers_on_its_address_and_its_host_port() {
    let state = tempfile::tempdir().expect("tempdir");
    let manager = NetworkManager::new(state.path(), BridgeConfig::default());
    let alloc_id = format!("nettest-{}", std::process::id());
    let host_port = free_port();
    let ports = [PortMapping {
        label: "http".into(),
        host_port,
        task_port: 8080,
    }];
    let network = manager
        .setup(&alloc_id, "bridge", &ports, "127.0.0.1", None)
        .expect("setup");
    assert!(network.netns_path.exists());
    let ip = network.ip.expect("an address");
    // Setting up again (an agent restart) finds the same network.
    assert_eq!(
        manager
            .setup(&alloc_id, "bridge", &ports, "127.0.0.1", None)
            .expect("again"),
        network
    );

    let www = tempfile::tempdir().expect("www");
    std::fs::write(www.path().join("index.html"), "from the namespace\n").expect("page");
    let _server = Server(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &netns_name(&alloc_id),
                "python3",
                "-m",
                "http.server",
                "8080",
                "--bind",
                "0.0.0.0",
            ])
            .current_dir(www.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("server"),
    );
    assert!(eventually_get(&format!("{ip}:8080")).contains("from the namespace"));
    assert!(eventually_get(&format!("127.0.0.1:{host_port}")).contains("from the namespace"));

    manager.teardown(&alloc_id);
    assert!(!network.netns_path.exists());
    let rules = Command::new("iptables")
        .args(["-w", "-t", "nat", "-S", "DROVER-PORTMAP"])
        .output()
        .expect("iptables");
    assert!(!String::from_utf8_lossy(&rules.stdout).contains(&alloc_id));
    assert!(get(&format!("127.0.0.1:{host_port}")).is_none());
    assert_eq!(
        std::fs::read_dir(state.path().join("leases")).expect("leases").count(),
        0
    );
}

#[test]
fn mode_none_has_only_loopback() {
    let state = tempfile::tempdir().expect("tempdir");
    let manager = NetworkManager::new(state.path(), BridgeConfig::default());
    let alloc_id = format!("nonetest-{}", std::process::id());
    let network = manager.setup(&alloc_id, "none", &[], "127.0.0.1", None).expect("setup");
    assert_eq!(network.ip, None);
    let links = Command::new("ip")
        .args(["-n", &netns_name(&alloc_id), "-o", "link"])
        .output()
        .expect("ip link");
    let text = String::from_utf8_lossy(&links.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("lo:"));
    manager.teardown(&alloc_id);
    assert!(!network.netns_path.exists());
    assert!(manager.setup(&alloc_id, "cni/weird", &[], "", None).is_err());
    manager.teardown(&alloc_id);
}
