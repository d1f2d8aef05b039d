//! The TCP proxy against real sockets: bulk integrity on both forwarding
//! paths, half-close, connect fall-through, draining, idle timeout, and
//! the metrics each of them leaves.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xxhash_rust::xxh3::Xxh3;

use crate::support::*;
use crate::tcp_backends::*;

const HUNDRED_MB: usize = 100 * 1024 * 1024;

/// Sends `total` pseudo-random bytes through the proxy to an echo backend
/// while reading the echo, and returns (hash sent, hash received, received).
async fn echo_through(address: std::net::SocketAddr, total: usize) -> (u64, u64, usize) {
    let (greeting, stream) = connect_greeted(address).await;
    assert_eq!(greeting, "echo");
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut hash = Xxh3::new();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut chunk = vec![0u8; 256 * 1024];
        let mut sent = 0;
        while sent < total {
            let len = chunk.len().min(total - sent);
            for word in chunk[..len].chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
            }
            write.write_all(&chunk[..len]).await.unwrap();
            hash.update(&chunk[..len]);
            sent += len;
        }
        write.shutdown().await.unwrap();
        hash.digest()
    });
    let mut hash = Xxh3::new();
    let mut received = 0;
    let mut buffer = vec![0u8; 256 * 1024];
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let n = read.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buffer[..n]);
            received += n;
        }
    })
    .await
    .expect("echo did not finish in time");
    (writer.await.unwrap(), hash.digest(), received)
}

/// The metric's value once it reaches `at_least`, or its last value when
/// it does not within [`WAIT`].
async fn wait_for_metric(bascule: &Bascule, metric: &str, labels: &[&str], at_least: f64) -> f64 {
    let last = std::cell::Cell::new(0.0);
    eventually_every(Duration::from_millis(20), || async {
        last.set(bascule.metric(metric, labels).await);
        last.get() >= at_least
    })
    .await;
    last.get()
}

#[tokio::test]
async fn hundred_megabytes_echo_intact_spliced_and_copied() {
    let echo = EchoBackend::start("echo").await;
    for (zero_copy, listener) in [(true, "spliced"), (false, "copied")] {
        let config = tcp_config(&format!("zero-copy = {zero_copy}"), "", &[echo.toml()])
            .replace("name = \"tcp\"", &format!("name = \"{listener}\""));
        let bascule = Bascule::start(&config);
        let (sent, received, length) = echo_through(bascule.addr(listener), HUNDRED_MB).await;
        assert_eq!(length, HUNDRED_MB, "{listener}");
        assert_eq!(sent, received, "{listener}: checksum differs");
        let listener_label = format!("listener=\"{listener}\"");
        let closed = wait_for_metric(
            &bascule,
            "bascule_tcp_connections_closed_total",
            &[&listener_label, "reason=\"done\""],
            1.0,
        )
        .await;
        assert_eq!(closed, 1.0);
        let up = bascule
            .metric(
                "bascule_tcp_bytes_total",
                &[&listener_label, "client-to-backend"],
            )
            .await;
        let down = bascule
            .metric(
                "bascule_tcp_bytes_total",
                &[&listener_label, "backend-to-client"],
            )
            .await;
        assert_eq!(up, HUNDRED_MB as f64);
        // The echo plus the greeting line.
        assert_eq!(down, (HUNDRED_MB + "echo\n".len()) as f64);
        assert_eq!(
            bascule
                .metric("bascule_tcp_connections_opened_total", &[&listener_label])
                .await,
            1.0
        );
        assert_eq!(
            bascule
                .metric("bascule_tcp_connections_active", &[&listener_label])
                .await,
            0.0
        );
        assert_eq!(
            bascule
                .metric(
                    "bascule_tcp_connection_duration_seconds_count",
                    &[&listener_label]
                )
                .await,
            1.0
        );
    }
}

#[tokio::test]
async fn half_closed_client_still_receives_the_response() {
    let recorder = ByteRecorder::start().await;
    let backend = backend_toml("recorder", recorder.address());
    let bascule = Bascule::start(&tcp_config("", "", &[backend]));
    let mut stream = TcpStream::connect(bascule.addr("tcp")).await.unwrap();
    stream.write_all(&[7u8; 300_000]).await.unwrap();
    stream.shutdown().await.unwrap();
    // The recorder answers only after it has seen our end-of-stream.
    assert_eq!(read_to_end(&mut stream).await, b"got 300000\n");
    assert_eq!(recorder.wait_for(1).await[0].len(), 300_000);
}

#[tokio::test]
async fn connect_failure_falls_through_to_the_next_candidate() {
    let dead = closed_port().await;
    let echo = EchoBackend::start("echo").await;
    let backends = [backend_toml("dead", dead.address), echo.toml()];
    let bascule = Bascule::start(&tcp_config("", "max-attempts = 2", &backends));
    for _ in 0..4 {
        let (greeting, _stream) = connect_greeted(bascule.addr("tcp")).await;
        assert_eq!(greeting, "echo");
    }
    let failures = bascule
        .metric(
            "bascule_upstream_connect_failures_total",
            &["pool=\"main\"", "backend=\"dead\""],
        )
        .await;
    // Round robin (exact per worker thread) puts `dead` first for about
    // every other connection; each of those fell through.
    assert!((1.0..=4.0).contains(&failures), "{failures}");
}

#[tokio::test]
async fn draining_keeps_open_connections_until_the_timeout() {
    let one = EchoBackend::start("one").await;
    let two = EchoBackend::start("two").await;
    let both = tcp_config("", "drain-timeout = \"1500ms\"", &[one.toml(), two.toml()]);
    let mut bascule = Bascule::start(&both);
    let (greeting, mut held) = connect_greeted(bascule.addr("tcp")).await;
    assert_eq!(greeting, "one");

    let printed = bascule.reload(&tcp_config("", "drain-timeout = \"1500ms\"", &[two.toml()]));
    assert!(printed.contains("bascule: reloaded"), "{printed}");
    for _ in 0..3 {
        let (greeting, _new) = connect_greeted(bascule.addr("tcp")).await;
        assert_eq!(greeting, "two", "a removed backend got a new connection");
    }
    // The held connection still works after the reload...
    held.write_all(b"still here\n").await.unwrap();
    assert_eq!(read_line(&mut held).await, "still here");
    // ...and is closed once the drain timeout passes.
    let rest = read_to_end(&mut held).await;
    assert!(rest.is_empty(), "{rest:?}");
    let drained = bascule
        .metric(
            "bascule_tcp_connections_closed_total",
            &["reason=\"drained\""],
        )
        .await;
    assert_eq!(drained, 1.0);
}

#[tokio::test]
async fn a_backend_back_in_the_config_stops_draining() {
    let one = EchoBackend::start("one").await;
    let config = tcp_config("", "drain-timeout = \"300ms\"", &[one.toml()]);
    let mut bascule = Bascule::start(&config);
    let (_, mut held) = connect_greeted(bascule.addr("tcp")).await;
    let other = EchoBackend::start("other").await;
    let without = tcp_config("", "drain-timeout = \"300ms\"", &[other.toml()]);
    assert!(bascule.reload(&without).contains("bascule: reloaded"));
    assert!(bascule.reload(&config).contains("bascule: reloaded"));
    // Well past the drain timeout, the connection is still served.
    tokio::time::sleep(Duration::from_millis(900)).await;
    held.write_all(b"alive\n").await.unwrap();
    assert_eq!(read_line(&mut held).await, "alive");
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let echo = EchoBackend::start("echo").await;
    let bascule = Bascule::start(&tcp_config("idle-timeout = \"300ms\"", "", &[echo.toml()]));
    let (_, mut stream) = connect_greeted(bascule.addr("tcp")).await;
    // Traffic keeps it open past the timeout.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        stream.write_all(b"ping\n").await.unwrap();
        assert_eq!(read_line(&mut stream).await, "ping");
    }
    assert!(read_to_end(&mut stream).await.is_empty());
    let idle = bascule
        .metric(
            "bascule_tcp_connections_closed_total",
            &["reason=\"idle-timeout\""],
        )
        .await;
    assert_eq!(idle, 1.0);
    assert_eq!(
        bascule
            .metric("bascule_timeouts_total", &["kind=\"tcp-idle\""])
            .await,
        1.0
    );
}

#[tokio::test]
async fn no_usable_backend_closes_the_connection() {
    let dead = closed_port().await;
    let bascule = Bascule::start(&tcp_config("", "", &[backend_toml("dead", dead.address)]));
    let mut stream = TcpStream::connect(bascule.addr("tcp")).await.unwrap();
    assert!(read_to_end(&mut stream).await.is_empty());
    let failed = wait_for_metric(
        &bascule,
        "bascule_tcp_connections_closed_total",
        &["reason=\"connect-failed\""],
        1.0,
    )
    .await;
    assert_eq!(failed, 1.0);
}

/// The request context a plugin reads for a TCP connection: protocol,
/// listener, the client address a trusted PROXY header carried, and the
/// ClientHello's server name (the `test-pick-by` plugin picks the backend
/// named after the field it reads).
#[tokio::test]
async fn plugins_read_the_connection_context() {
    let plugin = test_plugin("test-pick-by").display().to_string();
    let decoy = EchoBackend::start("decoy").await;
    let cases = [
        ("protocol", "tcp", "", ""),
        ("listener", "ctx", "", ""),
        (
            "client-ip",
            "203.0.113.9",
            "accept-proxy-protocol-from = [\"127.0.0.1\"]",
            "",
        ),
        (
            "client-port",
            "4000",
            "accept-proxy-protocol-from = [\"127.0.0.1\"]",
            "",
        ),
        ("sni", "ctx.test", "", "sni = \"ctx.test\""),
    ];
    let mut targets = Vec::new();
    let mut config = String::new();
    for (i, (field, expected, listener_extra, route_extra)) in cases.iter().enumerate() {
        let target = EchoBackend::start(expected).await;
        let name = if *field == "listener" {
            "ctx".to_owned()
        } else {
            format!("l{i}")
        };
        config.push_str(&format!(
            "[[listeners]]\nname = \"{name}\"\naddress = \"127.0.0.1:0\"\nmode = \"tcp\"\n{listener_extra}\n\
             \n  [[listeners.routes]]\n  {route_extra}\n  pool = \"p{i}\"\n\n\
             [pools.p{i}]\nbalancer = \"{plugin}\"\nbalancer-options = {{ field = \"{field}\" }}\nbackends = [{}, {}]\n\n",
            decoy.toml(),
            target.toml()
        ));
        targets.push(target);
    }
    let bascule = Bascule::start(&config);
    let hello = crate::tcp_proxy_protocol::client_hello("ctx.test");
    for (i, (field, expected, listener_extra, _)) in cases.iter().enumerate() {
        let name = if *field == "listener" {
            "ctx".to_owned()
        } else {
            format!("l{i}")
        };
        let mut stream = TcpStream::connect(bascule.addr(&name)).await.unwrap();
        if !listener_extra.is_empty() {
            stream
                .write_all(b"PROXY TCP4 203.0.113.9 198.51.100.1 4000 443\r\n")
                .await
                .unwrap();
        }
        if *field == "sni" {
            stream.write_all(&hello).await.unwrap();
        }
        assert_eq!(read_line(&mut stream).await, *expected, "field {field}");
    }
}

#[test]
fn http_only_balancer_options_fail_a_tcp_pool() {
    let dir = tempfile::tempdir().unwrap();
    let config = tcp_config(
        "",
        "balancer-options = { key = \"header:x-user\" }",
        &[backend_toml("b", "127.0.0.1:9")],
    )
    .replace("builtin:round-robin", "builtin:consistent-hash");
    let (ok, stderr) = check(dir.path(), "tcp.toml", &config);
    assert!(!ok);
    assert!(stderr.contains("pools.main.balancer-options"), "{stderr}");
    assert!(stderr.contains("header"), "{stderr}");
}
