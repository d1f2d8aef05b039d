//! Test health interpreter, loaded from a path as a user's would be: the
//! backend's health is the value of its `x-health` response header
//! (`ok`, `degraded`, anything else unhealthy). `x-health: trap` makes the
//! interpreter trap, to test the host's handling of a failing interpreter.

use bascule_guest_sdk::health::{HealthInterpreter, ProbeKind, ProbeNeeds, ProbeOutcome, Verdict};
use bascule_guest_sdk::{Error, Options};

/// Reads `x-health`.
pub struct HealthHeader;

impl HealthInterpreter for HealthHeader {
    fn configure(options: &Options, _kind: ProbeKind) -> Result<Self, Error> {
        options.expect_none()?;
        Ok(HealthHeader)
    }

    fn needs(&self) -> ProbeNeeds {
        ProbeNeeds::default().header("X-Health")
    }

    #[allow(clippy::panic)]
    fn interpret(&mut self, outcome: &ProbeOutcome) -> Verdict {
        match outcome.header("x-health") {
            Some("ok") => Verdict::healthy("x-health: ok"),
            Some("degraded") => Verdict::degraded(0.5, "x-health: degraded"),
            Some("trap") => panic!("asked to trap"),
            Some(other) => Verdict::unhealthy(format!("x-health: {other}")),
            None => Verdict::unhealthy("no x-health header"),
        }
    }
}

bascule_guest_sdk::export_health_interpreter!(HealthHeader);
