//! Mutual TLS on the RPC port with certificates made here (rcgen): a peer
//! with a certificate from the CA is served and named by it (server or
//! client); a plain TCP peer, a peer with a certificate from another CA,
//! and a certificate for neither role are refused; a caller that verifies
//! server hostnames refuses a server presenting a client certificate.

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rpc::{
    ClientOptions, Handler, NodeHeartbeatRequest, NodeHeartbeatResponse, PeerInfo, Request, Response, RpcClient,
    RpcError, RpcTls, ServeConfig, serve_with,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn new_ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed CA");
    Ca { cert, key }
}

/// (certificate PEM, key PEM) for `names`, signed by `ca`.
fn leaf(ca: &Ca, names: &[&str]) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).expect("params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.cert, &ca.key).expect("signed");
    (cert.pem(), key.serialize_pem())
}

fn tls(ca: &Ca, names: &[&str], verify_server_hostname: bool) -> RpcTls {
    let (cert, key) = leaf(ca, names);
    RpcTls::from_pem(
        ca.cert.pem().as_bytes(),
        cert.as_bytes(),
        key.as_bytes(),
        "global",
        verify_server_hostname,
    )
    .expect("TLS material loads")
}

/// Answers heartbeats with the caller's identity in `servers`.
struct WhoAmI;

impl Handler for WhoAmI {
    async fn handle(&self, _request: Request, peer: &PeerInfo) -> Result<Response, RpcError> {
        Ok(Response::NodeHeartbeat(NodeHeartbeatResponse {
            index: 1,
            heartbeat_ttl_ms: 1000,
            servers: vec![format!("{:?}", peer.identity)],
            server_http_addrs: Vec::new(),
        }))
    }
}

async fn start(server_tls: RpcTls) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let config = ServeConfig {
        tls: Some(server_tls),
        ..ServeConfig::default()
    };
    tokio::spawn(serve_with(listener, Arc::new(WhoAmI), config));
    addr
}

fn client(addr: &str, tls: Option<RpcTls>) -> RpcClient {
    RpcClient::with_servers(
        vec![addr.to_string()],
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            tls,
        },
    )
}

async fn who(client: &RpcClient) -> Result<String, RpcError> {
    let answer = client
        .node_heartbeat(NodeHeartbeatRequest {
            node_id: "n".to_string(),
            secret_id: String::new(),
            status: types::NodeStatus::Ready,
        })
        .await?;
    Ok(answer.servers.join(","))
}

#[tokio::test]
async fn peers_are_named_by_their_certificate_and_outsiders_are_refused() {
    let ca = new_ca();
    let addr = start(tls(&ca, &["server.global.nomad", "localhost"], true)).await;

    let as_client = client(&addr, Some(tls(&ca, &["client.global.nomad"], true)));
    assert_eq!(
        who(&as_client).await.expect("served"),
        "Client { name: \"client.global.nomad\" }"
    );
    let as_server = client(&addr, Some(tls(&ca, &["server.global.nomad"], true)));
    assert_eq!(
        who(&as_server).await.expect("served"),
        "Server { name: \"server.global.nomad\" }"
    );

    // Plain TCP: the server waits for a TLS hello and drops the stream.
    let plain = client(&addr, None);
    let error = who(&plain).await.expect_err("plain TCP refused");
    assert!(
        matches!(error, RpcError::Transport(_) | RpcError::Timeout(_)),
        "{error:?}"
    );

    // A certificate from another CA: the handshake fails on both sides.
    let other = new_ca();
    let outsider = client(&addr, Some(tls(&other, &["client.global.nomad"], false)));
    let error = who(&outsider).await.expect_err("other CA refused");
    assert!(matches!(error, RpcError::Transport(_)), "{error:?}");

    // The CA's certificate, but for neither role (Nomad's CLI certificate).
    let cli = client(&addr, Some(tls(&ca, &["cli.global.nomad"], true)));
    assert!(
        who(&cli).await.is_err(),
        "a CLI certificate is not served on the RPC port"
    );

    // Another region's client certificate is neither role here.
    let elsewhere = client(&addr, Some(tls(&ca, &["client.eu.nomad"], true)));
    assert!(who(&elsewhere).await.is_err());
}

#[tokio::test]
async fn callers_that_verify_hostnames_refuse_a_server_without_the_server_name() {
    let ca = new_ca();
    // A "server" presenting a client certificate from the right CA.
    let addr = start(tls(&ca, &["client.global.nomad"], true)).await;
    let strict = client(&addr, Some(tls(&ca, &["client.global.nomad"], true)));
    let error = who(&strict).await.expect_err("hostname verified");
    assert!(matches!(error, RpcError::Transport(_)), "{error:?}");
    // Without verify_server_hostname only the chain is checked (Nomad).
    let lax = client(&addr, Some(tls(&ca, &["client.global.nomad"], false)));
    assert!(who(&lax).await.is_ok());
}

#[test]
fn bad_material_is_an_error_naming_the_file() {
    let ca = new_ca();
    let (cert, key) = leaf(&ca, &["server.global.nomad"]);
    let error = RpcTls::from_pem(b"", cert.as_bytes(), key.as_bytes(), "global", true).expect_err("no CA");
    assert!(error.to_string().contains("ca_file"), "{error}");
    let error = RpcTls::from_pem(ca.cert.pem().as_bytes(), b"", key.as_bytes(), "global", true).expect_err("no cert");
    assert!(error.to_string().contains("cert_file"), "{error}");
    let error =
        RpcTls::from_pem(ca.cert.pem().as_bytes(), cert.as_bytes(), b"junk", "global", true).expect_err("no key");
    assert!(error.to_string().contains("key_file"), "{error}");
}
