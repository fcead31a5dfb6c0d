//! Mutual TLS for the RPC port (rustls with ring), as Nomad's `tls { rpc =
//! true }`: every peer must present a certificate signed by the cluster's
//! CA. A certificate valid for `server.<region>.nomad` makes the peer a
//! server, one valid for `client.<region>.nomad` a client; any other
//! certificate (a `cli.<region>.nomad` one, say) is refused on this port.
//! Callers check the server's certificate for `server.<region>.nomad` when
//! `verify_server_hostname` is set, and only its chain to the CA
//! otherwise (Nomad's behaviour).

use crate::server::PeerIdentity;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Re-exported for callers that read certificates to check them.
pub use rustls::pki_types::{CertificateDer, pem::PemObject};

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors loading TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}

fn invalid(what: &str, message: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        what: what.to_string(),
        message: message.to_string(),
    }
}

/// The name a server's certificate carries (Nomad's).
pub fn server_name(region: &str) -> String {
    format!("server.{region}.nomad")
}

/// The name a client's certificate carries (Nomad's).
pub fn client_name(region: &str) -> String {
    format!("client.{region}.nomad")
}

/// The TLS side of the RPC: both the accepting and the dialling half, with
/// this agent's certificate.
#[derive(Clone)]
pub struct RpcTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    region: String,
    server_config: Arc<rustls::ServerConfig>,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for RpcTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcTls").field("region", &self.region).finish()
    }
}

// ring, not aws-lc (no C toolchain beyond ring's); rustls deprecates the
// ring provider only because it has no post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts a server certificate whose chain leads to the CA, whatever
/// names it carries (`verify_server_hostname = false`).
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_path_buf(),
        error,
    })
}

impl RpcTls {
    /// Loads the CA, this agent's certificate and its key from PEM files.
    pub fn load(
        ca_file: &Path,
        cert_file: &Path,
        key_file: &Path,
        region: &str,
        verify_server_hostname: bool,
    ) -> Result<RpcTls, TlsError> {
        RpcTls::from_pem(
            &read(ca_file)?,
            &read(cert_file)?,
            &read(key_file)?,
            region,
            verify_server_hostname,
        )
    }

    /// Builds both halves from PEM text.
    pub fn from_pem(
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
        region: &str,
        verify_server_hostname: bool,
    ) -> Result<RpcTls, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|error| invalid("ca_file", error))?;
            roots.add(cert).map_err(|error| invalid("ca_file", error))?;
        }
        if roots.is_empty() {
            return Err(invalid("ca_file", "holds no certificate"));
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|error| invalid("cert_file", error))?;
        if chain.is_empty() {
            return Err(invalid("cert_file", "holds no certificate"));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| invalid("key_file", error))?;
        let roots = Arc::new(roots);

        let client_verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), provider())
            .build()
            .map_err(|error| invalid("ca_file", error))?;
        let server_config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| invalid("tls", error))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|error| invalid("cert_file/key_file", error))?;
        let server_config = Arc::new(server_config);

        let web_pki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), provider())
            .build()
            .map_err(|error| invalid("ca_file", error))?;
        let verifier: Arc<dyn ServerCertVerifier> = if verify_server_hostname {
            web_pki
        } else {
            Arc::new(ChainOnly { inner: web_pki })
        };
        let client_config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| invalid("tls", error))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|error| invalid("cert_file/key_file", error))?;
        Ok(RpcTls {
            acceptor: TlsAcceptor::from(Arc::clone(&server_config)),
            connector: TlsConnector::from(Arc::new(client_config)),
            region: region.to_string(),
            server_config,
            roots,
            chain,
            key: Arc::new(key),
        })
    }

    /// An HTTPS configuration with this agent's certificate: client
    /// certificates from the CA required (`verify_https_client`) or not
    /// asked for.
    pub fn https_config(&self, require_client_cert: bool) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| invalid("tls", error))?;
        let builder = if require_client_cert {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&self.roots), provider())
                .build()
                .map_err(|error| invalid("ca_file", error))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|error| invalid("cert_file/key_file", error))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The accepting configuration (client certificates required), for
    /// other listeners that share this agent's certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.server_config)
    }

    /// The CA's certificates.
    pub fn roots(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.roots)
    }

    /// What a peer's certificate proves: a server, a client, or nothing
    /// this port serves (`None`).
    pub fn identity_of(&self, certs: &[CertificateDer<'_>]) -> Option<PeerIdentity> {
        let leaf = certs.first()?;
        let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
        let valid_for = |name: &str| {
            ServerName::try_from(name.to_string())
                .ok()
                .is_some_and(|server_name| cert.verify_is_valid_for_subject_name(&server_name).is_ok())
        };
        let server = server_name(&self.region);
        let client = client_name(&self.region);
        if valid_for(&server) {
            Some(PeerIdentity::Server { name: server })
        } else if valid_for(&client) {
            Some(PeerIdentity::Client { name: client })
        } else {
            None
        }
    }

    /// Completes the server side of a handshake on an accepted stream and
    /// names the peer; refuses peers without a certificate this port
    /// serves.
    pub async fn accept<S>(&self, stream: S) -> std::io::Result<(tokio_rustls::server::TlsStream<S>, PeerIdentity)>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let identity = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| self.identity_of(certs))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "peer certificate names neither a server nor a client of this region",
                )
            })?;
        Ok((stream, identity))
    }

    /// Dials the TLS side of a connection to a server.
    pub async fn connect<S>(&self, stream: S) -> std::io::Result<tokio_rustls::client::TlsStream<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(server_name(&self.region))
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.connector.connect(name, stream))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
    }
}
