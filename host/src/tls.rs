//! TLS termination on listeners: certificates read and checked at plan
//! build (start and every reload), chosen per handshake by SNI, and the
//! client stream that is either plain TCP or TLS over it; and TLS from the
//! proxy to a pool's backends (upstream TLS, mutual TLS).
//!
//! ```text
//! [listeners.tls] ── ServerTls::load ──▶ rustls ServerConfig (SniResolver)
//! accept ── ServerTls::accept (first-byte-timeout) ──▶ ClientStream::Tls + TlsSession
//! ```

mod certificates;
mod client;
mod resolver;
mod server;
mod stream;

pub use certificates::CertificateError;
pub use client::{TlsTarget, UpstreamTls, UpstreamTlsError};
pub use server::{ServerTls, TlsSession};
pub use stream::ClientStream;
