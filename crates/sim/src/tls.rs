//! HTTPS for the simulator: a certificate authority generated at start (kept in
//! the state file, so a trusted CA file stays valid across restarts), a server
//! certificate it signs for Azure's host names, and the TLS listener axum
//! serves on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::connections::{Connections, IdleDrop};
use super::hosts::CLOUDS;

/// The CA's subject: fixed, so a CA re-created from its saved key signs
/// certificates that a client trusting an earlier copy of it still accepts.
const CA_NAME: &str = "cosmos-cmk-operator Azure simulator CA";

/// A handshake that takes longer than this is dropped (a silent client must
/// not hold a slot forever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The CA (PEM, to be trusted by clients) and the server's TLS configuration.
pub struct Tls {
    pub ca_pem: String,
    acceptor: TlsAcceptor,
}

/// The CA's key and certificate, as the state file keeps them.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedCa {
    pub key_pem: String,
    pub cert_pem: String,
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "cosmos-cmk-operator");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// Every name the server certificate covers: each cloud's ARM and login
/// hosts, a wildcard for its vaults, plus `localhost` and the loopback and
/// listen addresses (the admin API).
fn server_names(listen: IpAddr) -> Vec<SanType> {
    let mut names: Vec<String> = vec!["localhost".into()];
    for c in CLOUDS {
        names.push(c.arm_host.into());
        names.push(c.login_host.into());
        names.push(format!("*.{}", c.vault_suffix));
    }
    let mut sans: Vec<SanType> = names
        .into_iter()
        .filter_map(|n| n.try_into().ok().map(SanType::DnsName))
        .collect();
    for ip in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        listen,
    ] {
        if !sans.contains(&SanType::IpAddress(ip)) && !ip.is_unspecified() {
            sans.push(SanType::IpAddress(ip));
        }
    }
    sans
}

fn tls_error(message: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("simulator TLS setup: {message}"))
}

impl Tls {
    /// A CA (the saved one when given, else a new one) and a fresh server
    /// certificate for `listen`. Returns the CA to save with the state.
    pub fn new(saved: Option<&SavedCa>, listen: IpAddr) -> std::io::Result<(Self, SavedCa)> {
        let (ca_key, ca_cert_pem) = match saved {
            Some(s) => (
                KeyPair::from_pem(&s.key_pem).map_err(tls_error)?,
                s.cert_pem.clone(),
            ),
            None => {
                let key = KeyPair::generate().map_err(tls_error)?;
                let cert = ca_params().self_signed(&key).map_err(tls_error)?;
                (key, cert.pem())
            }
        };
        let saved = SavedCa {
            key_pem: ca_key.serialize_pem(),
            cert_pem: ca_cert_pem.clone(),
        };
        let ca_der = CertificateDer::from_pem_slice(ca_cert_pem.as_bytes()).map_err(tls_error)?;
        let issuer = Issuer::new(ca_params(), ca_key);

        let mut leaf = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "management.azure.com");
        leaf.distinguished_name = dn;
        leaf.subject_alt_names = server_names(listen);
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        // Python's ssl (VERIFY_X509_STRICT, 3.13+) requires the authority key id.
        leaf.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        leaf.not_before = now - time::Duration::days(1);
        leaf.not_after = now + time::Duration::days(365);
        let leaf_key = KeyPair::generate().map_err(tls_error)?;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(tls_error)?;

        let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone(), ca_der];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(tls_error)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((
            Tls {
                ca_pem: ca_cert_pem,
                acceptor: TlsAcceptor::from(Arc::new(config)),
            },
            saved,
        ))
    }

    /// Serves TLS on `listener`: handshakes run concurrently (a slow client
    /// holds back nobody), and finished ones are handed to axum. Every
    /// accepted connection is counted in `connections`, and served under its
    /// idle limit.
    pub fn listener(&self, listener: TcpListener, connections: Arc<Connections>) -> TlsListener {
        let local = listener.local_addr();
        let (tx, rx) = mpsc::channel(64);
        let acceptor = self.acceptor.clone();
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(x) => {
                        connections.count_accepted();
                        x
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait, as axum does.
                        tracing::debug!(error = %e, "simulator accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                let connections = connections.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((IdleDrop::new(tls, connections), peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { rx, local, task }
    }
}

/// A connection as axum serves it.
pub type Served = IdleDrop<TlsStream<tokio::net::TcpStream>>;

/// An axum [`axum::serve::Listener`] that yields finished TLS connections.
pub struct TlsListener {
    rx: mpsc::Receiver<(Served, SocketAddr)>,
    local: std::io::Result<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = Served;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task is gone only when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}
