//! The transport under every Azure call: one reqwest client whose connections
//! are kept alive and reused (a new TCP and TLS handshake per call was most
//! of a call's cost at scale), and exactly one retry of an idempotent request
//! whose kept-alive connection turned out to be dead.

use std::error::Error as StdError;
use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use azure_core::{Body, HttpClient, Method, Request, Response};

/// How long an idle connection stays in the pool. Azure's load balancers
/// forget a flow idle for their idle timeout (4 minutes by default) without
/// telling either end, and the next request on it is lost; 60 s stays well
/// under that, and under the shorter idle timeouts NATs and proxies on the
/// way commonly use, while the operator's polls (seconds apart) still reuse.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A client builder with the pool settings above. azure_core 0.21 builds its
/// own with `pool_max_idle_per_host(0)` (no reuse at all), working around a
/// hang in the pool of hyper 0.14 (hyperium/hyper#2312); reqwest 0.12 runs on
/// hyper 1 and hyper-util's pool, which does not have it.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::ClientBuilder::new().pool_idle_timeout(POOL_IDLE_TIMEOUT)
}

/// A reqwest client that retries once, at once, an idempotent request whose
/// connection was closed or reset by the peer before an answer arrived.
#[derive(Clone, Debug)]
pub struct Reusing {
    client: reqwest::Client,
}

impl Reusing {
    pub fn new(client: reqwest::Client) -> Self {
        Reusing { client }
    }
}

#[async_trait::async_trait]
impl HttpClient for Reusing {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<Response> {
        match self.client.execute_request(request).await {
            Err(e) if replayable(request) && closed_unanswered(&e) => {
                tracing::debug!(
                    method = %request.method(),
                    host = request.url().host_str().unwrap_or_default(),
                    error = %e,
                    "connection closed before an answer; retrying once on a new one"
                );
                self.client.execute_request(request).await
            }
            other => other,
        }
    }
}

/// Sending it twice has the effect of sending it once, and its body can be
/// sent again. GET, PUT and DELETE are idempotent in ARM and Key Vault (a PUT
/// carries the whole resource); POST (Key Vault's key create, wrap, ARM
/// actions) and PATCH are not, and a lost answer to one must reach the
/// controller, which reads the state before it acts again.
fn replayable(request: &Request) -> bool {
    matches!(
        request.method(),
        Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options
    ) && matches!(request.body(), Body::Bytes(_))
}

/// The peer closed or reset the connection while the request was on its way
/// or awaiting its answer, before any answer was read: hyper's
/// `IncompleteMessage` ("connection closed before message completed"), or
/// the reset surfacing as an I/O error. A refused or failed connect is not
/// one (no stale connection to blame: the controllers back off instead), nor
/// is a timeout.
pub(crate) fn closed_unanswered(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<reqwest::Error>()
            && (r.is_connect() || r.is_timeout())
        {
            return false;
        }
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            );
        }
        next = e.source();
    }
    false
}

/// A transport that cannot be built (TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("the HTTP client cannot be built: {0}")]
pub struct BuildError(#[from] reqwest::Error);

/// Roots of trust the Azure client adds to the public ones (`run
/// --extra-ca-file`, e.g. a TLS-inspecting proxy's CA), set once at start,
/// before the client is built.
static EXTRA_ROOTS: OnceLock<Vec<reqwest::Certificate>> = OnceLock::new();

/// An extra CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ExtraCaError {
    #[error("--extra-ca-file {path}: cannot be read: {source}")]
    Read { path: String, source: io::Error },
    #[error(
        "--extra-ca-file {path}: holds no PEM certificate ({detail}); give a file of -----BEGIN CERTIFICATE----- blocks"
    )]
    NoCertificate { path: String, detail: String },
}

/// Reads the PEM certificates of `path` for the Azure client to trust
/// besides the public roots; returns how many.
pub fn trust_extra_roots(path: &Path) -> Result<usize, ExtraCaError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| ExtraCaError::Read {
        path: shown.clone(),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| e.to_string())
        .and_then(|c| {
            if c.is_empty() {
                Err("none found".to_owned())
            } else {
                Ok(c)
            }
        })
        .map_err(|detail| ExtraCaError::NoCertificate {
            path: shown,
            detail,
        })?;
    let count = certs.len();
    let _ = EXTRA_ROOTS.set(certs);
    Ok(count)
}

/// The client for Azure itself: the public roots of trust, and the extra
/// ones given at start.
pub fn for_azure() -> Result<Reusing, BuildError> {
    with_extra_roots(EXTRA_ROOTS.get().map(Vec::as_slice).unwrap_or_default())
}

fn with_extra_roots(roots: &[reqwest::Certificate]) -> Result<Reusing, BuildError> {
    let builder = roots
        .iter()
        .fold(client_builder(), |b, c| b.add_root_certificate(c.clone()));
    Ok(Reusing::new(builder.build()?))
}

/// A proxy that re-signs TLS with its own CA is trusted only with that CA
/// among the extra roots (on top of, not instead of, the public ones).
#[cfg(test)]
mod extra_roots {
    use std::sync::Arc;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A TLS server for `localhost` whose certificate a fresh CA signed;
    /// returns its port and the CA (PEM). It answers every request 204.
    async fn inspecting_proxy() -> (u16, String) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(leaf.der().to_vec())], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (port, ca_pem)
    }

    #[tokio::test]
    async fn the_azure_client_trusts_an_extra_ca_only_when_given() {
        let (port, ca_pem) = inspecting_proxy().await;
        let url = format!("https://localhost:{port}/");
        let public_only = super::with_extra_roots(&[]).unwrap();
        assert!(
            public_only.client.get(&url).send().await.is_err(),
            "an unknown CA is refused"
        );
        let ca = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap();
        let with_ca = super::with_extra_roots(&ca).unwrap();
        let answer = with_ca.client.get(&url).send().await.expect("trusted");
        assert_eq!(answer.status(), 204);
    }

    #[test]
    fn a_file_without_certificates_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("cmk-extra-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = super::trust_extra_roots(&empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let missing = super::trust_extra_roots(&dir.join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("missing.pem") && missing.contains("cannot be read"),
            "{missing}"
        );
    }
}
