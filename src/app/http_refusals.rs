//! hyper's own refusals in the fronts' error shape.
//!
//! When a request cannot be parsed (a malformed request line or header, a
//! URI or header section over hyper's limits), hyper answers by itself,
//! before any handler runs, with a bare head: `HTTP/1.1 400 Bad Request`,
//! `connection: close`, `content-length: 0`, and no body. hyper offers no
//! hook for that answer, so the connection's stream recognises exactly that
//! head on its way out and writes a JSON body in its place.
//!
//! The path is unknown at that point (it may not even have been read), so the
//! body satisfies both fronts: the Auth API's `errorCode`/`errorText` and the
//! users API's `error.message` (that platform reads any answer without
//! `error` as success).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use crate::front::auth_api::codes;

/// The statuses hyper answers by itself, with their codes and texts.
const REFUSALS: &[(&[u8], &str, &str)] = &[
    (
        b"HTTP/1.1 400 Bad Request\r\n",
        codes::MALFORMED,
        "Malformed HTTP request",
    ),
    (
        b"HTTP/1.1 414 URI Too Long\r\n",
        codes::URI_TOO_LONG,
        "URI too long",
    ),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        codes::HEADERS_TOO_LARGE,
        "Request headers too large",
    ),
];

/// The bare head's fixed part after the status line.
const BARE: &[u8] = b"connection: close\r\ncontent-length: 0\r\n";

/// The JSON answer for a bare refusal head, or `None` for any other bytes.
pub fn shaped(head: &[u8]) -> Option<Vec<u8>> {
    let (status_line, code, text) = REFUSALS.iter().find(|(l, _, _)| head.starts_with(l))?;
    let rest = &head[status_line.len()..];
    if !rest.starts_with(BARE) || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let body =
        format!(r#"{{"errorCode":"{code}","errorText":"{text}","error":{{"message":"{text}"}}}}"#);
    let mut out = Vec::with_capacity(status_line.len() + 128 + body.len());
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"connection: close\r\ncontent-type: application/json\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    // Whatever else hyper wrote (its date header), then the body.
    out.extend_from_slice(&rest[BARE.len()..]);
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

/// The rewriting of hyper's bare refusals on one connection's way out (see
/// the module docs), applied to each write by the connection stream
/// (`conn_io`).
/// Each write's first bytes are compared with the three refusal status
/// lines: a few byte compares, no copy, on the hot path. (A body cannot be
/// mistaken for a head: the fronts' bodies are JSON.)
#[derive(Default)]
pub struct Refusals {
    /// Rewritten bytes still to send, and how many have gone.
    pending: Option<(Vec<u8>, usize)>,
}

impl Refusals {
    /// Writes out the rewritten bytes; ready when none are left.
    pub fn drive<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        while let Some((bytes, sent)) = &mut self.pending {
            match Pin::new(&mut *inner).poll_write(cx, &bytes[*sent..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    *sent += n;
                    if *sent == bytes.len() {
                        self.pending = None;
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes `buf` to `inner`, or its JSON form when it is a bare refusal.
    pub fn poll_write<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.pending.is_some() {
            match self.drive(inner, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if buf.starts_with(b"HTTP/1.1 4")
            && let Some(replacement) = shaped(buf)
        {
            self.pending = Some((replacement, 0));
            // Accepted whole; what is not written yet goes out on flush.
            return match self.drive(inner, cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Ready(Ok(buf.len())),
            };
        }
        Pin::new(inner).poll_write(cx, buf)
    }

    /// The same for a vectored write: hyper writes a head in one slice, and
    /// a bare refusal has no body.
    pub fn poll_write_vectored<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        if self.pending.is_some() || first.starts_with(b"HTTP/1.1 4") {
            return self.poll_write(inner, cx, first);
        }
        Pin::new(inner).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bare_refusal_heads_are_rewritten() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 17:34:25 GMT\r\n\r\n";
        let out = String::from_utf8(shaped(bare).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains("date: Tue, 01 Dec 2026"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["errorCode"], "1431");
        assert!(json["error"]["message"].is_string());
        // A handler's own 400 carries a type and a body: left alone.
        assert!(
            shaped(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n")
                .is_none()
        );
        assert!(
            shaped(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").is_none()
        );
    }
}
