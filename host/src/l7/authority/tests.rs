use super::*;

fn head(version: Version, uri: &str, hosts: &[&str]) -> Parts {
    let mut builder = http::Request::builder().version(version).uri(uri);
    for host in hosts {
        builder = builder.header(header::HOST, *host);
    }
    builder.body(()).unwrap().into_parts().0
}

fn authority(host: &str, port: Option<u16>) -> Option<Authority> {
    Some(Authority {
        host: host.to_owned(),
        port,
    })
}

#[test]
fn host_is_lowercased_and_loses_its_trailing_dot() {
    let decided = decide(&head(Version::HTTP_11, "/", &["Secret.Example.:8080"]));
    assert_eq!(decided, Ok(authority("secret.example", Some(8080))));
    assert_eq!(
        Authority::parse("[::1]:80"),
        Ok(Authority {
            host: "[::1]".to_owned(),
            port: Some(80)
        })
    );
    assert_eq!(
        Authority::parse("10.0.0.1").map(|a| a.host),
        Ok("10.0.0.1".to_owned())
    );
    let forwarded = Authority::parse("A.Example.").unwrap().header_value();
    assert_eq!(forwarded, "a.example");
}

#[test]
fn invalid_hosts_are_refused() {
    for bad in [
        "a, b",
        "a b",
        "x@y",
        ":abc",
        "",
        "a..b",
        ".",
        "host:port",
        "host:99999",
        "[::1",
        "[zz]:80",
        "[::1]x",
        "a/b",
        "a%41",
    ] {
        assert!(
            matches!(Authority::parse(bad), Err(AuthorityError::Invalid(_))),
            "{bad:?} was accepted: {:?}",
            Authority::parse(bad)
        );
    }
}

#[test]
fn the_target_and_host_must_agree() {
    let agreeing = head(
        Version::HTTP_11,
        "http://Public.Example/x",
        &["public.example."],
    );
    assert_eq!(decide(&agreeing), Ok(authority("public.example", None)));
    let bypass = head(
        Version::HTTP_11,
        "http://public.example/private",
        &["secret.example"],
    );
    assert!(matches!(
        decide(&bypass),
        Err(AuthorityError::Mismatch { .. })
    ));
    let target_only = head(Version::HTTP_2, "http://a.example:8443/", &[]);
    assert_eq!(decide(&target_only), Ok(authority("a.example", Some(8443))));
}

#[test]
fn exactly_one_host_unless_http_1_0_or_empty() {
    let two = head(Version::HTTP_11, "/", &["a.example", "b.example"]);
    assert_eq!(decide(&two), Err(AuthorityError::Duplicate));
    assert_eq!(
        decide(&head(Version::HTTP_11, "/", &[])),
        Err(AuthorityError::Missing)
    );
    assert_eq!(
        decide(&head(Version::HTTP_2, "/", &[])),
        Err(AuthorityError::Missing)
    );
    assert_eq!(decide(&head(Version::HTTP_10, "/", &[])), Ok(None));
    assert_eq!(decide(&head(Version::HTTP_11, "/", &[""])), Ok(None));
}
