//! Which CRM answers mean "no such client": configured statuses, or a 200 whose
//! body matches a condition (for CRMs that answer "found nothing" with 200).

use serde_json::Value;
use serde_json_path::JsonPath;

use crate::config::{ConfigError, NotFoundSettings};

/// The compiled "not found" rules.
#[derive(Debug, Clone)]
pub struct NotFoundRule {
    statuses: Vec<u16>,
    when_empty: Option<JsonPath>,
    when_equals: Option<(JsonPath, Value)>,
}

fn parse(key: &str, text: &str) -> Result<JsonPath, ConfigError> {
    JsonPath::parse(text)
        .map_err(|e| ConfigError::Invalid(vec![(key.to_owned(), format!("invalid JSONPath: {e}"))]))
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

impl NotFoundRule {
    /// Compiles the settings; bad JSONPaths are config errors.
    pub fn new(s: &NotFoundSettings) -> Result<Self, ConfigError> {
        Ok(Self {
            statuses: s.statuses.clone(),
            when_empty: s
                .when_empty
                .as_deref()
                .map(|p| parse("upstream.not_found.when_empty", p))
                .transpose()?,
            when_equals: s
                .when_equals
                .as_ref()
                .map(|w| {
                    parse("upstream.not_found.when_equals.path", &w.path)
                        .map(|p| (p, w.value.clone()))
                })
                .transpose()?,
        })
    }

    /// True when this status means not found.
    pub fn status_means_not_found(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }

    /// True when a successful body means not found.
    pub fn body_means_not_found(&self, body: &Value) -> bool {
        if let Some(path) = &self.when_empty {
            let nodes = path.query(body).all();
            if nodes.iter().all(|v| is_empty(v)) {
                return true;
            }
        }
        if let Some((path, expected)) = &self.when_equals
            && path.query(body).all().contains(&expected)
        {
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WhenEquals;
    use serde_json::json;

    #[test]
    fn body_conditions() {
        let rule = NotFoundRule::new(&NotFoundSettings {
            statuses: vec![404],
            when_empty: Some("$.items".into()),
            when_equals: Some(WhenEquals {
                path: "$.status".into(),
                value: json!("NOT_FOUND"),
            }),
        })
        .unwrap();
        assert!(rule.body_means_not_found(&json!({"items": []})));
        assert!(rule.body_means_not_found(&json!({})));
        assert!(rule.body_means_not_found(&json!({"items": [1], "status": "NOT_FOUND"})));
        assert!(!rule.body_means_not_found(&json!({"items": [1], "status": "OK"})));
        assert!(rule.status_means_not_found(404));
        assert!(!rule.status_means_not_found(500));
    }
}
