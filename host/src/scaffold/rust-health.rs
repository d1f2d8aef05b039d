//! `{name}`: a Bascule health interpreter. It starts healthy on 2xx and
//! unhealthy otherwise; change `interpret`. Build with `./build.sh`, try it
//! offline with `bascule plugin run {file}.wasm --probes probes.jsonl`,
//! then name it: `[pools.NAME.health] interpreter = "path/to/{file}.wasm"`.

use bascule_guest_sdk::health::{HealthInterpreter, ProbeKind, ProbeOutcome, Verdict};
use bascule_guest_sdk::{Error, Options};

/// The plugin's state, one per instance.
#[derive(Debug, Default)]
pub struct Plugin;

impl HealthInterpreter for Plugin {
    fn configure(options: &Options, _kind: ProbeKind) -> Result<Self, Error> {
        options.expect_none()?;
        Ok(Plugin)
    }

    fn interpret(&mut self, outcome: &ProbeOutcome) -> Verdict {
        match (outcome.status, &outcome.error) {
            (_, Some(error)) => Verdict::unhealthy(error.clone()),
            (Some(status), None) if (200..300).contains(&status) => Verdict::healthy(format!("{status}")),
            (Some(status), None) => Verdict::unhealthy(format!("status {status}")),
            (None, None) => Verdict::healthy("connected"),
        }
    }
}

bascule_guest_sdk::export_health_interpreter!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hundreds_are_healthy() {
        let mut plugin = Plugin::configure(&Options::from_json("{}"), ProbeKind::Http).unwrap();
        assert!(matches!(plugin.interpret(&ProbeOutcome::http(200)), Verdict::Healthy { .. }));
        assert!(matches!(plugin.interpret(&ProbeOutcome::http(503)), Verdict::Unhealthy { .. }));
    }
}
