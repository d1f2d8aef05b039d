//! The upstream layer and the request pipeline: upgrades, `TE: trailers`,
//! host-name backends, dead pooled connections, listener takeover.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

const ADMIN: &str = "\n[admin]\naddress = \"127.0.0.1:0\"\n";

#[tokio::test]
async fn websocket_upgrade_is_refused_never_forwarded_as_a_plain_get() {
    let backend = RecordingBackend::start("b1").await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "",
        [backend.toml()],
    ));
    let mut request = get("app.test", "/chat");
    let headers = request.headers_mut();
    headers.insert("connection", "Upgrade".parse().unwrap());
    headers.insert("upgrade", "websocket".parse().unwrap());
    headers.insert("sec-websocket-version", "13".parse().unwrap());
    let reply = send(bascule.addr("web"), request).await;
    assert_eq!(reply.status, 501, "{}", reply.body);
    assert!(reply.body.contains("websocket"), "{}", reply.body);
    assert!(
        backend.seen().is_empty(),
        "the handshake reached the backend"
    );
}

#[tokio::test]
async fn h2c_upgrade_is_ignored_and_te_trailers_forwarded() {
    let backend = RecordingBackend::start("b1").await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "",
        [backend.toml()],
    ));
    let mut request = get("app.test", "/");
    let headers = request.headers_mut();
    headers.insert("connection", "Upgrade, HTTP2-Settings, TE".parse().unwrap());
    headers.insert("upgrade", "h2c".parse().unwrap());
    headers.insert("http2-settings", "AAMAAABkAAQAAP__".parse().unwrap());
    headers.insert("te", "trailers".parse().unwrap());
    let reply = send(bascule.addr("web"), request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    let forwarded = &seen[0].headers;
    assert!(forwarded.get("upgrade").is_none());
    assert!(forwarded.get("http2-settings").is_none());
    assert_eq!(forwarded["te"], "trailers");
}

#[tokio::test]
async fn a_host_name_backend_is_resolved_and_served() {
    let backend = RecordingBackend::start("named").await;
    let address = format!("localhost:{}", backend.address.port());
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "",
        [backend_toml("named", &address)],
    ));
    for _ in 0..3 {
        let reply = bascule.get_root().await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body, "named");
    }
    assert_eq!(backend.seen().len(), 3);
}

/// A name with two A records, served by a real DNS server: both records
/// get connections, and once resolved, requests no longer need the server
/// (connects never resolve).
#[tokio::test]
async fn every_address_of_a_host_name_backend_is_used_and_connects_never_resolve() {
    let delay = Duration::from_millis(200);
    let (first, second) = loop {
        let first = RecordingBackend::start_at("first", "127.0.0.2:0".parse().unwrap(), delay)
            .await
            .unwrap();
        let twin = std::net::SocketAddr::from(([127, 0, 0, 3], first.address.port()));
        if let Some(second) = RecordingBackend::start_at("second", twin, delay).await {
            break (first, second);
        }
    };
    let dns = Dnsmasq::start(&[
        ("multi.test", [127, 0, 0, 2].into()),
        ("multi.test", [127, 0, 0, 3].into()),
    ]);
    let address = format!("multi.test:{}", first.address.port());
    let config = single_pool_config("builtin:round-robin", "", [backend_toml("multi", &address)])
        + &format!("\n[resolver]\nnameservers = [\"{}\"]\n", dns.address);
    let bascule = Bascule::start(&config);

    // Concurrent requests to a slow backend: each needs a new connection,
    // and new connections take the records in turn.
    let web = bascule.addr("web");
    let replies = futures_join(4, || send(web, get("app.test", "/"))).await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(first.connections() + second.connections(), 4);
    assert!(
        first.connections() >= 1 && second.connections() >= 1,
        "one record unused: {} and {} connections",
        first.connections(),
        second.connections()
    );

    // Eight at once: four reuse the idle connections, the others connect
    // anew, to the addresses already resolved.
    drop(dns);
    let replies = futures_join(8, || send(web, get("app.test", "/"))).await;
    for reply in &replies {
        assert_eq!(
            reply.status, 200,
            "with the DNS server gone: {}",
            reply.body
        );
    }
    assert_eq!(first.seen().len() + second.seen().len(), 12);
    assert!(
        first.connections() + second.connections() > 4,
        "no new connection was made without the DNS server"
    );
}

/// Runs `n` copies of `request` at once.
async fn futures_join<F, Fut>(n: usize, request: F) -> Vec<Fut::Output>
where
    F: Fn() -> Fut,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(request())).collect();
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}

/// Answers each connection's first request with a keep-alive response,
/// then closes the connection: every pooled connection dies while idle.
async fn one_shot_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if !read_request_head(&mut stream).await {
                    return;
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (address, accepted)
}

#[tokio::test]
async fn a_pooled_connection_the_backend_closed_is_not_used() {
    let (address, accepted) = one_shot_backend().await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        ADMIN,
        [backend_toml("oneshot", address)],
    ));
    for round in 0..4 {
        let reply = bascule.get_root().await;
        assert_eq!(reply.status, 200, "request {round}: {}", reply.body);
        assert_eq!(reply.body, "ok");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        4,
        "one connection per request"
    );
    // Each dead connection was either never pooled (seen closed when its
    // body ended), discarded when taken, or found dead before the request
    // was written and the request sent again: never a 502.
    let status = send(bascule.addr("admin"), get("admin", "/metrics")).await;
    assert!(
        status.body.contains("bascule_upstream_idle_closed_total"),
        "{}",
        status.body
    );
}

#[tokio::test]
async fn a_reload_renaming_a_listener_takes_over_its_socket() {
    let backend = RecordingBackend::start("b1").await;
    let port = released_port().await;
    let config = single_pool_config("builtin:round-robin", "", [backend.toml()])
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let mut bascule = Bascule::start(&config);
    assert_eq!(bascule.get_root().await.status, 200);
    let renamed = config.replace("name = \"web\"", "name = \"public\"");
    let printed = bascule.reload(&renamed);
    assert!(printed.contains("bascule: reloaded"), "{printed}");
    let reply = send(
        format!("127.0.0.1:{port}").parse().unwrap(),
        get("app.test", "/"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(backend.seen().len(), 2);
}

/// Answers every request of every connection with a keep-alive `ok`;
/// counts connections the proxy closed.
async fn keep_alive_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    scripted_backend(|mut stream| async move {
        let mut head = Vec::new();
        let mut buffer = [0u8; 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
            while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                head.drain(..end + 4);
                let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(reply).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

#[tokio::test]
async fn idle_connections_to_a_removed_backend_are_closed_on_reload() {
    let (leaving, closed) = keep_alive_backend().await;
    let staying = RecordingBackend::start("staying").await;
    let both = single_pool_config(
        "builtin:round-robin",
        ADMIN,
        [backend_toml("leaving", leaving), staying.toml()],
    );
    let mut bascule = Bascule::start(&both);
    for _ in 0..2 {
        assert_eq!(bascule.get_root().await.status, 200);
    }
    assert_eq!(
        closed.load(Ordering::SeqCst),
        0,
        "the pooled connection stays open"
    );
    let printed = bascule.reload(&single_pool_config(
        "builtin:round-robin",
        ADMIN,
        [staying.toml()],
    ));
    assert!(printed.contains("bascule: reloaded"), "{printed}");
    assert!(
        eventually(|| async { closed.load(Ordering::SeqCst) == 1 }).await,
        "the idle connection to the removed backend was not closed"
    );
    let evicted = bascule
        .metric(
            "bascule_upstream_idle_closed_total",
            &["reason=\"evicted\""],
        )
        .await;
    assert_eq!(evicted, 1.0);
}
