//! Buffers shared by the client driver and the server: a read buffer refill, and a write
//! queue that coalesces small frames into one buffer and keeps large payloads as their own
//! chunks, so a batch goes out in one (vectored) write without copying big payloads.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

/// Payloads at least this long are queued as their own chunk instead of being copied.
pub(crate) const ZERO_COPY_MIN: usize = 4 * 1024;
/// The driver stops encoding more frames while this much is waiting to be written.
pub(crate) const WRITE_HIGH_WATER: usize = 256 * 1024;
/// How much free space a read asks for.
const READ_RESERVE: usize = 16 * 1024;
/// At most this many chunks per vectored write.
const MAX_IOVECS: usize = 64;

/// The outgoing byte stream: `chunks` (frozen, in order) then `tail` (where small frames
/// are appended). Counts every byte ever written so the mux can tell, when the connection
/// dies, which requests had any byte handed to the transport.
#[derive(Debug, Default)]
pub(crate) struct WriteBuf {
    chunks: VecDeque<Bytes>,
    chunk_bytes: usize,
    tail: BytesMut,
    written: u64,
    /// Bytes were written since the last flush.
    unflushed: bool,
}

impl WriteBuf {
    /// Where codecs append frames.
    pub(crate) fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Appends `payload`, by reference when it is large.
    pub(crate) fn push_payload(&mut self, payload: Bytes) {
        if payload.len() >= ZERO_COPY_MIN {
            self.seal_tail();
            self.chunk_bytes += payload.len();
            self.chunks.push_back(payload);
        } else {
            self.tail.extend_from_slice(&payload);
        }
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let sealed = self.tail.split().freeze();
            self.chunk_bytes += sealed.len();
            self.chunks.push_back(sealed);
        }
    }

    /// A point to roll back to if an encoder fails halfway.
    pub(crate) fn mark(&self) -> u64 {
        self.offset()
    }

    /// Drops everything appended since `mark` (an earlier [`offset`](Self::offset)).
    pub(crate) fn rollback(&mut self, mark: u64) {
        let mut excess = usize::try_from(self.offset().saturating_sub(mark)).unwrap_or(usize::MAX);
        let from_tail = excess.min(self.tail.len());
        self.tail.truncate(self.tail.len() - from_tail);
        excess -= from_tail;
        while excess > 0 {
            let Some(back) = self.chunks.back_mut() else {
                return;
            };
            let cut = excess.min(back.len());
            back.truncate(back.len() - cut);
            self.chunk_bytes -= cut;
            excess -= cut;
            if back.is_empty() {
                self.chunks.pop_back();
            }
        }
    }

    /// Bytes queued and not yet written.
    pub(crate) fn remaining(&self) -> usize {
        self.chunk_bytes + self.tail.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Bytes written so far over the life of the connection.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// The stream offset of the next byte appended.
    pub(crate) fn offset(&self) -> u64 {
        self.written + self.remaining() as u64
    }

    /// Writes until everything queued is out or the transport is full, then flushes once
    /// (one flush per batch). Returns whether any byte was written.
    pub(crate) fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> io::Result<bool> {
        let mut progress = false;
        while !self.is_empty() {
            match self.poll_write_to(io, cx) {
                Poll::Ready(Ok(_)) => {
                    progress = true;
                    self.unflushed = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(progress),
            }
        }
        if self.unflushed {
            match Pin::new(&mut *io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(progress)
    }

    /// Whether everything written has been flushed too.
    pub(crate) fn is_flushed(&self) -> bool {
        self.is_empty() && !self.unflushed
    }

    /// One write of as much as the transport takes, vectored when there are several chunks
    /// and the transport supports it.
    pub(crate) fn poll_write_to<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let n = if self.chunks.is_empty() {
            ready!(Pin::new(&mut *io).poll_write(cx, &self.tail))?
        } else {
            self.seal_tail();
            if io.is_write_vectored() && self.chunks.len() > 1 {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for (slot, chunk) in slices.iter_mut().zip(self.chunks.iter()) {
                    *slot = IoSlice::new(chunk);
                    count += 1;
                }
                ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]))?
            } else {
                let first = self.chunks.front().map_or(&[][..], |c| &c[..]);
                ready!(Pin::new(&mut *io).poll_write(cx, first))?
            }
        };
        if n == 0 && !self.is_empty() {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.advance(n);
        Poll::Ready(Ok(n))
    }

    fn advance(&mut self, mut n: usize) {
        self.written += n as u64;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                self.tail.advance(n);
                return;
            };
            let take = n.min(front.len());
            front.advance(take);
            self.chunk_bytes -= take;
            n -= take;
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
    }
}

/// Reads once into `buf`, making room first. `Ok(0)` means end of stream.
pub(crate) fn poll_read_into<R: AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < READ_RESERVE / 4 {
        buf.reserve(READ_RESERVE);
    }
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Every write call: whether it was vectored, and the bytes it took.
    type Calls = Arc<Mutex<Vec<(bool, Vec<u8>)>>>;

    /// A writer that records every write call and accepts at most `limit` bytes per call.
    #[derive(Default, Clone)]
    struct Recorder {
        calls: Calls,
        limit: usize,
        vectored: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.limit);
            self.calls.lock().unwrap().push((false, buf[..n].to_vec()));
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len().min(self.limit);
            self.calls.lock().unwrap().push((true, all[..n].to_vec()));
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            self.vectored
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn write_all(buf: &mut WriteBuf, io: &mut Recorder) {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        while !buf.is_empty() {
            match buf.poll_write_to(io, &mut cx) {
                Poll::Ready(Ok(_)) => {}
                other => panic!("write failed: {other:?}"),
            }
        }
    }

    #[test]
    fn small_frames_coalesce_into_one_write() {
        let mut buf = WriteBuf::default();
        for i in 0..10u8 {
            buf.tail().extend_from_slice(&[i; 3]);
        }
        let mut io = Recorder {
            limit: usize::MAX,
            ..Recorder::default()
        };
        write_all(&mut buf, &mut io);
        let calls = io.calls.lock().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].1.len(), 30);
        assert_eq!(buf.written(), 30);
    }

    #[test]
    fn large_payloads_go_out_by_reference_in_one_vectored_write() {
        let mut buf = WriteBuf::default();
        let big = Bytes::from(vec![7u8; ZERO_COPY_MIN]);
        buf.tail().extend_from_slice(b"head");
        buf.push_payload(big.clone());
        buf.tail().extend_from_slice(b"next");
        assert_eq!(buf.remaining(), ZERO_COPY_MIN + 8);
        let mut io = Recorder {
            limit: usize::MAX,
            vectored: true,
            ..Recorder::default()
        };
        write_all(&mut buf, &mut io);
        let calls = io.calls.lock().unwrap();
        assert_eq!(calls.len(), 1, "one vectored write for the whole batch");
        assert!(calls[0].0);
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"next");
        assert_eq!(calls[0].1, expected);
    }

    #[test]
    fn partial_writes_keep_order_and_count_written_bytes() {
        let mut buf = WriteBuf::default();
        buf.tail().extend_from_slice(b"abc");
        buf.push_payload(Bytes::from(vec![1u8; ZERO_COPY_MIN]));
        buf.tail().extend_from_slice(b"xyz");
        let mut io = Recorder {
            limit: 1000,
            ..Recorder::default()
        };
        let total = buf.remaining();
        write_all(&mut buf, &mut io);
        let out: Vec<u8> = io
            .calls
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, b)| b.clone())
            .collect();
        assert_eq!(out.len(), total);
        assert_eq!(&out[..3], b"abc");
        assert_eq!(&out[out.len() - 3..], b"xyz");
        assert_eq!(buf.written(), total as u64);
        assert_eq!(buf.offset(), total as u64);
    }

    #[test]
    fn rollback_drops_a_half_encoded_frame() {
        let mut buf = WriteBuf::default();
        buf.tail().extend_from_slice(b"keep");
        let mark = buf.mark();
        buf.tail().extend_from_slice(b"drop");
        buf.push_payload(Bytes::from(vec![0u8; ZERO_COPY_MIN]));
        buf.rollback(mark);
        assert_eq!(buf.remaining(), 4);
        let mut io = Recorder {
            limit: usize::MAX,
            ..Recorder::default()
        };
        write_all(&mut buf, &mut io);
        assert_eq!(io.calls.lock().unwrap()[0].1, b"keep");
    }
}
