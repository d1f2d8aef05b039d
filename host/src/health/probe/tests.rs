//! Probes against real sockets on 127.0.0.1: each backend here is a
//! listener that answers one connection with fixed bytes.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A backend that reads what the probe sends (up to a blank line or `\n`),
/// sends it back to the test, then answers `answer` and closes (or stays
/// silent, when `answer` is `None`).
async fn backend(answer: Option<&'static [u8]>) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let served = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut chunk = [0u8; 1024];
        while !received.ends_with(b"\r\n\r\n") && !received.ends_with(b"\n") {
            let read = stream.read(&mut chunk).await.unwrap();
            if read == 0 {
                break;
            }
            received.extend_from_slice(&chunk[..read]);
        }
        match answer {
            Some(answer) => {
                stream.write_all(answer).await.unwrap();
            }
            None => tokio::time::sleep(Duration::from_secs(30)).await,
        }
        received
    });
    (address, served)
}

fn http_spec(needs: ProbeNeeds) -> ProbeSpec {
    ProbeSpec {
        kind: ProbeKind::Http,
        method: "GET".into(),
        path: "/health?deep=1".into(),
        host: None,
        timeout: Duration::from_secs(5),
        body_limit: 8,
        needs,
        protocol: UpstreamProtocol::Http1,
    }
}

#[tokio::test]
async fn http_probe_sends_the_request_and_reads_declared_headers_and_a_bounded_body() {
    let (address, served) = backend(Some(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nX-Health: draining\r\nServer: t\r\ncontent-length: 20\r\n\r\n{\"status\":\"down\"}...",
    ))
    .await;
    let spec = http_spec(ProbeNeeds {
        headers: vec![HeaderName::from_static("x-health")],
        body: true,
        ..ProbeNeeds::default()
    });
    let outcome = spec.run(address, "web.internal:8080", None).await;
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.status, Some(503), "the 100 is skipped");
    assert_eq!(
        outcome.headers,
        [("x-health".to_owned(), "draining".to_owned())]
    );
    assert_eq!(outcome.body, b"{\"status", "cut at body-limit");
    let request = String::from_utf8(served.await.unwrap()).unwrap();
    assert!(
        request.starts_with("GET /health?deep=1 HTTP/1.1\r\nhost: web.internal:8080\r\n"),
        "{request}"
    );
    assert!(request.contains("connection: close\r\n"), "{request}");
}

#[tokio::test]
async fn chunked_bodies_are_decoded() {
    let (address, _served) = backend(Some(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"s\r\n4\r\nt\":1\r\n0\r\n\r\n",
    ))
    .await;
    let mut spec = http_spec(ProbeNeeds::default().clone());
    spec.needs.body = true;
    spec.body_limit = 4096;
    let outcome = spec.run(address, "b", None).await;
    assert_eq!((outcome.status, outcome.error), (Some(200), None));
    assert_eq!(outcome.body, b"{\"st\":1");
}

#[tokio::test]
async fn refused_and_malformed_are_transport_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let outcome = http_spec(ProbeNeeds::default())
        .run(closed, "b", None)
        .await;
    assert_eq!(outcome.status, None);
    assert!(
        outcome
            .error
            .as_deref()
            .unwrap()
            .contains("connection refused"),
        "{outcome:?}"
    );

    let (address, _served) = backend(Some(b"SSH-2.0-OpenSSH\r\n\r\n")).await;
    let outcome = http_spec(ProbeNeeds::default())
        .run(address, "b", None)
        .await;
    assert!(
        outcome
            .error
            .as_deref()
            .unwrap()
            .starts_with("malformed response"),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_backend_times_out_with_what_it_sent() {
    let (address, _served) = backend(None).await;
    let mut spec = http_spec(ProbeNeeds::default());
    spec.timeout = Duration::from_secs(2);
    let outcome = spec.run(address, "b", None).await;
    assert_eq!(outcome.error.as_deref(), Some("timed out after 2s"));
    assert!(outcome.latency >= Duration::from_secs(2));
}

#[tokio::test]
async fn tcp_probe_sends_the_payload_and_stops_at_until() {
    let (address, served) = backend(Some(b"+PONG\r\n+EXTRA")).await;
    let spec = ProbeSpec {
        kind: ProbeKind::Tcp,
        method: String::new(),
        path: String::new(),
        host: None,
        timeout: Duration::from_secs(5),
        body_limit: 4096,
        needs: ProbeNeeds {
            headers: Vec::new(),
            body: true,
            send: Some(b"PING\r\n".to_vec()),
            until: Some(b"\n".to_vec()),
        },
        protocol: UpstreamProtocol::Http1,
    };
    let outcome = spec.run(address, "redis", None).await;
    assert_eq!(outcome.error, None);
    assert!(outcome.body.starts_with(b"+PONG\r\n"), "{:?}", outcome.body);
    assert_eq!(served.await.unwrap(), b"PING\r\n");
}

#[tokio::test]
async fn http_probe_speaks_http2_to_an_h2_pool() {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // An HTTP/2-only server (as a gRPC server is): it answers with what
    // it was asked, in a header and the body.
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = service_fn(|request: http::Request<hyper::body::Incoming>| async move {
            let asked = format!(
                "{} {}",
                request.version() == http::Version::HTTP_2,
                request.uri()
            );
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .status(503)
                    .header("x-health", "draining")
                    .body(http_body_util::Full::new(bytes::Bytes::from(asked)))
                    .unwrap(),
            )
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
    let mut spec = http_spec(ProbeNeeds {
        headers: vec![HeaderName::from_static("x-health")],
        body: true,
        send: None,
        until: None,
    });
    spec.protocol = UpstreamProtocol::Http2;
    spec.body_limit = 64;
    let outcome = spec.run(address, "grpc.internal:50051", None).await;
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.status, Some(503));
    assert_eq!(
        outcome.headers,
        [("x-health".to_owned(), "draining".to_owned())]
    );
    assert_eq!(
        outcome.body,
        b"true http://grpc.internal:50051/health?deep=1"
    );
}
