//! `[access-log]`: one line per HTTP request and per TCP connection, in
//! JSON or logfmt, with the facts an operator greps for.

use serde_json::Value;

use crate::support::*;
use crate::tcp_backends::{EchoBackend, echo_listener_toml, echo_once};

/// The lines of `path` once there are `count` of them.
async fn lines(path: &std::path::Path, count: usize) -> Vec<String> {
    let mut found = Vec::new();
    let complete = eventually(|| {
        found = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let enough = found.len() >= count;
        async move { enough }
    })
    .await;
    assert!(complete, "{} lines of {count}: {found:?}", found.len());
    found
}

fn config(
    dir: &std::path::Path,
    format: &str,
    echo: &EchoBackend,
    backends: [String; 2],
) -> String {
    let log = dir.join("access.log");
    let http = single_pool_config(
        "builtin:round-robin",
        &format!(
            "\n[access-log]\nformat = \"{format}\"\npath = \"{}\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n",
            log.display()
        ),
        backends,
    );
    let http = with_listener_keys(http, "request-id = true");
    http + &echo_listener_toml(echo)
}

#[tokio::test]
async fn json_lines_describe_every_request_and_connection() {
    let (b1, b2) = (
        RecordingBackend::start("b1").await,
        RecordingBackend::start("b2").await,
    );
    let echo = EchoBackend::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    let bascule = Bascule::start_with(
        &config(dir.path(), "json", &echo, [b1.toml(), b2.toml()]),
        &["--workers", "1"],
    );
    let web = bascule.addr("web");

    assert_eq!(send(web, get("example.test", "/a?x=1")).await.status, 200);
    let post = http::Request::post("/upload")
        .header("host", "example.test")
        .header("x-request-id", "client-id-1")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"0123456789",
        )))
        .unwrap();
    assert_eq!(send(web, post).await.status, 200);
    // Through the TCP listener: 5 bytes each way after the greeting.
    assert_eq!(echo_once(bascule.addr("raw"), b"hello").await, b"hello");

    let log = dir.path().join("access.log");
    let lines = lines(&log, 3).await;
    let parsed: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let (get_line, post_line) = (&parsed[0], &parsed[1]);
    for line in [get_line, post_line] {
        assert_eq!(line["kind"], "http");
        assert_eq!(line["listener"], "web");
        assert_eq!(line["route"], "route-0");
        assert_eq!(line["pool"], "main");
        assert_eq!(line["status"], 200);
        assert_eq!(line["retries"], 0);
        assert_eq!(line["bytes_out"], 2, "the body `b1` or `b2`: {line}");
        assert!(line["client"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(line["time"].as_str().unwrap().starts_with("20"), "{line}");
        let (total, upstream) = (
            line["duration"].as_f64().unwrap(),
            line["upstream_duration"].as_f64().unwrap(),
        );
        assert!(upstream > 0.0 && total >= upstream, "{line}");
    }
    assert_eq!(
        (get_line["method"].as_str(), get_line["path"].as_str()),
        (Some("GET"), Some("/a?x=1"))
    );
    assert_eq!(get_line["bytes_in"], 0);
    assert_eq!(
        get_line["request_id"].as_str().unwrap().len(),
        32,
        "a new id: {get_line}"
    );
    assert_eq!(
        (post_line["method"].as_str(), post_line["path"].as_str()),
        (Some("POST"), Some("/upload"))
    );
    assert_eq!(post_line["bytes_in"], 10);
    assert_eq!(post_line["request_id"], "client-id-1");
    // Round robin on one worker: one request each, as the backends saw.
    let backends: Vec<&str> = [get_line, post_line]
        .iter()
        .map(|l| l["backend"].as_str().unwrap())
        .collect();
    assert_eq!(backends, ["b1", "b2"]);
    assert_eq!((b1.seen().len(), b2.seen().len()), (1, 1));

    let tcp = &parsed[2];
    assert_eq!(tcp["kind"], "tcp");
    assert_eq!(tcp["listener"], "raw");
    assert_eq!(tcp["pool"], "echo");
    assert_eq!(tcp["backend"], "echo");
    assert_eq!(tcp["close_reason"], "done");
    assert_eq!(tcp["bytes_in"], 5);
    assert_eq!(
        tcp["bytes_out"], 10,
        "the greeting `echo\\n` and the echo: {tcp}"
    );
    assert_eq!(
        bascule
            .metric("bascule_access_log_dropped_total", &[])
            .await,
        0.0
    );
}

#[tokio::test]
async fn logfmt_lines_carry_the_proxys_own_answers_too() {
    let (b1, b2) = (
        RecordingBackend::start("b1").await,
        RecordingBackend::start("b2").await,
    );
    let echo = EchoBackend::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "logfmt", &echo, [b1.toml(), b2.toml()]);
    // Requests to `/blocked` are answered by the proxy itself.
    let config = config.replacen(
        "  [[listeners.routes]]\n  pool = \"main\"",
        "  [[listeners.routes]]\n  name = \"blocked\"\n  path-prefix = \"/blocked\"\n  respond = { status = 403, body = \"no\" }\n\n  [[listeners.routes]]\n  pool = \"main\"",
        1,
    );
    let bascule = Bascule::start(&config);
    assert_eq!(
        send(bascule.addr("web"), get("example.test", "/blocked/x"))
            .await
            .status,
        403
    );
    let lines = lines(&dir.path().join("access.log"), 1).await;
    let line = &lines[0];
    assert!(line.starts_with("time=20"), "{line}");
    for field in [
        "kind=http",
        "listener=web",
        "route=blocked",
        "method=GET",
        "path=/blocked/x",
        "status=403",
        "bytes_in=0",
        "bytes_out=2",
        "retries=0",
    ] {
        assert!(
            line.split(' ').any(|pair| pair == field),
            "{field} in {line}"
        );
    }
    assert!(!line.contains("pool="), "answered without a pool: {line}");
}
