//! CRM credentials turned into request headers once, at start-up.
//!
//! Header values that carry secrets are marked sensitive so `http`'s `Debug`
//! output prints them as `Sensitive`.

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::ExposeSecret;

use crate::config::{AuthKind, ConfigError, UpstreamAuthSettings, read_secret};

/// The header that authenticates every CRM request, if any.
pub fn auth_header(
    settings: &UpstreamAuthSettings,
) -> Result<Option<(HeaderName, HeaderValue)>, ConfigError> {
    let secret = read_secret(
        ("upstream.auth.secret_env", settings.secret_env.as_deref()),
        ("upstream.auth.secret_file", settings.secret_file.as_deref()),
    )?;
    let invalid =
        |key: &str, msg: &str| ConfigError::Invalid(vec![(key.to_owned(), msg.to_owned())]);
    let Some(secret) = secret else {
        return Ok(None);
    };
    let secret = secret.expose_secret();
    let (name, value) = match settings.kind {
        AuthKind::None => return Ok(None),
        AuthKind::Bearer => (AUTHORIZATION, format!("Bearer {secret}")),
        AuthKind::Basic => {
            let user = settings.username.as_deref().unwrap_or_default();
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
            (AUTHORIZATION, format!("Basic {encoded}"))
        }
        AuthKind::ApiKey => {
            let header = settings.header.as_deref().unwrap_or("X-API-Key");
            let name = HeaderName::try_from(header)
                .map_err(|_| invalid("upstream.auth.header", "is not a valid HTTP header name"))?;
            (name, secret.to_owned())
        }
    };
    let mut value = HeaderValue::try_from(value).map_err(|_| {
        invalid(
            "upstream.auth.secret_env",
            "the secret holds characters not allowed in an HTTP header",
        )
    })?;
    value.set_sensitive(true);
    Ok(Some((name, value)))
}
