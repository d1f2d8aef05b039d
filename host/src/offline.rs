//! `bascule plugin run`: a plugin exercised without a proxy or backends.
//!
//! A balancer is shown backends (a TOML file) and requests (JSON lines)
//! and prints each decision and the final distribution; a simulated
//! latency and failure rate per backend, and with `--rate` requests that
//! overlap in simulated time, feed the stats least-loaded algorithms read
//! (latency, failures, requests in flight), so they can be tried as they
//! would behave. A header
//! filter prints its edits (or its answer) per request; a health
//! interpreter its verdict per probe outcome. `--bench` times the calls.
//! The plugin runs in the proxy's own sandbox, with the proxy's limits.

mod balancer;
mod filter;
mod health;
mod in_flight;
mod inputs;

pub use balancer::{BalancerInputs, BalancerRun, Decision, run_balancer};
pub use filter::{FilterOutcome, FilterRun, run_filter};
pub use health::{InterpreterRun, ProbeLine, run_interpreter};
pub use inputs::{RequestLine, Requests, SimulatedBackend, read_backends, read_jsonl};

use std::path::PathBuf;

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// An input file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An input file is malformed.
    #[error("{path}:{line}: {message}")]
    Input {
        /// The file.
        path: PathBuf,
        /// 1-based line (0: the whole file).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The plugin failed to load or configure.
    #[error(transparent)]
    Plugin(#[from] crate::plugin::Error),
}

/// What `--bench` measured of a plugin.
#[derive(Debug, Clone, Copy)]
pub struct Bench {
    /// The hook's name (`select`, `on-request`, `interpret`).
    pub hook: &'static str,
    /// Nanoseconds per call, on average.
    pub per_call_ns: f64,
    /// The instance's linear memory once the calls are done.
    pub instance_memory_bytes: usize,
}

/// Calls timed by `--bench`.
const BENCH_CALLS: u32 = 10_000;

// === impl Bench ===

impl Bench {
    /// Times `BENCH_CALLS` calls of `hook` by `call`, then asks `memory`
    /// for the instance's linear memory.
    fn measure(
        hook: &'static str,
        call: impl FnMut(),
        memory: impl FnOnce() -> Result<usize, crate::plugin::Error>,
    ) -> Result<Bench, OfflineError> {
        let per_call_ns = per_call_ns(BENCH_CALLS, call);
        Ok(Bench {
            hook,
            per_call_ns,
            instance_memory_bytes: memory()?,
        })
    }
}

impl std::fmt::Display for Bench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {:.0} ns per call; instance memory {} KiB",
            self.hook,
            self.per_call_ns,
            self.instance_memory_bytes / 1024
        )
    }
}

/// How long a call took on average over `calls`, in ns.
fn per_call_ns(calls: u32, run: impl FnMut()) -> f64 {
    let mut run = run;
    let started = quanta::Instant::now();
    for _ in 0..calls {
        run();
    }
    started.elapsed().as_secs_f64() * 1e9 / f64::from(calls.max(1))
}
