//! The PROXY protocol (HAProxy's spec, versions 1 and 2): the header a
//! balancer writes at the start of a TCP connection so that the next hop
//! learns the original client's address.
//!
//! [`parse`] is strict: anything the spec does not allow (a wrong length, an
//! address of the wrong family, a truncated TLV, a v1 line past 107 bytes)
//! is an error, never a guess. It is also incremental: fed the bytes
//! received so far, it answers "need more" until a whole header is there.
//!
//! ```
//! use bascule::l4::proxy_protocol::{self, Origin, ProxyHeader};
//!
//! let header = ProxyHeader::new(Origin::Known {
//!     source: "192.0.2.1:56324".parse().unwrap(),
//!     destination: "198.51.100.7:443".parse().unwrap(),
//! });
//! let line = header.encode_v1();
//! assert_eq!(line, b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n");
//! let (parsed, length) = proxy_protocol::parse(&line).unwrap().unwrap();
//! assert_eq!((parsed, length), (header, line.len()));
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Which PROXY protocol header to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// The human-readable line (`PROXY TCP4 ...\r\n`).
    V1,
    /// The binary header, with TLVs.
    V2,
}

/// The twelve bytes that open every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// What opens every v1 header.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line the spec allows, CRLF included.
const V1_MAX_LENGTH: usize = 107;
/// Longest v2 address-and-TLV block accepted: room for a UNIX address and a
/// few TLVs. The 16-bit length would allow 64 KiB per connection before a
/// byte of payload, which only an attacker needs.
const V2_MAX_BLOCK: usize = 1024;
/// TLV type carrying the host name the client asked for (SNI or Host).
pub const TLV_AUTHORITY: u8 = 0x02;

/// A parsed or to-be-sent PROXY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// Where the connection really came from.
    pub origin: Origin,
    /// v2 type-length-value extensions, in order (always empty for v1).
    pub tlvs: Vec<Tlv>,
}

/// The original connection's endpoints, as far as the sender knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client's address and the address it connected to.
    Known {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// Proxied, but the addresses cannot be expressed (v1 `UNKNOWN`, v2
    /// `AF_UNSPEC` or a UNIX socket): use the connection's own.
    Unknown,
    /// v2 `LOCAL`: the sender's own connection (a health check), not a
    /// proxied client.
    Local,
}

/// One v2 extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// `PP2_TYPE_*`.
    pub kind: u8,
    /// The value, at most 65,535 bytes.
    pub value: Vec<u8>,
}

/// Why bytes are not a valid PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Neither `PROXY ` nor the v2 signature.
    #[error("no PROXY protocol signature")]
    NoSignature,
    /// A v1 line without CRLF within 107 bytes.
    #[error("v1 header longer than 107 bytes")]
    V1TooLong,
    /// A v1 line that does not follow the grammar.
    #[error("malformed v1 header: {0}")]
    V1Malformed(&'static str),
    /// v2 version nibble other than 2.
    #[error("unsupported v2 version")]
    V2Version,
    /// v2 command other than LOCAL or PROXY.
    #[error("unknown v2 command")]
    V2Command,
    /// v2 address family or transport not valid for a TCP stream.
    #[error("v2 address family or protocol not valid for TCP")]
    V2Family,
    /// The v2 length cannot hold the addresses, or exceeds the limit.
    #[error("v2 length does not fit its addresses or exceeds 1024 bytes")]
    V2Length,
    /// A TLV overruns the header.
    #[error("v2 TLV overruns the header")]
    V2Tlv,
}

/// Whether bytes open with a PROXY header signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// A v1 or v2 signature is there.
    Present,
    /// These bytes are not a PROXY header.
    Absent,
    /// Too few bytes to tell.
    Undecided,
}

/// Parses a header at the start of `bytes`: `Ok(None)` when more bytes are
/// needed, else the header and how many bytes it took. What follows the
/// header is the client's payload.
pub fn parse(bytes: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    match signature(bytes) {
        Signature::Undecided => Ok(None),
        Signature::Absent => Err(ProxyHeaderError::NoSignature),
        Signature::Present if bytes.starts_with(V1_PREFIX) => parse_v1(bytes),
        Signature::Present => parse_v2(bytes),
    }
}

/// Whether `bytes` open with a v1 or v2 signature.
pub fn signature(bytes: &[u8]) -> Signature {
    let mut undecided = false;
    for expected in [V1_PREFIX, &V2_SIGNATURE[..]] {
        let seen = bytes.len().min(expected.len());
        if bytes.get(..seen) == expected.get(..seen) {
            if seen == expected.len() {
                return Signature::Present;
            }
            undecided = true;
        }
    }
    if undecided {
        Signature::Undecided
    } else {
        Signature::Absent
    }
}

fn parse_v1(bytes: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    let window = bytes.get(..V1_MAX_LENGTH).unwrap_or(bytes);
    let Some(end) = window.windows(2).position(|pair| pair == b"\r\n") else {
        return if bytes.len() >= V1_MAX_LENGTH {
            Err(ProxyHeaderError::V1TooLong)
        } else {
            Ok(None)
        };
    };
    let line = window
        .get(V1_PREFIX.len()..end)
        .ok_or(ProxyHeaderError::V1Malformed("empty"))?;
    let line = std::str::from_utf8(line).map_err(|_| ProxyHeaderError::V1Malformed("not ASCII"))?;
    let origin = v1_origin(line)?;
    Ok(Some((ProxyHeader::new(origin), end + 2)))
}

fn v1_origin(line: &str) -> Result<Origin, ProxyHeaderError> {
    // The spec lets a sender append anything after UNKNOWN.
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Ok(Origin::Unknown);
    }
    let fields: Vec<&str> = line.split(' ').collect();
    let [family, source, destination, source_port, destination_port] = fields[..] else {
        return Err(ProxyHeaderError::V1Malformed("expected 5 fields"));
    };
    let (source, destination): (IpAddr, IpAddr) = match family {
        "TCP4" => (
            v1_address::<Ipv4Addr>(source)?.into(),
            v1_address::<Ipv4Addr>(destination)?.into(),
        ),
        "TCP6" => (
            v1_address::<Ipv6Addr>(source)?.into(),
            v1_address::<Ipv6Addr>(destination)?.into(),
        ),
        _ => return Err(ProxyHeaderError::V1Malformed("unknown protocol")),
    };
    Ok(Origin::Known {
        source: SocketAddr::new(source, v1_port(source_port)?),
        destination: SocketAddr::new(destination, v1_port(destination_port)?),
    })
}

fn v1_address<A: std::str::FromStr>(text: &str) -> Result<A, ProxyHeaderError> {
    text.parse()
        .map_err(|_| ProxyHeaderError::V1Malformed("bad address"))
}

/// Decimal 0-65535 without sign or leading zeros.
fn v1_port(text: &str) -> Result<u16, ProxyHeaderError> {
    let canonical = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical
        .then(|| text.parse().ok())
        .flatten()
        .ok_or(ProxyHeaderError::V1Malformed("bad port"))
}

fn parse_v2(bytes: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    let Some(&[version_command, family, high, low]) = bytes.get(12..16) else {
        return Ok(None);
    };
    if version_command >> 4 != 2 {
        return Err(ProxyHeaderError::V2Version);
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyHeaderError::V2Command),
    };
    let length = usize::from(u16::from_be_bytes([high, low]));
    if length > V2_MAX_BLOCK {
        return Err(ProxyHeaderError::V2Length);
    }
    let Some(block) = bytes.get(16..16 + length) else {
        return Ok(None);
    };
    let total = 16 + length;
    if local {
        // The spec: use the real endpoints and discard the whole block.
        return Ok(Some((ProxyHeader::new(Origin::Local), total)));
    }
    let address_length = match family {
        0x00 => 0,
        0x11 => 12,
        0x21 => 36,
        0x31 => 216,
        _ => return Err(ProxyHeaderError::V2Family),
    };
    let (addresses, tlvs) = block
        .split_at_checked(address_length)
        .ok_or(ProxyHeaderError::V2Length)?;
    let origin = match (family, addresses) {
        (0x11, &[a, b, c, d, e, f, g, h, sp1, sp2, dp1, dp2]) => Origin::Known {
            source: SocketAddr::new(
                Ipv4Addr::new(a, b, c, d).into(),
                u16::from_be_bytes([sp1, sp2]),
            ),
            destination: SocketAddr::new(
                Ipv4Addr::new(e, f, g, h).into(),
                u16::from_be_bytes([dp1, dp2]),
            ),
        },
        (0x21, addresses) => v2_inet6(addresses)?,
        _ => Origin::Unknown,
    };
    Ok(Some((
        ProxyHeader {
            origin,
            tlvs: parse_tlvs(tlvs)?,
        },
        total,
    )))
}

fn v2_inet6(addresses: &[u8]) -> Result<Origin, ProxyHeaderError> {
    let ip = |range: std::ops::Range<usize>| -> Result<Ipv6Addr, ProxyHeaderError> {
        let octets: [u8; 16] = addresses
            .get(range)
            .and_then(|s| s.try_into().ok())
            .ok_or(ProxyHeaderError::V2Length)?;
        Ok(Ipv6Addr::from(octets))
    };
    let port = |at: usize| -> Result<u16, ProxyHeaderError> {
        match addresses.get(at..at + 2) {
            Some(&[high, low]) => Ok(u16::from_be_bytes([high, low])),
            _ => Err(ProxyHeaderError::V2Length),
        }
    };
    Ok(Origin::Known {
        source: SocketAddr::new(ip(0..16)?.into(), port(32)?),
        destination: SocketAddr::new(ip(16..32)?.into(), port(34)?),
    })
}

fn parse_tlvs(mut bytes: &[u8]) -> Result<Vec<Tlv>, ProxyHeaderError> {
    let mut tlvs = Vec::new();
    while let Some((&[kind, high, low], rest)) = bytes.split_first_chunk::<3>() {
        let length = usize::from(u16::from_be_bytes([high, low]));
        let (value, rest) = rest
            .split_at_checked(length)
            .ok_or(ProxyHeaderError::V2Tlv)?;
        tlvs.push(Tlv {
            kind,
            value: value.to_vec(),
        });
        bytes = rest;
    }
    if bytes.is_empty() {
        Ok(tlvs)
    } else {
        Err(ProxyHeaderError::V2Tlv)
    }
}

// === impl ProxyHeader ===

impl ProxyHeader {
    /// A header without TLVs.
    pub fn new(origin: Origin) -> Self {
        ProxyHeader {
            origin,
            tlvs: Vec::new(),
        }
    }

    /// The endpoints, when known and of one family: the protocol carries
    /// one family per header, so a mixed pair is sent as unknown.
    fn same_family(&self) -> Option<(SocketAddr, SocketAddr)> {
        let Origin::Known {
            source,
            destination,
        } = self.origin
        else {
            return None;
        };
        (source.is_ipv4() == destination.is_ipv4()).then_some((source, destination))
    }

    /// The v1 line. TLVs do not exist in v1 and are left out.
    pub fn encode_v1(&self) -> Vec<u8> {
        let line = match self.same_family() {
            Some((source, destination)) => format!(
                "PROXY {} {} {} {} {}\r\n",
                if source.is_ipv4() { "TCP4" } else { "TCP6" },
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            ),
            None => "PROXY UNKNOWN\r\n".to_owned(),
        };
        line.into_bytes()
    }

    /// The v2 header of a UDP datagram: the same, with the `DGRAM`
    /// transport (`0x12` for IPv4, `0x22` for IPv6).
    pub fn encode_v2_datagram(&self) -> Vec<u8> {
        let mut header = self.encode_v2();
        if let Some(family) = header.get_mut(13).filter(|family| **family != 0) {
            *family = (*family & 0xf0) | 0x02;
        }
        header
    }

    /// The v2 header, TLVs included. TLVs that would push the header past
    /// 1,024 bytes are left out rather than sent to be refused.
    pub fn encode_v2(&self) -> Vec<u8> {
        let mut header = Vec::with_capacity(64);
        header.extend_from_slice(&V2_SIGNATURE);
        let command = if self.origin == Origin::Local {
            0x20
        } else {
            0x21
        };
        header.push(command);
        let mut block = Vec::with_capacity(48);
        let family = match (self.origin, self.same_family()) {
            (Origin::Local, _) | (_, None) => 0x00,
            (_, Some((source, destination))) => {
                match (source.ip(), destination.ip()) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        block.extend_from_slice(&s.octets());
                        block.extend_from_slice(&d.octets());
                    }
                    (s, d) => {
                        block.extend_from_slice(&ipv6_octets(s));
                        block.extend_from_slice(&ipv6_octets(d));
                    }
                }
                block.extend_from_slice(&source.port().to_be_bytes());
                block.extend_from_slice(&destination.port().to_be_bytes());
                if source.is_ipv4() { 0x11 } else { 0x21 }
            }
        };
        header.push(family);
        for tlv in &self.tlvs {
            let Ok(length) = u16::try_from(tlv.value.len()) else {
                continue;
            };
            if block.len() + 3 + tlv.value.len() > V2_MAX_BLOCK {
                continue;
            }
            block.push(tlv.kind);
            block.extend_from_slice(&length.to_be_bytes());
            block.extend_from_slice(&tlv.value);
        }
        let length = u16::try_from(block.len()).unwrap_or(u16::MAX);
        header.extend_from_slice(&length.to_be_bytes());
        header.extend_from_slice(&block);
        header
    }
}

fn ipv6_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

// === impl ProxyHeaderError ===

impl ProxyHeaderError {
    /// A short label for metrics.
    pub fn kind(self) -> &'static str {
        match self {
            ProxyHeaderError::NoSignature => "no-signature",
            ProxyHeaderError::V1TooLong | ProxyHeaderError::V1Malformed(_) => "malformed-v1",
            ProxyHeaderError::V2Version
            | ProxyHeaderError::V2Command
            | ProxyHeaderError::V2Family
            | ProxyHeaderError::V2Length
            | ProxyHeaderError::V2Tlv => "malformed-v2",
        }
    }
}

/// The fuzz target's property, shared with the unit tests: parsing never
/// panics, and whatever parses re-encodes (in the same version) to a header
/// that parses to the same origin and TLVs.
#[cfg(any(test, fuzzing))]
pub fn check_round_trip(bytes: &[u8]) {
    let Ok(Some((header, length))) = parse(bytes) else {
        return;
    };
    assert!(length <= bytes.len());
    let again = if bytes.starts_with(V1_PREFIX) {
        header.encode_v1()
    } else {
        header.encode_v2()
    };
    let reparsed = parse(&again);
    let Ok(Some((reparsed, relength))) = reparsed else {
        unreachable!("{header:?} re-encoded to {again:?}, which parses as {reparsed:?}");
    };
    assert_eq!(relength, again.len());
    assert_eq!(reparsed.origin, header.origin);
    if header.origin != Origin::Local {
        assert_eq!(reparsed.tlvs, header.tlvs);
    }
}

#[cfg(test)]
mod tests;
