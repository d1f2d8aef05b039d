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
