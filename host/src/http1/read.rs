//! Reading what arrives into a message buffer.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read at a time.
pub const READ_CHUNK: usize = 8 * 1024;

/// Reads what arrives on `io` into `buffer`, which holds at most `limit`
/// bytes (and gets room for [`READ_CHUNK`] when it has little); 0 at the
/// end of the stream.
pub fn poll_fill(
    io: &mut (impl AsyncRead + Unpin + ?Sized),
    buffer: &mut BytesMut,
    limit: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let room = limit.saturating_sub(buffer.len()).min(READ_CHUNK);
    if room == 0 {
        return Poll::Ready(Err(io::ErrorKind::OutOfMemory.into()));
    }
    if buffer.capacity() - buffer.len() < room {
        buffer.reserve(READ_CHUNK);
    }
    let mut limited = buffer.limit(room);
    pin!(io.read_buf(&mut limited)).poll(cx)
}
