//! Retries through the real binary: a request the first backend resets is
//! answered by the second; a POST is never sent twice once sent; a status
//! the route retries moves the request on; and the retry budget stops
//! retries from multiplying an outage (attempts counted at the backends).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::*;

/// A backend that reads each request head, counts it, then closes the
/// connection without a byte of answer.
async fn resetting_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let heads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&heads);
    let (address, _) = scripted_backend(move |mut stream: TcpStream| {
        let counted = Arc::clone(&counted);
        async move {
            if read_request_head(&mut stream).await {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .await;
    (address, heads)
}

/// A backend that answers every request `status` and counts them.
async fn failing_backend(status: u16) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let heads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&heads);
    let (address, _) = scripted_backend(move |mut stream: TcpStream| {
        let counted = Arc::clone(&counted);
        async move {
            while read_request_head(&mut stream).await {
                counted.fetch_add(1, Ordering::SeqCst);
                let answer = format!("HTTP/1.1 {status} Nope\r\ncontent-length: 0\r\n\r\n");
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (address, heads)
}

fn retry_config(retry: &str, backends: &[String]) -> String {
    single_pool_config(
        "builtin:round-robin",
        "\n[admin]\naddress = \"127.0.0.1:0\"\n",
        backends.iter().cloned(),
    )
    .replace(
        "  [[listeners.routes]]\n  pool = \"main\"",
        &format!("  [[listeners.routes]]\n  pool = \"main\"\n  retry = {retry}"),
    )
}

fn post(body: &'static str) -> Request<Full<Bytes>> {
    Request::post("/orders")
        .header("host", "shop.test")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test]
async fn a_reset_goes_to_the_next_backend_but_a_sent_post_does_not() {
    let (resetting, reset_heads) = resetting_backend().await;
    let good = RecordingBackend::start("good").await;
    let config = retry_config(
        "{ on = [\"reset\", \"connect-failure\"] }",
        &[backend_toml("resetting", resetting), good.toml()],
    );
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");
    for _ in 0..6 {
        let reply = send(web, get("shop.test", "/")).await;
        assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "good"));
    }
    // The balancer put the resetting backend first for some of them; each
    // of those was retried once.
    let resets = reset_heads.load(Ordering::SeqCst);
    assert!(resets >= 1, "the resetting backend was tried");
    let retried = bascule
        .metric(
            "bascule_http_retries_total",
            &["pool=\"main\"", "reason=\"reset\""],
        )
        .await;
    assert_eq!(retried, resets as f64);

    // A POST the resetting backend received is not sent again: whatever
    // it did happened once. (Sent until one lands there first.)
    let mut refused = 0;
    for _ in 0..10 {
        let (heads, seen) = (reset_heads.load(Ordering::SeqCst), good.seen().len());
        let reply = send(web, post("charge=1")).await;
        if reset_heads.load(Ordering::SeqCst) > heads {
            assert_eq!(reply.status, 502, "{}", reply.body);
            assert_eq!(good.seen().len(), seen, "the POST reached one backend only");
            refused += 1;
        } else {
            assert_eq!(reply.status, 200);
        }
    }
    assert!(refused >= 1, "a POST landed on the resetting backend first");
}

#[tokio::test]
async fn a_retried_status_moves_on_and_bodies_are_sent_again_whole() {
    let (unavailable, unavailable_heads) = failing_backend(503).await;
    let good = RecordingBackend::start("good").await;
    let config = retry_config(
        "{ on = [\"503\"], buffer = 1024 }",
        &[backend_toml("unavailable", unavailable), good.toml()],
    );
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");
    // PUT is idempotent: its body, kept, goes to the second backend whole.
    for n in 0..4 {
        let request = Request::put("/doc")
            .header("host", "shop.test")
            .body(Full::new(Bytes::from(format!("version {n}"))))
            .unwrap();
        let reply = send(web, request).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert!(unavailable_heads.load(Ordering::SeqCst) >= 1);
    let bodies: Vec<Bytes> = good.seen().into_iter().map(|seen| seen.body).collect();
    assert_eq!(bodies, ["version 0", "version 1", "version 2", "version 3"]);
    // A body over the buffer is not kept: when the 503 comes first, it is
    // the answer.
    let mut unretried = 0;
    for _ in 0..6 {
        let (heads, seen) = (unavailable_heads.load(Ordering::SeqCst), good.seen().len());
        let big = Request::put("/doc")
            .header("host", "shop.test")
            .body(Full::new(Bytes::from(vec![b'x'; 4096])))
            .unwrap();
        let status = send(web, big).await.status;
        if unavailable_heads.load(Ordering::SeqCst) > heads {
            assert_eq!(status, 503);
            assert_eq!(good.seen().len(), seen, "not sent again");
            unretried += 1;
        } else {
            assert_eq!(status, 200);
        }
    }
    assert!(unretried >= 1);
}

#[tokio::test]
async fn the_budget_keeps_retries_from_multiplying_an_outage() {
    let backends = [
        failing_backend(503).await,
        failing_backend(503).await,
        failing_backend(503).await,
    ];
    let tomls: Vec<String> = backends
        .iter()
        .enumerate()
        .map(|(n, (address, _))| backend_toml(&format!("b{n}"), *address))
        .collect();
    // No floor: 20% of the requests is all the retries there may be.
    let config = retry_config(
        "{ on = [\"503\"], max-attempts = 3, budget-ratio = 0.2, budget-min-per-second = 0 }",
        &tomls,
    );
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");
    for _ in 0..100 {
        let reply = send(web, get("shop.test", "/")).await;
        assert_eq!(reply.status, 503);
    }
    let attempts: usize = backends
        .iter()
        .map(|(_, heads)| heads.load(Ordering::SeqCst))
        .sum();
    // Without a budget: 300. With it: the 100 requests and 20 retries.
    assert!(
        (100..=121).contains(&attempts),
        "{attempts} attempts for 100 requests"
    );
    let exhausted = bascule
        .metric(
            "bascule_http_retry_budget_exhausted_total",
            &["pool=\"main\""],
        )
        .await;
    assert!(exhausted >= 79.0, "{exhausted}");
}

/// An HTTP/2 (h2c) backend on 127.0.0.1. With `refuse`, it resets every
/// stream with `REFUSED_STREAM` before reading it (counted); otherwise it
/// answers 200 with `name` and the request body.
async fn h2_backend(name: &'static str, refuse: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&refused);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(stream).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = connection.accept().await {
                    if refuse {
                        counted.fetch_add(1, Ordering::SeqCst);
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    tokio::spawn(async move {
                        let mut body = request.into_body();
                        let mut received = Vec::new();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            received.extend_from_slice(&chunk);
                        }
                        let response = http::Response::new(());
                        let Ok(mut send) = respond.send_response(response, false) else {
                            return;
                        };
                        let mut answer = format!("{name}:").into_bytes();
                        answer.extend_from_slice(&received);
                        let _ = send.send_data(Bytes::from(answer), true);
                    });
                }
            });
        }
    });
    (address, refused)
}

#[tokio::test]
async fn a_post_an_http2_backend_refused_goes_whole_to_the_next_backend() {
    let (refusing, refusals) = h2_backend("refusing", true).await;
    let (good, _) = h2_backend("good", false).await;
    // The default retry policy (`connect-failure` only): a refused stream
    // was never processed (RFC 9113 §8.7), so even a POST moves on.
    let config = single_pool_config(
        "builtin:round-robin",
        "protocol = \"h2\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n",
        [
            backend_toml("refusing", refusing),
            backend_toml("good", good),
        ],
    );
    // One worker: one round robin, which puts the refusing backend first
    // for every other request.
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    let web = bascule.addr("web");
    for n in 0..6 {
        let request = Request::post("/orders")
            .header("host", "shop.test")
            .body(Full::new(Bytes::from(format!("order {n}"))))
            .unwrap();
        let reply = send(web, request).await;
        assert_eq!(
            (reply.status.as_u16(), reply.body),
            (200, format!("good:order {n}"))
        );
    }
    // A body still arriving when the stream is refused: the next backend
    // gets what the first attempt read, then the rest as it comes.
    let before = refusals.load(Ordering::SeqCst);
    for n in 0..2 {
        let mut client = TcpStream::connect(web).await.unwrap();
        let head = "POST /orders HTTP/1.1\r\nhost: shop.test\r\ncontent-length: 13\r\nconnection: close\r\n\r\n";
        client.write_all(head.as_bytes()).await.unwrap();
        client
            .write_all(format!("slow {n} ").as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        client.write_all(b"part 2").await.unwrap();
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut client, &mut answer)
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains(&format!("\r\ngood:slow {n} part 2\r\n")),
            "{answer}"
        );
    }
    assert_eq!(
        refusals.load(Ordering::SeqCst),
        before + 1,
        "one of two went there first"
    );
    let refused = refusals.load(Ordering::SeqCst);
    assert_eq!(
        refused, 4,
        "round robin put the refusing backend first for half"
    );
    let retried = bascule
        .metric(
            "bascule_http_retries_total",
            &["pool=\"main\"", "reason=\"connect-failure\""],
        )
        .await;
    assert_eq!(retried, refused as f64);
}
