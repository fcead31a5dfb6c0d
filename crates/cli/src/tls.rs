//! `drover tls ca create` and `drover tls cert create -server|-client|-cli`:
//! a CA and agent certificates with Nomad's names and file names, made
//! with rcgen (ECDSA P-256). Server certificates carry
//! `server.<region>.<domain>`, client certificates
//! `client.<region>.<domain>`, CLI certificates `cli.<region>.<domain>`,
//! each with `localhost` (and 127.0.0.1 for servers and clients). Keys are
//! written 0600.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Certificate authorities.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Agent and CLI certificates.
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a CA: `<domain>-agent-ca.pem` and `<domain>-agent-ca-key.pem`.
    Create {
        /// Days the CA is valid.
        #[arg(long, default_value_t = 1825)]
        days: u32,
        /// The domain (Nomad's: nomad).
        #[arg(long, default_value = "nomad")]
        domain: String,
        /// Where to write the files.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a certificate signed by the CA.
    Create(CertArgs),
}

#[derive(Debug, Args)]
pub struct CertArgs {
    /// A server certificate.
    #[arg(long, conflicts_with_all = ["client", "cli"])]
    pub server: bool,
    /// A client certificate.
    #[arg(long, conflicts_with = "cli")]
    pub client: bool,
    /// A CLI certificate.
    #[arg(long)]
    pub cli: bool,
    #[arg(long, default_value = "global")]
    pub region: String,
    #[arg(long, default_value = "nomad")]
    pub domain: String,
    /// The CA certificate (default: `<domain>-agent-ca.pem` in --dir).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The CA key (default: `<domain>-agent-ca-key.pem` in --dir).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// More DNS names; repeatable.
    #[arg(long = "additional-dnsname")]
    pub additional_dnsnames: Vec<String>,
    /// More IP addresses; repeatable.
    #[arg(long = "additional-ipaddress")]
    pub additional_ipaddresses: Vec<std::net::IpAddr>,
    /// Where to read the CA and write the files.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

fn write_new(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("create {} (it must not exist yet)", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

/// Creates a CA in `dir`; returns the two paths written.
pub fn create_ca(dir: &Path, domain: &str, days: u32) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("{domain} agent CA"));
    name.push(DnType::OrganizationName, "Drover");
    params.distinguished_name = name;
    validity(&mut params, days);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let cert_path = dir.join(format!("{domain}-agent-ca.pem"));
    let key_path = dir.join(format!("{domain}-agent-ca-key.pem"));
    write_new(&cert_path, &cert.pem(), 0o644)?;
    write_new(&key_path, &key.serialize_pem(), 0o600)?;
    Ok((cert_path, key_path))
}

/// Creates a certificate signed by the CA; returns the two paths written.
pub fn create_cert(args: &CertArgs) -> anyhow::Result<(PathBuf, PathBuf)> {
    let role = match (args.server, args.client, args.cli) {
        (true, _, _) => "server",
        (_, true, _) => "client",
        (_, _, true) => "cli",
        _ => bail!("choose the certificate's role: --server, --client or --cli"),
    };
    let ca_path = args
        .ca
        .clone()
        .unwrap_or_else(|| args.dir.join(format!("{}-agent-ca.pem", args.domain)));
    let ca_key_path = args
        .key
        .clone()
        .unwrap_or_else(|| args.dir.join(format!("{}-agent-ca-key.pem", args.domain)));
    let ca_pem = std::fs::read_to_string(&ca_path).with_context(|| format!("read {}", ca_path.display()))?;
    let ca_key_pem =
        std::fs::read_to_string(&ca_key_path).with_context(|| format!("read {}", ca_key_path.display()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).with_context(|| format!("parse {}", ca_key_path.display()))?;
    let ca_params =
        CertificateParams::from_ca_cert_pem(&ca_pem).with_context(|| format!("parse {}", ca_path.display()))?;
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let name = format!("{role}.{}.{}", args.region, args.domain);
    let mut sans = vec![
        SanType::DnsName(name.clone().try_into()?),
        SanType::DnsName("localhost".try_into()?),
    ];
    if role != "cli" {
        sans.push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    }
    for dns in &args.additional_dnsnames {
        sans.push(SanType::DnsName(dns.clone().try_into()?));
    }
    for ip in &args.additional_ipaddresses {
        sans.push(SanType::IpAddress(*ip));
    }
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    params.distinguished_name = subject;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = match role {
        "cli" => vec![ExtendedKeyUsagePurpose::ClientAuth],
        _ => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
    };
    validity(&mut params, args.days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
    let stem = format!("{}-{role}-{}", args.region, args.domain);
    let cert_path = args.dir.join(format!("{stem}.pem"));
    let key_path = args.dir.join(format!("{stem}-key.pem"));
    write_new(&cert_path, &cert.pem(), 0o644)?;
    write_new(&key_path, &key.serialize_pem(), 0o600)?;
    Ok((cert_path, key_path))
}

/// Runs a `tls` command.
pub fn run_tls(command: TlsCommand) -> anyhow::Result<ExitCode> {
    let (cert, key) = match command {
        TlsCommand::Ca(CaCommand::Create { days, domain, dir }) => create_ca(&dir, &domain, days)?,
        TlsCommand::Cert(CertCommand::Create(args)) => create_cert(&args)?,
    };
    println!("==> Certificate saved to {}", cert.display());
    println!("==> Private key saved to {}", key.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn args(dir: &Path, role: &str) -> CertArgs {
        CertArgs {
            server: role == "server",
            client: role == "client",
            cli: role == "cli",
            region: "global".to_string(),
            domain: "nomad".to_string(),
            ca: None,
            key: None,
            days: 365,
            additional_dnsnames: Vec::new(),
            additional_ipaddresses: Vec::new(),
            dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn makes_a_ca_and_certificates_that_rpc_tls_accepts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, ca_key) = create_ca(dir.path(), "nomad", 30).expect("CA");
        assert_eq!(
            ca.file_name().and_then(|name| name.to_str()),
            Some("nomad-agent-ca.pem")
        );
        let mode = |path: &Path| std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&ca_key), 0o600);
        assert!(
            create_ca(dir.path(), "nomad", 30).is_err(),
            "an existing CA is never overwritten"
        );
        for role in ["server", "client", "cli"] {
            let (cert, key) = create_cert(&args(dir.path(), role)).expect("certificate");
            assert_eq!(
                cert.file_name().and_then(|name| name.to_str()),
                Some(format!("global-{role}-nomad.pem").as_str())
            );
            assert_eq!(mode(&key), 0o600);
        }
        assert!(create_cert(&args(dir.path(), "none")).is_err());
        let server = rpc::RpcTls::load(
            &ca,
            &dir.path().join("global-server-nomad.pem"),
            &dir.path().join("global-server-nomad-key.pem"),
            "global",
            true,
        )
        .expect("the server certificate loads");
        let pem = std::fs::read(dir.path().join("global-server-nomad.pem")).expect("read");
        let der: Vec<_> = rustls_pki_types_certs(&pem);
        assert!(matches!(
            server.identity_of(&der),
            Some(rpc::PeerIdentity::Server { .. })
        ));
        let pem = std::fs::read(dir.path().join("global-client-nomad.pem")).expect("read");
        assert!(matches!(
            server.identity_of(&rustls_pki_types_certs(&pem)),
            Some(rpc::PeerIdentity::Client { .. })
        ));
        let pem = std::fs::read(dir.path().join("global-cli-nomad.pem")).expect("read");
        assert_eq!(server.identity_of(&rustls_pki_types_certs(&pem)), None);
    }

    fn rustls_pki_types_certs(pem: &[u8]) -> Vec<rpc::tls::CertificateDer<'static>> {
        use rpc::tls::PemObject;
        rpc::tls::CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .expect("PEM certificates")
    }
}
