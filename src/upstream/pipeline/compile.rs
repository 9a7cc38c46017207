//! Compiling a pipeline: the `[[step]]` tables of a mapping file (or the
//! `[upstream]` request) checked and turned into steps with their
//! dependencies, every mistake reported at its position to the same
//! [`Diagnostics`] collector the field mapping uses.

use super::*;

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

/// The step a JSONPath reads from, if it starts with `steps` then a name,
/// in dot or bracket notation (`$.steps.NAME`, `$['steps']["NAME"]`).
pub(super) fn step_of(path_text: &str) -> Option<&str> {
    pub(super) fn segment(rest: &str) -> Option<(&str, &str)> {
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

/// A template, or `None` with its problem reported.
fn template(d: &mut Diagnostics<'_>, t: &Spanned<String>, field: &str) -> Option<Template> {
    Template::parse(t.get_ref())
        .map_err(|m| d.report(t.span(), field, m))
        .ok()
}

impl Pipeline {
    /// The single request of `[upstream]` (no `[[step]]` in the mapping).
    pub fn from_settings(s: &UpstreamSettings) -> Result<Self, ConfigError> {
        let mut headers = Vec::new();
        for (k, v) in &s.headers {
            let key = format!("upstream.headers.{k}");
            let name = HeaderName::try_from(k.as_str())
                .map_err(|_| ConfigError::invalid(&key, "is not a valid header name"))?;
            headers.push((
                name,
                Template::parse(v).map_err(|e| ConfigError::invalid(&key, e))?,
            ));
        }
        let step = Step {
            name: "crm".into(),
            method: method(s.method),
            path: Template::parse(&s.path).map_err(|e| ConfigError::invalid("upstream.path", e))?,
            query: s
                .query
                .iter()
                .map(|(k, v)| {
                    Template::parse(v)
                        .map(|t| (k.clone(), t))
                        .map_err(|e| ConfigError::invalid(&format!("upstream.query.{k}"), e))
                })
                .collect::<Result<_, _>>()?,
            headers,
            body: s
                .body
                .as_deref()
                .map(|b| {
                    BodyTemplate::parse(b).map_err(|e| ConfigError::invalid("upstream.body", e))
                })
                .transpose()?,
            for_each: None,
            concurrency: 1,
            required: true,
            timeout: s.timeout,
            max_body_bytes: s.max_body_bytes,
            not_found: NotFoundRule::new(&s.not_found)?,
            deps: Vec::new(),
        };
        Ok(Self {
            steps: vec![step],
            deadline: s.deadline,
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
        let mut c = Diagnostics::new(file, text);
        let spec: FileSpec = match toml::from_str(text) {
            Ok(spec) => spec,
            Err(e) => {
                c.report(e.span().unwrap_or(0..0), "step", e.message());
                return Err(c.into_error());
            }
        };
        if spec.step.is_empty() {
            return Ok(None);
        }
        if spec.step.len() > s.max_steps {
            c.report(
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
                c.report(
                    st.name.span(),
                    &field,
                    "a step name is letters, digits and `_`, starting with a letter",
                );
            }
            if names[..i].contains(name) {
                c.report(st.name.span(), &field, "two steps have this name");
            }
            let path = template(&mut c, &st.path, &format!("{field}.path"));
            let query: Vec<_> = st
                .query
                .iter()
                .filter_map(|(k, v)| {
                    template(&mut c, v, &format!("{field}.query.{k}")).map(|t| (k.clone(), t))
                })
                .collect();
            let mut headers = Vec::new();
            for (k, v) in &st.headers {
                let hf = format!("{field}.headers.{k}");
                match HeaderName::try_from(k.as_str()) {
                    Ok(h) => headers.extend(template(&mut c, v, &hf).map(|t| (h, t))),
                    Err(_) => c.report(v.span(), &hf, "is not a valid header name"),
                }
            }
            let body = st.body.as_ref().and_then(|b| {
                BodyTemplate::parse(b.get_ref())
                    .map_err(|m| c.report(b.span(), &format!("{field}.body"), m))
                    .ok()
            });
            if body.is_some() && st.method == HttpMethod::GET {
                c.report(
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
                        c.report(
                            f.span(),
                            &format!("{field}.for_each"),
                            "`for_each` reads earlier answers: start it with `$`",
                        );
                        None
                    }
                    Ok(p) => Some(p),
                    Err(m) => {
                        c.report(f.span(), &format!("{field}.for_each"), m);
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
                    None if names.contains(&dep) => c.report(
                        span,
                        &field,
                        format!("reads step `{dep}`, which is declared after it: declare steps in the order they run"),
                    ),
                    None => {
                        let hint = crate::schema::nearest(&dep, names.iter().map(String::as_str))
                            .map(|n| format!("; did you mean `{n}`?"))
                            .unwrap_or_default();
                        c.report(span, &field, format!("reads step `{dep}`, but no step has that name{hint}"));
                    }
                }
            }
            let not_found = match st.not_found.as_ref().map(NotFoundRule::new).transpose() {
                Ok(rule) => rule,
                Err(e) => {
                    c.report(spanned.span(), &format!("{field}.not_found"), e.to_string());
                    None
                }
            };
            let concurrency = st.concurrency.unwrap_or(4);
            if concurrency == 0 || concurrency > s.max_concurrency {
                c.report(
                    spanned.span(),
                    &format!("{field}.concurrency"),
                    format!(
                        "must be 1 to upstream.max_concurrency = {}",
                        s.max_concurrency
                    ),
                );
            }
            if st.for_each.is_none() && st.concurrency.is_some() {
                c.report(
                    spanned.span(),
                    &format!("{field}.concurrency"),
                    "only a `for_each` step fans out",
                );
            }
            let timeout = st.timeout_ms.map_or(s.timeout, Duration::from_millis);
            if timeout.is_zero() || timeout > s.deadline {
                c.report(
                    spanned.span(),
                    &format!("{field}.timeout_ms"),
                    format!(
                        "must be 1 to upstream.deadline_ms = {}",
                        s.deadline.as_millis()
                    ),
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
                    timeout,
                    max_body_bytes: st
                        .max_body_bytes
                        .unwrap_or(s.max_body_bytes)
                        .min(s.max_body_bytes),
                    not_found,
                    deps,
                });
            }
        }
        c.finish()?;
        Ok(Some(Self {
            steps,
            deadline: s.deadline,
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
}
