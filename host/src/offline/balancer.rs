//! A balancer run: each request's decision against simulated backends,
//! and the distribution that came out.

use std::path::Path;
use std::sync::Arc;

use super::in_flight::InFlight;
use super::inputs::{Requests, SimulatedBackend};
use super::{Bench, OfflineError};
use crate::config::{PluginRef, SandboxConfig};
use crate::plugin::{PluginRuntime, WasmBalancer};
use crate::upstream::{
    Backend, BackendSelection, BackendSet, BackendStats, Protocol, fixed_endpoints,
};

/// What the balancer decided for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `METHOD PATH`.
    pub request: String,
    /// The candidates, best first, by backend id; empty when the plugin
    /// failed or chose none.
    pub candidates: Vec<String>,
    /// The backend that served it after simulated failures, if any.
    pub served_by: Option<String>,
    /// Simulated failures before it was served.
    pub failed: Vec<String>,
    /// The plugin's error, when it failed.
    pub error: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct BalancerRun {
    /// One per request, in order.
    pub decisions: Vec<Decision>,
    /// Requests served per backend, in backend order.
    pub distribution: Vec<(String, usize)>,
    /// The most requests each backend had in flight at once, in backend
    /// order.
    pub peak_in_flight: Vec<u32>,
    /// With `--bench`: the cost of `select` and the instance's memory.
    pub bench: Option<Bench>,
}

/// What a balancer run is given.
#[derive(Debug)]
pub struct BalancerInputs<'a> {
    /// The plugin's options, as JSON.
    pub options: String,
    /// What it serves.
    pub protocol: Protocol,
    /// The simulated backends.
    pub backends: &'a [SimulatedBackend],
    /// The requests, in arrival order.
    pub requests: &'a Requests,
    /// Arrivals per second, so requests overlap for their backends'
    /// latency; `None`: each ends before the next arrives.
    pub rate: Option<f64>,
    /// Also time `select`.
    pub bench: bool,
}

/// Runs the balancer in `file` over the backends for each request.
pub fn run_balancer(
    runtime: &PluginRuntime,
    file: &Path,
    inputs: BalancerInputs<'_>,
) -> Result<BalancerRun, OfflineError> {
    let BalancerInputs {
        options,
        protocol,
        backends,
        requests,
        rate,
        bench,
    } = inputs;
    let set = Arc::new(BackendSet::new(
        backends
            .iter()
            .map(|backend| {
                let address = backend
                    .address
                    .parse()
                    .unwrap_or_else(|_| std::net::SocketAddr::from(([192, 0, 2, 1], 80)));
                Backend::new(
                    backend.id.clone(),
                    fixed_endpoints(address),
                    backend.weight,
                    backend.metadata.clone(),
                    Arc::new(BackendStats::default()),
                )
            })
            .collect(),
    ));
    let compiled = runtime.compile_balancer(&PluginRef::File(file.to_owned()))?;
    let balancer = WasmBalancer::new(
        "offline",
        compiled,
        options,
        vec![protocol],
        SandboxConfig::default(),
        &set,
    )?;
    let mut failures = Failures::default();
    let mut in_flight = InFlight::new(rate, set.len());
    let mut served = vec![0usize; set.len()];
    let mut decisions = Vec::with_capacity(requests.len());
    let views = requests.views(protocol)?;
    for (seq, (line, view)) in (0u64..).zip(&views) {
        in_flight.arrive(seq);
        let mut decision = Decision {
            request: line.label(),
            candidates: Vec::new(),
            served_by: None,
            failed: Vec::new(),
            error: None,
        };
        match balancer.select(&set, view) {
            Err(error) => decision.error = Some(crate::error_chain(&error)),
            Ok(selection) => {
                let chosen: Vec<usize> = selection
                    .candidates
                    .iter()
                    .filter_map(|&index| usize::try_from(index).ok())
                    .filter(|&index| index < set.len())
                    .collect();
                decision.candidates = chosen.iter().filter_map(|&i| id(&set, i)).collect();
                for &index in &chosen {
                    let (Some(backend), Some(model)) = (set.get(index), backends.get(index)) else {
                        continue;
                    };
                    if failures.next_fails(model.failure_rate) {
                        backend.stats.record_failure();
                        decision.failed.push(backend.id.clone());
                        continue;
                    }
                    in_flight.serve(seq, index, &backend.stats, model.latency);
                    if let Some(count) = served.get_mut(index) {
                        *count += 1;
                    }
                    decision.served_by = Some(backend.id.clone());
                    break;
                }
            }
        }
        decisions.push(decision);
    }
    let bench = match (bench, views.first()) {
        (true, Some((_, view))) => Some(Bench::measure(
            "select",
            || {
                let _ = balancer.select(&set, view);
            },
            || balancer.instance_memory_bytes(),
        )?),
        _ => None,
    };
    Ok(BalancerRun {
        decisions,
        distribution: set
            .backends
            .iter()
            .map(|backend| backend.id.clone())
            .zip(served)
            .collect(),
        peak_in_flight: in_flight.peaks().to_vec(),
        bench,
    })
}

fn id(set: &BackendSet, index: usize) -> Option<String> {
    set.get(index).map(|backend| backend.id.clone())
}

/// A repeatable sequence for simulated failures (xorshift64, fixed seed):
/// the same inputs fail the same requests every run.
struct Failures(u64);

impl Default for Failures {
    fn default() -> Self {
        Failures(0x2545_f491_4f6c_dd1d)
    }
}

impl Failures {
    fn next_fails(&mut self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        #[allow(clippy::cast_precision_loss)]
        let draw = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        draw < rate
    }
}
