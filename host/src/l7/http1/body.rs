//! A client's request body, read from its connection by whoever forwards
//! it (the backend client, inside the request's task), decoded by
//! [`BodyDecoder`] from the connection's read buffer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::connection::{ClientIo, SharedIo};
use super::request_head::BodyFraming;
use crate::http1::{BodyDecoder, ChunkError, Chunked, Decoded};

/// Bytes of body buffered at most before they are passed on.
const BODY_LIMIT: usize = 64 * 1024;

/// Why a request body could not be read: the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    /// Reading failed.
    #[error("reading the request body failed")]
    Read(#[source] io::Error),
    /// The client closed before the end of the body.
    #[error("the client closed the connection before the end of the request body")]
    Cut,
    /// Malformed chunked encoding.
    #[error("malformed chunked request body")]
    Chunk(#[source] ChunkError),
}

/// One request's body.
pub struct ClientBodyReader {
    io: SharedIo,
    decoder: BodyDecoder,
}

// === impl ClientBodyReader ===

impl ClientBodyReader {
    /// The body `framing` announces, read from `io`; `None` for no body.
    pub fn new(io: &SharedIo, framing: BodyFraming) -> Option<Self> {
        let decoder = match framing {
            BodyFraming::Empty => return None,
            BodyFraming::Length(length) => BodyDecoder::Length(length),
            BodyFraming::Chunked => BodyDecoder::Chunked(Chunked::Size),
        };
        ClientIo::lock(io).body_pending = true;
        Some(ClientBodyReader {
            io: Arc::clone(io),
            decoder,
        })
    }

    fn step(
        &mut self,
        io: &mut ClientIo,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        loop {
            let decoded = self.decoder.decode(&mut io.read);
            if self.decoder.is_done() {
                io.body_pending = false;
            }
            match decoded {
                Err(error) => return Poll::Ready(Some(Err(ClientBodyError::Chunk(error)))),
                Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Decoded::End(trailers)) if trailers.is_empty() => return Poll::Ready(None),
                Ok(Decoded::End(trailers)) => {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                Ok(Decoded::NeedMore) => {}
            }
            match ready!(io.poll_fill(cx, BODY_LIMIT)) {
                Err(error) => return Poll::Ready(Some(Err(ClientBodyError::Read(error)))),
                Ok(0) => return Poll::Ready(Some(Err(ClientBodyError::Cut))),
                Ok(_) => {}
            }
        }
    }
}

impl Body for ClientBodyReader {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let io = Arc::clone(&self.io);
        let mut io = ClientIo::lock(&io);
        self.step(&mut io, cx)
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.decoder.size_hint()
    }
}
