//! `builtin:tcp-connect`: a probe that connected is healthy. The default
//! interpreter of TCP pools (NGINX's and HAProxy's plain `check`).

use bascule_guest_sdk::health::{HealthInterpreter, ProbeKind, ProbeOutcome, Verdict};
use bascule_guest_sdk::{Error, Options};

/// Healthy on connect; the reason carries the connect time.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnect;

impl HealthInterpreter for TcpConnect {
    fn configure(options: &Options, kind: ProbeKind) -> Result<Self, Error> {
        options.expect_none()?;
        if kind == ProbeKind::Udp {
            return Err(Error::new("tcp-connect cannot judge UDP probes"));
        }
        Ok(TcpConnect)
    }

    fn interpret(&mut self, outcome: &ProbeOutcome) -> Verdict {
        match &outcome.error {
            None => Verdict::healthy(format!("connected in {} µs", outcome.latency_us)),
            Some(error) => Verdict::unhealthy(error.clone()),
        }
    }
}

bascule_guest_sdk::export_health_interpreter!(TcpConnect);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_is_healthy_and_errors_are_not() {
        let mut interpreter =
            TcpConnect::configure(&Options::from_json("{}"), ProbeKind::Tcp).unwrap();
        assert!(matches!(
            interpreter.interpret(&ProbeOutcome::tcp("")),
            Verdict::Healthy { .. }
        ));
        assert_eq!(
            interpreter.interpret(&ProbeOutcome::failed(ProbeKind::Tcp, "connection refused")),
            Verdict::unhealthy("connection refused")
        );
    }

    #[test]
    fn takes_no_options() {
        assert!(
            TcpConnect::configure(&Options::from_json(r#"{"send":"x"}"#), ProbeKind::Tcp).is_err()
        );
    }
}
