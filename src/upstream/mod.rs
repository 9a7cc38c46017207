//! The CRM client: one request per lookup, built from config templates, with
//! the CRM's auth, hard timeouts, no redirects, no system proxy and a body
//! size cap; its answer is classified as found, not found or a named error.

mod auth;
mod error;
mod outcome;
mod template;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use url::Url;

pub use error::UpstreamError;
pub use outcome::NotFoundRule;
pub use template::{BodyTemplate, Template};

use crate::config::{ConfigError, HttpMethod, UpstreamSettings};

/// What the CRM said about a token.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// The CRM's JSON for the client.
    Found(Value),
    /// The CRM does not know the token.
    NotFound,
}

/// A configured CRM endpoint.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    method: reqwest::Method,
    base: Url,
    /// `base` as text without a trailing `/`, so the rendered path appends.
    base_prefix: String,
    path: Template,
    query: Vec<(String, Template)>,
    body: Option<BodyTemplate>,
    headers: HeaderMap,
    max_body_bytes: usize,
    not_found: NotFoundRule,
}

fn invalid(key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(vec![(key.to_owned(), msg.into())])
}

impl UpstreamClient {
    /// Builds the client; every template, header and secret is checked here.
    pub fn new(s: &UpstreamSettings) -> Result<Self, ConfigError> {
        let base =
            Url::parse(&s.base_url).map_err(|e| invalid("upstream.base_url", e.to_string()))?;
        let path = Template::parse(&s.path).map_err(|e| invalid("upstream.path", e))?;
        let query = s
            .query
            .iter()
            .map(|(k, v)| {
                Template::parse(v)
                    .map(|t| (k.clone(), t))
                    .map_err(|e| invalid(&format!("upstream.query.{k}"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let body = s
            .body
            .as_deref()
            .map(|b| BodyTemplate::parse(b).map_err(|e| invalid("upstream.body", e)))
            .transpose()?;
        let mut headers = HeaderMap::new();
        for (k, v) in &s.headers {
            let key = format!("upstream.headers.{k}");
            let name = HeaderName::try_from(k.as_str())
                .map_err(|_| invalid(&key, "is not a valid header name"))?;
            let value = HeaderValue::try_from(v.as_str())
                .map_err(|_| invalid(&key, "is not a valid header value"))?;
            headers.insert(name, value);
        }
        if body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some((name, value)) = auth::auth_header(&s.auth)? {
            headers.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(s.connect_timeout_ms))
            .timeout(Duration::from_millis(s.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("authbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid("upstream", format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            method: match s.method {
                HttpMethod::GET => reqwest::Method::GET,
                HttpMethod::POST => reqwest::Method::POST,
            },
            base_prefix: base.as_str().trim_end_matches('/').to_owned(),
            base,
            path,
            query,
            body,
            headers,
            max_body_bytes: s.max_body_bytes,
            not_found: NotFoundRule::new(&s.not_found)?,
        })
    }

    /// The request URL for `token`. The token is encoded so that it stays one
    /// path segment (or one query value); the result is checked to still point
    /// at the configured host and path prefix.
    pub fn url_for(&self, token: &str) -> Result<Url, UpstreamError> {
        if self.path.uses_token() && matches!(token, "." | "..") {
            // URL parsers resolve "." and ".." (even percent-encoded) as dot segments.
            return Err(UpstreamError::Unrepresentable(
                "a path segment cannot be `.` or `..`",
            ));
        }
        let text = format!("{}{}", self.base_prefix, self.path.render_path(token));
        let mut url =
            Url::parse(&text).map_err(|_| UpstreamError::Unrepresentable("not a valid URL"))?;
        if !self.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &self.query {
                pairs.append_pair(name, &value.render_raw(token));
            }
        }
        let same_origin = url.scheme() == self.base.scheme()
            && url.host() == self.base.host()
            && url.port_or_known_default() == self.base.port_or_known_default()
            && url
                .path()
                .starts_with(self.base.path().trim_end_matches('/'));
        if !same_origin {
            return Err(UpstreamError::Unrepresentable(
                "it would change the CRM address",
            ));
        }
        Ok(url)
    }

    /// Asks the CRM about `token` and classifies the answer.
    pub async fn fetch(&self, token: &str) -> Result<Fetched, UpstreamError> {
        let url = self.url_for(token)?;
        let started = Instant::now();
        let result = self.exchange(url, token).await;
        let label = match &result {
            Ok((status, _)) => status_label(*status),
            Err(e) => e.label(),
        };
        metrics::counter!("authbridge_upstream_requests_total", "status" => label).increment(1);
        metrics::histogram!("authbridge_upstream_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        result.map(|(_, fetched)| fetched)
    }

    async fn exchange(&self, url: Url, token: &str) -> Result<(u16, Fetched), UpstreamError> {
        let mut request = self
            .http
            .request(self.method.clone(), url)
            .headers(self.headers.clone());
        if let Some(body) = &self.body {
            request = request.body(body.render(token));
        }
        let mut response = request.send().await.map_err(|e| {
            let err = UpstreamError::from_reqwest(&e);
            tracing::debug!(error = %e.without_url(), kind = err.label(), "CRM request failed");
            err
        })?;
        let status = response.status().as_u16();
        if self.not_found.status_means_not_found(status) {
            return Ok((status, Fetched::NotFound));
        }
        if response.status().is_redirection() {
            return Err(UpstreamError::Redirect(status));
        }
        if !response.status().is_success() {
            return Err(UpstreamError::Status(status));
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes) {
            return Err(UpstreamError::TooLarge(self.max_body_bytes));
        }
        let mut body =
            BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(self.max_body_bytes));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?
        {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(UpstreamError::TooLarge(self.max_body_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        let json: Value = serde_json::from_slice(&body).map_err(|_| UpstreamError::InvalidJson)?;
        if self.not_found.body_means_not_found(&json) {
            return Ok((status, Fetched::NotFound));
        }
        Ok((status, Fetched::Found(json)))
    }
}

/// Status labels from a fixed set, so a CRM cannot blow up metric cardinality.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201..=299 => "2xx",
        404 => "404",
        400..=499 => "4xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str, path: &str) -> UpstreamClient {
        let mut s = UpstreamSettings {
            base_url: base.into(),
            path: path.into(),
            ..Default::default()
        };
        s.query.insert("session".into(), "{token}".into());
        UpstreamClient::new(&s).unwrap()
    }

    #[test]
    fn hostile_tokens_stay_inside_one_segment() {
        let c = client("http://127.0.0.1:9/api/", "/clients/{token}");
        let url = c.url_for("../../admin?x=1#f").unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        assert_eq!(url.path(), "/api/clients/..%2F..%2Fadmin%3Fx%3D1%23f");
        assert_eq!(url.query(), Some("session=..%2F..%2Fadmin%3Fx%3D1%23f"));
        let url = c.url_for("@evil.example:80").unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        assert!(c.url_for("..").is_err());
        assert!(c.url_for(".").is_err());
    }
}
