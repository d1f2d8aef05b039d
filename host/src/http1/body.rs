//! A message body decoded from a read buffer: by length, by chunks, or
//! until the connection closes. Data is sliced from the buffer, not
//! copied; the caller reads more into the buffer when told to.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;

use super::chunked::{ChunkError, Chunked, Step};

/// Where a body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyDecoder {
    /// This many bytes left.
    Length(u64),
    /// Chunked.
    Chunked(Chunked),
    /// Until the end of the stream.
    Close,
    /// Complete.
    Done,
}

/// What the buffer yielded.
#[derive(Debug)]
pub enum Decoded {
    /// Body data.
    Data(Bytes),
    /// The body ended, with these trailer fields (maybe none).
    End(HeaderMap),
    /// More bytes are needed.
    NeedMore,
}

// === impl BodyDecoder ===

impl BodyDecoder {
    /// The next piece of the body from the front of `buffer`.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Decoded, ChunkError> {
        match self {
            BodyDecoder::Done => Ok(Decoded::End(HeaderMap::new())),
            BodyDecoder::Length(_) | BodyDecoder::Close if buffer.is_empty() => {
                Ok(Decoded::NeedMore)
            }
            BodyDecoder::Length(left) => {
                let take = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(buffer.len());
                *left -= take as u64;
                if *left == 0 {
                    *self = BodyDecoder::Done;
                }
                Ok(Decoded::Data(buffer.split_to(take).freeze()))
            }
            BodyDecoder::Close => Ok(Decoded::Data(buffer.split().freeze())),
            BodyDecoder::Chunked(chunked) => match chunked.step(buffer)? {
                Step::Data(take) => {
                    chunked.consumed(take);
                    Ok(Decoded::Data(buffer.split_to(take).freeze()))
                }
                Step::End(trailers) => {
                    *self = BodyDecoder::Done;
                    Ok(Decoded::End(trailers))
                }
                Step::NeedMore => Ok(Decoded::NeedMore),
            },
        }
    }

    /// The stream ended: whether that ends the body (`Close`) rather than
    /// cutting it short.
    pub fn end_of_stream(&mut self) -> bool {
        match self {
            BodyDecoder::Close | BodyDecoder::Done => {
                *self = BodyDecoder::Done;
                true
            }
            _ => false,
        }
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        *self == BodyDecoder::Done
    }

    /// The bytes left, when known.
    pub fn size_hint(&self) -> http_body::SizeHint {
        match self {
            BodyDecoder::Length(left) => http_body::SizeHint::with_exact(*left),
            BodyDecoder::Done => http_body::SizeHint::with_exact(0),
            _ => http_body::SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_body_ends_at_its_length_and_leaves_the_rest() {
        let mut decoder = BodyDecoder::Length(3);
        let mut buffer = BytesMut::from(&b"abcNEXT"[..]);
        let Ok(Decoded::Data(data)) = decoder.decode(&mut buffer) else {
            panic!("no data");
        };
        assert_eq!(&data[..], b"abc");
        assert!(decoder.is_done());
        assert_eq!(&buffer[..], b"NEXT");
        assert!(!BodyDecoder::Length(1).end_of_stream(), "cut short");
        let mut close = BodyDecoder::Close;
        assert!(close.end_of_stream() && close.is_done());
    }
}
