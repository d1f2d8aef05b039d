//! The proxy's own HTTP/1.x server for client connections.
//!
//! hyper's server ran a full dispatcher per connection; with the backend
//! side already lean (`upstream::http1`), it was most of the userspace
//! work per proxied request (BENCHMARKS.md). A proxy needs less: read one
//! head, hand it to the [`Proxy`](super::Proxy), write the response it
//! returns, repeat. This does that over `httparse` (as hyper does), with
//! the rules hyper enforced kept and tested again: `request_head` for the
//! head and its framing, `body` for the request body (read by the backend
//! client inside the request's task), `response_head` for what goes out.
//! A connection that opens with the HTTP/2 preface is handed to hyper's
//! HTTP/2 server with what was read ([`Rewind`](crate::rewind::Rewind)).

mod body;
mod connection;
mod request_head;
mod response_head;

pub use connection::{Handoff, Served, serve};
pub use request_head::parse as parse_request_head;
