//! [`RespCodec`]: the RESP2 `Encoder`/`Decoder`. Decoding is a resumable, limit-checked scan
//! ([`scan`](super::scan)) and then a zero-copy build ([`decode`](super::decode)); encoding
//! is in [`encode`](super::encode).

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use super::decode;
use super::limits::RespLimits;
use super::request::Request;
use super::scan::{Dialect, Scan, Scanner};
use super::{RespError, Value};

/// The RESP2 codec: a tokio-util [`Decoder`] of [`Value`]s and an [`Encoder`](tokio_util::codec::Encoder) of
/// [`Value`]s and [`Command`](crate::Command)s, for both ends of a connection.
///
/// A client encodes `Command`s and decodes reply `Value`s; a server decodes request
/// `Value`s (arrays of bulk strings, or inline commands with
/// [`inline_commands`](Self::inline_commands)), or, cheaper, [`Request`]s with
/// [`decode_request`](Self::decode_request), and encodes reply `Value`s.
///
/// Like every tokio-util decoder, it is called with the same buffer each time (as `Framed`
/// does), which grows at its end until a frame is taken from its front; the decoder keeps
/// its place in a partial frame between calls.
///
/// # Guarantees
/// - **Limits are checked before allocating** ([`RespLimits`]): a declared bulk length over
///   the limit, arrays nested too deep, a line or a frame too long are errors as soon as
///   their header is read, whatever the peer claims.
/// - **Garbage is an error, never a panic**, and decoding never recurses (a hostile depth
///   cannot overflow the stack).
/// - **Zero-copy decode**: strings in a decoded value are slices of the frame's buffer.
/// - **Partial input is `Ok(None)`**, at any split point, and **a frame is scanned once**
///   however it is split: the decoder keeps its place between calls (the position, the open
///   arrays' counts, the headers so far), looks only at bytes that arrived since, and skips a
///   bulk string's body (only its `\r\n` is checked). Decoding a frame of `n` bytes that
///   arrives in any number of pieces costs O(n), not O(n) per piece.
/// - **A failed encode writes nothing**: the destination is left as it was.
///
/// # Examples
/// ```
/// use beamline_resp::{Command, RespCodec, Value};
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = RespCodec::new();
/// let mut wire = BytesMut::new();
/// codec.encode(Command::new("GET").arg("k"), &mut wire)?;
/// assert_eq!(&wire[..], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
///
/// let mut reply = BytesMut::from(&b"$5\r\nhello\r\n:42\r\n"[..]);
/// assert_eq!(codec.decode(&mut reply)?, Some(Value::bulk("hello")));
/// assert_eq!(codec.decode(&mut reply)?, Some(Value::Integer(42)));
/// assert_eq!(codec.decode(&mut reply)?, None);
///
/// // A server also takes what a human types into `nc`.
/// let mut server = RespCodec::new().inline_commands(true);
/// let mut typed = BytesMut::from(&b"PING\r\n"[..]);
/// assert_eq!(server.decode(&mut typed)?, Some(Value::Array(vec![Value::bulk("PING")])));
/// # Ok::<(), beamline_resp::RespError>(())
/// ```
#[derive(Debug)]
pub struct RespCodec {
    limits: RespLimits,
    inline: bool,
    /// The buffer must hold at least this many bytes before the scan can go on.
    need: usize,
    /// The frame in progress: where the scan is, the headers so far.
    scanner: Scanner,
    /// The dialect of the frame in progress (a call in the other one starts the scan over).
    dialect: Dialect,
}

impl Clone for RespCodec {
    /// The same settings, with fresh decoding state (for another connection).
    fn clone(&self) -> Self {
        RespCodec {
            limits: self.limits,
            inline: self.inline,
            ..RespCodec::new()
        }
    }
}

impl Default for RespCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl RespCodec {
    /// A codec with the default [`RespLimits`] that accepts only typed RESP2 frames.
    pub fn new() -> Self {
        Self::with_limits(RespLimits::new())
    }

    /// A codec with `limits`.
    pub fn with_limits(limits: RespLimits) -> Self {
        RespCodec {
            limits,
            inline: false,
            need: 0,
            scanner: Scanner::default(),
            dialect: Dialect::Values,
        }
    }

    /// Whether the decoder also takes *inline commands*: a line of words separated by spaces
    /// (`PING\r\n`, `SET k v\n`), as typed into `nc` or `telnet`, decoded as an array of
    /// bulk strings. A server wants it; a client should leave it off, so that a reply that
    /// is not RESP is an error rather than a command.
    /// [`decode_request`](Self::decode_request) splits the line as Redis does (quotes and
    /// escapes, see there); [`decode`](Decoder::decode) splits it at spaces and tabs only.
    #[must_use]
    pub fn inline_commands(mut self, accept: bool) -> Self {
        self.inline = accept;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> RespLimits {
        self.limits
    }

    /// Decodes the next frame as Redis's server reads a request: [`Request::Command`] with
    /// the arguments' positions in the frame (no [`Value`] is built per argument), or
    /// [`Request::Other`] for an empty request (`*0`, or a negative count such as `*-10`),
    /// which a server ignores as Redis does. `Ok(None)` until a whole frame has arrived.
    ///
    /// The dialect is Redis's own, not the client's strict one:
    /// - a request is an array of bulk strings (`*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n`) whose
    ///   count is at most 2,147,483,647, its lengths read as Redis reads them (no leading
    ///   zeros);
    /// - with [`inline_commands`](Self::inline_commands), anything that does not start with
    ///   `*` is an inline command, split by Redis's `sdssplitargs` rules: `SET k "a b\n"` is
    ///   `SET`, `k` and `a b` plus a line feed; `'single quotes'` keep backslashes but `\'`;
    ///   `\xHH` is a byte; a blank line, or one that starts with a NUL byte, is skipped;
    /// - what Redis refuses is a [`RespError::Request`] whose
    ///   [`RequestError`](super::RequestError) says it in Redis's words
    ///   (`invalid multibulk length`, `invalid bulk length`, `expected '$', got ':'`,
    ///   `unbalanced quotes in request`), for the server to answer
    ///   `-ERR Protocol error: ...` before closing the connection.
    ///
    /// Every limit of [`RespLimits`] applies as in [`decode`](Decoder::decode), checked from
    /// the headers.
    ///
    /// # Errors
    /// [`RespError::Request`] for a request Redis refuses, [`RespError::UnexpectedByte`] for a
    /// frame that does not start with `*` when inline commands are off, a limit's error for a
    /// request over it; the offending frame is left in `src`.
    pub fn decode_request(&mut self, src: &mut BytesMut) -> Result<Option<Request>, RespError> {
        let Some(frame) = self.next_frame(src, Dialect::Requests)? else {
            return Ok(None);
        };
        let request = decode::request(&mut self.scanner.headers, frame);
        self.scanner.reset();
        Ok(Some(request))
    }

    /// How many bytes of input the decoder has looked at since it was made (tests hold it to
    /// the input's length).
    #[cfg(test)]
    pub(super) fn examined(&self) -> u64 {
        self.scanner.examined()
    }

    /// The codec with the whole-request shortcut off: every frame read by the general scan.
    #[cfg(test)]
    pub(super) fn without_shortcut(mut self) -> Self {
        self.scanner = Scanner::default().without_shortcut();
        self
    }

    /// How many bytes the buffer must hold before the next scan.
    #[cfg(test)]
    pub(super) fn need(&self) -> usize {
        self.need
    }

    /// The next complete frame in `dialect`, split off `src`, with its headers in the scanner.
    fn next_frame(
        &mut self,
        src: &mut BytesMut,
        dialect: Dialect,
    ) -> Result<Option<BytesMut>, RespError> {
        if src.len() < self.scanner.position() || dialect != self.dialect {
            self.dialect = dialect;
            // Not the buffer the scan was reading (the contract was broken), or a frame read
            // by the other dialect's rules: start over rather than trust positions in it.
            self.scanner.reset();
            self.need = 0;
        }
        loop {
            if src.is_empty() || src.len() < self.need {
                return Ok(None);
            }
            // Bytes past the frame limit are never looked at: a frame that reaches them is
            // refused, whether they arrived in one read or in many.
            let max = self.limits.frame_limit();
            let window = src
                .get(..src.len().min(max.saturating_add(1)))
                .unwrap_or_default();
            let scanned = self
                .scanner
                .scan(window, &self.limits, self.inline, dialect);
            match scanned {
                Err(e) => {
                    // The frame is left in `src`; a later call scans it afresh (and fails
                    // the same way).
                    self.scanner.reset();
                    self.need = 0;
                    return Err(e);
                }
                Ok(Scan::Incomplete { need }) => {
                    // The frame needs at least `need` bytes: over the limit, it is refused
                    // now, before the rest of it is buffered.
                    let need = need.max(window.len() + 1);
                    if need > max {
                        self.scanner.reset();
                        self.need = 0;
                        return Err(RespError::FrameTooLarge { len: need, max });
                    }
                    self.need = need;
                    return Ok(None);
                }
                Ok(Scan::Skip(len)) => {
                    src.advance(len);
                    self.scanner.reset();
                    self.need = 0;
                }
                Ok(Scan::Done(len)) => {
                    self.need = 0;
                    return Ok(Some(src.split_to(len)));
                }
            }
        }
    }
}

impl Decoder for RespCodec {
    type Item = Value;
    type Error = RespError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Value>, RespError> {
        let Some(frame) = self.next_frame(src, Dialect::Values)? else {
            return Ok(None);
        };
        let value = decode::value(&mut self.scanner.headers, &frame.freeze());
        self.scanner.reset();
        Ok(Some(value))
    }
}
