//! A response body read from its connection (decoded by
//! [`BodyDecoder`]: by length, by chunks, or until the backend closes).

use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::{Http1Connection, Http1Error, ResponseHead};
use crate::http1::{BodyDecoder, Decoded};

/// Longest stretch of a body buffered before it is passed on.
const BODY_LIMIT: usize = 64 * 1024;

/// The body of one response, owning its connection until it ends.
pub struct ResponseBody {
    /// Taken back for reuse once the body ended; dropped when it failed.
    connection: Option<Http1Connection>,
    decoder: BodyDecoder,
    keep_alive: bool,
}

// === impl ResponseBody ===

impl ResponseBody {
    /// The body `head` announced, read from `connection`.
    pub fn new(connection: Http1Connection, head: &ResponseHead) -> Self {
        ResponseBody {
            connection: Some(connection),
            decoder: head.framing.decoder(),
            keep_alive: head.keep_alive,
        }
    }

    /// The connection, once the body has been read to its end and the
    /// connection may carry another request (nothing unread is left).
    pub fn take_reusable(&mut self) -> Option<Http1Connection> {
        let clean = self
            .connection
            .as_ref()
            .is_some_and(|connection| connection.read.is_empty());
        if self.decoder.is_done() && self.keep_alive && clean {
            self.connection.take()
        } else {
            None
        }
    }

    /// Whether the body has been read to its end.
    pub fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    /// The bytes left, when known.
    pub fn size_hint(&self) -> SizeHint {
        self.decoder.size_hint()
    }

    /// The next frame of the body.
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Http1Error>>> {
        let polled = self.poll_step(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            // A broken body is a broken connection.
            self.connection = None;
        }
        polled
    }

    fn poll_step(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Http1Error>>> {
        let Some(connection) = self.connection.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match self.decoder.decode(&mut connection.read) {
                Err(error) => return Poll::Ready(Some(Err(Http1Error::Chunk(error)))),
                Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Decoded::End(trailers)) if trailers.is_empty() => return Poll::Ready(None),
                Ok(Decoded::End(trailers)) => {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                Ok(Decoded::NeedMore) => {}
            }
            match ready!(connection.poll_fill(cx, BODY_LIMIT)) {
                Err(error) => return Poll::Ready(Some(Err(Http1Error::Read(error)))),
                Ok(0) if self.decoder.end_of_stream() => return Poll::Ready(None),
                Ok(0) => return Poll::Ready(Some(Err(Http1Error::BodyCut))),
                Ok(_) => {}
            }
        }
    }
}
