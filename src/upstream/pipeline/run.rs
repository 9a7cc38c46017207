//! Running a pipeline: steps start as soon as the steps they read are
//! done, within one deadline, and their answers are assembled under
//! `$.steps.NAME`.

use super::*;
use tracing::Instrument as _;

impl Pipeline {
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
        // The size of every body the steps read: where the mapping runs.
        let mut body_bytes = 0;
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
                let span = step.span();
                running.push(
                    async move {
                        let result = step.execute(transport, requests).await;
                        if let Err(e) = &result {
                            let span = tracing::Span::current();
                            span.record("error.type", e.label());
                            span.record("otel.status_code", "error");
                        }
                        (i, result)
                    }
                    .instrument(span),
                );
            }
            let Some((i, result)) = running.next().await else {
                break;
            };
            let step = &self.steps[i];
            done[i] = true;
            let value = match result {
                Ok(Fetched::Found(crm)) => {
                    body_bytes += crm.body_bytes;
                    crm.json
                }
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
                    transport
                        .metrics()
                        .counter_with(
                            "authbridge_pipeline_optional_failures_total",
                            &[("step", step.name.clone())],
                        )
                        .increment(1);
                    tracing::debug!(step = %step.name, kind = e.label(), "optional pipeline step failed");
                    Value::Null
                }
            };
            if self.bare {
                return Ok(Fetched::Found(Crm {
                    json: value,
                    body_bytes,
                }));
            }
            if let Some(steps) = doc.get_mut("steps").and_then(Value::as_object_mut) {
                steps.insert(step.name.clone(), value);
            }
        }
        Ok(Fetched::Found(Crm {
            json: doc,
            body_bytes,
        }))
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
