//! Every request value a balancer can read, by a real plugin during
//! `select`, both ways the contract offers: declared at configure and passed
//! with the call, and undeclared, read through the `request-context`
//! imports. The test plugin `test-pick-by` chooses the backend named after
//! the field it reads, so a wrong or missing value is a wrong backend or a
//! 503.

use http::Request;

use crate::support::*;

/// (pool and `field` option, request host, expected backend name).
const CASES: [(&str, &str, &str); 9] = [
    ("method", "method.test", "PUT"),
    ("host", "host.test", "host.test"),
    ("path", "path.test", "_pick_me"),
    ("query", "query.test", "a_1"),
    ("client-ip", "client-ip.test", "127.0.0.1"),
    ("listener", "listener.test", "web"),
    ("protocol", "protocol.test", "http"),
    ("header:x-pick", "header.test", "chosen"),
    ("cookie:pick", "cookie.test", "cookie-choice"),
];

#[tokio::test]
async fn plugin_reads_every_declared_request_field_from_its_argument() {
    reads_every_field(false).await;
}

#[tokio::test]
async fn plugin_reads_every_undeclared_request_field_through_the_host() {
    reads_every_field(true).await;
}

async fn reads_every_field(lazy: bool) {
    let decoy = RecordingBackend::start("decoy").await;
    let mut targets = Vec::new();
    let mut config = String::from("[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\n");
    let plugin = test_plugin("test-pick-by").display().to_string();
    let mut pools = String::new();
    for (i, (field, host, expected)) in CASES.iter().enumerate() {
        let target = RecordingBackend::start(expected).await;
        config.push_str(&format!(
            "\n  [[listeners.routes]]\n  host = \"{host}\"\n  pool = \"p{i}\"\n"
        ));
        pools.push_str(&format!(
            "\n[pools.p{i}]\nbalancer = \"{plugin}\"\nbackends = [{}, {}]\nbalancer-options = {{ field = \"{field}\", lazy = {lazy} }}\n",
            decoy.toml(),
            target.toml()
        ));
        targets.push(target);
    }
    config.push_str(&pools);
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");

    for (field, host, expected) in CASES {
        let request = Request::put("/pick/me?a=1")
            .header("host", host)
            .header("x-pick", "chosen")
            .header("cookie", "theme=dark; pick=cookie-choice")
            .body(Default::default())
            .unwrap();
        let reply = send(web, request).await;
        assert_eq!(
            (reply.status.as_u16(), reply.body.as_str()),
            (200, expected),
            "field {field}, lazy {lazy}"
        );
    }
    assert!(decoy.seen().is_empty());
    assert!(targets.iter().all(|t| t.seen().len() == 1));

    // A header that is absent reads as nothing: no candidate, 503.
    let reply = send(web, get("header.test", "/")).await;
    assert_eq!(reply.status, 503);
}
