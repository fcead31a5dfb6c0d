//! Whether the HTTP API is reachable from other machines without access
//! control, so that the agent can say so loudly when it starts. Anyone who
//! reaches an open API can run any command on the node (`raw_exec`).

use std::net::SocketAddr;

/// The warning to log when the HTTP API binds `addr`, or `None` when it
/// needs none: a loopback address is reachable from this machine only, and
/// with ACLs on every request needs a token. An unspecified address
/// (`0.0.0.0`, `::`) listens on every interface, so it warns too.
pub fn exposure_warning(addr: SocketAddr, acl_enabled: bool) -> Option<String> {
    if acl_enabled || addr.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "the HTTP API listens on {addr}, which other machines can reach, and ACLs are not enabled: \
         anyone who can connect can run any command on this node as the agent's user. \
         Bind a loopback address (--http-addr 127.0.0.1:{port}) or put a firewall in front of it",
        port = addr.port()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reachable_addresses_without_acls_warn() {
        for quiet in ["127.0.0.1:4646", "127.1.2.3:4646", "[::1]:4646"] {
            let addr: SocketAddr = quiet.parse().expect("address");
            assert_eq!(exposure_warning(addr, false), None, "{quiet}");
        }
        for loud in ["0.0.0.0:4646", "[::]:4646", "10.0.0.5:4646", "[2001:db8::1]:80"] {
            let addr: SocketAddr = loud.parse().expect("address");
            let warning = exposure_warning(addr, false).expect("a warning");
            assert!(warning.contains(loud), "{warning}");
            assert!(warning.contains("ACLs are not enabled"), "{warning}");
            assert_eq!(exposure_warning(addr, true), None, "ACLs on: {loud}");
        }
    }
}
