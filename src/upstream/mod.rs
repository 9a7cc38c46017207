//! The CRM side of a lookup: a [`Transport`] (HTTP client, auth, TLS, the
//! breaker, retries and the in-flight cap) and a [`Pipeline`] of one or more
//! requests, whose answers are classified as found, not found or a named error.

mod auth;
mod breaker;
mod client;
mod error;
mod oauth2;
mod outcome;
mod pipeline;
mod template;
mod transport;

pub use error::UpstreamError;
pub use outcome::NotFoundRule;
pub use pipeline::Pipeline;
pub use template::{BodyTemplate, Template, Vars};
pub use transport::{Crm, Fetched, Transport};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamSettings;
    use crate::mapping::path::Scope;
    use serde_json::json;

    #[test]
    fn hostile_tokens_stay_inside_one_segment() {
        let t = Transport::new(
            &UpstreamSettings {
                base_url: Some("http://127.0.0.1:9/api/".parse().unwrap()),
                ..Default::default()
            },
            crate::metrics::Metrics::new(),
        )
        .unwrap();
        let doc = json!({});
        let vars = |token| Vars {
            token,
            scope: Scope::root(&doc),
        };
        let path = Template::parse("/clients/{token}").unwrap();
        let query = Template::parse("{token}").unwrap();
        let url_for = |token| {
            let p = path.render_path(vars(token))?;
            let q = vec![("session".to_owned(), query.render_raw(vars(token))?)];
            t.url(&p, &q)
        };
        let url = url_for("../../admin?x=1#f").unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        assert_eq!(url.path(), "/api/clients/..%2F..%2Fadmin%3Fx%3D1%23f");
        assert_eq!(url.query(), Some("session=..%2F..%2Fadmin%3Fx%3D1%23f"));
        let url = url_for("@evil.example:80").unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        assert!(url_for("..").is_err());
        assert!(url_for(".").is_err());
    }
}
