//! The listener's view of its TCP connections: how many it accepted (so a
//! test can tell a client that reuses connections from one that opens one per
//! call), and an optional idle limit past which a kept-alive connection is
//! dropped as soon as the client sends on it again. That is what a load
//! balancer that has silently forgotten an idle flow does (Azure's, after its
//! idle timeout): the client learns the connection is dead only when it
//! writes, and gets no answer.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Counters and the idle limit, shared by the listener and [`crate::SimHandle`].
#[derive(Debug, Default)]
pub struct Connections {
    accepted: AtomicU64,
    dropped_idle: AtomicU64,
    /// Milliseconds; 0: connections never go stale.
    idle_limit_ms: AtomicU64,
}

impl Connections {
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    pub(crate) fn count_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests dropped unanswered because their connection had been idle too long.
    pub fn dropped_idle(&self) -> u64 {
        self.dropped_idle.load(Ordering::Relaxed)
    }

    pub fn set_idle_limit(&self, limit: Option<Duration>) {
        let ms = limit.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.idle_limit_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_limit(&self) -> Option<Duration> {
        match self.idle_limit_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }
}

/// A served connection that fails its first read after being idle longer
/// than the limit (the request is read and dropped: no answer, the
/// connection closes).
pub struct IdleDrop<S> {
    inner: S,
    connections: std::sync::Arc<Connections>,
    last_activity: Instant,
}

impl<S> IdleDrop<S> {
    pub fn new(inner: S, connections: std::sync::Arc<Connections>) -> Self {
        IdleDrop {
            inner,
            connections,
            last_activity: Instant::now(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleDrop<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() > before
        {
            let idle = this.last_activity.elapsed();
            if this
                .connections
                .idle_limit()
                .is_some_and(|limit| idle >= limit)
            {
                this.connections
                    .dropped_idle
                    .fetch_add(1, Ordering::Relaxed);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!(
                        "connection idle for {idle:?}, past the simulated load balancer's limit"
                    ),
                )));
            }
            this.last_activity = Instant::now();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleDrop<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = polled {
            self.last_activity = Instant::now();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
