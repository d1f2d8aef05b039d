//! A header filter run: what the filter does to each request.

use std::path::Path;
use std::sync::Arc;

use super::inputs::Requests;
use super::{Bench, OfflineError};
use crate::config::{PluginRef, SandboxConfig};
use crate::l7::{FilterVerdict, HeaderFilter, RateLimits};
use crate::plugin::{PluginRuntime, WasmFilter};
use crate::upstream::Protocol;

/// What the filter did to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterOutcome {
    /// `METHOD PATH`.
    pub request: String,
    /// `forward`, `respond STATUS`, or `failed: WHY`.
    pub verdict: String,
    /// The changes made to a forwarded request (`set NAME: VALUE`,
    /// `removed NAME`, `path A -> B`), or the answer's headers.
    pub edits: Vec<String>,
}

/// What a filter run printed.
#[derive(Debug, Clone)]
pub struct FilterRun {
    /// What the filter did to each request.
    pub outcomes: Vec<FilterOutcome>,
    /// With `--bench`: the cost of `on-request` and the instance's memory.
    pub bench: Option<Bench>,
}

/// Runs the filter in `file` (with `options`) on each of `requests`; with
/// `bench`, also the cost of `on-request`.
pub fn run_filter(
    runtime: &PluginRuntime,
    file: &Path,
    options: String,
    requests: &Requests,
    bench: bool,
) -> Result<FilterRun, OfflineError> {
    let compiled = runtime.compile_filter(&PluginRef::File(file.to_owned()))?;
    let filter = WasmFilter::new(
        "offline",
        compiled,
        options,
        SandboxConfig::default(),
        Arc::new(RateLimits::new(&[])),
    )?;
    let mut outcomes = Vec::with_capacity(requests.len());
    let views = requests.views(Protocol::Http)?;
    for (line, view) in &views {
        let mut view = view.clone();
        let before = view.http.clone();
        let (verdict, edits) = match filter.on_request(&mut view) {
            Ok(FilterVerdict::Forward) => (
                "forward".to_owned(),
                changes(before.as_deref(), view.http.as_deref()),
            ),
            Ok(FilterVerdict::Respond(answer)) => (
                format!("respond {}", answer.status.as_u16()),
                answer
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        format!("{name}: {}", String::from_utf8_lossy(value.as_bytes()))
                    })
                    .collect(),
            ),
            Err(error) => (
                format!("failed: {}", crate::error_chain(&error)),
                Vec::new(),
            ),
        };
        outcomes.push(FilterOutcome {
            request: line.label(),
            verdict,
            edits,
        });
    }
    let bench = match (bench, views.first()) {
        (true, Some((_, view))) => Some(Bench::measure(
            "on-request",
            || {
                let mut view = view.clone();
                let _ = filter.on_request(&mut view);
            },
            || filter.instance_memory_bytes(),
        )?),
        _ => None,
    };
    Ok(FilterRun { outcomes, bench })
}

/// What differs between the head before and after the filter.
fn changes(
    before: Option<&http::request::Parts>,
    after: Option<&http::request::Parts>,
) -> Vec<String> {
    let (Some(before), Some(after)) = (before, after) else {
        return Vec::new();
    };
    let mut edits = Vec::new();
    if before.uri != after.uri {
        edits.push(format!("path {} -> {}", before.uri, after.uri));
    }
    let text = |value: &http::HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
    for name in after.headers.keys() {
        let new: Vec<String> = after.headers.get_all(name).iter().map(text).collect();
        let old: Vec<String> = before.headers.get_all(name).iter().map(text).collect();
        if new != old {
            edits.push(format!("set {name}: {}", new.join(", ")));
        }
    }
    for name in before.headers.keys() {
        if !after.headers.contains_key(name) {
            edits.push(format!("removed {name}"));
        }
    }
    edits
}
