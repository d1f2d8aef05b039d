//! A response body read from its connection: by length, by chunks, or
//! until the backend closes; data is sliced from the read buffer.

use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::chunked::{Chunked, Step};
use super::{Framing, Http1Connection, Http1Error, ResponseHead};

/// Longest stretch of a body buffered before it is passed on.
const BODY_LIMIT: usize = 64 * 1024;

/// The body of one response, owning its connection until it ends.
pub struct ResponseBody {
    /// Taken back for reuse once the body ended.
    connection: Option<Http1Connection>,
    state: State,
    keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(Chunked),
    Close,
    Done,
    Failed,
}

// === impl ResponseBody ===

impl ResponseBody {
    /// The body `head` announced, read from `connection`.
    pub fn new(connection: Http1Connection, head: &ResponseHead) -> Self {
        let state = match head.framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(length) => State::Length(length),
            Framing::Chunked => State::Chunked(Chunked::Size),
            Framing::Close => State::Close,
        };
        ResponseBody {
            connection: Some(connection),
            state,
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
        if self.state == State::Done && self.keep_alive && clean {
            self.connection.take()
        } else {
            None
        }
    }

    /// Whether the body has been read to its end.
    pub fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    /// The bytes left, when known.
    pub fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(left) => SizeHint::with_exact(left),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }

    /// The next frame of the body.
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Http1Error>>> {
        let polled = self.poll_step(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            self.state = State::Failed;
        }
        polled
    }

    fn poll_step(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Http1Error>>> {
        loop {
            let Some(connection) = self.connection.as_mut() else {
                return Poll::Ready(None);
            };
            let buffer = &mut connection.read;
            match &mut self.state {
                State::Done | State::Failed => return Poll::Ready(None),
                State::Length(left) => {
                    if !buffer.is_empty() {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(buffer.len());
                        let data = buffer.split_to(take).freeze();
                        *left -= take as u64;
                        if *left == 0 {
                            self.state = State::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::Chunked(chunked) => match chunked.step(buffer) {
                    Err(error) => return Poll::Ready(Some(Err(Http1Error::Chunk(error)))),
                    Ok(Step::Data(take)) => {
                        let data = buffer.split_to(take).freeze();
                        chunked.consumed(take);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(Step::End(trailers)) => {
                        self.state = State::Done;
                        if trailers.is_empty() {
                            return Poll::Ready(None);
                        }
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(Step::NeedMore) => {}
                },
                State::Close => {
                    if !buffer.is_empty() {
                        let data = buffer.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            let read = ready!(connection.poll_fill(cx, BODY_LIMIT)).map_err(Http1Error::Read);
            match read {
                Err(error) => return Poll::Ready(Some(Err(error))),
                Ok(0) if self.state == State::Close => {
                    self.state = State::Done;
                    self.keep_alive = false;
                    return Poll::Ready(None);
                }
                Ok(0) => return Poll::Ready(Some(Err(Http1Error::BodyCut))),
                Ok(_) => {}
            }
        }
    }
}
