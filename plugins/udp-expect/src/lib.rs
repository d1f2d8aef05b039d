//! `builtin:udp-expect`: send a datagram, expect bytes in the answer
//! datagram (HAProxy's `tcp-check` idea for UDP, which HAProxy itself
//! cannot probe). A game server's status query, an NTP or a custom
//! protocol's ping.
//!
//! Options:
//! - `send` (text, TOML escapes such as `\n` apply) or `send-hex` (bytes
//!   as hex, `"ffffffff54"`): the probe datagram. One is required: a UDP
//!   server says nothing unasked.
//! - `expect` (text the answer must contain), `expect-prefix` (text it must
//!   start with) or `expect-hex` (bytes it must start with). One is
//!   required.

use bascule_guest_sdk::health::{HealthInterpreter, ProbeKind, ProbeNeeds, ProbeOutcome, Verdict};
use bascule_guest_sdk::{Error, Options};
use serde::Deserialize;

/// The probe datagram and what the answer must hold.
#[derive(Debug, Clone)]
pub struct UdpExpect {
    send: Vec<u8>,
    expect: Expect,
}

#[derive(Debug, Clone)]
enum Expect {
    Contains(Vec<u8>),
    Prefix(Vec<u8>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    #[serde(default)]
    send: Option<String>,
    #[serde(default)]
    send_hex: Option<String>,
    #[serde(default)]
    expect: Option<String>,
    #[serde(default)]
    expect_prefix: Option<String>,
    #[serde(default)]
    expect_hex: Option<String>,
}

/// `text` as bytes from hex digits (spaces allowed between bytes).
fn hex(key: &str, text: &str) -> Result<Vec<u8>, Error> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return Err(Error::new(format!(
            "`{key}` must be an even number of hex digits"
        )));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| Error::new(format!("`{key}` is not hex: `{text}`")))
        })
        .collect()
}

impl HealthInterpreter for UdpExpect {
    fn configure(options: &Options, kind: ProbeKind) -> Result<Self, Error> {
        if kind != ProbeKind::Udp {
            return Err(Error::new(
                "udp-expect judges UDP probes (`protocol = \"udp\"`)",
            ));
        }
        let raw: Raw = options.parse()?;
        let send = match (raw.send, raw.send_hex) {
            (Some(text), None) if !text.is_empty() => text.into_bytes(),
            (None, Some(digits)) => hex("send-hex", &digits)?,
            (Some(_), Some(_)) => return Err(Error::new("give `send` or `send-hex`, not both")),
            _ => {
                return Err(Error::new(
                    "`send` or `send-hex` is required: a UDP server says nothing unasked",
                ));
            }
        };
        let expect = match (raw.expect, raw.expect_prefix, raw.expect_hex) {
            (Some(text), None, None) if !text.is_empty() => Expect::Contains(text.into_bytes()),
            (None, Some(text), None) if !text.is_empty() => Expect::Prefix(text.into_bytes()),
            (None, None, Some(digits)) => Expect::Prefix(hex("expect-hex", &digits)?),
            (None, None, None) => {
                return Err(Error::new(
                    "`expect`, `expect-prefix` or `expect-hex` is required",
                ));
            }
            _ => {
                return Err(Error::new(
                    "give one of `expect`, `expect-prefix` and `expect-hex`",
                ));
            }
        };
        Ok(UdpExpect { send, expect })
    }

    fn needs(&self) -> ProbeNeeds {
        ProbeNeeds {
            body: true,
            send: Some(self.send.clone()),
            ..ProbeNeeds::default()
        }
    }

    fn interpret(&mut self, outcome: &ProbeOutcome) -> Verdict {
        let answer = &outcome.body;
        let matched = match &self.expect {
            Expect::Contains(wanted) => {
                !wanted.is_empty() && answer.windows(wanted.len()).any(|window| window == wanted)
            }
            Expect::Prefix(wanted) => answer.starts_with(wanted),
        };
        Verdict::of_expected_answer(outcome, matched)
    }
}

bascule_guest_sdk::export_health_interpreter!(UdpExpect);

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(options: &str) -> Result<UdpExpect, Error> {
        UdpExpect::configure(&Options::from_json(options), ProbeKind::Udp)
    }

    #[test]
    fn text_in_the_answer() {
        let mut ping = configured(r#"{"send": "ping\n", "expect": "pong"}"#).unwrap();
        assert_eq!(ping.needs().send.as_deref(), Some(&b"ping\n"[..]));
        assert!(matches!(
            ping.interpret(&ProbeOutcome::udp("a pong\n")),
            Verdict::Healthy { .. }
        ));
        assert_eq!(
            ping.interpret(&ProbeOutcome::udp("busy")),
            Verdict::unhealthy("unexpected answer `busy`")
        );
    }

    #[test]
    fn bytes_as_hex_prefix() {
        // A Source engine A2S_INFO query and its answer's header.
        let mut a2s = configured(
            r#"{"send-hex": "ff ff ff ff 54 53 6f 75 72 63 65", "expect-hex": "ffffffff49"}"#,
        )
        .unwrap();
        assert_eq!(a2s.needs().send.as_deref().map(<[u8]>::len), Some(11));
        assert!(matches!(
            a2s.interpret(&ProbeOutcome::udp(b"\xff\xff\xff\xff\x49\x11game".to_vec())),
            Verdict::Healthy { .. }
        ));
        assert!(matches!(
            a2s.interpret(&ProbeOutcome::udp(b"\xff\xff\xff\xff\x41".to_vec())),
            Verdict::Unhealthy { .. }
        ));
    }

    #[test]
    fn no_answer_is_unhealthy() {
        let mut ping = configured(r#"{"send": "ping", "expect-prefix": "pong"}"#).unwrap();
        let outcome = ProbeOutcome::failed(ProbeKind::Udp, "timed out after 2s");
        assert_eq!(
            ping.interpret(&outcome),
            Verdict::unhealthy("timed out after 2s")
        );
    }

    #[test]
    fn bad_options_are_refused() {
        for options in [
            "{}",
            r#"{"expect": "a"}"#,
            r#"{"send": "a"}"#,
            r#"{"send": "a", "send-hex": "00", "expect": "b"}"#,
            r#"{"send-hex": "0", "expect": "b"}"#,
            r#"{"send-hex": "zz", "expect": "b"}"#,
            r#"{"send": "a", "expect": "b", "expect-prefix": "c"}"#,
        ] {
            assert!(configured(options).is_err(), "{options}");
        }
        assert!(
            UdpExpect::configure(
                &Options::from_json(r#"{"send": "a", "expect": "b"}"#),
                ProbeKind::Tcp
            )
            .is_err()
        );
    }
}
