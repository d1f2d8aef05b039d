//! Active health checking: one prober per backend of every pool with a
//! `[pools.NAME.health]` table, owned by the supervisor (so one per
//! process, not per worker), each running one probe at a time at the
//! pool's jittered interval, off the request path.
//!
//! ```text
//! Prober ── ProbeSpec::run ──▶ ProbeOutcome ── Interpreter::interpret ──▶ Verdict
//!    │                                            (a WASM plugin)
//!    └── Tracker (thresholds) ──▶ BackendStats::set_checked ──▶ BackendPool::health_changed
//! ```
//!
//! Passive health ([`observe`]) ejects backends on consecutive failures of
//! live traffic; the ejection ends on its own ([`end_due_ejections`], run
//! by the supervisor) or when a probe passes.

mod interpreter;
mod passive;
mod probe;
mod prober;
mod tracker;

pub use interpreter::{InterpretError, Interpreter, ProbeKind, ProbeNeeds, ProbeOutcome, Verdict};
pub use passive::{end_due_ejections, observe};
pub use probe::ProbeSpec;
pub use prober::{HealthCheck, probe_backend, report};
pub use tracker::{Decided, Tracker};
