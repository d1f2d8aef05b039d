use super::*;

fn known(source: &str, destination: &str) -> Origin {
    Origin::Known {
        source: source.parse().unwrap(),
        destination: destination.parse().unwrap(),
    }
}

fn parsed(bytes: &[u8]) -> (ProxyHeader, usize) {
    parse(bytes).unwrap().unwrap()
}

#[test]
fn v1_tcp4_tcp6_and_unknown() {
    let (header, length) = parsed(b"PROXY TCP4 10.1.2.3 10.0.0.1 40000 443\r\npayload");
    assert_eq!(header.origin, known("10.1.2.3:40000", "10.0.0.1:443"));
    assert_eq!(length, 40);
    let (header, _) = parsed(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n");
    assert_eq!(header.origin, known("[2001:db8::1]:1", "[::1]:65535"));
    assert_eq!(parsed(b"PROXY UNKNOWN\r\n").0.origin, Origin::Unknown);
    // Anything may follow UNKNOWN up to the CRLF.
    assert_eq!(
        parsed(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").0.origin,
        Origin::Unknown
    );
}

#[test]
fn v1_rejects_what_the_grammar_does_not_allow() {
    for bad in [
        &b"PROXY TCP4 10.1.2.3 10.0.0.1 40000\r\n"[..],
        b"PROXY TCP4 ::1 10.0.0.1 1 2\r\n",
        b"PROXY TCP6 10.1.2.3 ::1 1 2\r\n",
        b"PROXY TCP4 10.1.2.3 10.0.0.1 65536 2\r\n",
        b"PROXY TCP4 10.1.2.3 10.0.0.1 080 2\r\n",
        b"PROXY TCP4 10.1.2.3 10.0.0.1 +80 2\r\n",
        b"PROXY TCP4  10.1.2.3 10.0.0.1 1 2\r\n",
        b"PROXY TCP4 10.1.2.256 10.0.0.1 1 2\r\n",
        b"PROXY UDP4 10.1.2.3 10.0.0.1 1 2\r\n",
        b"PROXY \r\n",
    ] {
        assert!(
            matches!(parse(bad), Err(ProxyHeaderError::V1Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = [&b"PROXY UNKNOWN "[..], &[b'x'; 100]].concat();
    assert_eq!(parse(&long), Err(ProxyHeaderError::V1TooLong));
}

#[test]
fn incomplete_headers_ask_for_more() {
    let line = b"PROXY TCP4 10.1.2.3 10.0.0.1 40000 443\r\n";
    let v2 = ProxyHeader::new(known("10.1.2.3:1", "10.0.0.1:2")).encode_v2();
    for whole in [&line[..], &v2] {
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse(whole).unwrap().is_some());
    }
}

#[test]
fn signature_detection() {
    assert_eq!(signature(b""), Signature::Undecided);
    assert_eq!(signature(b"PRO"), Signature::Undecided);
    assert_eq!(signature(b"\r\n\r\n"), Signature::Undecided);
    assert_eq!(signature(b"PROXY "), Signature::Present);
    assert_eq!(signature(&V2_SIGNATURE), Signature::Present);
    assert_eq!(signature(b"GET / HTTP/1.1"), Signature::Absent);
    assert_eq!(signature(b"\x16\x03\x01"), Signature::Absent);
    assert_eq!(parse(b"SSH-2.0"), Err(ProxyHeaderError::NoSignature));
}

#[test]
fn v2_round_trips_addresses_and_tlvs() {
    for origin in [
        known("192.0.2.1:56324", "198.51.100.7:443"),
        known("[2001:db8::7]:1", "[2001:db8::8]:2"),
        Origin::Unknown,
    ] {
        let header = ProxyHeader {
            origin,
            tlvs: vec![
                Tlv {
                    kind: TLV_AUTHORITY,
                    value: b"example.com".to_vec(),
                },
                Tlv {
                    kind: 0x04,
                    value: Vec::new(),
                },
            ],
        };
        let bytes = header.encode_v2();
        assert_eq!(parsed(&bytes), (header, bytes.len()));
    }
}

#[test]
fn v2_local_discards_the_block() {
    let mut bytes = V2_SIGNATURE.to_vec();
    bytes.extend_from_slice(&[0x20, 0x11, 0x00, 0x03, 1, 2, 3]);
    assert_eq!(parsed(&bytes), (ProxyHeader::new(Origin::Local), 19));
}

#[test]
fn mixed_families_are_sent_as_unknown() {
    let mixed = ProxyHeader::new(known("10.0.0.1:5", "[2001:db8::1]:6"));
    assert_eq!(mixed.encode_v1(), b"PROXY UNKNOWN\r\n");
    assert_eq!(&mixed.encode_v2()[13..16], &[0x00, 0x00, 0x00]);
}

#[test]
fn v2_rejects_bad_fields() {
    let good = ProxyHeader::new(known("10.1.2.3:1", "10.0.0.1:2")).encode_v2();
    let with = |at: usize, byte: u8| {
        let mut bytes = good.clone();
        bytes[at] = byte;
        parse(&bytes)
    };
    assert_eq!(with(12, 0x11), Err(ProxyHeaderError::V2Version));
    assert_eq!(with(12, 0x22), Err(ProxyHeaderError::V2Command));
    assert_eq!(with(13, 0x12), Err(ProxyHeaderError::V2Family)); // UDP
    assert_eq!(with(13, 0x41), Err(ProxyHeaderError::V2Family));
    assert_eq!(with(13, 0x21), Err(ProxyHeaderError::V2Length)); // 12 < 36
    assert_eq!(with(15, 11), Err(ProxyHeaderError::V2Length));
    // Length 13: one stray byte where a TLV should start.
    let mut stray = good.clone();
    stray[15] = 13;
    stray.push(0x01);
    assert_eq!(parse(&stray), Err(ProxyHeaderError::V2Tlv));
    // A TLV that claims more than the header holds.
    let mut overrun = good.clone();
    overrun[15] = 12 + 4;
    overrun.extend_from_slice(&[0x02, 0x00, 0x09, b'x']);
    assert_eq!(parse(&overrun), Err(ProxyHeaderError::V2Tlv));
    let mut huge = good.clone();
    huge[14] = 0x04;
    huge[15] = 0x01;
    assert_eq!(parse(&huge), Err(ProxyHeaderError::V2Length));
}

/// The fuzz target's property, run over mutated valid headers with a fixed
/// seed: parsing never panics, and whatever parses re-encodes to a header
/// that parses to the same thing.
#[test]
fn mutated_headers_never_panic_and_round_trip() {
    let seeds = [
        ProxyHeader::new(known("10.1.2.3:1", "10.0.0.1:2")).encode_v1(),
        ProxyHeader::new(known("[::1]:1", "[::2]:2")).encode_v1(),
        ProxyHeader {
            origin: known("[::1]:1", "[::2]:2"),
            tlvs: vec![Tlv {
                kind: 1,
                value: b"h2".to_vec(),
            }],
        }
        .encode_v2(),
        b"PROXY UNKNOWN\r\n".to_vec(),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..200_000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..=(next() % 3) {
            let at = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[at] = next() as u8,
                1 => bytes.truncate(at),
                _ => bytes.insert(at, next() as u8),
            }
            if bytes.is_empty() {
                break;
            }
        }
        check_round_trip(&bytes);
    }
}
