//! The status page at `/`, in a real headless Chromium driven over its
//! DevTools protocol: it lists every backend, shows one killed during the
//! test as unhealthy within a few refreshes, its drain button drains, and
//! it lays out for a phone. With `BASCULE_SCREENSHOTS=DIR` set it also
//! saves the screenshots the README shows.
//!
//! Chromium is started on loopback only: its DevTools port binds
//! 127.0.0.1, every host name but 127.0.0.1 fails to resolve, and its
//! background services (updates, sync, metrics) are off.

use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

/// A headless Chromium showing one page, and a DevTools session on it.
struct Browser {
    _process: KilledOnDrop,
    _profile: tempfile::TempDir,
    session: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Browser {
    /// Chromium at `url`, or `None` (with a message) where it is not
    /// installed.
    async fn open(url: &str) -> Option<Browser> {
        let binary = ["chromium", "chromium-browser"].into_iter().find(|name| {
            std::process::Command::new(name)
                .arg("--version")
                .output()
                .is_ok()
        })?;
        let profile = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new(binary);
        command
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-domain-reliability",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1100,760",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url);
        let (process, lines) = spawn_reading_stderr(&mut command);
        let browser_url = std::iter::from_fn(|| lines.recv_timeout(Duration::from_secs(30)).ok())
            .find_map(|line| {
                line.split_once("DevTools listening on ")
                    .map(|(_, url)| url.to_owned())
            })
            .expect("chromium announced no DevTools endpoint");
        let port: u16 = browser_url
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let devtools = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let targets: Value =
            serde_json::from_str(&send(devtools, get("127.0.0.1", "/json/list")).await.body)
                .unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|target| target["type"] == "page")
            .expect("a page target");
        // The page's endpoint, at the address the browser's was found on
        // (Chromium may name it `localhost`, which could resolve to ::1).
        let page_path = page["webSocketDebuggerUrl"]
            .as_str()
            .unwrap()
            .split_once("/devtools/")
            .unwrap()
            .1;
        let (session, _) =
            tokio_tungstenite::connect_async(format!("ws://{devtools}/devtools/{page_path}"))
                .await
                .unwrap();
        Some(Browser {
            _process: process,
            _profile: profile,
            session,
            next_id: 1,
        })
    }

    /// One DevTools command's result.
    async fn command(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({ "id": id, "method": method, "params": params });
        self.session
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        tokio::time::timeout(WAIT, async {
            loop {
                let Some(Ok(Message::Text(text))) = self.session.next().await else {
                    continue;
                };
                let answer: Value = serde_json::from_str(&text).unwrap();
                if answer["id"] == id {
                    assert!(answer["error"].is_null(), "{method}: {answer}");
                    return answer["result"].clone();
                }
            }
        })
        .await
        .expect("DevTools did not answer")
    }

    /// `expression` evaluated in the page (promises awaited).
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .command(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        result["result"]["value"].clone()
    }

    /// The page as PNG.
    async fn screenshot(&mut self) -> Vec<u8> {
        let shot = self
            .command("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    }

    /// Waits (bounded) until `expression` is true in the page.
    async fn until(&mut self, expression: &str, bound: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        while tokio::time::Instant::now() < deadline {
            if self.eval(expression).await == Value::Bool(true) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }
}

/// The page's backend rows as `id: health`.
const ROWS: &str = "JSON.stringify([...document.querySelectorAll('tr[data-backend]')].map(r => r.dataset.backend + ': ' + r.dataset.health))";

fn health_is(backend: &str, health: &str) -> String {
    format!(
        "document.querySelector('tr[data-backend=\"{backend}\"]')?.dataset.health === '{health}'"
    )
}

#[tokio::test]
async fn the_status_page_shows_health_and_drains_in_a_real_browser() {
    let b1 = RecordingBackend::start("b1").await;
    let b2 = RecordingBackend::start("b2").await;
    let b3 = RecordingBackend::start("b3").await;
    let health = "\n[pools.main.health]\ninterval = \"200ms\"\ntimeout = \"150ms\"\nunhealthy-threshold = 1\nhealthy-threshold = 1\n";
    let config = single_pool_config(
        "builtin:round-robin",
        &format!("{health}\n[admin]\naddress = \"127.0.0.1:0\"\n"),
        [b1.toml(), b2.toml(), b3.toml()],
    );
    let bascule = Bascule::start(&config);
    for _ in 0..30 {
        assert_eq!(bascule.get_root().await.status, 200);
    }
    let url = format!("http://{}/", bascule.addr("admin"));
    let Some(mut browser) = Browser::open(&url).await else {
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    assert!(
        browser
            .until("Number(document.body.dataset.loaded || 0) >= 1", WAIT)
            .await,
        "the page never rendered /status: {}",
        browser
            .eval("document.getElementById('error').textContent")
            .await
    );
    let rows = browser.eval(ROWS).await;
    assert_eq!(
        rows.as_str().unwrap(),
        r#"["b1: healthy","b2: healthy","b3: healthy"]"#
    );
    let text = browser.eval("document.body.innerText").await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("Pool main") && text.contains("builtin:round-robin"),
        "{text}"
    );
    assert!(text.contains("Listener web"), "{text}");

    // Killed: unhealthy on the page within a few refreshes (every 3 s).
    drop(b3);
    assert!(
        browser
            .until(&health_is("b3", "unhealthy"), Duration::from_secs(12))
            .await,
        "{}",
        browser.eval(ROWS).await
    );

    // The drain button drains: the API says so, the page shows it, and
    // requests stop reaching it.
    let clicked = browser
        .eval("(() => { const b = document.querySelector('button[data-backend=\"b2\"][data-action=\"drain\"]'); if (!b) return false; b.click(); return true; })()")
        .await;
    assert_eq!(clicked, Value::Bool(true));
    assert!(
        browser
            .until(&health_is("b2", "draining"), Duration::from_secs(12))
            .await
    );
    let status: Value = serde_json::from_str(
        &send(bascule.addr("admin"), get("admin", "/status"))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(status["pools"][0]["backends"][1]["check"]["drained"], true);
    // Proxied requests only: health probes go on reaching a drained backend.
    let proxied = || {
        b2.seen()
            .iter()
            .filter(|seen| {
                seen.headers
                    .get("host")
                    .is_some_and(|h| h == "example.test")
            })
            .count()
    };
    let before = proxied();
    assert_eq!(before, 10, "a third of the first 30 requests");
    for _ in 0..6 {
        assert_eq!(bascule.get_root().await.body, "b1");
    }
    assert_eq!(proxied(), before);

    let desktop = browser.screenshot().await;
    assert!(desktop.starts_with(b"\x89PNG"), "not a PNG");

    // A phone: the backend table turns into one card per backend.
    browser
        .command(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
        )
        .await;
    let header = browser
        .eval("getComputedStyle(document.querySelector('table.backends thead')).display")
        .await;
    assert_eq!(header, "none", "the phone layout did not apply");
    let phone = browser.screenshot().await;
    assert!(phone.starts_with(b"\x89PNG"));
    if let Some(dir) = std::env::var_os("BASCULE_SCREENSHOTS") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("status-page.png"), desktop).unwrap();
        std::fs::write(dir.join("status-page-phone.png"), phone).unwrap();
    }
}
