//! Arbitrary request heads through the proxy's own target and head steps
//! (authority, path normalisation, framing, hop-by-hop rules, forwarded
//! headers). Never a panic; and whatever is let through is forwarded with
//! exactly the host and path it is routed on: one `Host`, equal to the
//! routed authority, and a path that normalising again leaves unchanged.
#![no_main]

use bascule::l7::{ClientAddress, EncodedSlashes, PathPolicy, prepare_for_routing};
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
    // httparse is the parser hyper uses for HTTP/1.
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(raw) else {
        return;
    };
    let (Some(method), Some(path), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return;
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .version(if version == 0 {
            http::Version::HTTP_10
        } else {
            http::Version::HTTP_11
        });
    for header in parsed.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    // What hyper would have refused never reaches the proxy.
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (mut head, ()) = request.into_parts();
    let client = ClientAddress::new("127.0.0.1:40000".parse().unwrap());
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
