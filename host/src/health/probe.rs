//! One active probe: an HTTP request (HTTP/1.1, or HTTP/2 in `http2.rs`
//! for pools that speak it to their backends) or a TCP exchange on a
//! connection of its own (never pooled, never counted as traffic), bounded as a whole
//! by the pool's `timeout`. What arrived before a timeout is kept: the
//! interpreter sees the partial answer and the error.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

mod http2;

use http::uri::Scheme;

use super::{ProbeKind, ProbeNeeds, ProbeOutcome};
use crate::config::UpstreamProtocol;
use crate::http1::Decoded;
use crate::tls::TlsTarget;
use crate::upstream::{header_pairs, parse_response_head};

/// Largest HTTP response head a probe reads.
const MAX_HEAD: usize = 16 * 1024;

/// What a pool's probes send and read.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    /// HTTP or TCP.
    pub kind: ProbeKind,
    /// HTTP method.
    pub method: String,
    /// HTTP path.
    pub path: String,
    /// HTTP `Host`; `None`: the backend's configured address.
    pub host: Option<String>,
    /// Budget of the whole probe.
    pub timeout: Duration,
    /// Most body or answer bytes kept.
    pub body_limit: usize,
    /// What the interpreter declared.
    pub needs: ProbeNeeds,
    /// The pool's backend protocol: HTTP probes speak HTTP/2 to HTTP/2
    /// backends.
    pub protocol: UpstreamProtocol,
}

/// What a probe has gathered so far.
struct Gathered {
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

// === impl ProbeSpec ===

impl ProbeSpec {
    /// Probes `address` (over `tls` when the pool's backends speak TLS);
    /// `backend` (the configured `host:port`) is the `Host` unless the
    /// pool names one.
    pub async fn run(
        &self,
        address: SocketAddr,
        backend: &str,
        tls: Option<&TlsTarget>,
    ) -> ProbeOutcome {
        let started = Instant::now();
        let mut gathered = Gathered {
            status: None,
            headers: Vec::new(),
            body: Vec::new(),
        };
        let exchange = self.exchange(address, backend, tls, &mut gathered);
        let error = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error),
            Err(_) => Some(format!(
                "timed out after {}",
                humantime::format_duration(self.timeout)
            )),
        };
        ProbeOutcome {
            kind: self.kind,
            status: gathered.status,
            headers: gathered.headers,
            body: gathered.body,
            latency: started.elapsed(),
            error,
        }
    }

    async fn exchange(
        &self,
        address: SocketAddr,
        backend: &str,
        tls: Option<&TlsTarget>,
        gathered: &mut Gathered,
    ) -> Result<(), String> {
        if self.kind == ProbeKind::Udp {
            return self.datagram(address, gathered).await;
        }
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect to {address}: {}", io_reason(&e)))?;
        let _ = stream.set_nodelay(true);
        match tls {
            None if self.h2(None) => {
                let host = self.host.as_deref().unwrap_or(backend);
                http2::exchange(self, stream, Scheme::HTTP, host, gathered).await
            }
            None => self.speak(stream, backend, gathered).await,
            Some(tls) => {
                let stream = tls
                    .connect(stream)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                if self.h2(stream.get_ref().1.alpn_protocol()) {
                    let host = self.host.as_deref().unwrap_or(backend);
                    http2::exchange(self, stream, Scheme::HTTPS, host, gathered).await
                } else {
                    self.speak(stream, backend, gathered).await
                }
            }
        }
    }

    /// A UDP probe: the declared datagram from a socket connected to the
    /// backend, and the one answer it gets (up to the body limit). ICMP
    /// port unreachable comes back as a refused receive.
    async fn datagram(&self, address: SocketAddr, gathered: &mut Gathered) -> Result<(), String> {
        let local = crate::l4::udp::any_port_for(address);
        let socket = tokio::net::UdpSocket::bind(local)
            .await
            .map_err(|e| format!("udp socket: {}", io_reason(&e)))?;
        socket
            .connect(address)
            .await
            .map_err(|e| format!("udp connect to {address}: {}", io_reason(&e)))?;
        let payload = self.needs.send.as_deref().unwrap_or_default();
        socket
            .send(payload)
            .await
            .map_err(|e| format!("send: {}", io_reason(&e)))?;
        let mut answer = vec![0u8; crate::l4::udp::MAX_DATAGRAM];
        let length = socket
            .recv(&mut answer)
            .await
            .map_err(|e| format!("receive: {}", io_reason(&e)))?;
        answer.truncate(length.min(self.body_limit));
        gathered.body = answer;
        Ok(())
    }

    /// Whether an HTTP probe speaks HTTP/2, given what ALPN chose.
    fn h2(&self, alpn: Option<&[u8]>) -> bool {
        self.kind == ProbeKind::Http
            && match self.protocol {
                UpstreamProtocol::Http1 => false,
                UpstreamProtocol::Http2 => true,
                UpstreamProtocol::Auto => alpn == Some(b"h2"),
            }
    }

    async fn speak<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        backend: &str,
        gathered: &mut Gathered,
    ) -> Result<(), String> {
        match self.kind {
            ProbeKind::Http => self.http(&mut stream, backend, gathered).await,
            ProbeKind::Tcp => self.tcp(&mut stream, gathered).await,
            // Handled before a stream exists, in `datagram`.
            ProbeKind::Udp => Ok(()),
        }
    }

    async fn tcp<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        gathered: &mut Gathered,
    ) -> Result<(), String> {
        if let Some(payload) = &self.needs.send {
            stream
                .write_all(payload)
                .await
                .map_err(|e| format!("send: {}", io_reason(&e)))?;
        }
        if !self.needs.body {
            return Ok(());
        }
        let mut chunk = [0u8; 2048];
        while gathered.body.len() < self.body_limit {
            let read = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read: {}", io_reason(&e)))?;
            let Some(data) = chunk.get(..read).filter(|data| !data.is_empty()) else {
                return Ok(());
            };
            let room = self.body_limit - gathered.body.len();
            gathered
                .body
                .extend_from_slice(data.get(..room.min(data.len())).unwrap_or(data));
            if let Some(until) = &self.needs.until
                && contains(&gathered.body, until)
            {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn http<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        backend: &str,
        gathered: &mut Gathered,
    ) -> Result<(), String> {
        let host = self.host.as_deref().unwrap_or(backend);
        let request = format!(
            "{} {} HTTP/1.1\r\nhost: {host}\r\nuser-agent: bascule-health-check\r\naccept: */*\r\nconnection: close\r\n\r\n",
            self.method, self.path
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {}", io_reason(&e)))?;
        // The proxy's own response-head parser: a probe judges the
        // backend by the rules its traffic is held to.
        let head_request = self.method.eq_ignore_ascii_case("HEAD");
        let mut buffer = BytesMut::with_capacity(4096);
        let head = loop {
            match parse_response_head(&mut buffer, head_request, false) {
                // Interim answers (100 Continue) are skipped.
                Ok(Some(head)) if head.response.status().is_informational() => continue,
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(error) => return Err(crate::error_chain(&error)),
            }
            if buffer.len() >= MAX_HEAD {
                return Err(format!("response head over {MAX_HEAD} bytes"));
            }
            let read = stream
                .read_buf(&mut buffer)
                .await
                .map_err(|e| format!("read: {}", io_reason(&e)))?;
            if read == 0 {
                return Err("closed before a response head".to_owned());
            }
        };
        gathered.status = Some(head.response.status().as_u16());
        gathered.headers = header_pairs(head.response.headers(), &self.needs.headers);
        if !self.needs.body {
            return Ok(());
        }
        let mut decoder = head.framing.decoder();
        while gathered.body.len() < self.body_limit {
            match decoder
                .decode(&mut buffer)
                .map_err(|e| format!("malformed body: {e}"))?
            {
                Decoded::Data(data) => {
                    let room = self.body_limit - gathered.body.len();
                    gathered
                        .body
                        .extend_from_slice(data.get(..room.min(data.len())).unwrap_or(&data));
                }
                Decoded::End(_) => return Ok(()),
                Decoded::NeedMore => {
                    let read = stream
                        .read_buf(&mut buffer)
                        .await
                        .map_err(|e| format!("read: {}", io_reason(&e)))?;
                    if read == 0 {
                        return if decoder.end_of_stream() {
                            Ok(())
                        } else {
                            Err("closed inside the body".to_owned())
                        };
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether `haystack` holds `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// An I/O error as the few words an operator reads on the status page.
fn io_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::ConnectionReset => "connection reset".to_owned(),
        ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests;
