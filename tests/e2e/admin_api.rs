//! The admin API beyond reading: weights and draining set by hand change
//! what the backends receive, `/config` shows the file with secrets
//! redacted, `/status` shows each backend's last-minute share, and the
//! bearer token is enforced.

use std::collections::HashMap;

use serde_json::Value;

use crate::support::*;

const TOKEN: &str = "t0ken-for-the-admin-api";

fn request(
    method: &str,
    path: &str,
    body: &str,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_owned(),
        )))
        .unwrap()
}

/// `request` carrying `token` as a bearer token.
fn with_token(
    token: &str,
    mut request: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// One pool over `backend`, the admin listener asking for [`TOKEN`].
fn token_config(backend: &RecordingBackend) -> String {
    single_pool_config(
        "builtin:round-robin",
        &format!("{ADMIN}token = \"{TOKEN}\"\n"),
        [backend.toml()],
    )
}

async fn status(bascule: &Bascule) -> Value {
    let reply = send(bascule.addr("admin"), get("admin", "/status")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

/// Which backend answered each of `n` requests, counted.
async fn spread(bascule: &Bascule, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let reply = bascule.get_root().await;
        assert_eq!(reply.status, 200);
        *seen.entry(reply.body).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn weights_and_drains_set_through_the_api_change_the_distribution() {
    let b1 = RecordingBackend::start("b1").await;
    let b2 = RecordingBackend::start("b2").await;
    let config = single_pool_config(
        "builtin:weighted-round-robin",
        ADMIN,
        [b1.toml(), b2.toml()],
    );
    let mut bascule = Bascule::start_with(&config, &["--workers", "1"]);
    let admin = bascule.addr("admin");

    // Configured 1:1.
    assert_eq!(
        spread(&bascule, 40).await,
        HashMap::from([("b1".into(), 20), ("b2".into(), 20)])
    );

    // b1 set to 3: 3:1, exact for a smooth weighted round robin on one worker.
    let reply = send(
        admin,
        request("PUT", "/pools/main/backends/b1/weight", r#"{"weight": 3}"#),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        (answer["weight"].as_u64(), answer["overridden"].as_bool()),
        (Some(3), Some(true))
    );
    assert_eq!(
        spread(&bascule, 40).await,
        HashMap::from([("b1".into(), 30), ("b2".into(), 10)])
    );
    let shown = status(&bascule).await;
    let backend = &shown["pools"][0]["backends"][0];
    assert_eq!(backend["weight"], 3);
    assert_eq!(backend["configured-weight"], 1);
    assert_eq!(backend["weight-overridden"], true);
    // The last minute: 20+30 of b1's and 20+10 of b2's 80 answers.
    let share = backend["recent"]["share"].as_f64().unwrap();
    assert!((share - 50.0 / 80.0).abs() < 1e-9, "{backend}");
    assert_eq!(backend["recent"]["requests"], 50);
    assert!(
        backend["recent"]["p50-seconds"].as_f64().unwrap() > 0.0,
        "{backend}"
    );
    assert!(
        shown["listeners"][0]["routes"][0]["recent"]["rate"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // Drained by hand: b1 only; undrained: 3:1 again.
    let reply = send(admin, request("POST", "/pools/main/backends/b2/drain", "")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "draining\n")
    );
    assert_eq!(
        spread(&bascule, 12).await,
        HashMap::from([("b1".into(), 12)])
    );
    let reply = send(
        admin,
        request("POST", "/pools/main/backends/b2/undrain", ""),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "healthy\n")
    );
    let again = spread(&bascule, 40).await;
    assert_eq!(again.values().sum::<usize>(), 40);
    assert_eq!(again["b2"], 10, "{again:?}");

    // null: the configured weight again.
    let reply = send(
        admin,
        request(
            "PUT",
            "/pools/main/backends/b1/weight",
            r#"{"weight": null}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        spread(&bascule, 40).await,
        HashMap::from([("b1".into(), 20), ("b2".into(), 20)])
    );

    // Bad requests say what is wrong; nothing changes.
    for (method, path, body, code) in [
        (
            "PUT",
            "/pools/main/backends/b1/weight",
            r#"{"weight": 0}"#,
            400,
        ),
        ("PUT", "/pools/main/backends/b1/weight", "three", 400),
        (
            "PUT",
            "/pools/main/backends/nope/weight",
            r#"{"weight": 2}"#,
            404,
        ),
        (
            "PUT",
            "/pools/nope/backends/b1/weight",
            r#"{"weight": 2}"#,
            404,
        ),
        (
            "POST",
            "/pools/main/backends/b1/weight",
            r#"{"weight": 2}"#,
            405,
        ),
        ("GET", "/pools/main/backends/b1/drain", "", 405),
    ] {
        let reply = send(admin, request(method, path, body)).await;
        assert_eq!(reply.status, code, "{method} {path} {body}: {}", reply.body);
    }

    // A weight set by hand lasts until the next reload.
    let reply = send(
        admin,
        request("PUT", "/pools/main/backends/b2/weight", r#"{"weight": 4}"#),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(bascule.reload(&config).contains("bascule: reloaded"));
    let shown = status(&bascule).await;
    assert_eq!(shown["pools"][0]["backends"][1]["weight"], 1);
    assert_eq!(shown["pools"][0]["backends"][1]["weight-overridden"], false);
}

#[tokio::test]
async fn config_shows_the_serving_file_with_secrets_redacted() {
    let b1 = RecordingBackend::start("b1").await;
    let bascule = Bascule::start(&token_config(&b1));
    let reply = send(
        bascule.addr("admin"),
        with_token(TOKEN, get("admin", "/config")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(!reply.body.contains(TOKEN), "{}", reply.body);
    let shown: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(shown["generation"], 1);
    assert_eq!(shown["config"]["admin"]["token"], "[redacted]");
    assert_eq!(shown["config"]["admin"]["address"], "127.0.0.1:0");
    assert_eq!(
        shown["config"]["pools"]["main"]["balancer"],
        "builtin:round-robin"
    );
    assert_eq!(shown["config"]["listeners"][0]["name"], "web");
    assert!(
        shown["file"].as_str().unwrap().ends_with(".toml"),
        "{shown}"
    );
}

#[tokio::test]
async fn the_token_is_required_on_every_request_but_the_page() {
    let b1 = RecordingBackend::start("b1").await;
    let bascule = Bascule::start(&token_config(&b1));
    let admin = bascule.addr("admin");
    for path in ["/status", "/metrics", "/config", "/healthz"] {
        let refused = send(admin, get("admin", path)).await;
        assert_eq!(refused.status, 401, "{path}");
        assert!(
            refused.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(
            send(
                admin,
                with_token("wrong-token-wrong-token", get("admin", path))
            )
            .await
            .status,
            401
        );
        assert_eq!(
            send(admin, with_token(TOKEN, get("admin", path)))
                .await
                .status,
            200,
            "{path}"
        );
    }
    let refused = send(admin, request("POST", "/pools/main/backends/b1/drain", "")).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        status_health(&bascule, TOKEN).await,
        "healthy",
        "a refused drain changes nothing"
    );
    let page = send(admin, get("admin", "/")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>Bascule status</title>"));
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "no external assets"
    );
}

async fn status_health(bascule: &Bascule, token: &str) -> String {
    let reply = send(
        bascule.addr("admin"),
        with_token(token, get("admin", "/status")),
    )
    .await;
    let status: Value = serde_json::from_str(&reply.body).unwrap();
    status["pools"][0]["backends"][0]["health"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_non_loopback_admin_address_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[admin]\naddress = \"0.0.0.0:0\"\n";
    let (ok, stderr) = check(dir.path(), "open.toml", config);
    assert!(!ok);
    assert!(
        stderr.contains("open.toml:2:")
            && stderr.contains("admin.address")
            && stderr.contains("admin.token"),
        "{stderr}"
    );
    // The same file given to `run`: no listener is bound, the process exits.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bascule"))
        .args(["run", "-c"])
        .arg(dir.path().join("open.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("admin.token"));
    // A short token is refused too.
    let (ok, stderr) = check(
        dir.path(),
        "short.toml",
        "[admin]\naddress = \"127.0.0.1:0\"\ntoken = \"abc\"\n",
    );
    assert!(!ok && stderr.contains("admin.token"), "{stderr}");
}
