//! gRPC through the proxy: a real gRPC server (tonic) behind Bascule and a
//! real gRPC client in front of it, over h2c and over TLS; unary,
//! server-streaming and bidirectional calls with their trailers; calls on
//! one client connection balanced one by one over HTTP/2 backends; a
//! backend's GOAWAY; the proxy's own errors as gRPC statuses.
//!
//! The service is `test.Echo`, written against tonic's generic server and
//! client (what `tonic-build` would generate, by hand: no `protoc`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::uri::PathAndQuery;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::{BoxFuture, BoxStream, Context, Poll, Service};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::support::*;
use crate::test_ca::TestCa;

#[derive(Clone, PartialEq, prost::Message)]
struct EchoRequest {
    #[prost(string, tag = "1")]
    message: String,
    /// How many replies a streaming call sends.
    #[prost(uint32, tag = "2")]
    count: u32,
    /// How long the backend waits before answering, in milliseconds.
    #[prost(uint32, tag = "3")]
    delay_ms: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EchoReply {
    #[prost(string, tag = "1")]
    message: String,
    /// The backend that answered.
    #[prost(string, tag = "2")]
    backend: String,
}

/// The `test.Echo` service of one backend.
#[derive(Clone)]
struct Echo {
    name: &'static str,
}

impl tonic::server::NamedService for Echo {
    const NAME: &'static str = "test.Echo";
}

impl Service<http::Request<tonic::body::Body>> for Echo {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let echo = self.clone();
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<EchoReply, EchoRequest>::default());
            Ok(match request.uri().path() {
                "/test.Echo/Unary" => grpc.unary(echo, request).await,
                "/test.Echo/Countdown" => grpc.server_streaming(Countdown(echo), request).await,
                "/test.Echo/Chat" => grpc.streaming(Chat(echo), request).await,
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

impl tonic::server::UnaryService<EchoRequest> for Echo {
    type Response = EchoReply;
    type Future = BoxFuture<Response<EchoReply>, Status>;

    fn call(&mut self, request: Request<EchoRequest>) -> Self::Future {
        let backend = self.name.to_owned();
        Box::pin(async move {
            let request = request.into_inner();
            tokio::time::sleep(Duration::from_millis(request.delay_ms.into())).await;
            if request.message == "fail" {
                return Err(Status::with_metadata(
                    Code::FailedPrecondition,
                    "asked to fail",
                    trailer_metadata(&backend),
                ));
            }
            Ok(Response::new(EchoReply {
                message: request.message,
                backend,
            }))
        })
    }
}

/// `count` replies, then a non-OK status with metadata: both reach the
/// client only if the proxy forwards trailers after data.
struct Countdown(Echo);

impl tonic::server::ServerStreamingService<EchoRequest> for Countdown {
    type Response = EchoReply;
    type ResponseStream = BoxStream<EchoReply>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<EchoRequest>) -> Self::Future {
        let backend = self.0.name;
        Box::pin(async move {
            let request = request.into_inner();
            let delay = Duration::from_millis(request.delay_ms.into());
            let replies = (0..request.count).map(move |n| {
                Ok(EchoReply {
                    message: format!("{} {n}", request.message),
                    backend: backend.to_owned(),
                })
            });
            let end = Err(Status::with_metadata(
                Code::Aborted,
                "countdown over",
                trailer_metadata(backend),
            ));
            let stream = tokio_stream::iter(replies.chain(std::iter::once(end))).then(
                move |reply| async move {
                    tokio::time::sleep(delay).await;
                    reply
                },
            );
            Ok(Response::new(Box::pin(stream) as BoxStream<EchoReply>))
        })
    }
}

/// Echoes every message of the client's stream as it comes.
struct Chat(Echo);

impl tonic::server::StreamingService<EchoRequest> for Chat {
    type Response = EchoReply;
    type ResponseStream = BoxStream<EchoReply>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<EchoRequest>>) -> Self::Future {
        let backend = self.0.name;
        Box::pin(async move {
            let stream = request.into_inner().map(move |message| {
                message.map(|message| EchoReply {
                    message: message.message.to_uppercase(),
                    backend: backend.to_owned(),
                })
            });
            Ok(Response::new(Box::pin(stream) as BoxStream<EchoReply>))
        })
    }
}

fn trailer_metadata(backend: &str) -> tonic::metadata::MetadataMap {
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("x-answered-by", backend.parse().unwrap());
    metadata
}

/// A tonic server on 127.0.0.1 (h2c, or TLS with ALPN `h2`) serving
/// [`Echo`]; it counts the connections it accepts and shuts down
/// gracefully (GOAWAY, in-flight calls finish) when told.
struct GrpcBackend {
    name: &'static str,
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
    shutdown: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

impl GrpcBackend {
    async fn start(name: &'static str) -> GrpcBackend {
        GrpcBackend::start_with(name, None).await
    }

    async fn start_with(name: &'static str, tls: Option<&(String, String)>) -> GrpcBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let incoming = TcpListenerStream::new(listener).map(move |stream| {
            counted.fetch_add(1, Ordering::Relaxed);
            stream
        });
        let mut server = tonic::transport::Server::builder();
        if let Some((cert, key)) = tls {
            let identity = tonic::transport::Identity::from_pem(
                std::fs::read(cert).unwrap(),
                std::fs::read(key).unwrap(),
            );
            server = server
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .unwrap();
        }
        let (shutdown, stop) = oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            server
                .add_service(Echo { name })
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop.await;
                })
                .await
                .unwrap();
        });
        GrpcBackend {
            name,
            address,
            connections,
            shutdown: Some(shutdown),
            served,
        }
    }

    fn toml(&self) -> String {
        backend_toml(self.name, self.address)
    }

    /// Starts a graceful shutdown: GOAWAY on every connection, no new ones.
    fn shut_down(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl Drop for GrpcBackend {
    fn drop(&mut self) {
        self.served.abort();
    }
}

/// Bascule's listener `web` (with `listener_extra`) routing every call to
/// pool `main` of `backends`, round robin, with `pool_extra`.
fn grpc_config(listener_extra: &str, pool_extra: &str, backends: &[&GrpcBackend]) -> String {
    single_pool_config_on(
        listener_extra,
        "builtin:round-robin",
        &format!("protocol = \"h2\"\n{pool_extra}\n[admin]\naddress = \"127.0.0.1:0\"\n"),
        backends.iter().map(|backend| backend.toml()),
    )
}

/// A gRPC client on one HTTP/2 connection to `address` (h2c).
async fn grpc_client(address: SocketAddr) -> tonic::client::Grpc<Channel> {
    connect(Endpoint::from_shared(format!("http://{address}")).unwrap()).await
}

/// A gRPC client on one HTTP/2 connection through `endpoint`.
async fn connect(endpoint: Endpoint) -> tonic::client::Grpc<Channel> {
    let channel = endpoint
        .connect_timeout(WAIT)
        .timeout(WAIT)
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

fn echo(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        count: 0,
        delay_ms: 0,
    }
}

async fn unary(
    client: &mut tonic::client::Grpc<Channel>,
    request: Request<EchoRequest>,
) -> Result<Response<EchoReply>, Status> {
    client.ready().await.unwrap();
    client
        .unary(
            request,
            PathAndQuery::from_static("/test.Echo/Unary"),
            ProstCodec::<EchoRequest, EchoReply>::default(),
        )
        .await
}

/// Unary, server-streaming and bidi calls on `client`, each checked down
/// to the status and metadata the server put in its trailers.
async fn every_kind_of_call(client: &mut tonic::client::Grpc<Channel>) {
    let reply = unary(client, Request::new(echo("hello"))).await.unwrap();
    assert_eq!(reply.get_ref().message, "hello");

    let failed = unary(client, Request::new(echo("fail"))).await.unwrap_err();
    assert_eq!(failed.code(), Code::FailedPrecondition);
    assert_eq!(failed.message(), "asked to fail");
    assert!(failed.metadata().get("x-answered-by").is_some());

    client.ready().await.unwrap();
    let mut countdown = client
        .server_streaming(
            Request::new(EchoRequest {
                message: "tick".to_owned(),
                count: 3,
                delay_ms: 20,
            }),
            PathAndQuery::from_static("/test.Echo/Countdown"),
            ProstCodec::<EchoRequest, EchoReply>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut ticks = Vec::new();
    let end = loop {
        match countdown.message().await {
            Ok(Some(reply)) => ticks.push(reply.message),
            Ok(None) => panic!("the stream ended without its status"),
            Err(status) => break status,
        }
    };
    assert_eq!(ticks, ["tick 0", "tick 1", "tick 2"]);
    assert_eq!(end.code(), Code::Aborted, "the status came in the trailers");
    assert_eq!(end.message(), "countdown over");
    let answered_by = end.metadata().get("x-answered-by").unwrap();
    assert!(answered_by.to_str().unwrap().starts_with('b'));

    client.ready().await.unwrap();
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let mut chat = client
        .streaming(
            Request::new(tokio_stream::wrappers::ReceiverStream::new(receiver)),
            PathAndQuery::from_static("/test.Echo/Chat"),
            ProstCodec::<EchoRequest, EchoReply>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    // One message at a time, each answered before the next is sent: the
    // proxy streams both ways, it does not wait for the client to finish.
    for word in ["one", "two", "three"] {
        sender.send(echo(word)).await.unwrap();
        let reply = tokio::time::timeout(WAIT, chat.message()).await.unwrap();
        assert_eq!(reply.unwrap().unwrap().message, word.to_uppercase());
    }
    drop(sender);
    assert!(chat.message().await.unwrap().is_none());
    assert!(
        chat.trailers().await.unwrap().is_some(),
        "OK status in trailers"
    );
}

#[tokio::test]
async fn unary_streaming_and_bidi_calls_keep_their_trailers_over_h2c() {
    let backend = GrpcBackend::start("b1").await;
    // HTTP probes in HTTP/2 too: this server refuses HTTP/1.1, and answers
    // an unknown path with HTTP 200 (and gRPC status UNIMPLEMENTED).
    let health = "  [pools.main.health]\n  interval = \"100ms\"\n  path = \"/grpc.health.v1.Health/Check\"\n  method = \"POST\"\n";
    let bascule = Bascule::start(&grpc_config("", health, &[&backend]));
    let mut client = grpc_client(bascule.addr("web")).await;
    every_kind_of_call(&mut client).await;
    let healthy = ["backend=\"b1\"", "state=\"healthy\""];
    assert!(
        eventually(|| async { bascule.metric("bascule_backend_health", &healthy).await == 1.0 })
            .await
    );
}

#[tokio::test]
async fn calls_keep_their_trailers_over_tls_to_the_client_and_to_the_backend() {
    let ca = TestCa::new();
    let front = ca.issue("front", &["grpc.example.com"]);
    let back = ca.issue("back", &["backend.example.com"]);
    let backend = GrpcBackend::start_with("b1", Some(&back)).await;
    // `auto` to a backend that picks h2 by ALPN.
    let config = single_pool_config_on(
        &format!(
            "\n  [listeners.tls]\n  certificates = [{{ cert = \"{}\", key = \"{}\" }}]\n",
            front.0, front.1
        ),
        "builtin:round-robin",
        &format!(
            "protocol = \"auto\"\n  [pools.main.tls]\n  ca = \"{}\"\n  server-name = \"backend.example.com\"\n",
            ca.path("ca.pem").display()
        ),
        [backend.toml()],
    );
    std::fs::write(ca.path("ca.pem"), &ca.pem).unwrap();
    let bascule = Bascule::start(&config);
    let endpoint = Endpoint::from_shared(format!("https://{}", bascule.addr("web")))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&ca.pem))
                .domain_name("grpc.example.com"),
        )
        .unwrap();
    let mut client = connect(endpoint).await;
    every_kind_of_call(&mut client).await;
}

#[tokio::test]
async fn calls_on_one_client_connection_are_balanced_one_by_one() {
    let backends = [
        GrpcBackend::start("b1").await,
        GrpcBackend::start("b2").await,
        GrpcBackend::start("b3").await,
    ];
    let bascule = Bascule::start(&grpc_config("", "", &backends.iter().collect::<Vec<_>>()));
    let mut client = grpc_client(bascule.addr("web")).await;
    let mut answered: HashMap<String, usize> = HashMap::new();
    for n in 0..100 {
        let reply = unary(&mut client, Request::new(echo(&n.to_string())))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.message, n.to_string());
        *answered.entry(reply.backend).or_default() += 1;
    }
    // Round robin per call (each worker thread's plugin instance keeps its
    // own turn, so the split is near, not exactly, a third each).
    assert_eq!(answered.len(), 3, "{answered:?}");
    assert!(
        answered.values().all(|calls| (28..=39).contains(calls)),
        "round robin per call: {answered:?}"
    );
    for backend in &backends {
        assert_eq!(
            backend.connections.load(Ordering::Relaxed),
            1,
            "{}: its calls shared one HTTP/2 connection",
            backend.name
        );
    }
}

#[tokio::test]
async fn a_backend_going_away_loses_no_call() {
    let mut backends = [
        GrpcBackend::start("b1").await,
        GrpcBackend::start("b2").await,
        GrpcBackend::start("b3").await,
    ];
    let bascule = Bascule::start(&grpc_config("", "", &backends.iter().collect::<Vec<_>>()));
    let client = grpc_client(bascule.addr("web")).await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut calls = tokio::task::JoinSet::new();
    // 8 callers, 40 calls each, each call 10 ms at the backend: b1 goes
    // away while calls are in flight on its connection.
    for caller in 0..8 {
        let mut client = client.clone();
        let done = Arc::clone(&done);
        calls.spawn(async move {
            for n in 0..40 {
                let request = Request::new(EchoRequest {
                    message: format!("{caller}-{n}"),
                    count: 0,
                    delay_ms: 10,
                });
                let reply = unary(&mut client, request).await;
                let reply = reply.unwrap_or_else(|status| panic!("call {caller}-{n}: {status:?}"));
                assert_eq!(reply.get_ref().message, format!("{caller}-{n}"));
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    assert!(eventually(|| async { done.load(Ordering::Relaxed) >= 60 }).await);
    backends[0].shut_down();
    while let Some(finished) = calls.join_next().await {
        finished.unwrap();
    }
    assert_eq!(done.load(Ordering::Relaxed), 320);
}

#[tokio::test]
async fn proxy_errors_are_grpc_statuses_and_grpc_timeout_is_the_deadline() {
    let backend = GrpcBackend::start("b1").await;
    let closed = closed_port().await;
    let bascule = Bascule::start(&grpc_config("", "", &[&backend]));

    // The deadline passes while the backend thinks: DEADLINE_EXCEEDED,
    // from the proxy (whose own response timeout is 30 s). A raw HTTP/2
    // client sends the call: tonic's would give up at the same instant
    // and report its own cancellation.
    let web = bascule.addr("web");
    let slow = EchoRequest {
        message: "slow".to_owned(),
        count: 0,
        delay_ms: 2_000,
    };
    let (headers, messages, trailers) = raw_call(web, "/test.Echo/Unary", &slow, "200m").await;
    assert_eq!(headers["grpc-status"], "4", "trailers-only: {headers:?}");
    assert_eq!((messages, trailers), (0, None));

    // A stream still going at its deadline is ended with
    // DEADLINE_EXCEEDED in its trailers, after the replies that came.
    let long = EchoRequest {
        message: "tick".to_owned(),
        count: 50,
        delay_ms: 50,
    };
    let (headers, messages, trailers) = raw_call(web, "/test.Echo/Countdown", &long, "400m").await;
    assert!(headers.get("grpc-status").is_none(), "{headers:?}");
    assert!(
        (1..50).contains(&messages),
        "{messages} replies before the deadline"
    );
    assert_eq!(trailers.unwrap()["grpc-status"], "4");

    // The same call with time to spare is the backend's.
    let short = EchoRequest {
        message: "tick".to_owned(),
        count: 2,
        delay_ms: 0,
    };
    let (_, messages, trailers) = raw_call(web, "/test.Echo/Countdown", &short, "10S").await;
    assert_eq!(messages, 2);
    assert_eq!(
        trailers.unwrap()["grpc-status"],
        "10",
        "the backend's ABORTED"
    );

    // No backend that answers: UNAVAILABLE, not a bare 502.
    let down = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        "protocol = \"h2\"\n",
        [backend_toml("gone", closed.address)],
    ));
    let mut to_down = grpc_client(down.addr("web")).await;
    let status = unary(&mut to_down, Request::new(echo("x")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

/// One call by a bare HTTP/2 client that sends `grpc-timeout` and never
/// enforces it: the response headers, the number of messages in the body
/// and the trailers.
async fn raw_call(
    address: SocketAddr,
    path: &str,
    message: &EchoRequest,
    timeout: &str,
) -> (http::HeaderMap, usize, Option<http::HeaderMap>) {
    use http_body_util::BodyExt;
    use prost::Message;
    let mut sender = h2c_client(address).await;
    let encoded = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&encoded);
    let request = http::Request::post(format!("http://127.0.0.1{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", timeout)
        .body(http_body_util::Full::new(bytes::Bytes::from(framed)))
        .unwrap();
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = tokio::time::timeout(WAIT, body.frame()).await.unwrap() {
        let frame = frame.unwrap();
        match frame.into_data() {
            Ok(bytes) => data.extend_from_slice(&bytes),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    // Messages are length-prefixed: a flag byte and 4 bytes of length.
    let mut messages = 0;
    let mut rest = &data[..];
    while rest.len() >= 5 {
        let length = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        rest = &rest[5 + length..];
        messages += 1;
    }
    (parts.headers, messages, trailers)
}
