//! A health interpreter run: the verdict on each probe outcome.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::OfflineError;
use crate::config::{PluginRef, SandboxConfig};
use crate::health::{Interpreter, ProbeKind, ProbeOutcome, Verdict};
use crate::plugin::{PluginRuntime, WasmInterpreter};

/// One probe outcome of a probes file: `{"status": 200, "headers":
/// {"x-load": "0.5"}, "body": "ok", "latency-ms": 3}` for HTTP,
/// `{"error": "connection refused"}` for a failed probe.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProbeLine {
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    latency_ms: u64,
    #[serde(default)]
    error: Option<String>,
}

/// Runs the interpreter in `file` (with `options`, judging `kind` probes)
/// on each outcome: `(outcome, verdict)` lines.
pub fn run_interpreter(
    runtime: &PluginRuntime,
    file: &Path,
    options: String,
    kind: ProbeKind,
    probes: &[ProbeLine],
) -> Result<Vec<(String, String)>, OfflineError> {
    let compiled = runtime.compile_interpreter(&PluginRef::File(file.to_owned()))?;
    let interpreter =
        WasmInterpreter::new("offline", compiled, options, kind, SandboxConfig::default())?;
    Ok(probes
        .iter()
        .map(|probe| {
            let outcome = ProbeOutcome {
                kind,
                status: probe.status,
                headers: probe
                    .headers
                    .iter()
                    .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
                    .collect(),
                body: probe.body.clone().into_bytes(),
                latency: Duration::from_millis(probe.latency_ms),
                error: probe.error.clone(),
            };
            let label = match (&probe.error, probe.status) {
                (Some(error), _) => format!("error {error}"),
                (None, Some(status)) => format!("status {status}, {} ms", probe.latency_ms),
                (None, None) => format!("connected, {} ms", probe.latency_ms),
            };
            let verdict = match interpreter.interpret(&outcome) {
                Ok(Verdict::Healthy(reason)) => format!("healthy ({reason})"),
                Ok(Verdict::Degraded { permille, reason }) => {
                    format!("degraded to {permille}/1000 ({reason})")
                }
                Ok(Verdict::Unhealthy(reason)) => format!("unhealthy ({reason})"),
                Err(error) => format!("failed: {}", crate::error_chain(&error)),
            };
            (label, verdict)
        })
        .collect())
}
