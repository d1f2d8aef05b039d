//! The upstream layer and the request pipeline: upgrades, `TE: trailers`,
//! host-name backends, dead pooled connections, listener takeover.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

#[tokio::test]
async fn an_upgrade_is_forwarded_as_an_upgrade_or_refused_never_as_a_plain_get() {
    let backend = RecordingBackend::start("b1").await;
    let config = single_pool_config("builtin:round-robin", "", [backend.toml()]).replace(
        "  [[listeners.routes]]\n  pool = \"main\"",
        "  [[listeners.routes]]\n  path-prefix = \"/closed\"\n  upgrades = []\n  pool = \"main\"\n\n  [[listeners.routes]]\n  pool = \"main\"",
    );
    let bascule = Bascule::start(&config);
    let upgrade = |path: &str| {
        let mut request = get("app.test", path);
        let headers = request.headers_mut();
        headers.insert("connection", "Upgrade".parse().unwrap());
        headers.insert("upgrade", "websocket".parse().unwrap());
        headers.insert("sec-websocket-version", "13".parse().unwrap());
        request
    };
    // Allowed (the default): the backend is asked for the upgrade itself;
    // this one declines and answers 200, which the client gets as is.
    let reply = send(bascule.addr("web"), upgrade("/chat")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen = backend.seen();
    assert_eq!(seen[0].headers["upgrade"], "websocket");
    assert_eq!(seen[0].headers["connection"], "upgrade");
    // A route that allows none: 501, and the backend never sees it.
    let reply = send(bascule.addr("web"), upgrade("/closed/chat")).await;
    assert_eq!(reply.status, 501, "{}", reply.body);
    assert!(reply.body.contains("websocket"), "{}", reply.body);
    assert_eq!(
        backend.seen().len(),
        1,
        "the refused handshake reached the backend"
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

/// Serves each connection's first request with a keep-alive `first`, then
/// reads the next request head and closes without a byte of answer: the
/// backend closing a keep-alive connection just as a request goes out.
/// Counts the request heads it read.
async fn closes_after_first_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let heads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&heads);
    let (address, _) = scripted_backend(move |mut stream| {
        let heads = Arc::clone(&counted);
        async move {
            if !read_request_head(&mut stream).await {
                return;
            }
            heads.fetch_add(1, Ordering::SeqCst);
            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst";
            if stream.write_all(reply).await.is_err() {
                return;
            }
            if read_request_head(&mut stream).await {
                heads.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .await;
    (address, heads)
}

#[tokio::test]
async fn an_idempotent_request_a_reused_connection_dropped_unanswered_is_sent_again() {
    let (address, heads) = closes_after_first_backend().await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        ADMIN,
        [backend_toml("closer", address)],
    ));
    let first = bascule.get_root().await;
    assert_eq!(
        (first.status, first.body.as_str()),
        (http::StatusCode::OK, "first")
    );
    // Reuses the pooled connection, which the backend drops unanswered:
    // sent again on a new connection, whose first answer it gets.
    let again = bascule.get_root().await;
    assert_eq!(
        (again.status, again.body.as_str()),
        (http::StatusCode::OK, "first")
    );
    assert_eq!(heads.load(Ordering::SeqCst), 3);
    let resent = bascule
        .metric("bascule_upstream_resent_requests_total", &[])
        .await;
    assert_eq!(resent, 1.0);

    // A POST on the next reused connection may have had effects: never sent twice.
    let mut post = get("app.test", "/");
    *post.method_mut() = http::Method::POST;
    let reply = send(bascule.addr("web"), post).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(heads.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_backend_answering_before_the_whole_upload_is_heard() {
    let (address, _) = scripted_backend(|mut stream| async move {
        if !read_request_head(&mut stream).await {
            return;
        }
        let refusal = b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo big\n";
        let _ = stream.write_all(refusal).await;
        // Reads no more of the body, and keeps the connection open.
        tokio::time::sleep(Duration::from_secs(20)).await;
    })
    .await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "",
        [backend_toml("strict", address)],
    ));
    let mut client = tokio::net::TcpStream::connect(bascule.addr("web"))
        .await
        .unwrap();
    let size = 64 * 1024 * 1024;
    let head = format!("POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: {size}\r\n\r\n");
    client.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = client.into_split();
    // Sends the body for as long as anyone reads it.
    let uploading = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..size / chunk.len() {
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    uploading.abort();
    assert!(read.is_ok(), "no answer while the upload was stalled");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn max_active_passes_over_a_full_backend_and_answers_503_when_all_are() {
    let slow_a = RecordingBackend::start_slow("a", Duration::from_millis(600)).await;
    let slow_b = RecordingBackend::start_slow("b", Duration::from_millis(600)).await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "max-active = 1\n",
        [slow_a.toml(), slow_b.toml()],
    ));
    let web = bascule.addr("web");
    let first = tokio::spawn(send(web, get("app.test", "/1")));
    assert!(eventually(|| async { slow_a.seen().len() + slow_b.seen().len() == 1 }).await);
    let second = tokio::spawn(send(web, get("app.test", "/2")));
    assert!(eventually(|| async { slow_a.seen().len() + slow_b.seen().len() == 2 }).await);
    // Each backend holds one request: a third finds both full.
    let third = send(web, get("app.test", "/3")).await;
    assert_eq!(third.status, 503, "{}", third.body);
    let mut served: Vec<String> = vec![first.await.unwrap().body, second.await.unwrap().body];
    served.sort();
    assert_eq!(
        served,
        ["a", "b"],
        "the second went to the backend with room"
    );
    assert_eq!(
        send(web, get("app.test", "/4")).await.status,
        200,
        "room again"
    );
}
