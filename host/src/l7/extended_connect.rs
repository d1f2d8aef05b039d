//! WebSockets over HTTP/2 (RFC 8441): an extended `CONNECT` with
//! `:protocol = websocket` on a client's HTTP/2 stream, carried to an
//! HTTP/1.1 backend as the classic `Upgrade: websocket` handshake, as
//! Envoy does.
//!
//! The listener's HTTP/2 server announces `SETTINGS_ENABLE_CONNECT_PROTOCOL`.
//! An extended `CONNECT` is turned into a `GET` before routing (so routes,
//! `methods`, filters and balancing see the request a WebSocket client
//! sends over HTTP/1.1); the prepare-head step asks the backend for its
//! `:protocol` (with a `Sec-WebSocket-Key` of our own, which HTTP/2 clients
//! do not send). The backend's `101` becomes the `200` RFC 8441 expects,
//! and the stream is tunnelled to the backend connection like an HTTP/1.1
//! upgrade (`tunnel.rs`): idle timeout, drain and counting included.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::activity::InFlight;
use super::response::{self, ProxyBody};
use crate::upstream::Upgraded;

/// The stream of an extended `CONNECT`, to be tunnelled once answered.
pub struct PendingStream {
    upgrade: OnUpgrade,
}

/// Turns an extended `CONNECT` into the `GET` it stands for, keeping its
/// `:protocol` (hyper's `Protocol` extension) for the prepare-head step.
/// `None` for every other request.
pub fn into_get<B>(request: &mut Request<B>) -> Option<PendingStream> {
    if request.method() != Method::CONNECT
        || request.extensions().get::<hyper::ext::Protocol>().is_none()
    {
        return None;
    }
    *request.method_mut() = Method::GET;
    Some(PendingStream {
        upgrade: hyper::upgrade::on(request),
    })
}

/// The protocol an extended `CONNECT` asked for, lowercase.
pub fn protocol(extensions: &http::Extensions) -> Option<String> {
    extensions
        .get::<hyper::ext::Protocol>()
        .map(|protocol| protocol.as_str().to_ascii_lowercase())
}

/// A `Sec-WebSocket-Key` for the backend handshake: 16 bytes, base64
/// (RFC 6455 §4.1), a nonce that only proves the server speaks WebSocket.
/// Base64 of one 16-byte value is written out here rather than pulled in
/// as a crate.
pub fn websocket_key() -> HeaderValue {
    let bytes = super::headers::unique_u128().to_le_bytes();
    HeaderValue::from_bytes(&base64(&bytes)).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= chunk.len() {
                ALPHABET
                    .get(((n >> shift) & 63) as usize)
                    .copied()
                    .unwrap_or(b'=')
            } else {
                b'='
            });
        }
    }
    out
}

// === impl PendingStream ===

impl PendingStream {
    /// The client's answer for the backend's `response`: its `101` becomes
    /// `200` and the stream is tunnelled (the tunnel keeps `in_flight`, so
    /// the connection's keep-alive timer does not close it); any other
    /// answer goes back as it is.
    pub fn answer(
        self,
        response: Response<ProxyBody>,
        idle: std::time::Duration,
        listener: &str,
        in_flight: InFlight,
    ) -> Response<ProxyBody> {
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return response;
        }
        let Some(tunnel) = response
            .extensions()
            .get::<Upgraded>()
            .and_then(Upgraded::take)
        else {
            return response::local(StatusCode::BAD_GATEWAY, "upgrade failed");
        };
        let mut answer = response::empty(StatusCode::OK);
        // The handshake's connection fields mean nothing on an HTTP/2
        // stream (which forbids them), and its accept key answers a key
        // the client never sent.
        let mut headers = response.headers().clone();
        crate::header_rules::remove_hop_by_hop(&mut headers);
        headers.remove(http::header::SEC_WEBSOCKET_ACCEPT);
        *answer.headers_mut() = headers;
        let listener = listener.to_owned();
        tokio::spawn(async move {
            match self.upgrade.await {
                Ok(stream) => {
                    super::tunnel::run(TokioIo::new(stream), Bytes::new(), tunnel, idle, &listener)
                        .await;
                }
                Err(error) => tracing::debug!(%error, "extended CONNECT stream not upgraded"),
            }
            drop(in_flight);
        });
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_the_rfc_6455_sample_nonce() {
        assert_eq!(base64(b"the sample nonce"), b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(base64(b"ab"), b"YWI=");
    }

    #[test]
    fn websocket_keys_differ() {
        let first = websocket_key();
        assert_eq!(first.len(), 24);
        assert_ne!(first, websocket_key());
    }
}
