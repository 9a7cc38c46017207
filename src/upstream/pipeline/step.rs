//! One step's requests: rendering its templates (one request, or one per
//! `for_each` item) and executing them with bounded concurrency.

use super::*;

/// The requests of a step: one, or one per fan-out item.
pub(super) enum Requests {
    One(Box<Request>),
    Many(Vec<Request>),
}

impl Step {
    /// The span of this step's CRM requests (DEBUG: a disabled callsite
    /// unless traces are on): its name, method and answer status; never
    /// its URL, which may hold the token.
    pub(super) fn span(&self) -> tracing::Span {
        tracing::debug_span!(
            "crm.step",
            otel.name = %format_args!("crm {}", self.name),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            authbridge.crm.step = %self.name,
            http.request.method = %self.method,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        )
    }

    pub(super) fn request(
        &self,
        transport: &Transport,
        vars: Vars<'_>,
    ) -> Result<Request, UpstreamError> {
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
    pub(super) fn requests(
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

    pub(super) async fn execute(
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
                let mut body_bytes = 0;
                for result in results {
                    match result? {
                        Fetched::Found(crm) => {
                            body_bytes += crm.body_bytes;
                            answers.push(crm.json);
                        }
                        Fetched::NotFound => {}
                    }
                }
                Ok(Fetched::Found(Crm {
                    json: Value::Array(answers),
                    body_bytes,
                }))
            }
        }
    }
}
