//! A health interpreter run: the verdict on each probe outcome.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{Bench, OfflineError};
use crate::config::{PluginRef, SandboxConfig};
use crate::health::{Interpreter, ProbeKind, ProbeOutcome, Verdict};
use crate::plugin::{PluginRuntime, WasmInterpreter};

/// What an interpreter run printed.
#[derive(Debug, Clone)]
pub struct InterpreterRun {
    /// Each probe outcome, and the verdict on it.
    pub verdicts: Vec<(String, String)>,
    /// With `--bench`: the cost of `interpret` and the instance's memory.
    pub bench: Option<Bench>,
}

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
/// on each outcome; with `bench`, also the cost of `interpret` (of the
/// first outcome).
pub fn run_interpreter(
    runtime: &PluginRuntime,
    file: &Path,
    options: String,
    kind: ProbeKind,
    probes: &[ProbeLine],
    bench: bool,
) -> Result<InterpreterRun, OfflineError> {
    let compiled = runtime.compile_interpreter(&PluginRef::File(file.to_owned()))?;
    let interpreter =
        WasmInterpreter::new("offline", compiled, options, kind, SandboxConfig::default())?;
    let outcomes: Vec<ProbeOutcome> = probes.iter().map(|probe| probe.outcome(kind)).collect();
    let verdicts = probes
        .iter()
        .zip(&outcomes)
        .map(|(probe, outcome)| {
            let verdict = match interpreter.interpret(outcome) {
                Ok(Verdict::Healthy(reason)) => format!("healthy ({reason})"),
                Ok(Verdict::Degraded { permille, reason }) => {
                    format!("degraded to {permille}/1000 ({reason})")
                }
                Ok(Verdict::Unhealthy(reason)) => format!("unhealthy ({reason})"),
                Err(error) => format!("failed: {}", crate::error_chain(&error)),
            };
            (probe.label(), verdict)
        })
        .collect();
    let bench = match (bench, outcomes.first()) {
        (true, Some(outcome)) => Some(Bench::measure(
            "interpret",
            || {
                let _ = interpreter.interpret(outcome);
            },
            || interpreter.instance_memory_bytes(),
        )?),
        _ => None,
    };
    Ok(InterpreterRun { verdicts, bench })
}

// === impl ProbeLine ===

impl ProbeLine {
    /// The outcome an interpreter of `kind` probes is handed.
    fn outcome(&self, kind: ProbeKind) -> ProbeOutcome {
        ProbeOutcome {
            kind,
            status: self.status,
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
                .collect(),
            body: self.body.clone().into_bytes(),
            latency: Duration::from_millis(self.latency_ms),
            error: self.error.clone(),
        }
    }

    /// How the run prints it.
    fn label(&self) -> String {
        match (&self.error, self.status) {
            (Some(error), _) => format!("error {error}"),
            (None, Some(status)) => format!("status {status}, {} ms", self.latency_ms),
            (None, None) => format!("connected, {} ms", self.latency_ms),
        }
    }
}
