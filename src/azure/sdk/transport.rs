//! The transport under every Azure call: one reqwest client whose connections
//! are kept alive and reused (a new TCP and TLS handshake per call was most
//! of a call's cost at scale), and exactly one retry of an idempotent request
//! whose kept-alive connection turned out to be dead.

use std::error::Error as StdError;
use std::io;
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

/// The client for Azure itself (the public roots of trust).
pub fn for_azure() -> Result<Reusing, BuildError> {
    Ok(Reusing::new(client_builder().build()?))
}
