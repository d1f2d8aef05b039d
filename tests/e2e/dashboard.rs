//! The Grafana dashboard in `contrib/grafana/bascule.json` queries only
//! metrics a real scrape has: a proxy is driven through what every panel
//! shows (HTTP, TCP and UDP traffic, a dead backend, a failing plugin,
//! health checks), then every metric name in the dashboard's queries is looked
//! for in its `/metrics`.

use std::collections::BTreeSet;

use crate::support::*;
use crate::tcp_backends::{EchoBackend, echo_once};

/// The metric names a PromQL expression reads (histogram series by their
/// `_bucket` name, as scraped).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find(|c: char| c.is_ascii_lowercase()) {
        let word_end = rest[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rest.len(), |end| start + end);
        let word = &rest[start..word_end];
        let preceded = rest[..start].chars().next_back();
        // A name, not a label (`{pool=`), a function (`rate(`) or part of a
        // longer word.
        let is_metric = (word.starts_with("bascule_") || word.starts_with("process_"))
            && !matches!(preceded, Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if is_metric {
            names.push(word.to_owned());
        }
        rest = &rest[word_end..];
    }
    names
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_in_a_real_scrape() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../contrib/grafana/bascule.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queried.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    assert!(queried.len() > 20, "{queried:?}");

    let live = RecordingBackend::start("live").await;
    let checked = RecordingBackend::start("checked").await;
    let (dead, dead_too) = (closed_port().await, closed_port().await);
    let echo = EchoBackend::start("echo").await;
    let datagrams = udp_echo().await;
    let log = tempfile::tempdir().unwrap();
    let plugin = test_plugin("test-filter").display().to_string();
    let config = format!(
        r#"
[[listeners]]
name = "web"
address = "127.0.0.1:0"

  [[listeners.routes]]
  name = "trap"
  path-prefix = "/trap"
  pool = "main"
  filters = ["trap"]

  [[listeners.routes]]
  name = "app"
  pool = "main"

[[listeners]]
name = "raw"
address = "127.0.0.1:0"
mode = "tcp"

  [[listeners.routes]]
  pool = "echo"

[[listeners]]
name = "dgram"
address = "127.0.0.1:0"
mode = "udp"

  [[listeners.routes]]
  pool = "datagrams"

[pools.main]
balancer = "builtin:round-robin"
backends = [{}, {{ name = "dead", address = "{}" }}]

[pools.checked]
balancer = "builtin:round-robin"
backends = [{}, {{ name = "dead-too", address = "{}" }}]

  [pools.checked.health]
  interval = "100ms"
  unhealthy-threshold = 1

[pools.echo]
balancer = "builtin:round-robin"
backends = [{{ name = "echo", address = "{}" }}]

[pools.datagrams]
balancer = "builtin:round-robin"
backends = [{{ name = "datagram-echo", address = "{}" }}]

[filters.trap]
plugin = "{plugin}"
options = {{ mode = "trap" }}

[access-log]
path = "{}"

[admin]
address = "127.0.0.1:0"
"#,
        live.toml(),
        dead.address,
        checked.toml(),
        dead_too.address,
        echo.address(),
        datagrams,
        log.path().join("access.log").display(),
    );
    let bascule = Bascule::start(&config);
    for _ in 0..4 {
        assert_eq!(
            bascule.get_root().await.status,
            200,
            "the dead backend is retried"
        );
    }
    assert_eq!(
        send(bascule.addr("web"), get("example.test", "/trap"))
            .await
            .status,
        500
    );
    assert_eq!(echo_once(bascule.addr("raw"), b"x").await, b"x");
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.send_to(b"d", bascule.addr("dgram")).await.unwrap();
    let mut answer = [0u8; 8];
    let (length, _) = tokio::time::timeout(WAIT, client.recv_from(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&answer[..length], b"d");
    let probed = eventually(|| async {
        bascule
            .exported(
                "bascule_backend_health_transitions_total",
                &["pool=\"checked\""],
            )
            .await
            .is_some()
    })
    .await;
    assert!(probed, "the dead backend was never found unhealthy");

    let scrape = send(bascule.addr("admin"), get("admin", "/metrics"))
        .await
        .body;
    let scraped: BTreeSet<&str> = scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect();
    let missing: Vec<&String> = queried
        .iter()
        .filter(|name| !scraped.contains(name.as_str()))
        .collect();
    assert!(missing.is_empty(), "queried but not scraped: {missing:?}");
}

/// A UDP socket on 127.0.0.1 that sends every datagram back; its address.
async fn udp_echo() -> std::net::SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 2048];
        while let Ok((length, from)) = socket.recv_from(&mut buffer).await {
            let _ = socket.send_to(&buffer[..length], from).await;
        }
    });
    address
}

#[test]
fn metric_names_are_found_in_expressions() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le, pool) (rate(bascule_upstream_response_time_seconds_bucket{pool="a"}[$__rate_interval]))) / process_open_fds"#
        ),
        [
            "bascule_upstream_response_time_seconds_bucket",
            "process_open_fds"
        ]
    );
}
