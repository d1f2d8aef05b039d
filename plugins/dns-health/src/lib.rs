//! `builtin:dns-health`: a DNS server's health from a real query over UDP,
//! judged by the answer's RCODE (RFC 1035 §4.1.1).
//!
//! The probe sends one standard query (recursion desired) for `name` and
//! `type`; the answer must be a response to that query (same id, QR set)
//! whose RCODE is one of `healthy-rcodes`. SERVFAIL (an upstream or
//! DNSSEC failure), REFUSED (a server that stopped serving the zone) and
//! no answer at all are unhealthy.
//!
//! Options:
//! - `name`: the name asked for (default `"."`, the root);
//! - `type`: `A`, `AAAA`, `NS` (the default), `SOA`, `MX`, `TXT`, `CNAME`
//!   or `PTR`;
//! - `healthy-rcodes`: default `["NOERROR", "NXDOMAIN"]` (the server
//!   answered; whether the name exists is not its health).

use bascule_guest_sdk::health::{HealthInterpreter, ProbeKind, ProbeNeeds, ProbeOutcome, Verdict};
use bascule_guest_sdk::{Error, Options};
use serde::Deserialize;

/// The query's id: probes use a fresh connected socket each, so the id
/// needs to match, not to be unpredictable.
const QUERY_ID: u16 = 0xba5c;

/// RCODE names, by value (RFC 1035, RFC 2136).
const RCODES: [&str; 11] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",
];

/// The query and the RCODEs that mean healthy.
#[derive(Debug, Clone)]
pub struct DnsHealth {
    query: Vec<u8>,
    healthy: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    record: Option<String>,
    #[serde(default)]
    healthy_rcodes: Option<Vec<String>>,
}

/// The query for `name` (`.`-separated, a trailing dot allowed) of type
/// `qtype`, class IN.
fn query(name: &str, qtype: u16) -> Result<Vec<u8>, Error> {
    let mut query = QUERY_ID.to_be_bytes().to_vec();
    // RD set; one question.
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let length = u8::try_from(label.len())
            .ok()
            .filter(|&length| length <= 63)
            .ok_or_else(|| {
                Error::new(format!("`name`: label `{label}` is longer than 63 bytes"))
            })?;
        query.push(length);
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    if query.len() > 12 + 255 {
        return Err(Error::new("`name` is longer than 255 bytes"));
    }
    query.extend_from_slice(&qtype.to_be_bytes());
    query.extend_from_slice(&1u16.to_be_bytes());
    Ok(query)
}

fn qtype(name: &str) -> Option<u16> {
    Some(match name.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        _ => return None,
    })
}

impl HealthInterpreter for DnsHealth {
    fn configure(options: &Options, kind: ProbeKind) -> Result<Self, Error> {
        if kind != ProbeKind::Udp {
            return Err(Error::new("dns judges UDP probes (`protocol = \"udp\"`)"));
        }
        let raw: Raw = options.parse()?;
        let record = raw.record.unwrap_or_else(|| "NS".to_owned());
        let qtype =
            qtype(&record).ok_or_else(|| Error::new(format!("unknown `type` `{record}`")))?;
        let query = query(raw.name.as_deref().unwrap_or("."), qtype)?;
        let names = raw
            .healthy_rcodes
            .unwrap_or_else(|| vec!["NOERROR".to_owned(), "NXDOMAIN".to_owned()]);
        let healthy = names
            .iter()
            .map(|name| {
                RCODES
                    .iter()
                    .position(|known| known.eq_ignore_ascii_case(name))
                    .and_then(|code| u8::try_from(code).ok())
                    .ok_or_else(|| {
                        Error::new(format!("unknown RCODE `{name}` in `healthy-rcodes`"))
                    })
            })
            .collect::<Result<Vec<u8>, Error>>()?;
        if healthy.is_empty() {
            return Err(Error::new("`healthy-rcodes` must not be empty"));
        }
        Ok(DnsHealth { query, healthy })
    }

    fn needs(&self) -> ProbeNeeds {
        ProbeNeeds {
            body: true,
            send: Some(self.query.clone()),
            ..ProbeNeeds::default()
        }
    }

    fn interpret(&mut self, outcome: &ProbeOutcome) -> Verdict {
        let (id, flags, codes) = match outcome.body.get(..4) {
            Some(&[id_high, id_low, flags, codes]) if outcome.body.len() >= 12 => {
                (u16::from_be_bytes([id_high, id_low]), flags, codes)
            }
            _ => {
                return Verdict::unhealthy(match &outcome.error {
                    Some(error) => error.clone(),
                    None => format!("a {}-byte answer is no DNS message", outcome.body.len()),
                });
            }
        };
        let is_response = flags & 0x80 != 0;
        if id != QUERY_ID || !is_response {
            return Verdict::unhealthy("the answer is not a response to the query");
        }
        let rcode = codes & 0x0f;
        let name = RCODES
            .get(usize::from(rcode))
            .copied()
            .unwrap_or("unknown RCODE");
        let latency_ms = outcome.latency_us / 1000;
        if self.healthy.contains(&rcode) {
            Verdict::healthy(format!("{name} in {latency_ms} ms"))
        } else {
            Verdict::unhealthy(name)
        }
    }
}

bascule_guest_sdk::export_health_interpreter!(DnsHealth);

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(options: &str) -> DnsHealth {
        DnsHealth::configure(&Options::from_json(options), ProbeKind::Udp).unwrap()
    }

    /// A response header to the probe's query with `rcode`.
    fn answer(id: u16, flags: u8, rcode: u8) -> ProbeOutcome {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&[flags, 0x80 | rcode, 0, 1, 0, 0, 0, 0, 0, 0]);
        ProbeOutcome::udp(body)
    }

    #[test]
    fn the_query_is_a_standard_one() {
        let dns = configured(r#"{"name": "shop.example.test.", "type": "a"}"#);
        let query = dns.needs().send.unwrap();
        assert_eq!(&query[..4], &[0xba, 0x5c, 0x01, 0x00]);
        assert_eq!(
            &query[12..],
            b"\x04shop\x07example\x04test\x00\x00\x01\x00\x01"
        );
        let root = configured("{}").needs().send.unwrap();
        assert_eq!(&root[12..], b"\x00\x00\x02\x00\x01");
    }

    #[test]
    fn judged_by_rcode() {
        let mut dns = configured("{}");
        assert!(matches!(
            dns.interpret(&answer(QUERY_ID, 0x81, 0)),
            Verdict::Healthy { .. }
        ));
        assert!(matches!(
            dns.interpret(&answer(QUERY_ID, 0x81, 3)),
            Verdict::Healthy { .. }
        ));
        assert_eq!(
            dns.interpret(&answer(QUERY_ID, 0x81, 2)),
            Verdict::unhealthy("SERVFAIL")
        );
        assert_eq!(
            dns.interpret(&answer(QUERY_ID, 0x81, 5)),
            Verdict::unhealthy("REFUSED")
        );
        let mut strict = configured(r#"{"healthy-rcodes": ["NOERROR"]}"#);
        assert_eq!(
            strict.interpret(&answer(QUERY_ID, 0x81, 3)),
            Verdict::unhealthy("NXDOMAIN")
        );
    }

    #[test]
    fn anything_but_a_response_to_the_query_is_unhealthy() {
        let mut dns = configured("{}");
        assert!(matches!(
            dns.interpret(&answer(7, 0x81, 0)),
            Verdict::Unhealthy { .. }
        ));
        assert!(matches!(
            dns.interpret(&answer(QUERY_ID, 0x01, 0)),
            Verdict::Unhealthy { .. }
        ));
        assert!(matches!(
            dns.interpret(&ProbeOutcome::udp("hi")),
            Verdict::Unhealthy { .. }
        ));
        let silent = ProbeOutcome::failed(ProbeKind::Udp, "timed out after 2s");
        assert_eq!(
            dns.interpret(&silent),
            Verdict::unhealthy("timed out after 2s")
        );
    }

    #[test]
    fn bad_options_are_refused() {
        for options in [
            r#"{"type": "BOGUS"}"#,
            r#"{"healthy-rcodes": []}"#,
            r#"{"healthy-rcodes": ["FINE"]}"#,
            r#"{"name": "a-label-far-longer-than-sixty-three-bytes-which-dns-does-not-allow-at-all.test"}"#,
            r#"{"nmae": "x"}"#,
        ] {
            assert!(
                DnsHealth::configure(&Options::from_json(options), ProbeKind::Udp).is_err(),
                "{options}"
            );
        }
        assert!(DnsHealth::configure(&Options::from_json("{}"), ProbeKind::Tcp).is_err());
    }
}
