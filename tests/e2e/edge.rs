//! Edge hardening: every request reaches a backend with the one authority
//! and path it was routed on, or is refused. Raw bytes on a socket, the way
//! an attacker sends them; each case checks the client's status and what
//! every backend received.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

/// `secret.example` and `/admin` go to their own pools; the rest to
/// `public`.
struct Edge {
    bascule: Bascule,
    public: RecordingBackend,
    secret: RecordingBackend,
    admin: RecordingBackend,
}

impl Edge {
    async fn start(listener_extra: &str) -> Edge {
        let public = RecordingBackend::start("public").await;
        let secret = RecordingBackend::start("secret").await;
        let admin = RecordingBackend::start("admin").await;
        let config = three_route_config(
            public.toml(),
            secret.toml(),
            admin.toml(),
            listener_extra,
            "\n[admin]\naddress = \"127.0.0.1:0\"\n",
        );
        Edge {
            bascule: Bascule::start(&config),
            public,
            secret,
            admin,
        }
    }

    fn address(&self) -> SocketAddr {
        self.bascule.addr("web")
    }

    /// How many requests each backend received: (public, secret, admin).
    fn received(&self) -> (usize, usize, usize) {
        (
            self.public.seen().len(),
            self.secret.seen().len(),
            self.admin.seen().len(),
        )
    }
}

/// Sends `request` as is on a new connection and reads until the proxy
/// closes it (each request says `Connection: close`).
async fn raw(address: SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("no complete response in time")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn ambiguous_or_invalid_hosts_are_refused_and_reach_no_backend() {
    let edge = Edge::start("").await;
    let cases = [
        // Routed on the target, the client's Host forwarded: the bypass.
        "GET http://public.example/private HTTP/1.1\r\nHost: secret.example\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: public.example\r\nHost: secret.example\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a, b\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x@y\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: :abc\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    ];
    for request in cases {
        let response = raw(edge.address(), request).await;
        assert_eq!(status(&response), 400, "{request:?} got {response}");
    }
    assert_eq!(edge.received(), (0, 0, 0));
}

#[tokio::test]
async fn the_backend_gets_the_host_the_request_was_routed_on() {
    let edge = Edge::start("").await;
    let cases = [
        "GET / HTTP/1.1\r\nHost: Secret.Example.\r\nConnection: close\r\n\r\n",
        "GET http://secret.example/ HTTP/1.1\r\nHost: secret.example\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: secret.example\r\nConnection: host, close\r\n\r\n",
    ];
    for request in cases {
        let response = raw(edge.address(), request).await;
        assert_eq!(status(&response), 200, "{request:?} got {response}");
    }
    assert_eq!(edge.received(), (0, 3, 0));
    for seen in edge.secret.seen() {
        assert_eq!(seen.headers.get_all("host").iter().count(), 1, "{seen:?}");
        assert_eq!(seen.headers["host"], "secret.example");
        assert_eq!(seen.headers["x-forwarded-host"], "secret.example");
        assert_eq!(seen.uri, "/");
    }
}

#[tokio::test]
async fn path_tricks_reach_the_admin_route_with_the_path_it_matched() {
    let edge = Edge::start("").await;
    for path in [
        "/%61dmin",
        "//admin",
        "/./admin",
        "/z/../admin",
        "/%2e%2e/admin/",
    ] {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n");
        let response = raw(edge.address(), &request).await;
        assert_eq!(status(&response), 200, "{path} got {response}");
        assert!(response.ends_with("admin"), "{path} served by {response}");
    }
    assert_eq!(edge.received(), (0, 0, 5));
    let uris: Vec<String> = edge.admin.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(uris, ["/admin", "/admin", "/admin", "/admin", "/admin/"]);

    // An encoded slash is data, not a separator, and stays encoded.
    let request = "GET /files/a%2fb HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n";
    assert_eq!(status(&raw(edge.address(), request).await), 200);
    assert_eq!(edge.public.seen()[0].uri, "/files/a%2Fb");
    let request = "GET /a\\admin HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n";
    assert_eq!(status(&raw(edge.address(), request).await), 400);
}

#[tokio::test]
async fn path_normalisation_is_switchable_and_encoded_slashes_can_be_refused() {
    let edge =
        Edge::start("\n[listeners.path]\nmerge-slashes = false\nencoded-slashes = \"reject\"\n")
            .await;
    let request = "GET //admin HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n";
    assert_eq!(status(&raw(edge.address(), request).await), 200);
    assert_eq!(edge.received(), (1, 0, 0), "`//admin` is not `/admin` here");
    assert_eq!(edge.public.seen()[0].uri, "//admin");
    let request = "GET /files/a%2fb HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n";
    assert_eq!(status(&raw(edge.address(), request).await), 400);
    assert_eq!(edge.received(), (1, 0, 0));
}

#[tokio::test]
async fn methods_and_targets_the_proxy_answers_itself() {
    let edge = Edge::start("").await;
    let connect = raw(
        edge.address(),
        "CONNECT secret.example:443 HTTP/1.1\r\nHost: secret.example:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&connect), 405, "{connect}");
    assert!(
        connect.to_ascii_lowercase().contains("allow: get"),
        "{connect}"
    );
    let options = raw(
        edge.address(),
        "OPTIONS * HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&options), 200, "{options}");
    assert!(
        options.to_ascii_lowercase().contains("allow: get"),
        "{options}"
    );
    let authority_form = raw(
        edge.address(),
        "GET secret.example:80 HTTP/1.1\r\nHost: secret.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&authority_form), 400, "{authority_form}");
    assert_eq!(edge.received(), (0, 0, 0));
}

#[tokio::test]
async fn request_framing_is_reemitted_from_what_was_parsed() {
    let edge = Edge::start("").await;
    let padded = raw(
        edge.address(),
        "POST /a HTTP/1.1\r\nHost: p\r\nContent-Length: 010\r\nConnection: close\r\n\r\n0123456789",
    )
    .await;
    assert_eq!(status(&padded), 200, "{padded}");
    let chunked_get = raw(
        edge.address(),
        "GET /b HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status(&chunked_get), 200, "{chunked_get}");
    let seen = edge.public.seen();
    assert_eq!(seen[0].headers["content-length"], "10");
    assert_eq!(&seen[0].body[..], b"0123456789");
    assert_eq!(&seen[1].body[..], b"hello", "a GET body was dropped");

    let gzip = raw(
        edge.address(),
        "POST /c HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status(&gzip), 501, "{gzip}");
    let broken = raw(
        edge.address(),
        "POST /d HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status(&broken), 400, "{broken}");
    // The client's broken body is not the backend's failure.
    let reply = send(edge.bascule.addr("admin"), get("admin", "/status")).await;
    let status: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let public = status["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pool| pool["name"] == "public")
        .unwrap();
    assert_eq!(public["backends"][0]["consecutive-failures"], 0, "{public}");
}

/// A backend answering every request with `Content-Length: 2` and a
/// chunked body of 11 bytes.
async fn doubly_framed_backend() -> SocketAddr {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            tokio::spawn(async move {
                if !read_request_head(&mut stream).await {
                    return;
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n")
                    .await;
            });
        }
    });
    address
}

#[tokio::test]
async fn a_response_framed_both_ways_is_forwarded_by_its_chunks() {
    let backend = doubly_framed_backend().await;
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "",
        [backend_toml("both", backend)],
    ));
    let reply = send(bascule.addr("web"), get("p", "/")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "hello world");
    assert!(
        !reply.headers.contains_key("content-length"),
        "{:?}",
        reply.headers
    );
}

#[tokio::test]
async fn http2_cookies_are_joined_for_the_http1_backend() {
    let edge = Edge::start("").await;
    let request = http::Request::get("http://public.example/")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(Default::default())
        .unwrap();
    let reply = send_h2(edge.address(), request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen = &edge.public.seen()[0];
    assert_eq!(seen.headers.get_all("cookie").iter().count(), 1);
    assert_eq!(seen.headers["cookie"], "a=1; b=2");
    assert_eq!(seen.headers["host"], "public.example");
}

#[tokio::test]
async fn http2_fields_with_surrounding_whitespace_are_refused() {
    let edge = Edge::start("").await;
    for padded in [" leading", "trailing\t"] {
        let request = http::Request::get("http://public.example/")
            .header("x-padded", http::HeaderValue::from_str(padded).unwrap())
            .body(Default::default())
            .unwrap();
        let reply = send_h2(edge.address(), request).await;
        assert_eq!(reply.status, 400, "{padded:?}: {}", reply.body);
    }
    assert_eq!(edge.received(), (0, 0, 0));
}

/// An HTTP/2 request whose DATA exceeds its `content-length` (which
/// hyper's client will not send; h2's will): the stream is refused, and
/// no backend receives a body of the wrong length.
#[tokio::test]
async fn http2_data_longer_than_content_length_is_refused() {
    let edge = Edge::start("").await;
    let stream = tokio::net::TcpStream::connect(edge.address())
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post("http://public.example/upload")
        .header("content-length", "3")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(bytes::Bytes::from_static(b"hello, world"), true)
        .unwrap();
    let answer = tokio::time::timeout(WAIT, response)
        .await
        .expect("no answer in time");
    match answer {
        // A stream error (RST_STREAM), as RFC 9113 §8.1.1 asks.
        Err(error) => assert!(error.is_reset() || error.is_go_away(), "{error}"),
        Ok(response) => assert_eq!(response.status(), 400, "{response:?}"),
    }
    for seen in edge.public.seen() {
        assert_ne!(
            &seen.body[..],
            b"hello, world",
            "a body longer than its length was forwarded"
        );
    }
}

#[tokio::test]
async fn header_size_and_count_limits_get_431_over_both_protocols() {
    let backend = RecordingBackend::start("b").await;
    let config = with_listener_keys(
        single_pool_config("builtin:round-robin", "", [backend.toml()]),
        "max-header-size = 2048\nmax-headers = 10",
    );
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");
    let with = |name: &str, value: String| {
        let mut request = get("limits.test", "/");
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        request
    };
    assert_eq!(
        send(web, with("x-small", "a".repeat(1000))).await.status,
        200
    );
    assert_eq!(send(web, with("x-big", "a".repeat(3000))).await.status, 431);
    let mut many = get("limits.test", "/");
    for n in 0..12 {
        many.headers_mut().insert(
            http::HeaderName::from_bytes(format!("x-field-{n}").as_bytes()).unwrap(),
            "1".parse().unwrap(),
        );
    }
    assert_eq!(send(web, many).await.status, 431);
    // HTTP/2: the same bound on the decoded header list.
    let h2 = |value: String| {
        http::Request::get(format!("http://limits.test:{}/", web.port()))
            .header("x-big", value)
            .body(http_body_util::Full::default())
            .unwrap()
    };
    assert_eq!(send_h2(web, h2("a".repeat(500))).await.status, 200);
    assert_eq!(send_h2(web, h2("a".repeat(3000))).await.status, 431);
    assert_eq!(
        backend.seen().len(),
        2,
        "only the requests within the limits"
    );
}

#[tokio::test]
async fn a_head_not_finished_within_header_read_timeout_is_closed() {
    let backend = RecordingBackend::start("b").await;
    let config = with_listener_keys(
        single_pool_config(
            "builtin:round-robin",
            "\n[admin]\naddress = \"127.0.0.1:0\"\n",
            [backend.toml()],
        ),
        "header-read-timeout = \"300ms\"",
    );
    let bascule = Bascule::start(&config);
    let mut slow = tokio::net::TcpStream::connect(bascule.addr("web"))
        .await
        .unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, slow.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(
        read.is_ok_and(|n| n == 0) || rest.is_empty(),
        "closed without an answer"
    );
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(250)
            && waited < std::time::Duration::from_secs(5),
        "closed at the header timeout: {waited:?}"
    );
    assert!(backend.seen().is_empty());
    assert_eq!(
        bascule
            .metric("bascule_timeouts_total", &["kind=\"header-read\""])
            .await,
        1.0
    );
}
