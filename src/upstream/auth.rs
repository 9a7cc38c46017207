//! CRM credentials, prepared once at start-up: a static header (bearer, basic,
//! API key), an API key query parameter, or an OAuth2 token source.
//!
//! Header values that carry secrets are marked sensitive so `http`'s `Debug`
//! output prints them as `Sensitive`.

use std::sync::Arc;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use super::oauth2::OAuth2;
use crate::config::{AuthKind, ConfigError, UpstreamAuthSettings, read_secret};
use crate::metrics::Metrics;

/// How every CRM request is authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// A fixed header.
    Header(HeaderName, HeaderValue),
    /// A query parameter holding the API key.
    Query(String, Arc<SecretString>),
    /// A bearer token from an OAuth2 token endpoint.
    OAuth2(Arc<OAuth2>),
}

impl Auth {
    /// The auth of `settings`; `http` is used for OAuth2 token requests,
    /// counted in `metrics`.
    pub fn new(
        settings: &UpstreamAuthSettings,
        http: &reqwest::Client,
        metrics: &Metrics,
    ) -> Result<Self, ConfigError> {
        let secret = read_secret(
            ("upstream.auth.secret_env", settings.secret_env.as_deref()),
            ("upstream.auth.secret_file", settings.secret_file.as_deref()),
        )?;
        let Some(secret) = secret else {
            return Ok(Auth::None);
        };
        let sensitive = |value: String| {
            HeaderValue::try_from(value)
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
                .map_err(|_| {
                    ConfigError::invalid(
                        "upstream.auth.secret_env",
                        "the secret holds characters not allowed in an HTTP header",
                    )
                })
        };
        Ok(match settings.kind {
            AuthKind::None => Auth::None,
            AuthKind::Bearer => Auth::Header(
                AUTHORIZATION,
                sensitive(format!("Bearer {}", secret.expose_secret()))?,
            ),
            AuthKind::Basic => {
                let user = settings.username.as_deref().unwrap_or_default();
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", secret.expose_secret()));
                Auth::Header(AUTHORIZATION, sensitive(format!("Basic {encoded}"))?)
            }
            AuthKind::ApiKey => match &settings.query_param {
                Some(param) => Auth::Query(param.clone(), Arc::new(secret)),
                None => {
                    let header = settings.header.as_deref().unwrap_or("X-API-Key");
                    let name = HeaderName::try_from(header).map_err(|_| {
                        ConfigError::invalid(
                            "upstream.auth.header",
                            "is not a valid HTTP header name",
                        )
                    })?;
                    Auth::Header(name, sensitive(secret.expose_secret().to_owned())?)
                }
            },
            AuthKind::OAuth2 => {
                let token_url = settings.token_url.clone().ok_or_else(|| {
                    ConfigError::invalid(
                        "upstream.auth.token_url",
                        "oauth2 needs the token endpoint as an http(s) URL",
                    )
                })?;
                Auth::OAuth2(OAuth2::new(
                    http.clone(),
                    token_url,
                    settings,
                    secret,
                    metrics.clone(),
                ))
            }
        })
    }
}
