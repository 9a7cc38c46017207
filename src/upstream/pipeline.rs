//! Pipelines: the CRM requests of one lookup, declared as `[[step]]` tables
//! in the mapping file.
//!
//! Each step is a request template whose path, query, headers and body may use
//! the token and values from earlier steps' answers (`{$.steps.NAME...}`); a
//! step can fan out over an array (`for_each`, one request per item, `{@...}`
//! in its templates) with bounded concurrency. Steps run as soon as the steps
//! they read from are done, so independent steps run concurrently. The mapping
//! then reads every answer from `$.steps.NAME` (a fan-out step's answers are an
//! array, in item order).
//!
//! A required step's failure fails the lookup; its "not found" is the
//! client's "not found". An optional step's failure or "not found" leaves
//! `$.steps.NAME` null (its fields then drop out) and is counted. One deadline
//! bounds the whole pipeline; each request also has its own timeout.
//!
//! Without `[[step]]` tables the request of `[upstream]` in the config is the
//! only one, and the mapping reads its answer directly (`$` is the answer).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path as FsPath;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::error::UpstreamError;
use super::outcome::NotFoundRule;
use super::template::{BodyTemplate, Template, Vars};
use super::transport::{Fetched, Request, Transport};
use crate::config::{ConfigError, HttpMethod, NotFoundSettings, UpstreamSettings};
use crate::mapping::path::{Path, Scope};
use crate::mapping::{Diagnostic, LoadError};

/// The `[[step]]` tables of a mapping file, as written.
#[derive(Debug, Deserialize)]
struct FileSpec {
    #[serde(default)]
    step: Vec<Spanned<StepSpec>>,
}

fn yes() -> bool {
    true
}

/// One `[[step]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    name: Spanned<String>,
    #[serde(default)]
    method: HttpMethod,
    path: Spanned<String>,
    #[serde(default)]
    query: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    body: Option<Spanned<String>>,
    for_each: Option<Spanned<String>>,
    concurrency: Option<usize>,
    #[serde(default = "yes")]
    required: bool,
    timeout_ms: Option<u64>,
    max_body_bytes: Option<usize>,
    not_found: Option<NotFoundSettings>,
    #[serde(default)]
    after: Vec<String>,
}

/// A compiled step.
#[derive(Debug)]
struct Step {
    name: String,
    method: reqwest::Method,
    path: Template,
    query: Vec<(String, Template)>,
    headers: Vec<(HeaderName, Template)>,
    body: Option<BodyTemplate>,
    for_each: Option<Path>,
    concurrency: usize,
    required: bool,
    timeout: Duration,
    max_body_bytes: usize,
    not_found: NotFoundRule,
    /// Indices of the steps this one reads from.
    deps: Vec<usize>,
}

/// The compiled requests of one lookup.
#[derive(Debug)]
pub struct Pipeline {
    steps: Vec<Step>,
    deadline: Duration,
    max_fan_out: usize,
    /// The single request of `[upstream]`: its answer is the document itself.
    bare: bool,
}

/// The step a JSONPath reads from, if it starts with `steps` then a name,
/// in dot or bracket notation (`$.steps.NAME`, `$['steps']["NAME"]`).
fn step_of(path_text: &str) -> Option<&str> {
    fn segment(rest: &str) -> Option<(&str, &str)> {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            return Some((&after[..end], &after[end..]));
        }
        for quote in ['\'', '"'] {
            if let Some(after) = rest.strip_prefix('[').and_then(|r| r.strip_prefix(quote)) {
                let end = after.find(quote)?;
                let tail = after[end + 1..].strip_prefix(']')?;
                return Some((&after[..end], tail));
            }
        }
        None
    }
    let (first, rest) = segment(path_text.strip_prefix('$')?)?;
    if first != "steps" {
        return None;
    }
    segment(rest).map(|(name, _)| name)
}

fn method(m: HttpMethod) -> reqwest::Method {
    match m {
        HttpMethod::GET => reqwest::Method::GET,
        HttpMethod::POST => reqwest::Method::POST,
        HttpMethod::PUT => reqwest::Method::PUT,
        HttpMethod::PATCH => reqwest::Method::PATCH,
    }
}

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        let (line, column) = crate::mapping::line_col(self.text, span.start);
        self.diagnostics.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        });
    }

    fn template(&mut self, t: &Spanned<String>, field: &str) -> Option<Template> {
        Template::parse(t.get_ref())
            .map_err(|m| self.error(t.span(), field, m))
            .ok()
    }
}

impl Pipeline {
    /// The single request of `[upstream]` (no `[[step]]` in the mapping).
    pub fn from_settings(s: &UpstreamSettings) -> Result<Self, ConfigError> {
        let invalid = |key: &str, msg: String| ConfigError::Invalid(vec![(key.to_owned(), msg)]);
        let mut headers = Vec::new();
        for (k, v) in &s.headers {
            let key = format!("upstream.headers.{k}");
            let name = HeaderName::try_from(k.as_str())
                .map_err(|_| invalid(&key, "is not a valid header name".into()))?;
            headers.push((name, Template::parse(v).map_err(|e| invalid(&key, e))?));
        }
        let step = Step {
            name: "crm".into(),
            method: method(s.method),
            path: Template::parse(&s.path).map_err(|e| invalid("upstream.path", e))?,
            query: s
                .query
                .iter()
                .map(|(k, v)| {
                    Template::parse(v)
                        .map(|t| (k.clone(), t))
                        .map_err(|e| invalid(&format!("upstream.query.{k}"), e))
                })
                .collect::<Result<_, _>>()?,
            headers,
            body: s
                .body
                .as_deref()
                .map(|b| BodyTemplate::parse(b).map_err(|e| invalid("upstream.body", e)))
                .transpose()?,
            for_each: None,
            concurrency: 1,
            required: true,
            timeout: Duration::from_millis(s.timeout_ms),
            max_body_bytes: s.max_body_bytes,
            not_found: NotFoundRule::new(&s.not_found)?,
            deps: Vec::new(),
        };
        Ok(Self {
            steps: vec![step],
            deadline: Duration::from_millis(s.deadline_ms),
            max_fan_out: s.max_fan_out,
            bare: true,
        })
    }

    /// The pipeline of a mapping file's `[[step]]` tables, or `None` when it
    /// has none. Mistakes are reported like mapping mistakes, with positions.
    pub fn from_mapping_text(
        file: &str,
        text: &str,
        s: &UpstreamSettings,
    ) -> Result<Option<Self>, LoadError> {
        let spec: FileSpec = toml::from_str(text).map_err(|e| LoadError {
            diagnostics: vec![{
                let (line, column) =
                    crate::mapping::line_col(text, e.span().map_or(0, |r| r.start));
                Diagnostic {
                    file: file.to_owned(),
                    line,
                    column,
                    field: "step".into(),
                    message: e.message().to_owned(),
                }
            }],
        })?;
        if spec.step.is_empty() {
            return Ok(None);
        }
        let mut c = Checker {
            file,
            text,
            diagnostics: Vec::new(),
        };
        if spec.step.len() > s.max_steps {
            c.error(
                spec.step[s.max_steps].span(),
                "step",
                format!(
                    "{} steps, more than upstream.max_steps = {}",
                    spec.step.len(),
                    s.max_steps
                ),
            );
        }
        let names: Vec<String> = spec
            .step
            .iter()
            .map(|st| st.get_ref().name.get_ref().clone())
            .collect();
        let mut steps = Vec::new();
        for (i, spanned) in spec.step.iter().enumerate() {
            let st = spanned.get_ref();
            let name = st.name.get_ref();
            let field = format!("step.{name}");
            if !name
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_alphabetic())
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            {
                c.error(
                    st.name.span(),
                    &field,
                    "a step name is letters, digits and `_`, starting with a letter",
                );
            }
            if names[..i].contains(name) {
                c.error(st.name.span(), &field, "two steps have this name");
            }
            let path = c.template(&st.path, &format!("{field}.path"));
            let query: Vec<_> = st
                .query
                .iter()
                .filter_map(|(k, v)| {
                    c.template(v, &format!("{field}.query.{k}"))
                        .map(|t| (k.clone(), t))
                })
                .collect();
            let mut headers = Vec::new();
            for (k, v) in &st.headers {
                let hf = format!("{field}.headers.{k}");
                match HeaderName::try_from(k.as_str()) {
                    Ok(h) => headers.extend(c.template(v, &hf).map(|t| (h, t))),
                    Err(_) => c.error(v.span(), &hf, "is not a valid header name"),
                }
            }
            let body = st.body.as_ref().and_then(|b| {
                BodyTemplate::parse(b.get_ref())
                    .map_err(|m| c.error(b.span(), &format!("{field}.body"), m))
                    .ok()
            });
            if body.is_some() && st.method == HttpMethod::GET {
                c.error(
                    spanned.span(),
                    &format!("{field}.body"),
                    "a body is not sent with GET: use POST, PUT or PATCH",
                );
            }
            let for_each = st
                .for_each
                .as_ref()
                .and_then(|f| match Path::parse(f.get_ref()) {
                    Ok(p) if p.is_relative() => {
                        c.error(
                            f.span(),
                            &format!("{field}.for_each"),
                            "`for_each` reads earlier answers: start it with `$`",
                        );
                        None
                    }
                    Ok(p) => Some(p),
                    Err(m) => {
                        c.error(f.span(), &format!("{field}.for_each"), m);
                        None
                    }
                });
            // Dependencies: every `$.steps.NAME` the step reads, plus `after`.
            let mut reads: Vec<(String, Range<usize>)> = Vec::new();
            let mut note = |text: &str, span: Range<usize>| {
                if let Some(dep) = step_of(text) {
                    reads.push((dep.to_owned(), span));
                }
            };
            for t in std::iter::once(&st.path)
                .chain(st.query.values())
                .chain(st.headers.values())
            {
                if let Ok(tpl) = Template::parse(t.get_ref()) {
                    for (_, text) in tpl.paths() {
                        note(text, t.span());
                    }
                }
            }
            if let (Some(b), Some(tpl)) = (&st.body, &body) {
                for (_, text) in tpl.paths() {
                    note(text, b.span());
                }
            }
            if let Some(f) = &st.for_each {
                note(f.get_ref(), f.span());
            }
            for a in &st.after {
                reads.push((a.clone(), spanned.span()));
            }
            let mut deps = Vec::new();
            for (dep, span) in reads {
                match names[..i].iter().position(|n| *n == dep) {
                    Some(d) => {
                        if !deps.contains(&d) {
                            deps.push(d);
                        }
                    }
                    None if names.contains(&dep) => c.error(
                        span,
                        &field,
                        format!("reads step `{dep}`, which is declared after it: declare steps in the order they run"),
                    ),
                    None => {
                        let hint = crate::schema::nearest(&dep, names.iter().map(String::as_str))
                            .map(|n| format!("; did you mean `{n}`?"))
                            .unwrap_or_default();
                        c.error(span, &field, format!("reads step `{dep}`, but no step has that name{hint}"));
                    }
                }
            }
            let not_found = match st.not_found.as_ref().map(NotFoundRule::new).transpose() {
                Ok(rule) => rule,
                Err(e) => {
                    c.error(spanned.span(), &format!("{field}.not_found"), e.to_string());
                    None
                }
            };
            let concurrency = st.concurrency.unwrap_or(4);
            if concurrency == 0 || concurrency > s.max_concurrency {
                c.error(
                    spanned.span(),
                    &format!("{field}.concurrency"),
                    format!(
                        "must be 1 to upstream.max_concurrency = {}",
                        s.max_concurrency
                    ),
                );
            }
            if st.for_each.is_none() && st.concurrency.is_some() {
                c.error(
                    spanned.span(),
                    &format!("{field}.concurrency"),
                    "only a `for_each` step fans out",
                );
            }
            let timeout = st.timeout_ms.unwrap_or(s.timeout_ms);
            if timeout == 0 || timeout > s.deadline_ms {
                c.error(
                    spanned.span(),
                    &format!("{field}.timeout_ms"),
                    format!("must be 1 to upstream.deadline_ms = {}", s.deadline_ms),
                );
            }
            if let (Some(path), Some(not_found)) = (
                path,
                not_found.or_else(|| NotFoundRule::new(&NotFoundSettings::default()).ok()),
            ) {
                steps.push(Step {
                    name: name.clone(),
                    method: method(st.method),
                    path,
                    query,
                    headers,
                    body,
                    for_each,
                    concurrency: concurrency.clamp(1, s.max_concurrency),
                    required: st.required,
                    timeout: Duration::from_millis(timeout),
                    max_body_bytes: st
                        .max_body_bytes
                        .unwrap_or(s.max_body_bytes)
                        .min(s.max_body_bytes),
                    not_found,
                    deps,
                });
            }
        }
        if !c.diagnostics.is_empty() {
            c.diagnostics.sort_by_key(|d| (d.line, d.column));
            return Err(LoadError {
                diagnostics: c.diagnostics,
            });
        }
        Ok(Some(Self {
            steps,
            deadline: Duration::from_millis(s.deadline_ms),
            max_fan_out: s.max_fan_out,
            bare: false,
        }))
    }

    /// The pipeline of a mapping file, or `None` when it declares none.
    pub fn from_mapping_file(
        path: &FsPath,
        s: &UpstreamSettings,
    ) -> Result<Option<Self>, LoadError> {
        let (file, text) = crate::mapping::read_file(path)?;
        Self::from_mapping_text(&file, &text, s)
    }

    /// The URL and body of each request the steps that read no other step
    /// would send for `token` (and the caller's `input`), rendered as a
    /// lookup renders them but not sent. Public (hidden) only so that
    /// `examples/fuzz.rs` can check that no token leaves its place in them.
    #[doc(hidden)]
    pub fn first_requests(
        &self,
        transport: &Transport,
        token: &str,
        input: Option<Value>,
    ) -> Vec<Result<Rendered, UpstreamError>> {
        let doc = start_doc(input);
        let mut out = Vec::new();
        for step in self.steps.iter().filter(|s| s.deps.is_empty()) {
            match step.requests(transport, token, &doc, self.max_fan_out) {
                Ok(Requests::One(r)) => out.push(Ok((r.url, r.body))),
                Ok(Requests::Many(rs)) => out.extend(rs.into_iter().map(|r| Ok((r.url, r.body)))),
                Err(e) => out.push(Err(e)),
            }
        }
        out
    }

    /// Runs every step for `token` within the deadline.
    pub async fn run(&self, transport: &Transport, token: &str) -> Result<Fetched, UpstreamError> {
        self.run_with_input(transport, token, None).await
    }

    /// Runs every step with the caller's request body available to templates
    /// and to the mapping as `$.input`.
    pub async fn run_with_input(
        &self,
        transport: &Transport,
        token: &str,
        input: Option<Value>,
    ) -> Result<Fetched, UpstreamError> {
        tokio::time::timeout(self.deadline, self.run_steps(transport, token, input))
            .await
            .unwrap_or(Err(UpstreamError::Timeout))
    }

    async fn run_steps(
        &self,
        transport: &Transport,
        token: &str,
        input: Option<Value>,
    ) -> Result<Fetched, UpstreamError> {
        let mut doc = start_doc(input);
        let mut started = vec![false; self.steps.len()];
        let mut done = vec![false; self.steps.len()];
        let mut running = FuturesUnordered::new();
        loop {
            // Start every step whose inputs are all in. Requests are rendered
            // now, so running steps hold no borrow of the answers.
            for (i, step) in self.steps.iter().enumerate() {
                if started[i] || !step.deps.iter().all(|d| done[*d]) {
                    continue;
                }
                started[i] = true;
                let requests = step.requests(transport, token, &doc, self.max_fan_out);
                running.push(async move { (i, step.execute(transport, requests).await) });
            }
            let Some((i, result)) = running.next().await else {
                break;
            };
            let step = &self.steps[i];
            done[i] = true;
            let value = match result {
                Ok(Fetched::Found(v)) => v,
                Ok(Fetched::NotFound) if step.required => return Ok(Fetched::NotFound),
                Ok(Fetched::NotFound) => Value::Null,
                Err(e) if step.required => {
                    tracing::debug!(step = %step.name, kind = e.label(), "required pipeline step failed");
                    return Err(e);
                }
                Err(UpstreamError::MissingValue(_)) => {
                    // An optional step for something the client does not have
                    // (no company id): skipped, not failed.
                    tracing::debug!(step = %step.name, "optional pipeline step skipped: no input value");
                    Value::Null
                }
                Err(e) => {
                    metrics::counter!(
                        "authbridge_pipeline_optional_failures_total",
                        "step" => step.name.clone()
                    )
                    .increment(1);
                    tracing::debug!(step = %step.name, kind = e.label(), "optional pipeline step failed");
                    Value::Null
                }
            };
            if self.bare {
                return Ok(Fetched::Found(value));
            }
            if let Some(steps) = doc.get_mut("steps").and_then(Value::as_object_mut) {
                steps.insert(step.name.clone(), value);
            }
        }
        Ok(Fetched::Found(doc))
    }
}

/// A rendered request's URL and body (see [`Pipeline::first_requests`]).
pub type Rendered = (url::Url, Option<Vec<u8>>);

/// The answers document a lookup starts from: no steps yet, and the
/// caller's body as `$.input` when there is one.
fn start_doc(input: Option<Value>) -> Value {
    let mut doc = Value::Object(Map::from_iter([(
        "steps".to_owned(),
        Value::Object(Map::new()),
    )]));
    if let (Some(input), Some(obj)) = (input, doc.as_object_mut()) {
        obj.insert("input".to_owned(), input);
    }
    doc
}

/// The requests of a step: one, or one per fan-out item.
enum Requests {
    One(Box<Request>),
    Many(Vec<Request>),
}

impl Step {
    fn request(&self, transport: &Transport, vars: Vars<'_>) -> Result<Request, UpstreamError> {
        let path = self.path.render_path(vars)?;
        let query = self
            .query
            .iter()
            .map(|(k, t)| t.render_raw(vars).map(|v| (k.clone(), v)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut headers = HeaderMap::new();
        for (name, t) in &self.headers {
            let value = HeaderValue::try_from(t.render_raw(vars)?).map_err(|_| {
                UpstreamError::Unrepresentable(
                    "a header value holds characters HTTP does not allow",
                )
            })?;
            headers.insert(name.clone(), value);
        }
        let body = match &self.body {
            Some(b) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Some(b.render(vars)?)
            }
            None => None,
        };
        Ok(Request {
            method: self.method.clone(),
            url: transport.url(&path, &query)?,
            headers,
            body,
            timeout: self.timeout,
            max_body_bytes: self.max_body_bytes,
        })
    }

    /// Renders the step's requests from the answers so far.
    fn requests(
        &self,
        transport: &Transport,
        token: &str,
        doc: &Value,
        max_fan_out: usize,
    ) -> Result<Requests, UpstreamError> {
        let scope = Scope::root(doc);
        match &self.for_each {
            None => self
                .request(transport, Vars { token, scope })
                .map(|r| Requests::One(Box::new(r))),
            Some(each) => {
                let items = each.all(scope);
                if items.len() > max_fan_out {
                    return Err(UpstreamError::FanOutTooLarge(max_fan_out));
                }
                items
                    .into_iter()
                    .map(|item| {
                        self.request(
                            transport,
                            Vars {
                                token,
                                scope: scope.with_item(item),
                            },
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Requests::Many)
            }
        }
    }

    async fn execute(
        &self,
        transport: &Transport,
        requests: Result<Requests, UpstreamError>,
    ) -> Result<Fetched, UpstreamError> {
        match requests? {
            Requests::One(r) => transport.send(&r, &self.not_found).await,
            Requests::Many(rs) => {
                // In item order, at most `concurrency` at a time. An item the CRM
                // does not know is left out; a failed item fails the step.
                let sends: Vec<_> = rs
                    .iter()
                    .map(|r| transport.send(r, &self.not_found))
                    .collect();
                let results: Vec<_> = futures_util::stream::iter(sends)
                    .buffered(self.concurrency)
                    .collect()
                    .await;
                let mut answers = Vec::with_capacity(results.len());
                for result in results {
                    match result? {
                        Fetched::Found(v) => answers.push(v),
                        Fetched::NotFound => {}
                    }
                }
                Ok(Fetched::Found(Value::Array(answers)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> UpstreamSettings {
        UpstreamSettings {
            base_url: "http://127.0.0.1:9".into(),
            ..Default::default()
        }
    }

    fn errors(text: &str) -> String {
        Pipeline::from_mapping_text("m.toml", text, &settings())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn dependencies_come_from_placeholders_and_for_each() {
        let p = Pipeline::from_mapping_text(
            "m.toml",
            r#"
[[step]]
name = "session"
path = "/sessions/{token}"

[[step]]
name = "client"
path = "/clients/{$.steps.session.clientId}"

[[step]]
name = "companies"
path = "/companies/{@}"
for_each = "$.steps.client.companyIds[*]"
concurrency = 5

[[step]]
name = "limits"
path = "/limits/{$.steps.session.clientId}"
required = false
"#,
            &settings(),
        )
        .unwrap()
        .unwrap();
        let deps: Vec<_> = p.steps.iter().map(|s| s.deps.clone()).collect();
        assert_eq!(deps, vec![vec![], vec![0], vec![1], vec![0]]);
        assert_eq!(p.steps[2].concurrency, 5);
        assert!(!p.steps[3].required);
    }

    #[test]
    fn step_references_in_any_notation() {
        assert_eq!(step_of("$.steps.client.id"), Some("client"));
        assert_eq!(step_of("$.steps['client'].id"), Some("client"));
        assert_eq!(step_of("$['steps'][\"client\"]"), Some("client"));
        assert_eq!(step_of("$.input.otp"), None);
        assert_eq!(step_of("@.id"), None);
    }

    #[test]
    fn mistakes_are_reported_with_positions() {
        let err = errors(
            r#"[[step]]
name = "client"
path = "/clients/{$.steps.sesion.id}"

[[step]]
name = "client"
path = "/x/{tokn}"
"#,
        );
        assert!(
            err.contains("m.toml:3:8: step.client: reads step `sesion`, but no step has that name"),
            "{err}"
        );
        assert!(
            err.contains("m.toml:6:8: step.client: two steps have this name"),
            "{err}"
        );
        assert!(
            err.contains("m.toml:7:8: step.client.path: unknown placeholder `{tokn}`"),
            "{err}"
        );
        let err = errors("[[step]]\nname = \"a\"\npath = \"/\"\nmethd = \"GET\"\n");
        assert!(err.contains("unknown field `methd`"), "{err}");
        let err = errors(
            "[[step]]\nname = \"a\"\npath = \"/{$.steps.b.x}\"\n\n[[step]]\nname = \"b\"\npath = \"/\"\n",
        );
        assert!(err.contains("which is declared after it"), "{err}");
    }

    #[test]
    fn limits_are_enforced_at_load() {
        let mut s = settings();
        s.max_steps = 1;
        let text = "[[step]]\nname = \"a\"\npath = \"/\"\n[[step]]\nname = \"b\"\npath = \"/\"\n";
        let err = Pipeline::from_mapping_text("m.toml", text, &s)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 steps, more than upstream.max_steps = 1"),
            "{err}"
        );
        let err = errors(
            "[[step]]\nname = \"a\"\npath = \"/\"\nfor_each = \"$.x[*]\"\nconcurrency = 99\n",
        );
        assert!(
            err.contains("must be 1 to upstream.max_concurrency = 8"),
            "{err}"
        );
        let err = errors("[[step]]\nname = \"a\"\npath = \"/\"\ntimeout_ms = 60000\n");
        assert!(
            err.contains("must be 1 to upstream.deadline_ms = 4000"),
            "{err}"
        );
    }

    #[test]
    fn a_mapping_without_steps_has_no_pipeline() {
        assert!(
            Pipeline::from_mapping_text("m.toml", "[client]\nid = \"$.id\"\n", &settings())
                .unwrap()
                .is_none()
        );
    }
}
