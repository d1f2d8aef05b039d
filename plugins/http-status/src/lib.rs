//! `builtin:http-status`: a probe is healthy when its HTTP status is one of
//! the expected codes (ALB's `Matcher: HttpCode`), by default 200-399.
//!
//! Options: `codes`, in ALB's syntax (`"200"`, `"200,202"`, `"200-299"`,
//! or a mix such as `"200-204,301"`), or a list of codes and ranges. A
//! transport error (refused, timed out, malformed answer) is unhealthy.

use bascule_guest_sdk::health::{HealthInterpreter, ProbeKind, ProbeOutcome, Verdict};
use bascule_guest_sdk::{Error, Options};
use serde::Deserialize;

/// The expected codes, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpStatus {
    expected: Vec<(u16, u16)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    codes: Option<Codes>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Codes {
    Text(String),
    List(Vec<Code>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Code {
    Number(u16),
    Text(String),
}

impl HttpStatus {
    /// Parses ALB's matcher syntax: codes and `low-high` ranges separated
    /// by commas.
    pub fn parse(codes: &str) -> Result<Self, Error> {
        let mut expected = Vec::new();
        for part in codes.split(',').map(str::trim) {
            let (low, high) = part.split_once('-').unwrap_or((part, part));
            let code = |text: &str| {
                text.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|code| (100..=599).contains(code))
                    .ok_or_else(|| {
                        Error::new(format!(
                            "`codes`: `{part}` is not an HTTP status or range of them"
                        ))
                    })
            };
            let (low, high) = (code(low)?, code(high)?);
            if low > high {
                return Err(Error::new(format!("`codes`: range `{part}` is empty")));
            }
            expected.push((low, high));
        }
        Ok(HttpStatus { expected })
    }

    fn expects(&self, status: u16) -> bool {
        self.expected
            .iter()
            .any(|&(low, high)| (low..=high).contains(&status))
    }
}

impl HealthInterpreter for HttpStatus {
    fn configure(options: &Options, kind: ProbeKind) -> Result<Self, Error> {
        if kind != ProbeKind::Http {
            return Err(Error::new(
                "http-status judges HTTP probes; use builtin:tcp-connect or builtin:tcp-expect for TCP pools",
            ));
        }
        let raw: Raw = options.parse()?;
        let codes = match raw.codes {
            None => "200-399".to_owned(),
            Some(Codes::Text(text)) => text,
            Some(Codes::List(list)) => list
                .into_iter()
                .map(|code| match code {
                    Code::Number(number) => number.to_string(),
                    Code::Text(text) => text,
                })
                .collect::<Vec<_>>()
                .join(","),
        };
        HttpStatus::parse(&codes)
    }

    fn interpret(&mut self, outcome: &ProbeOutcome) -> Verdict {
        match (outcome.status, &outcome.error) {
            (Some(status), _) if self.expects(status) => {
                Verdict::healthy(format!("status {status}"))
            }
            (Some(status), _) => Verdict::unhealthy(format!("status {status} is not expected")),
            (None, Some(error)) => Verdict::unhealthy(error.clone()),
            (None, None) => Verdict::unhealthy("no response"),
        }
    }
}

bascule_guest_sdk::export_health_interpreter!(HttpStatus);

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(options: &str) -> Result<HttpStatus, Error> {
        HttpStatus::configure(&Options::from_json(options), ProbeKind::Http)
    }

    fn healthy(interpreter: &mut HttpStatus, outcome: &ProbeOutcome) -> bool {
        matches!(interpreter.interpret(outcome), Verdict::Healthy { .. })
    }

    #[test]
    fn default_is_200_to_399() {
        let mut interpreter = configured("{}").unwrap();
        for (status, expected) in [
            (199, false),
            (200, true),
            (302, true),
            (399, true),
            (400, false),
            (503, false),
        ] {
            assert_eq!(
                healthy(&mut interpreter, &ProbeOutcome::http(status)),
                expected,
                "{status}"
            );
        }
    }

    #[test]
    fn alb_matcher_syntax_and_lists() {
        let mut interpreter = configured(r#"{"codes": "200,202-204"}"#).unwrap();
        let picked: Vec<u16> = (199..=205)
            .filter(|&status| healthy(&mut interpreter, &ProbeOutcome::http(status)))
            .collect();
        assert_eq!(picked, [200, 202, 203, 204]);
        let mut listed = configured(r#"{"codes": [200, "500-599"]}"#).unwrap();
        assert!(healthy(&mut listed, &ProbeOutcome::http(503)));
        assert!(!healthy(&mut listed, &ProbeOutcome::http(404)));
    }

    #[test]
    fn bad_options_and_tcp_pools_are_refused() {
        for options in [
            r#"{"codes": "2xx"}"#,
            r#"{"codes": "300-200"}"#,
            r#"{"codes": "99"}"#,
            r#"{"code": "200"}"#,
        ] {
            assert!(configured(options).is_err(), "{options}");
        }
        assert!(HttpStatus::configure(&Options::from_json("{}"), ProbeKind::Tcp).is_err());
    }

    #[test]
    fn transport_errors_are_unhealthy_with_their_reason() {
        let mut interpreter = configured("{}").unwrap();
        let verdict =
            interpreter.interpret(&ProbeOutcome::failed(ProbeKind::Http, "connection refused"));
        assert_eq!(verdict, Verdict::unhealthy("connection refused"));
    }
}
