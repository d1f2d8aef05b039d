//! WebSockets through the proxy: a real WebSocket client and server
//! (tokio-tungstenite) on each side, the handshake balanced like a request
//! and the connection tunnelled after the backend's `101`; idle tunnels
//! closed, tunnels to a drained backend ended after its drain timeout,
//! upgrades a route does not allow refused; WebSockets over HTTP/2
//! (RFC 8441 extended CONNECT) carried to the same HTTP/1.1 backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

/// A WebSocket server on 127.0.0.1 that echoes every message, prefixed
/// with its name; counts the connections it accepted.
struct EchoServer {
    name: &'static str,
    address: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl EchoServer {
    async fn start(name: &'static str) -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(message)) = socket.next().await {
                        let reply = match message {
                            Message::Text(text) => Message::text(format!("{name}: {text}")),
                            Message::Binary(bytes) => Message::Binary(bytes),
                            Message::Close(_) => break,
                            _ => continue,
                        };
                        if socket.send(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        EchoServer {
            name,
            address,
            accepted,
            task,
        }
    }

    fn toml(&self) -> String {
        backend_toml(self.name, self.address)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config(listener_extra: &str, pool_extra: &str, servers: &[&EchoServer]) -> String {
    format!(
        r#"
[[listeners]]
name = "web"
address = "127.0.0.1:0"
{listener_extra}

  [[listeners.routes]]
  path-prefix = "/only-foo"
  upgrades = ["foo"]
  pool = "chat"

  [[listeners.routes]]
  pool = "chat"

[pools.chat]
balancer = "builtin:least-connections"
backends = [{}]
{pool_extra}

[admin]
address = "127.0.0.1:0"
"#,
        servers
            .iter()
            .map(|s| s.toml())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(address: std::net::SocketAddr, path: &str) -> Socket {
    let url = format!("ws://{address}{path}");
    let (socket, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake timed out")
        .expect("handshake failed");
    assert_eq!(response.status(), 101);
    socket
}

/// Tunnels of listener `web` closed for `reason`.
async fn tunnels_closed(bascule: &Bascule, reason: &str) -> f64 {
    let reason = format!("reason=\"{reason}\"");
    bascule
        .metric(
            "bascule_http_tunnels_closed_total",
            &["listener=\"web\"", &reason],
        )
        .await
}

/// The `active` count of backend `id` on `/status`.
async fn active(bascule: &Bascule, id: &str) -> u64 {
    let status = send(bascule.addr("admin"), get("admin", "/status")).await;
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    status["pools"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|backend| backend["id"] == id)
        .unwrap()["active"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_thousand_messages_each_way_are_balanced_and_counted() {
    let (a, b) = (EchoServer::start("a").await, EchoServer::start("b").await);
    let bascule = Bascule::start(&config("", "", &[&a, &b]));
    let web = bascule.addr("web");

    // Least-connections sees the open tunnel: the second socket goes to
    // the other backend.
    let first = connect(web, "/chat").await;
    assert!(
        eventually(|| async { active(&bascule, "a").await + active(&bascule, "b").await == 1 })
            .await
    );
    let mut second = connect(web, "/chat").await;
    assert_eq!(
        (
            a.accepted.load(Ordering::Relaxed),
            b.accepted.load(Ordering::Relaxed)
        ),
        (1, 1),
        "one tunnel per backend"
    );

    let (mut sink, mut stream) = first.split();
    let writer = tokio::spawn(async move {
        for n in 0..1000 {
            sink.send(Message::text(format!("message {n}")))
                .await
                .unwrap();
        }
        sink
    });
    let mut answered_by = None;
    for n in 0..1000 {
        let reply = tokio::time::timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let text = reply.into_text().unwrap();
        let (name, echoed) = text.split_once(": ").unwrap();
        assert_eq!(echoed, format!("message {n}"), "in order, intact");
        assert_eq!(
            *answered_by.get_or_insert(name.to_owned()),
            name,
            "one backend per tunnel"
        );
    }
    let mut sink = writer.await.unwrap();
    // Binary frames too, both ways.
    sink.send(Message::binary(Bytes::from_static(&[0, 1, 2, 255])))
        .await
        .unwrap();
    let reply = stream.next().await.unwrap().unwrap();
    assert_eq!(reply.into_data(), Bytes::from_static(&[0, 1, 2, 255]));
    sink.send(Message::Close(None)).await.unwrap();
    drop((sink, stream));

    second.send(Message::text("still here")).await.unwrap();
    let reply = second.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(reply.ends_with(": still here"));
    second.close(None).await.unwrap();
    drop(second);
    assert!(
        eventually(|| async { active(&bascule, "a").await + active(&bascule, "b").await == 0 })
            .await
    );
    assert!(eventually(|| async { tunnels_closed(&bascule, "done").await == 2.0 }).await);
}

#[tokio::test]
async fn silent_tunnels_idle_out_and_drained_backends_end_theirs() {
    let server = EchoServer::start("a").await;
    let bascule = Bascule::start(&config(
        "idle-timeout = \"300ms\"",
        "drain-timeout = \"200ms\"",
        &[&server],
    ));
    let web = bascule.addr("web");

    let mut silent = connect(web, "/").await;
    let ended = tokio::time::timeout(WAIT, silent.next()).await.unwrap();
    assert!(
        !matches!(ended, Some(Ok(Message::Text(_)))),
        "closed, not answered: {ended:?}"
    );
    assert!(eventually(|| async { tunnels_closed(&bascule, "idle-timeout").await == 1.0 }).await);

    // A busy tunnel to a backend drained by hand ends `drain-timeout`
    // after the drain, not at the idle timeout.
    let mut busy = connect(web, "/").await;
    assert_eq!(drain_by_hand(&bascule, "chat", "a").await, 200);
    let mut echoes = 0;
    for _ in 0..100 {
        if busy.send(Message::text("ping")).await.is_err() {
            break;
        }
        match tokio::time::timeout(WAIT, busy.next()).await.unwrap() {
            Some(Ok(Message::Text(_))) => echoes += 1,
            _ => break,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        echoes > 0 && echoes < 100,
        "{echoes} echoes before the drain cut it"
    );
    assert!(eventually(|| async { tunnels_closed(&bascule, "drained").await == 1.0 }).await);
}

#[tokio::test]
async fn upgrades_a_route_does_not_allow_are_refused() {
    let server = EchoServer::start("a").await;
    let bascule = Bascule::start(&config("", "", &[&server]));
    let web = bascule.addr("web");
    let url = format!("ws://{web}/only-foo/chat");
    let refused = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .unwrap()
        .unwrap_err();
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 501);
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
    assert_eq!(
        server.accepted.load(Ordering::Relaxed),
        0,
        "the backend never saw it"
    );
}

/// An extended CONNECT (RFC 8441) for a WebSocket on `path`, on an HTTP/2
/// connection already open: the answer, and the stream when it is `200`.
async fn connect_over_h2(
    sender: &mut hyper::client::conn::http2::SendRequest<http_body_util::Empty<Bytes>>,
    authority: std::net::SocketAddr,
    path: &str,
) -> (http::StatusCode, Option<hyper::upgrade::Upgraded>) {
    // The client may only send it once the server's SETTINGS enabled it;
    // they arrive right after the handshake.
    for _ in 0..50 {
        let request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(format!("http://{authority}{path}"))
            .header("sec-websocket-version", "13")
            .extension(hyper::ext::Protocol::from_static("websocket"))
            .body(http_body_util::Empty::new())
            .unwrap();
        match tokio::time::timeout(WAIT, sender.send_request(request))
            .await
            .unwrap()
        {
            Ok(response) => {
                let status = response.status();
                if status != 200 {
                    return (status, None);
                }
                let stream = hyper::upgrade::on(response).await.unwrap();
                return (status, Some(stream));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("extended CONNECT never enabled");
}

#[tokio::test]
async fn websockets_over_http2_are_tunnelled_to_http1_backends() {
    use tokio_tungstenite::tungstenite::protocol::Role;
    let (a, b) = (EchoServer::start("a").await, EchoServer::start("b").await);
    let bascule = Bascule::start(&config("", "", &[&a, &b]));
    let web = bascule.addr("web");
    let mut sender = h2c_client(web).await;

    // Two WebSockets on one HTTP/2 connection, one per backend
    // (least-connections sees the first tunnel).
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let (status, stream) = connect_over_h2(&mut sender, web, "/chat").await;
        assert_eq!(status, 200);
        let io = hyper_util::rt::TokioIo::new(stream.unwrap());
        sockets.push(
            tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Client, None).await,
        );
        assert!(
            eventually(|| async {
                active(&bascule, "a").await + active(&bascule, "b").await == sockets.len() as u64
            })
            .await
        );
    }
    assert_eq!(
        (
            a.accepted.load(Ordering::Relaxed),
            b.accepted.load(Ordering::Relaxed)
        ),
        (1, 1)
    );
    let mut names = Vec::new();
    for socket in &mut sockets {
        for n in 0..100 {
            socket
                .send(Message::text(format!("message {n}")))
                .await
                .unwrap();
            let reply = tokio::time::timeout(WAIT, socket.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
                .into_text()
                .unwrap();
            let (name, echoed) = reply.split_once(": ").unwrap();
            assert_eq!(echoed, format!("message {n}"));
            if n == 0 {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    assert_eq!(names, ["a", "b"]);

    // A route that allows no WebSocket refuses the CONNECT; the backend
    // never sees it.
    let (status, _) = connect_over_h2(&mut sender, web, "/only-foo/chat").await;
    assert_eq!(status, 501);
    assert_eq!(
        a.accepted.load(Ordering::Relaxed) + b.accepted.load(Ordering::Relaxed),
        2
    );

    // An orderly close (RFC 8441 §5): the close handshake, then END_STREAM
    // both ways.
    for mut socket in sockets {
        socket.close(None).await.unwrap();
        while let Some(Ok(_)) = tokio::time::timeout(WAIT, socket.next()).await.unwrap() {}
        let _ = tokio::io::AsyncWriteExt::shutdown(socket.get_mut()).await;
    }
    assert!(eventually(|| async { tunnels_closed(&bascule, "done").await == 2.0 }).await);
    assert!(
        eventually(|| async { active(&bascule, "a").await + active(&bascule, "b").await == 0 })
            .await
    );
}
