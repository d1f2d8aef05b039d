use super::*;

/// xorshift64: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % 1_000_003).unwrap()
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.next() % from.len()]
    }
}

const SEGMENTS: &[&str] = &[
    "/",
    "//",
    "/.",
    "/..",
    "/%2e",
    "/%2E%2e",
    "/%2f",
    "/%5c",
    "/%61dmin",
    "/admin",
    "/a",
    "%",
    "%4",
    "%zz",
    "%00",
    "/~",
    "/%7E",
    ";",
    "?",
    "?q=%2e&x=/..",
    "#f",
    "/ä",
];
const HOSTS: &[&str] = &[
    "a.example",
    "A.Example.",
    "a.example:80",
    "[::1]:8080",
    "",
    "a, b",
    "x@y",
    ":1",
    "a..b",
    "secret.example.",
    "10.0.0.1",
    "a.example:99999",
];
const TARGETS: &[&str] = &[
    "",
    "http://a.example",
    "http://B.example:81",
    "https://a.example.",
];
const CONNECTION: &[&str] = &["", "host", "content-length", "close, host, x", "upgrade"];

/// Arbitrary heads through the target and prepare-head steps: whatever
/// is let through is forwarded with one `Host`, equal to the authority
/// it is routed on, in origin form, with a path that normalising again
/// leaves unchanged. `fuzz/` drives the same function with libFuzzer.
#[test]
fn forwarded_heads_carry_exactly_what_was_routed() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let client = ClientAddress::new("127.0.0.1:40000".parse().unwrap(), None);
    let mut let_through = 0;
    for _ in 0..20_000 {
        let path: String = (0..1 + rng.next() % 6)
            .map(|_| rng.pick(SEGMENTS))
            .collect();
        let target = format!("{}{path}", rng.pick(TARGETS));
        let mut builder = Request::builder().uri(target.as_str());
        for _ in 0..rng.next() % 3 {
            builder = builder.header(http::header::HOST, rng.pick(HOSTS));
        }
        let connection = rng.pick(CONNECTION);
        if !connection.is_empty() {
            builder = builder.header(http::header::CONNECTION, connection);
        }
        if rng.next().is_multiple_of(4) {
            builder = builder.version(Version::HTTP_10);
        }
        let Ok(request) = builder.body(()) else {
            continue;
        };
        let (mut head, ()) = request.into_parts();
        let paths = PathPolicy {
            merge_slashes: rng.next().is_multiple_of(2),
            ..PathPolicy::default()
        };
        let Ok(authority) = prepare_for_routing(&mut head, &paths, &client) else {
            continue;
        };
        let_through += 1;
        let hosts: Vec<&HeaderValue> = head.headers.get_all(http::header::HOST).iter().collect();
        assert_eq!(hosts.len(), 1, "{target}: {:?}", head.headers);
        match &authority {
            Some(authority) => assert_eq!(hosts[0], &authority.header_value(), "{target}"),
            None => assert!(hosts[0].is_empty(), "{target}"),
        }
        assert!(
            head.uri.authority().is_none(),
            "{target} forwarded as {}",
            head.uri
        );
        let path = head.uri.path();
        assert_eq!(
            paths.normalize(path).as_deref(),
            Ok(path),
            "{target} forwarded as {path}"
        );
    }
    assert!(let_through > 1_000, "only {let_through} heads got through");
}
