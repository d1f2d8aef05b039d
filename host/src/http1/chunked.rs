//! The chunked transfer coding (RFC 9112 §7.1), decoded from a buffer and
//! encoded into one.
//!
//! Strict where leniency lets two parsers disagree about where a body
//! ends: every line ends in CRLF (a bare LF is an error), a size is 1 to
//! 16 hex digits (no sign, no `0x`, no overflow), only spaces or tabs and
//! a `;` extension may follow it, the data of each chunk is followed by
//! exactly CRLF, and lines are bounded.

use bytes::{Buf, BytesMut};
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// Longest chunk-size line (size and extensions), as HAProxy bounds it by
/// its buffer.
const MAX_LINE: usize = 4096;
/// Largest trailer section.
const MAX_TRAILERS: usize = 16 * 1024;
/// Trailer fields kept.
const MAX_TRAILER_FIELDS: usize = 64;

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: the trailer section.
    Trailers,
    /// The body is complete.
    Done,
}

/// What the buffer yielded.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// More bytes are needed.
    NeedMore,
    /// This many bytes at the front of the buffer are body data.
    Data(usize),
    /// The body ended with these trailer fields (maybe none).
    End(HeaderMap),
}

/// Why a chunked body is malformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    /// The size is not 1-16 hex digits.
    #[error("invalid chunk size")]
    Size,
    /// A line did not end in CRLF, or held a byte it may not.
    #[error("invalid chunk line")]
    Line,
    /// A size line or the trailers exceeded their bound.
    #[error("chunk line or trailers too long")]
    TooLong,
    /// The trailer section is malformed.
    #[error("invalid trailer section")]
    Trailers,
}

// === impl Chunked ===

impl Chunked {
    /// Decodes what it can from the front of `buffer`. Framing bytes are
    /// consumed; data is left in place for the caller to take (`Data(n)`),
    /// after which it must call [`Chunked::consumed`].
    pub fn step(&mut self, buffer: &mut BytesMut) -> Result<Step, ChunkError> {
        loop {
            match *self {
                Chunked::Size => {
                    let Some(line) = line(buffer, MAX_LINE)? else {
                        return Ok(Step::NeedMore);
                    };
                    let size = chunk_size(buffer.get(..line).unwrap_or_default())?;
                    buffer.advance(line + 2);
                    *self = if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if buffer.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(buffer.len());
                    return Ok(Step::Data(take));
                }
                Chunked::DataEnd => {
                    match buffer.get(..2) {
                        None if buffer.first().is_none_or(|&b| b == b'\r') => {
                            return Ok(Step::NeedMore);
                        }
                        Some(b"\r\n") => buffer.advance(2),
                        _ => return Err(ChunkError::Line),
                    }
                    *self = Chunked::Size;
                }
                Chunked::Trailers => {
                    let Some(trailers) = trailer_section(buffer)? else {
                        return Ok(Step::NeedMore);
                    };
                    *self = Chunked::Done;
                    return Ok(Step::End(trailers));
                }
                Chunked::Done => return Ok(Step::End(HeaderMap::new())),
            }
        }
    }

    /// Records that `taken` bytes of data were taken from the buffer.
    pub fn consumed(&mut self, taken: usize) {
        if let Chunked::Data(left) = *self {
            let left = left.saturating_sub(taken as u64);
            *self = if left == 0 {
                Chunked::DataEnd
            } else {
                Chunked::Data(left)
            };
        }
    }
}

/// The length of the first line of `buffer` (without its CRLF), once the
/// whole line is there.
fn line(buffer: &[u8], max: usize) -> Result<Option<usize>, ChunkError> {
    let window = buffer.get(..buffer.len().min(max + 2)).unwrap_or(buffer);
    match window.iter().position(|&b| b == b'\n') {
        Some(0) => Err(ChunkError::Line),
        Some(end) if window.get(end - 1) == Some(&b'\r') => Ok(Some(end - 1)),
        Some(_) => Err(ChunkError::Line),
        None if buffer.len() >= max + 2 => Err(ChunkError::TooLong),
        None => Ok(None),
    }
}

/// A chunk-size line: `1*HEXDIG [BWS] [";" ext]`.
fn chunk_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(ChunkError::Size);
    }
    let mut size = 0u64;
    for &digit in line.iter().take(digits) {
        let value = char::from(digit).to_digit(16).ok_or(ChunkError::Size)?;
        size = (size << 4) | u64::from(value);
    }
    let rest = line.get(digits..).unwrap_or_default();
    let rest = rest.trim_ascii_start();
    let clean = |b: &u8| *b == b'\t' || (b' '..=b'~').contains(b) || *b >= 0x80;
    match rest.first() {
        None => Ok(size),
        Some(b';') if rest.iter().all(clean) => Ok(size),
        Some(_) => Err(ChunkError::Size),
    }
}

/// The trailer section (fields, then an empty line), removed from the
/// front of `buffer` once complete.
fn trailer_section(buffer: &mut BytesMut) -> Result<Option<HeaderMap>, ChunkError> {
    if buffer.starts_with(b"\r\n") {
        buffer.advance(2);
        return Ok(Some(HeaderMap::new()));
    }
    if buffer.first() == Some(&b'\n') {
        return Err(ChunkError::Line);
    }
    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
    let (length, trailers) = match httparse::parse_headers(buffer, &mut fields) {
        Ok(httparse::Status::Complete((length, parsed))) => {
            let mut trailers = HeaderMap::with_capacity(parsed.len());
            for field in parsed {
                let name = HeaderName::from_bytes(field.name.as_bytes())
                    .map_err(|_| ChunkError::Trailers)?;
                let value =
                    HeaderValue::from_bytes(field.value).map_err(|_| ChunkError::Trailers)?;
                trailers.append(name, value);
            }
            (length, trailers)
        }
        Ok(httparse::Status::Partial) if buffer.len() > MAX_TRAILERS => {
            return Err(ChunkError::TooLong);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ChunkError::Trailers),
    };
    // httparse takes a bare LF as a line end; here every line ends in CRLF.
    let section = buffer.get(..length).unwrap_or_default();
    let bare_lf = section
        .iter()
        .enumerate()
        .any(|(at, &b)| b == b'\n' && (at == 0 || section.get(at - 1) != Some(&b'\r')));
    if bare_lf {
        return Err(ChunkError::Line);
    }
    buffer.advance(length);
    Ok(Some(trailers))
}

/// Appends the header of one chunk of `len` bytes.
pub fn chunk_header(len: usize, out: &mut Vec<u8>) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{len:x}\r\n");
}

/// Appends the last chunk and `trailers`, ending the body.
pub fn last_chunk<'a>(
    trailers: impl IntoIterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"0\r\n");
    super::write_fields(trailers, out);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes.
    fn decode(input: &[u8], piece: usize) -> Result<(Vec<u8>, HeaderMap), ChunkError> {
        let mut state = Chunked::Size;
        let mut buffer = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match state.step(&mut buffer)? {
                Step::Data(n) => {
                    body.extend_from_slice(&buffer.split_to(n));
                    state.consumed(n);
                }
                Step::End(trailers) => return Ok((body, trailers)),
                Step::NeedMore => {
                    assert!(fed < input.len(), "input ended early");
                    let next = (fed + piece).min(input.len());
                    buffer.extend_from_slice(&input[fed..next]);
                    fed = next;
                }
            }
        }
    }

    #[test]
    fn chunks_decode_whatever_the_reads() {
        let input = b"5\r\nhello\r\n6;name=value\r\n world\r\nA \r\n0123456789\r\n0\r\n\r\n";
        for piece in [1, 2, 3, 7, input.len()] {
            let (body, trailers) = decode(input, piece).unwrap();
            assert_eq!(body, b"hello world0123456789", "piece {piece}");
            assert!(trailers.is_empty());
        }
    }

    #[test]
    fn trailers_are_returned() {
        let (body, trailers) = decode(b"1\r\nx\r\n0\r\nX-Sum: 7\r\nX-B: 2\r\n\r\n", 1).unwrap();
        assert_eq!(body, b"x");
        assert_eq!(trailers["x-sum"], "7");
        assert_eq!(trailers["x-b"], "2");
    }

    #[test]
    fn malformed_chunking_is_an_error() {
        let cases: [(&[u8], ChunkError); 11] = [
            (b"0\r\n\n", ChunkError::Line),
            (b"0\r\nX-A: 1\n\r\n", ChunkError::Line),
            (b"5\nhello\r\n0\r\n\r\n", ChunkError::Line),
            (b"5\r\nhello\n0\r\n\r\n", ChunkError::Line),
            (b"5\r\nhelloXX0\r\n\r\n", ChunkError::Line),
            (b"+5\r\nhello\r\n0\r\n\r\n", ChunkError::Size),
            (b"0x5\r\nhello\r\n0\r\n\r\n", ChunkError::Size),
            (b"10000000000000000\r\n", ChunkError::Size),
            (b"5 x\r\nhello\r\n0\r\n\r\n", ChunkError::Size),
            (b"5;a\0b\r\nhello\r\n0\r\n\r\n", ChunkError::Size),
            (b"\r\n", ChunkError::Size),
        ];
        for (input, expected) in cases {
            assert_eq!(decode(input, 1).unwrap_err(), expected, "{input:?}");
        }
        let long = [b"1;".as_slice(), &[b'a'; MAX_LINE + 10]].concat();
        assert_eq!(decode(&long, 64).unwrap_err(), ChunkError::TooLong);
    }

    #[test]
    fn the_largest_size_that_fits_is_accepted() {
        let mut state = Chunked::Size;
        let mut buffer = BytesMut::from(&b"ffffffffffffffff\r\n"[..]);
        assert_eq!(state.step(&mut buffer), Ok(Step::NeedMore));
        assert_eq!(state, Chunked::Data(u64::MAX));
    }

    #[test]
    fn chunk_headers_are_hex() {
        for (len, text) in [
            (0, "0\r\n"),
            (5, "5\r\n"),
            (255, "ff\r\n"),
            (4096, "1000\r\n"),
        ] {
            let mut out = Vec::new();
            chunk_header(len, &mut out);
            assert_eq!(out, text.as_bytes());
        }
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", HeaderValue::from_static("7"));
        let mut out = Vec::new();
        last_chunk(&trailers, &mut out);
        assert_eq!(out, b"0\r\nx-sum: 7\r\n\r\n");
    }
}
