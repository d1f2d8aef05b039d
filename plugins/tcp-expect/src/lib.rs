//! `builtin:tcp-expect`: send a payload, expect bytes in the answer
//! (HAProxy's `tcp-check send` / `expect`). Redis: `send = "PING\r\n"`,
//! `expect = "+PONG"`; an SMTP banner: no `send`, `expect-regex = "^220 "`.
//!
//! Options:
//! - `send`: text written once connected (TOML escapes such as `\r\n`
//!   apply); absent: send nothing and read what the server says first.
//! - `expect`: the answer must contain this text; or `expect-regex`: the
//!   answer must match this regular expression (`regex-lite` syntax). One
//!   of them is required.
//! - `until`: the answer is complete once this text arrived (default
//!   `"\n"`, one line), so the probe does not wait for the server to close.

use bascule_guest_sdk::health::{HealthInterpreter, ProbeKind, ProbeNeeds, ProbeOutcome, Verdict};
use bascule_guest_sdk::{Error, Options};
use serde::Deserialize;

/// The payload and what the answer must hold.
#[derive(Debug, Clone)]
pub struct TcpExpect {
    send: Option<String>,
    expect: Expect,
    until: String,
}

#[derive(Debug, Clone)]
enum Expect {
    Contains(String),
    Matches(regex_lite::Regex),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    #[serde(default)]
    send: Option<String>,
    #[serde(default)]
    expect: Option<String>,
    #[serde(default)]
    expect_regex: Option<String>,
    #[serde(default)]
    until: Option<String>,
}

impl HealthInterpreter for TcpExpect {
    fn configure(options: &Options, kind: ProbeKind) -> Result<Self, Error> {
        if kind != ProbeKind::Tcp {
            return Err(Error::new("tcp-expect judges TCP probes"));
        }
        let raw: Raw = options.parse()?;
        let expect = match (raw.expect, raw.expect_regex) {
            (Some(text), None) if !text.is_empty() => Expect::Contains(text),
            (None, Some(pattern)) => Expect::Matches(
                regex_lite::Regex::new(&pattern)
                    .map_err(|e| Error::new(format!("`expect-regex`: {e}")))?,
            ),
            (Some(_), Some(_)) => {
                return Err(Error::new("give `expect` or `expect-regex`, not both"));
            }
            _ => return Err(Error::new("`expect` or `expect-regex` is required")),
        };
        let until = raw.until.unwrap_or_else(|| "\n".to_owned());
        if until.is_empty() {
            return Err(Error::new("`until` must not be empty"));
        }
        Ok(TcpExpect {
            send: raw.send,
            expect,
            until,
        })
    }

    fn needs(&self) -> ProbeNeeds {
        ProbeNeeds {
            body: true,
            send: self.send.clone().map(String::into_bytes),
            until: Some(self.until.clone().into_bytes()),
            ..ProbeNeeds::default()
        }
    }

    fn interpret(&mut self, outcome: &ProbeOutcome) -> Verdict {
        let answer = String::from_utf8_lossy(&outcome.body);
        let matched = match &self.expect {
            Expect::Contains(text) => answer.contains(text.as_str()),
            Expect::Matches(regex) => regex.is_match(&answer),
        };
        Verdict::of_expected_answer(outcome, matched)
    }
}

bascule_guest_sdk::export_health_interpreter!(TcpExpect);

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(options: &str) -> Result<TcpExpect, Error> {
        TcpExpect::configure(&Options::from_json(options), ProbeKind::Tcp)
    }

    #[test]
    fn redis_ping_pong() {
        let mut redis = configured(r#"{"send": "PING\r\n", "expect": "+PONG"}"#).unwrap();
        let needs = redis.needs();
        assert_eq!(needs.send.as_deref(), Some(&b"PING\r\n"[..]));
        assert_eq!(needs.until.as_deref(), Some(&b"\n"[..]));
        assert!(needs.body);
        assert!(matches!(
            redis.interpret(&ProbeOutcome::tcp("+PONG\r\n")),
            Verdict::Healthy { .. }
        ));
        assert_eq!(
            redis.interpret(&ProbeOutcome::tcp("-LOADING dataset\r\n")),
            Verdict::unhealthy("unexpected answer `-LOADING dataset`")
        );
    }

    #[test]
    fn smtp_banner_by_regex() {
        let mut smtp = configured(r#"{"expect-regex": "^220 "}"#).unwrap();
        assert_eq!(smtp.needs().send, None);
        assert!(matches!(
            smtp.interpret(&ProbeOutcome::tcp("220 mx.example ESMTP\r\n")),
            Verdict::Healthy { .. }
        ));
        assert!(matches!(
            smtp.interpret(&ProbeOutcome::tcp("421 busy\r\n")),
            Verdict::Unhealthy { .. }
        ));
    }

    #[test]
    fn a_timeout_without_the_answer_is_unhealthy() {
        let mut redis = configured(r#"{"send": "PING\r\n", "expect": "+PONG"}"#).unwrap();
        let outcome = ProbeOutcome::failed(ProbeKind::Tcp, "timed out after 2s");
        assert_eq!(
            redis.interpret(&outcome),
            Verdict::unhealthy("timed out after 2s")
        );
    }

    #[test]
    fn bad_options_are_refused() {
        for options in [
            "{}",
            r#"{"expect": "a", "expect-regex": "b"}"#,
            r#"{"expect-regex": "("}"#,
            r#"{"expect": "a", "until": ""}"#,
            r#"{"expect": "a", "sned": "x"}"#,
        ] {
            assert!(configured(options).is_err(), "{options}");
        }
        assert!(
            TcpExpect::configure(&Options::from_json(r#"{"expect": "a"}"#), ProbeKind::Http)
                .is_err()
        );
    }
}
