//! An HTTP/2 probe, for pools whose backends speak HTTP/2 (`protocol =
//! "h2"`, or `"auto"` when the backend picked `h2` by ALPN): gRPC servers
//! and other HTTP/2-only backends refuse an HTTP/1.1 request, so probing
//! them in HTTP/1.1 would fail every one. One request on a connection of
//! its own, with hyper's client, as the proxy's own traffic runs.

use bytes::Bytes;
use http::uri::Scheme;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Gathered, ProbeSpec};
use crate::upstream::header_pairs;

/// Sends the probe request over `stream` in HTTP/2 with `:authority`
/// `host` and gathers status, headers and body.
pub(super) async fn exchange<S>(
    spec: &ProbeSpec,
    stream: S,
    scheme: Scheme,
    host: &str,
    gathered: &mut Gathered,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    // Ends once `sender` is dropped, with this probe.
    tokio::spawn(connection);
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(host)
        .path_and_query(spec.path.as_str())
        .build()
        .map_err(|e| format!("probe URI: {e}"))?;
    let request = http::Request::builder()
        .method(spec.method.as_str())
        .uri(uri)
        .header(http::header::USER_AGENT, "bascule-health-check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("probe request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP/2 request: {}", crate::error_chain(&e)))?;
    gathered.status = Some(response.status().as_u16());
    gathered.headers = header_pairs(response.headers(), &spec.needs.headers);
    if !spec.needs.body {
        return Ok(());
    }
    let mut body = response.into_body();
    while gathered.body.len() < spec.body_limit {
        let Some(frame) = body.frame().await else {
            return Ok(());
        };
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        if let Ok(data) = frame.into_data() {
            let room = spec.body_limit - gathered.body.len();
            gathered
                .body
                .extend_from_slice(data.get(..room.min(data.len())).unwrap_or(&data));
        }
    }
    Ok(())
}
