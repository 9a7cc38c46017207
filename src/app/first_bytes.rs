//! A deadline on a connection's first bytes.
//!
//! hyper's header-read timer starts only once hyper reads a request head,
//! but the HTTP/1-or-2 detection in front of it (hyper-util's `auto`) first
//! waits for up to 24 bytes with no timer: a socket that sends nothing, or
//! the start of the HTTP/2 preface and then nothing, would hold a connection
//! slot for ever. Until those bytes have come (or diverged from the preface,
//! which settles HTTP/1, whose own timer then runs), reads fail with
//! `TimedOut` after the deadline (`server.header_read_timeout_ms`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};

use crate::metrics::Metrics;

/// The deadline on one connection's first bytes (see the module docs),
/// applied to each read by the connection stream (`conn_io`).
pub struct FirstBytes {
    /// `None` once the version detection has what it needs.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    seen: usize,
    /// Where a cut connection is counted.
    metrics: Metrics,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl FirstBytes {
    pub fn new(deadline: Duration, metrics: Metrics) -> Self {
        Self {
            deadline: Some(Box::pin(tokio::time::sleep(deadline))),
            seen: 0,
            metrics,
        }
    }

    /// Notes bytes read; disarms the deadline once the version is settled.
    fn saw(&mut self, bytes: &[u8]) {
        if self.deadline.is_none() {
            return;
        }
        let expected = &H2_PREFACE[self.seen.min(H2_PREFACE.len())..];
        let n = bytes.len().min(expected.len());
        if bytes[..n] != expected[..n] || self.seen + bytes.len() >= H2_PREFACE.len() {
            self.deadline = None;
        }
        self.seen += bytes.len();
    }

    /// Reads from `inner`; fails with `TimedOut` once the deadline has
    /// passed with the version still unsettled.
    pub fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.deadline.is_none() {
            return Pin::new(inner).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                self.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => {
                    self.metrics
                        .counter("authbridge_connections_timed_out_total")
                        .increment(1);
                    Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()))
                }
                _ => Poll::Pending,
            },
            other => other,
        }
    }
}
