//! HTTP/1 message syntax shared by the proxy's own server
//! ([`crate::l7`]) and its backend client ([`crate::upstream`]): the
//! field table a parsed head is built from, the framing fields
//! (`Content-Length`, codings, connection tokens), chunked decoding and
//! encoding, and a message body decoded from a read buffer.
//!
//! Each side keeps its own rules about what to refuse and how (a request
//! and a response are framed differently, and refused with different
//! answers); the syntax those rules read is here, once.

mod body;
mod chunked;
mod fields;
mod read;

pub use body::{BodyDecoder, Decoded};
pub use chunked::{ChunkError, Chunked, Step as ChunkStep, chunk_header, last_chunk};
#[cfg(test)]
pub use fields::field_map;
pub use fields::{
    FieldError, FieldTable, MAX_HEADERS, codings, content_length, has_token, write_fields,
};
pub use read::{READ_CHUNK, poll_fill};
