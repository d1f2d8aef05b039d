//! A client's request body, read from its connection by whoever forwards
//! it (the backend client, inside the request's task): by length or by
//! chunks, sliced from the connection's read buffer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::connection::{ClientIo, SharedIo};
use super::request_head::BodyFraming;
use crate::upstream::{ChunkError, ChunkStep, Chunked};

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
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(Chunked),
    Done,
}

// === impl ClientBodyReader ===

impl ClientBodyReader {
    /// The body `framing` announces, read from `io`; `None` for no body.
    pub fn new(io: &SharedIo, framing: BodyFraming) -> Option<Self> {
        let state = match framing {
            BodyFraming::Empty => return None,
            BodyFraming::Length(length) => State::Length(length),
            BodyFraming::Chunked => State::Chunked(Chunked::Size),
        };
        ClientIo::lock(io).body_pending = true;
        Some(ClientBodyReader {
            io: Arc::clone(io),
            state,
        })
    }

    fn step(
        &mut self,
        io: &mut ClientIo,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        loop {
            let buffer = &mut io.read;
            match &mut self.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) => {
                    if !buffer.is_empty() {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(buffer.len());
                        let data = buffer.split_to(take).freeze();
                        *left -= take as u64;
                        if *left == 0 {
                            self.state = State::Done;
                            io.body_pending = false;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::Chunked(chunked) => match chunked.step(buffer) {
                    Err(error) => return Poll::Ready(Some(Err(ClientBodyError::Chunk(error)))),
                    Ok(ChunkStep::Data(take)) => {
                        let data = buffer.split_to(take).freeze();
                        chunked.consumed(take);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(ChunkStep::End(trailers)) => {
                        self.state = State::Done;
                        io.body_pending = false;
                        if trailers.is_empty() {
                            return Poll::Ready(None);
                        }
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(ChunkStep::NeedMore) => {}
                },
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
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(left) => SizeHint::with_exact(left),
            State::Done => SizeHint::with_exact(0),
            State::Chunked(_) => SizeHint::default(),
        }
    }
}
