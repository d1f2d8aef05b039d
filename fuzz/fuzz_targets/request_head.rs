//! Arbitrary request heads through the proxy's own HTTP/1 parser, then its
//! target and head steps
//! (authority, path normalisation, framing, hop-by-hop rules, forwarded
//! headers). Never a panic; a head the parser lets through is framed one
//! way only; and whatever is let through is forwarded with
//! exactly the host and path it is routed on: one `Host`, equal to the
//! routed authority, and a path that normalising again leaves unchanged.
#![no_main]

use bascule::l7::{
    ClientAddress, EncodedSlashes, PathPolicy, parse_request_head, prepare_for_routing,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a path policy, the rest is the head as sent.
    let Some((&policy, raw)) = data.split_first() else {
        return;
    };
    let paths = PathPolicy {
        decode_unreserved: policy & 1 != 0,
        remove_dot_segments: policy & 2 != 0,
        merge_slashes: policy & 4 != 0,
        encoded_slashes: if policy & 8 != 0 {
            EncodedSlashes::Reject
        } else {
            EncodedSlashes::Keep
        },
    };
    // The proxy's own HTTP/1 parser, as its server runs it.
    let Ok(Some(mut head)) = parse_request_head(raw) else {
        return;
    };
    // What it lets through is framed one way only.
    let lengths: Vec<_> = head
        .headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .collect();
    if head.headers.contains_key(http::header::TRANSFER_ENCODING) {
        assert!(
            lengths.is_empty(),
            "a chunked request kept its content-length"
        );
    }
    let mut stated = lengths
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(|item| {
            std::str::from_utf8(item.trim_ascii())
                .ok()?
                .parse::<u64>()
                .ok()
        });
    if let Some(first) = stated.next() {
        assert!(
            first.is_some(),
            "a content-length that is not a number: {lengths:?}"
        );
        assert!(
            stated.all(|next| next == first),
            "content-lengths that disagree: {lengths:?}"
        );
    }
    let client = ClientAddress::new("127.0.0.1:40000".parse().unwrap(), None);
    let Ok(authority) = prepare_for_routing(&mut head, &paths, &client) else {
        return;
    };
    let hosts: Vec<_> = head.headers.get_all(http::header::HOST).iter().collect();
    assert_eq!(
        hosts.len(),
        1,
        "forwarded with {} Host headers",
        hosts.len()
    );
    match &authority {
        Some(authority) => assert_eq!(hosts[0], &authority.header_value()),
        None => assert!(hosts[0].is_empty()),
    }
    assert!(head.uri.authority().is_none(), "forwarded in absolute form");
    let path = head.uri.path();
    let again = paths.normalize(path).expect("a normalised path normalises");
    assert_eq!(again, path, "normalising twice changed the path");
});
