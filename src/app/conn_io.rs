//! A served connection's stream: the TCP (or TLS) stream with the two
//! guards hyper has no hook for, one on each direction: the deadline on the
//! first bytes read ([`super::first_bytes`]) and the JSON shape of hyper's
//! own refusals written ([`super::http_refusals`]). One wrapper, so each read
//! and write passes one layer, not two.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::first_bytes::FirstBytes;
use super::http_refusals::Refusals;
use crate::metrics::Metrics;

/// A connection's stream with both guards.
pub struct ConnIo<S> {
    inner: S,
    first_bytes: FirstBytes,
    refusals: Refusals,
}

impl<S> ConnIo<S> {
    /// `first_bytes`: `server.header_read_timeout_ms`; a connection cut by
    /// it is counted in `metrics`.
    pub fn new(inner: S, first_bytes: Duration, metrics: Metrics) -> Self {
        Self {
            inner,
            first_bytes: FirstBytes::new(first_bytes, metrics),
            refusals: Refusals::default(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        this.first_bytes.poll_read(&mut this.inner, cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.refusals.poll_write(&mut this.inner, cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.refusals.poll_write_vectored(&mut this.inner, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match this.refusals.drive(&mut this.inner, cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match this.refusals.drive(&mut this.inner, cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_shutdown(cx),
            other => other,
        }
    }
}
