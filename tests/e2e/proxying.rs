//! Routing, forwarding and the proxy's own error responses.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::*;

#[tokio::test]
async fn routes_by_host_then_path_prefix() {
    let api = RecordingBackend::start("api").await;
    let assets = RecordingBackend::start("assets").await;
    let web = RecordingBackend::start("web").await;
    let config = format!(
        r#"
[[listeners]]
name = "edge"
address = "127.0.0.1:0"

  [[listeners.routes]]
  host = "api.example.test"
  pool = "api"

  [[listeners.routes]]
  host = "*.example.test"
  path-prefix = "/static/"
  pool = "assets"

  [[listeners.routes]]
  host = "www.example.test"
  pool = "web"

[pools.api]
balancer = "builtin:round-robin"
backends = [{}]

[pools.assets]
balancer = "builtin:round-robin"
backends = [{}]

[pools.web]
balancer = "builtin:round-robin"
backends = [{}]
"#,
        api.toml(),
        assets.toml(),
        web.toml()
    );
    let bascule = Bascule::start(&config);
    let edge = bascule.addr("edge");
    let cases = [
        ("api.example.test", "/static/x.css", "api"),
        ("API.example.test:8080", "/v1/users", "api"),
        ("www.example.test", "/static/app.js", "assets"),
        ("cdn.example.test", "/static/logo.png", "assets"),
        ("www.example.test", "/index.html", "web"),
    ];
    for (host, path, expected) in cases {
        let reply = send(edge, get(host, path)).await;
        assert_eq!(reply.body, expected, "{host}{path}");
    }
    let reply = send(edge, get("cdn.example.test", "/index.html")).await;
    assert_eq!(
        reply.status, 404,
        "no route for cdn.example.test/index.html"
    );
    let reply = send(edge, get("other.test", "/")).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(api.seen().len(), 2);
    assert_eq!(assets.seen().len(), 2);
    assert_eq!(web.seen().len(), 1);
}

#[tokio::test]
async fn forwards_method_path_body_and_x_forwarded_headers() {
    let backend = RecordingBackend::start("b").await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "",
        [backend.toml()],
    ));
    let request = Request::post("/submit?x=1")
        .header("host", "shop.example.test")
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .body(Full::new(Bytes::from_static(b"order=42")))
        .unwrap();
    let reply = send(bascule.addr("web"), request).await;
    assert_eq!(reply.status, 200);
    let seen = backend.seen();
    let seen = &seen[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "/submit?x=1");
    assert_eq!(&seen.body[..], b"order=42");
    assert_eq!(seen.headers["host"], "shop.example.test");
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "shop.example.test");
    assert!(
        seen.headers.get("x-hop").is_none(),
        "hop-by-hop header forwarded"
    );
}

#[tokio::test]
async fn serves_http2_clients_with_prior_knowledge() {
    let backend = RecordingBackend::start("b").await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "",
        [backend.toml()],
    ));
    let address = bascule.addr("web");
    let request = Request::get(format!("http://h2.example.test:{}/over-h2", address.port()))
        .body(Full::default())
        .unwrap();
    let reply = send_h2(address, request).await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "b"));
    let seen = backend.seen();
    assert_eq!(seen[0].uri, "/over-h2");
    // With the port the client sent, as NGINX's `$http_host`.
    assert_eq!(
        seen[0].headers["x-forwarded-host"],
        format!("h2.example.test:{}", address.port()).as_str()
    );
}

#[tokio::test]
async fn unreachable_backends_give_502() {
    let dead = [closed_port().await, closed_port().await];
    let backends = dead
        .iter()
        .enumerate()
        .map(|(i, closed)| backend_toml(&format!("dead{i}"), closed.address));
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "connect-timeout = \"500ms\"",
        backends,
    ));
    let reply = bascule.get_root().await;
    assert_eq!(reply.status, 502);
}

#[tokio::test]
async fn empty_pool_gives_503() {
    let bascule = Bascule::start(&single_pool_config("builtin:round-robin", "", []));
    let reply = bascule.get_root().await;
    assert_eq!(reply.status, 503);
}

#[tokio::test]
async fn malformed_request_gets_400_and_the_proxy_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = RecordingBackend::start("b").await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "",
        [backend.toml()],
    ));
    let mut stream = tokio::net::TcpStream::connect(bascule.addr("web"))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert_eq!(send(bascule.addr("web"), get("a", "/")).await.status, 200);
    assert!(backend.seen().len() == 1);
}

#[tokio::test]
async fn backend_connections_are_kept_alive_and_reused() {
    let backend = RecordingBackend::start("b").await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "",
        [backend.toml()],
    ));
    for _ in 0..5 {
        let reply = bascule.get_root().await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(backend.seen().len(), 5);
    assert_eq!(
        backend.connections(),
        1,
        "each request opened its own backend connection"
    );
}

#[tokio::test]
async fn backend_that_never_answers_gives_504() {
    let silent = SilentBackend::start().await;
    let backends = [backend_toml("silent", silent.address)];
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "response-timeout = \"300ms\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n",
        backends,
    ));
    let reply = bascule.get_root().await;
    assert_eq!(reply.status, 504);
    assert_eq!(
        bascule
            .metric("bascule_timeouts_total", &["kind=\"response\""])
            .await,
        1.0
    );
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let slow = RecordingBackend::start_slow("slow", std::time::Duration::from_millis(800)).await;
    let mut bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "",
        [slow.toml()],
    ));
    let web = bascule.addr("web");
    let in_flight = tokio::spawn(send(web, get("example.test", "/")));
    // Bounded wait until the backend holds the request.
    for _ in 0..500 {
        if !slow.seen().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(slow.seen().len(), 1, "request never reached the backend");

    bascule.signal("TERM");
    // New connections are refused while the in-flight request runs on.
    assert!(
        eventually_refused(web).await,
        "listener still accepting after SIGTERM"
    );
    let reply = in_flight.await.unwrap();
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "slow"));
    let status = tokio::task::spawn_blocking(move || bascule.wait_for_exit())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_grace_that_cuts_requests_short_exits_non_zero() {
    let slow = RecordingBackend::start_slow("slow", std::time::Duration::from_secs(5)).await;
    let mut bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "\n[shutdown]\ngrace = \"300ms\"\n",
        [slow.toml()],
    ));
    let web = bascule.addr("web");
    let in_flight = tokio::spawn(send(web, get("example.test", "/")));
    assert!(eventually(|| async { !slow.seen().is_empty() }).await);
    let stopped = tokio::time::Instant::now();
    bascule.signal("TERM");
    let status = tokio::task::spawn_blocking(move || bascule.wait_for_exit())
        .await
        .unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "the grace cut a request short: {status:?}"
    );
    assert!(
        stopped.elapsed() < std::time::Duration::from_secs(3),
        "exited at the grace, not when the backend answered"
    );
    in_flight.abort();
}

#[tokio::test]
async fn large_request_bodies_stream_through_intact() {
    let backend = RecordingBackend::start("b").await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "",
        [backend.toml()],
    ));
    let body: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let request = Request::post("/upload")
        .header("host", "example.test")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    let reply = send(bascule.addr("web"), request).await;
    assert_eq!(reply.status, 200);
    assert!(backend.seen()[0].body == body, "body changed in transit");
}

#[tokio::test]
async fn http2_requests_multiplex_on_one_client_connection() {
    let backend = RecordingBackend::start("b").await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "",
        [backend.toml()],
    ));
    let address = bascule.addr("web");
    let sender = h2c_client(address).await;
    let requests = (0..20).map(|i| {
        let mut sender = sender.clone();
        let request = Request::get(format!("http://h2.test/{i}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        tokio::spawn(async move { sender.send_request(request).await.unwrap().status() })
    });
    for request in requests.collect::<Vec<_>>() {
        let status = tokio::time::timeout(WAIT, request).await.unwrap().unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(backend.seen().len(), 20);
}

#[tokio::test]
async fn backend_addresses_may_be_host_names() {
    let backend = RecordingBackend::start("named").await;
    let by_name = backend_toml("named", format!("localhost:{}", backend.address.port()));
    let bascule = Bascule::start(&single_pool_config("builtin:round-robin", "", [by_name]));
    let reply = bascule.get_root().await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "named"));
}

#[tokio::test]
async fn rfc_7239_forwarded_via_and_request_ids() {
    let backend = RecordingBackend::start("b").await;
    let config = with_listener_keys(
        single_pool_config("builtin:round-robin", "", [backend.toml()]),
        "forwarded-header = \"forwarded\"\nvia = true\nrequest-id = true",
    );
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");
    let mut request = get("shop.example.test:8443", "/");
    request
        .headers_mut()
        .insert("forwarded", "for=192.0.2.43;proto=https".parse().unwrap());
    send(web, request).await;
    let mut kept = get("shop.example.test", "/");
    kept.headers_mut()
        .insert("x-request-id", "trace-42.a".parse().unwrap());
    send(web, kept).await;
    let seen = backend.seen();
    assert_eq!(
        seen[0].headers["forwarded"],
        "for=192.0.2.43;proto=https, for=127.0.0.1;proto=http;host=\"shop.example.test:8443\""
    );
    assert!(seen[0].headers.get("x-forwarded-for").is_none());
    assert_eq!(seen[0].headers["via"], "1.1 bascule");
    let generated = seen[0].headers["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 32, "{generated}");
    assert_eq!(
        seen[1].headers["x-request-id"], "trace-42.a",
        "a valid id is kept"
    );
}
