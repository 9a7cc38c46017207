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
use super::transport::{Crm, Fetched, Request, Transport};
use crate::config::{ConfigError, HttpMethod, NotFoundSettings, UpstreamSettings};
use crate::diagnostics::{Diagnostics, LoadError};
use crate::mapping::path::{Path, Scope};

mod compile;
mod run;
mod step;

use step::Requests;

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

#[cfg(test)]
mod tests;
