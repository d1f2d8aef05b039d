//! The built-in algorithms that depend on live traffic, end to end: real
//! slow and fast backends, real cookies, real reloads.

use std::time::Duration;

use crate::support::*;

fn set_cookie(reply: &Reply) -> Option<String> {
    reply
        .headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned())
}

fn with_cookie(cookie: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut request = get("app", "/");
    request
        .headers_mut()
        .insert("cookie", format!("other=1; {cookie}").parse().unwrap());
    request
}

#[tokio::test]
async fn sticky_cookie_keeps_a_client_and_moves_it_once_when_its_backend_goes() {
    let backends = [
        RecordingBackend::start("b1").await,
        RecordingBackend::start("b2").await,
        RecordingBackend::start("b3").await,
    ];
    let config = |backends: &[&RecordingBackend]| {
        single_pool_config(
            "builtin:sticky-cookie",
            r#"balancer-options = { cookie = "srv", ttl = "1h", same-site = "lax" }"#,
            backends.iter().map(|b| b.toml()),
        )
    };
    let mut bascule = Bascule::start(&config(&[&backends[0], &backends[1], &backends[2]]));

    let first = bascule.get_root().await;
    let header = set_cookie(&first).expect("first response sets the affinity cookie");
    assert!(
        header.ends_with("; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"),
        "{header}"
    );
    let cookie = header.split(';').next().unwrap().to_owned();
    let token = cookie.split_once('=').map_or("", |(_, value)| value);
    assert!(
        token.len() == 16 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "token is opaque (16 hex digits, no name or address): {cookie}"
    );
    let home = first.body.clone();
    for _ in 0..100 {
        let reply = send(bascule.addr("web"), with_cookie(&cookie)).await;
        assert_eq!(reply.body, home, "the client left its backend");
        assert_eq!(set_cookie(&reply), None, "a valid cookie is not re-set");
    }

    // Its backend leaves the pool: the client moves once, then stays.
    let remaining: Vec<&RecordingBackend> = backends.iter().filter(|b| b.name != home).collect();
    let printed = bascule.reload(&config(&remaining));
    assert!(printed.contains("bascule: reloaded"), "{printed}");
    let moved = send(bascule.addr("web"), with_cookie(&cookie)).await;
    assert_ne!(moved.body, home);
    let new_cookie = set_cookie(&moved).expect("the moved client gets a new cookie");
    let new_cookie = new_cookie.split(';').next().unwrap().to_owned();
    assert_ne!(new_cookie, cookie);
    for _ in 0..100 {
        let reply = send(bascule.addr("web"), with_cookie(&new_cookie)).await;
        assert_eq!(reply.body, moved.body);
    }
}

/// Starts `count` requests that stay in flight on whichever backends the
/// balancer picks, and returns their handles.
fn in_flight(bascule: &Bascule, count: usize) -> Vec<tokio::task::JoinHandle<Reply>> {
    (0..count)
        .map(|_| tokio::spawn(send(bascule.addr("web"), get("app", "/"))))
        .collect()
}

#[tokio::test]
async fn load_aware_balancers_send_new_requests_away_from_long_ones() {
    for balancer in ["builtin:least-connections", "builtin:power-of-two-choices"] {
        // Slow enough that its requests are still in flight after the 40
        // below, even on a loaded machine (at 1.5 s a loaded CI run saw
        // them finish first, and the balancer rightly picked it again).
        let slow = RecordingBackend::start_slow("slow", Duration::from_secs(5)).await;
        let fast = [
            RecordingBackend::start("fast1").await,
            RecordingBackend::start("fast2").await,
        ];
        let config =
            single_pool_config(balancer, "", [slow.toml(), fast[0].toml(), fast[1].toml()]);
        let bascule = Bascule::start(&config);
        // Until the slow backend holds some requests, traffic spreads.
        let mut held = Vec::new();
        let holds = eventually_every(Duration::from_millis(20), || {
            held.extend(in_flight(&bascule, 1));
            let seen = slow.seen().len();
            async move { seen >= 2 }
        })
        .await;
        assert!(holds, "the slow backend never held two requests");
        // Every request started above has reached a backend before the
        // slow one's count is taken.
        let arrived = eventually(|| async {
            slow.seen().len() + fast[0].seen().len() + fast[1].seen().len() >= held.len()
        })
        .await;
        assert!(arrived, "requests in flight never reached a backend");
        let holding = slow.seen().len();
        for _ in 0..40 {
            let reply = bascule.get_root().await;
            assert_ne!(reply.body, "slow", "{balancer} picked the busy backend");
        }
        assert_eq!(slow.seen().len(), holding, "{balancer}");
        for handle in held {
            assert_eq!(handle.await.unwrap().status, 200);
        }
    }
}

#[tokio::test]
async fn least_response_time_starves_a_ten_times_slower_backend() {
    let fast = RecordingBackend::start_slow("fast", Duration::from_millis(2)).await;
    let slow = RecordingBackend::start_slow("slow", Duration::from_millis(20)).await;
    let config = single_pool_config(
        "builtin:least-response-time",
        "",
        [fast.toml(), slow.toml()],
    );
    let bascule = Bascule::start(&config);
    for _ in 0..20 {
        bascule.get_root().await;
    }
    let warm = slow.seen().len();
    let mut to_slow = 0;
    for _ in 0..200 {
        to_slow += usize::from(bascule.get_root().await.body == "slow");
    }
    assert!(warm > 0, "warm-up never tried the slow backend");
    assert!(
        to_slow < 20,
        "the slow backend got {to_slow} of 200 after warm-up"
    );
}

/// Weighted round robin over `backends` with a ten-minute slow start, and
/// an admin listener for `/status`.
fn slow_start_config(backends: &[RecordingBackend]) -> String {
    let extra = "slow-start = \"10m\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n";
    single_pool_config(
        "builtin:weighted-round-robin",
        extra,
        backends.iter().map(RecordingBackend::toml),
    )
}

/// Sends 150 requests (all must succeed) after a reload added the third of
/// `backends`; returns how many the newcomer got, and every backend's
/// `ramp-permille` from `/status`.
async fn after_150_requests(bascule: &Bascule, backends: &[RecordingBackend]) -> (usize, Vec<u64>) {
    for _ in 0..150 {
        assert_eq!(bascule.get_root().await.status, 200);
    }
    let status = send(bascule.addr("admin"), get("admin", "/status")).await;
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    let ramps = status["pools"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["ramp-permille"].as_u64().unwrap())
        .collect();
    (backends[2].seen().len(), ramps)
}

#[tokio::test]
async fn slow_start_ramps_a_backend_added_by_reload() {
    let backends = [
        RecordingBackend::start("b1").await,
        RecordingBackend::start("b2").await,
        RecordingBackend::start("b3").await,
    ];
    let two = slow_start_config(&backends[..2]);
    // One worker, so that round robin's 5/5 split is exact.
    let mut bascule = Bascule::start_with(&two, &["--workers", "1"]);
    // Backends present at start take their full share at once.
    for _ in 0..10 {
        bascule.get_root().await;
    }
    assert_eq!((backends[0].seen().len(), backends[1].seen().len()), (5, 5));

    let three = slow_start_config(&backends);
    let printed = bascule.reload(&three);
    assert!(printed.contains("bascule: reloaded"), "{printed}");
    let (newcomer, ramps) = after_150_requests(&bascule, &backends).await;
    // At full weight b3 would get 50 of 150; seconds into a ten-minute
    // ramp its weight is a few thousandths of the others'.
    assert!(
        newcomer <= 2,
        "the new backend got {newcomer} of 150 requests"
    );
    assert_eq!(ramps[..2], [1000, 1000]);
    assert!(ramps[2] < 20, "{ramps:?}");
}

#[tokio::test]
async fn a_rejected_reload_does_not_spoil_the_next_ones_slow_start() {
    let backends = [
        RecordingBackend::start("b1").await,
        RecordingBackend::start("b2").await,
        RecordingBackend::start("b3").await,
    ];
    let two = slow_start_config(&backends[..2]);
    let mut bascule = Bascule::start(&two);
    let three = slow_start_config(&backends);
    // The plan for three backends is built, then refused by the plugin.
    let rejected = format!("{three}\n[pools.main.balancer-options]\nbogus = 1\n");
    let printed = bascule.reload(&rejected);
    assert!(printed.contains("reload rejected"), "{printed}");
    let printed = bascule.reload(&three);
    assert!(printed.contains("bascule: reloaded"), "{printed}");
    let (newcomer, ramps) = after_150_requests(&bascule, &backends).await;
    assert!(
        newcomer <= 2,
        "the new backend got {newcomer} of 150 requests: its slow start was skipped"
    );
    assert!(ramps[2] < 20, "{ramps:?}");
}
