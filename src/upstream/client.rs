//! The HTTP client of CRM requests: hyper-util's pooled client (the one
//! reqwest wraps) over rustls, one per worker thread.
//!
//! reqwest adds ~6-11 µs of its own per request (URL re-parse with IDNA,
//! header merging, redirect and timeout wrappers, connector clones; see
//! `examples/bench_client.rs`), a tenth of a miss. A CRM call needs none of
//! it: no redirects (never followed), no proxy (never used), one timeout
//! around the whole exchange (the transport's). What it keeps from reqwest's
//! setup: the web PKI roots plus `upstream.tls.ca_file`, an optional client
//! identity, HTTP/2 by ALPN (or prior knowledge), TCP_NODELAY, the connect
//! timeout, the idle pool bounds, and a User-Agent. reqwest stays for the
//! OAuth2 token endpoint, which is called once per token lifetime.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ConfigError;

/// A pooled HTTP/1 + HTTP/2 client, TLS by rustls.
pub type CrmClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The rustls configuration for CRM connections: web PKI roots, extra
/// roots (PEM), an optional client identity (certificate chain, then key).
pub fn tls_config(
    extra_roots: Option<&[u8]>,
    identity: Option<(&[u8], &[u8])>,
) -> Result<rustls::ClientConfig, ConfigError> {
    let invalid =
        |key: &str, msg: &str| ConfigError::Invalid(vec![(key.to_owned(), msg.to_owned())]);
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_roots {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert
                .map_err(|_| invalid("upstream.tls.ca_file", "is not a PEM certificate bundle"))?;
            roots.add(cert).map_err(|_| {
                invalid(
                    "upstream.tls.ca_file",
                    "holds a certificate rustls cannot use",
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| invalid("upstream.tls", "no TLS protocol version available"))?
        .with_root_certificates(roots);
    let bad_identity = || {
        invalid(
            "upstream.tls.client_cert_file",
            "client certificate and key must be PEM (certificate chain, then a PKCS#8, PKCS#1 or SEC1 key)",
        )
    };
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => {
            let chain = CertificateDer::pem_slice_iter(chain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| bad_identity())?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| bad_identity())?;
            if chain.is_empty() {
                return Err(bad_identity());
            }
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|_| bad_identity())
        }
    }
}

/// Connection settings of the CRM client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    pub http2_prior_knowledge: bool,
}

/// A client with `tls` and `s`.
pub fn build(tls: rustls::ClientConfig, s: &ClientSettings) -> CrmClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(s.connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(s.pool_idle_timeout)
        .pool_max_idle_per_host(s.pool_max_idle)
        .http2_only(s.http2_prior_knowledge)
        .build(https)
}
