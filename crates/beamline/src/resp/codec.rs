//! The RESP2 `Encoder`/`Decoder`: a bounded, allocation-checked scan, then a zero-copy build.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{Command, RespError, Value};

/// Default [`RespLimits::max_frame_len`]: 512 MiB, Redis's `proto-max-bulk-len`.
pub const DEFAULT_MAX_FRAME_LEN: usize = 512 * 1024 * 1024;
/// Default [`RespLimits::max_bulk_len`]: 512 MiB, Redis's `proto-max-bulk-len`.
pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Default [`RespLimits::max_depth`]: arrays nested 32 deep (Redis replies nest a few levels).
pub const DEFAULT_MAX_DEPTH: usize = 32;
/// Default [`RespLimits::max_line_len`]: 64 KiB, Redis's limit on an inline command.
pub const DEFAULT_MAX_LINE_LEN: usize = 64 * 1024;

/// The longest number line: a sign and the 19 digits of an `i64`.
const MAX_NUMBER_LEN: usize = 20;

/// How much one frame may make the decoder hold. Each limit is checked from the headers as
/// they arrive, so a peer that *declares* a huge bulk string or a deep array is refused
/// before a byte of it is buffered beyond the limit or anything is allocated for it.
///
/// # Examples
/// ```
/// use beamline::resp::{RespCodec, RespLimits};
///
/// // A server that takes small commands only.
/// let limits = RespLimits::new().max_frame_len(1 << 20).max_bulk_len(64 * 1024).max_depth(2);
/// let codec = RespCodec::with_limits(limits).inline_commands(true);
/// # let _ = codec;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespLimits {
    max_frame_len: usize,
    max_bulk_len: usize,
    max_depth: usize,
    max_line_len: usize,
}

impl RespLimits {
    /// The defaults: 512 MiB frames and bulk strings, arrays 32 deep, 64 KiB lines.
    pub const fn new() -> Self {
        RespLimits {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
            max_line_len: DEFAULT_MAX_LINE_LEN,
        }
    }

    /// The most bytes one whole frame (a value with everything nested in it) may take.
    /// Why: it bounds what one reply or request makes the connection buffer.
    #[must_use]
    pub const fn max_frame_len(mut self, len: usize) -> Self {
        self.max_frame_len = len;
        self
    }

    /// The longest bulk string, checked against its declared length.
    #[must_use]
    pub const fn max_bulk_len(mut self, len: usize) -> Self {
        self.max_bulk_len = len;
        self
    }

    /// How deep arrays may nest (a flat array is depth 1). Why: the decoder itself never
    /// recurses, but encoding and dropping a value do, once per level, so a peer must not
    /// choose the depth.
    #[must_use]
    pub const fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// The longest simple string, error line or inline command.
    #[must_use]
    pub const fn max_line_len(mut self, len: usize) -> Self {
        self.max_line_len = len;
        self
    }
}

impl Default for RespLimits {
    fn default() -> Self {
        Self::new()
    }
}

/// The RESP2 codec: a tokio-util [`Decoder`] of [`Value`]s and an [`Encoder`] of
/// [`Value`]s and [`Command`]s, for both ends of a connection.
///
/// A client encodes `Command`s and decodes reply `Value`s; a server decodes request
/// `Value`s (arrays of bulk strings, or inline commands with
/// [`inline_commands`](Self::inline_commands)) and encodes reply `Value`s.
///
/// # Guarantees
/// - **Limits are checked before allocating** ([`RespLimits`]): a declared bulk length over
///   the limit, arrays nested too deep, a line or a frame too long are errors as soon as
///   their header is read, whatever the peer claims.
/// - **Garbage is an error, never a panic**, and decoding never recurses (a hostile depth
///   cannot overflow the stack).
/// - **Zero-copy decode**: strings in a decoded value are slices of the frame's buffer.
/// - **Partial input is `Ok(None)`**, at any split point; a frame whose remaining length is
///   known (a bulk body) is not rescanned until enough bytes arrived.
/// - **A failed encode writes nothing**: the destination is left as it was.
///
/// # Examples
/// ```
/// use beamline::resp::{Command, RespCodec, Value};
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
/// # Ok::<(), beamline::resp::RespError>(())
/// ```
#[derive(Debug)]
pub struct RespCodec {
    limits: RespLimits,
    inline: bool,
    /// The buffer must hold at least this many bytes before a scan can succeed.
    need: usize,
    /// The headers of the frame just scanned, in order (reused between frames).
    headers: Vec<Header>,
    /// While scanning: how many elements each open array still expects (reused).
    open: Vec<usize>,
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

/// One value's header, as found by the scan: positions in the frame, never copies.
#[derive(Debug, Clone, Copy)]
enum Header {
    Simple {
        start: usize,
        end: usize,
    },
    Error {
        start: usize,
        end: usize,
    },
    Integer(i64),
    Bulk {
        start: usize,
        end: usize,
    },
    Null,
    /// An array of `n` elements (their headers follow); `n` may be 0.
    Array(usize),
    NullArray,
    Inline {
        start: usize,
        end: usize,
    },
}

/// What a scan of the buffer found.
enum Scan {
    /// One complete frame of this many bytes; its headers are in `RespCodec::headers`.
    Done(usize),
    /// Not complete: at least `need` bytes are required.
    Incomplete { need: usize },
    /// A blank inline line of this many bytes, to skip.
    Skip(usize),
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
            headers: Vec::new(),
            open: Vec::new(),
        }
    }

    /// Whether the decoder also takes *inline commands*: a line of words separated by spaces
    /// (`PING\r\n`, `SET k v\n`), as typed into `nc` or `telnet`, decoded as an array of
    /// bulk strings. A server wants it; a client should leave it off, so that a reply that
    /// is not RESP is an error rather than a command. Quotes are not interpreted.
    #[must_use]
    pub fn inline_commands(mut self, accept: bool) -> Self {
        self.inline = accept;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> RespLimits {
        self.limits
    }

    /// Finds the end of the first frame in `buf`, recording its headers; no allocation
    /// beyond the reused header list, no recursion.
    fn scan(&mut self, buf: &[u8]) -> Result<Scan, RespError> {
        self.headers.clear();
        self.open.clear();
        let limits = self.limits;
        let mut pos = 0;
        loop {
            let Some(&kind) = buf.get(pos) else {
                return Ok(Scan::Incomplete { need: pos + 1 });
            };
            let incomplete = Ok(Scan::Incomplete {
                need: buf.len() + 1,
            });
            let (header, next) = match kind {
                b'+' | b'-' => {
                    let Some((end, next)) = line(buf, pos + 1, limits.max_line_len)? else {
                        return incomplete;
                    };
                    let (start, end) = (pos + 1, end);
                    let header = if kind == b'+' {
                        Header::Simple { start, end }
                    } else {
                        Header::Error { start, end }
                    };
                    (header, next)
                }
                b':' => {
                    let Some((n, next)) = number(buf, pos)? else {
                        return incomplete;
                    };
                    (Header::Integer(n), next)
                }
                b'$' => {
                    let Some((len, next)) = number(buf, pos)? else {
                        return incomplete;
                    };
                    match len {
                        -1 => (Header::Null, next),
                        len if len < -1 => {
                            return Err(RespError::InvalidLength { len, offset: pos });
                        }
                        len => {
                            let len = len.unsigned_abs();
                            if len > limits.max_bulk_len as u64 {
                                return Err(RespError::BulkTooLong {
                                    len,
                                    max: limits.max_bulk_len,
                                });
                            }
                            // `len` is at most `max_bulk_len`, a `usize`.
                            let end = next + len as usize;
                            let after = end + 2;
                            if buf.len() < after {
                                return Ok(Scan::Incomplete { need: after });
                            }
                            if buf.get(end..after) != Some(b"\r\n".as_slice()) {
                                return Err(RespError::MissingCrlf { offset: end });
                            }
                            (Header::Bulk { start: next, end }, after)
                        }
                    }
                }
                b'*' => {
                    let Some((n, next)) = number(buf, pos)? else {
                        return incomplete;
                    };
                    match n {
                        -1 => (Header::NullArray, next),
                        n if n < -1 => {
                            return Err(RespError::InvalidLength {
                                len: n,
                                offset: pos,
                            });
                        }
                        0 => (Header::Array(0), next),
                        n => {
                            if self.open.len() >= limits.max_depth {
                                return Err(RespError::TooDeep {
                                    max: limits.max_depth,
                                });
                            }
                            // Every element takes at least 3 bytes, so a count the frame
                            // limit cannot hold is refused now, not after buffering.
                            let n = usize::try_from(n).unwrap_or(usize::MAX);
                            let least = next.saturating_add(n.saturating_mul(3));
                            if least > limits.max_frame_len {
                                return Err(RespError::FrameTooLarge {
                                    len: least,
                                    max: limits.max_frame_len,
                                });
                            }
                            self.headers.push(Header::Array(n));
                            self.open.push(n);
                            pos = next;
                            continue;
                        }
                    }
                }
                _ if pos == 0 && self.inline => {
                    let Some((end, next)) = inline_line(buf, limits.max_line_len)? else {
                        return incomplete;
                    };
                    if buf[..end].iter().all(|b| is_space(*b)) {
                        return Ok(Scan::Skip(next));
                    }
                    (Header::Inline { start: 0, end }, next)
                }
                byte => return Err(RespError::UnexpectedByte { byte, offset: pos }),
            };
            self.headers.push(header);
            pos = next;
            if pos > limits.max_frame_len {
                return Err(RespError::FrameTooLarge {
                    len: pos,
                    max: limits.max_frame_len,
                });
            }
            // A value is complete: it completes the arrays whose last element it was.
            loop {
                match self.open.last_mut() {
                    None => return Ok(Scan::Done(pos)),
                    Some(remaining) if *remaining > 1 => {
                        *remaining -= 1;
                        break;
                    }
                    Some(_) => {
                        self.open.pop();
                    }
                }
            }
        }
    }

    /// Builds the value whose headers the last scan recorded, slicing strings out of
    /// `frame` (no copies). Never recurses.
    fn build(&mut self, frame: &Bytes) -> Value {
        let mut open: Vec<(Vec<Value>, usize)> = Vec::new();
        let mut done = None;
        for header in self.headers.drain(..) {
            let mut value = match header {
                Header::Simple { start, end } => Value::Simple(frame.slice(start..end)),
                Header::Error { start, end } => Value::Error(frame.slice(start..end)),
                Header::Integer(n) => Value::Integer(n),
                Header::Bulk { start, end } => Value::Bulk(frame.slice(start..end)),
                Header::Null => Value::Null,
                Header::NullArray => Value::NullArray,
                Header::Array(0) => Value::Array(Vec::new()),
                Header::Array(n) => {
                    open.push((Vec::with_capacity(n), n));
                    continue;
                }
                Header::Inline { start, end } => Value::Array(
                    frame[start..end]
                        .split(|b| is_space(*b))
                        .scan(start, |at, word| {
                            let from = *at;
                            *at += word.len() + 1;
                            Some((from, word.len()))
                        })
                        .filter(|&(_, len)| len > 0)
                        .map(|(from, len)| Value::Bulk(frame.slice(from..from + len)))
                        .collect(),
                ),
            };
            // Hand the value to its array; a full array becomes a value in turn.
            loop {
                let Some((items, remaining)) = open.last_mut() else {
                    done = Some(value);
                    break;
                };
                items.push(value);
                *remaining -= 1;
                if *remaining > 0 {
                    break;
                }
                match open.pop() {
                    Some((items, _)) => value = Value::Array(items),
                    None => break,
                }
            }
        }
        // A big frame's header list is not kept around between frames.
        if self.headers.capacity() > 4096 {
            self.headers = Vec::new();
        }
        // The scan recorded exactly one complete value, so `done` is set.
        done.unwrap_or(Value::NullArray)
    }
}

/// The end (at `\r`) and the next position of the `\r\n`-terminated line starting at
/// `start`, if it is all there; at most `max` bytes before the terminator.
fn line(buf: &[u8], start: usize, max: usize) -> Result<Option<(usize, usize)>, RespError> {
    let window_end = buf.len().min(start.saturating_add(max).saturating_add(2));
    let window = buf.get(start..window_end).unwrap_or_default();
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let lf = start + i;
            if i == 0 || buf.get(lf - 1) != Some(&b'\r') {
                return Err(RespError::MissingCrlf { offset: lf });
            }
            Ok(Some((lf - 1, lf + 1)))
        }
        None if window.len() >= max.saturating_add(2) => Err(RespError::LineTooLong { max }),
        None => Ok(None),
    }
}

/// An inline command's line, ended by `\n` with an optional `\r` before it.
fn inline_line(buf: &[u8], max: usize) -> Result<Option<(usize, usize)>, RespError> {
    let window = buf
        .get(..buf.len().min(max.saturating_add(2)))
        .unwrap_or_default();
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let end = if lf > 0 && window[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            if end > max {
                return Err(RespError::LineTooLong { max });
            }
            Ok(Some((end, lf + 1)))
        }
        None if window.len() >= max.saturating_add(2) => Err(RespError::LineTooLong { max }),
        None => Ok(None),
    }
}

/// The number on the header line at `pos` (after its type byte), and the next position.
fn number(buf: &[u8], pos: usize) -> Result<Option<(i64, usize)>, RespError> {
    let found = match line(buf, pos + 1, MAX_NUMBER_LEN) {
        // No `i64` is that long.
        Err(RespError::LineTooLong { .. }) => {
            return Err(RespError::InvalidInteger { offset: pos + 1 });
        }
        found => found?,
    };
    let Some((end, next)) = found else {
        return Ok(None);
    };
    parse_i64(&buf[pos + 1..end])
        .map(|n| Some((n, next)))
        .ok_or(RespError::InvalidInteger { offset: pos + 1 })
}

/// A strict decimal `i64`: an optional `-`, then 1 to 19 digits, no overflow.
fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    // Accumulated negatively, so that i64::MIN parses.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Writes `n` in decimal.
pub(crate) fn put_decimal(dst: &mut BytesMut, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    dst.put_slice(&buf[i..]);
}

impl Decoder for RespCodec {
    type Item = Value;
    type Error = RespError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Value>, RespError> {
        loop {
            if src.is_empty() || src.len() < self.need {
                return Ok(None);
            }
            match self.scan(src)? {
                Scan::Incomplete { need } => {
                    // The frame needs at least `need` bytes: over the limit, it is refused
                    // now, before the rest of it is buffered.
                    let need = need.max(src.len() + 1);
                    if need > self.limits.max_frame_len {
                        return Err(RespError::FrameTooLarge {
                            len: need,
                            max: self.limits.max_frame_len,
                        });
                    }
                    self.need = need;
                    return Ok(None);
                }
                Scan::Skip(len) => {
                    src.advance(len);
                    self.need = 0;
                }
                Scan::Done(len) => {
                    self.need = 0;
                    let frame = src.split_to(len).freeze();
                    return Ok(Some(self.build(&frame)));
                }
            }
        }
    }
}

impl Encoder<Value> for RespCodec {
    type Error = RespError;

    fn encode(&mut self, value: Value, dst: &mut BytesMut) -> Result<(), RespError> {
        self.encode(&value, dst)
    }
}

impl Encoder<&Value> for RespCodec {
    type Error = RespError;

    fn encode(&mut self, value: &Value, dst: &mut BytesMut) -> Result<(), RespError> {
        let mark = dst.len();
        let result = encode_value(value, dst, 0, self.limits.max_depth);
        if result.is_err() {
            dst.truncate(mark);
        }
        result
    }
}

impl Encoder<Command> for RespCodec {
    type Error = RespError;

    fn encode(&mut self, command: Command, dst: &mut BytesMut) -> Result<(), RespError> {
        command.encode_into(dst);
        Ok(())
    }
}

impl Encoder<&Command> for RespCodec {
    type Error = RespError;

    fn encode(&mut self, command: &Command, dst: &mut BytesMut) -> Result<(), RespError> {
        command.encode_into(dst);
        Ok(())
    }
}

fn encode_value(
    value: &Value,
    dst: &mut BytesMut,
    depth: usize,
    max_depth: usize,
) -> Result<(), RespError> {
    match value {
        Value::Simple(s) | Value::Error(s) => {
            if s.iter().any(|&b| b == b'\r' || b == b'\n') {
                return Err(RespError::InvalidSimple);
            }
            dst.reserve(s.len() + 3);
            dst.put_u8(if matches!(value, Value::Simple(_)) {
                b'+'
            } else {
                b'-'
            });
            dst.put_slice(s);
            dst.put_slice(b"\r\n");
        }
        Value::Integer(n) => {
            dst.reserve(23);
            dst.put_u8(b':');
            put_decimal(dst, *n);
            dst.put_slice(b"\r\n");
        }
        Value::Bulk(b) => {
            dst.reserve(b.len() + 24);
            dst.put_u8(b'$');
            put_decimal(dst, b.len() as i64);
            dst.put_slice(b"\r\n");
            dst.put_slice(b);
            dst.put_slice(b"\r\n");
        }
        Value::Null => dst.put_slice(b"$-1\r\n"),
        Value::NullArray => dst.put_slice(b"*-1\r\n"),
        Value::Array(items) => {
            if !items.is_empty() && depth >= max_depth {
                return Err(RespError::TooDeep { max: max_depth });
            }
            dst.reserve(23);
            dst.put_u8(b'*');
            put_decimal(dst, items.len() as i64);
            dst.put_slice(b"\r\n");
            for item in items {
                encode_value(item, dst, depth + 1, max_depth)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut RespCodec, bytes: &[u8]) -> Result<Vec<Value>, RespError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(v) = codec.decode(&mut buf)? {
            out.push(v);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(out)
    }

    fn encoded(value: &Value) -> BytesMut {
        let mut buf = BytesMut::new();
        RespCodec::new().encode(value, &mut buf).unwrap();
        buf
    }

    #[test]
    fn decodes_every_type() {
        let wire = b"+OK\r\n-ERR no\r\n:-42\r\n$3\r\nfoo\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n";
        let values = decode_all(&mut RespCodec::new(), wire).unwrap();
        assert_eq!(
            values,
            vec![
                Value::simple("OK"),
                Value::error("ERR no"),
                Value::Integer(-42),
                Value::bulk("foo"),
                Value::bulk(""),
                Value::Null,
                Value::NullArray,
                Value::Array(vec![]),
                Value::Array(vec![
                    Value::Integer(1),
                    Value::Array(vec![Value::bulk("x")])
                ]),
            ]
        );
    }

    #[test]
    fn encodes_every_type_as_redis_does() {
        let cases: [(Value, &[u8]); 8] = [
            (Value::simple("OK"), b"+OK\r\n"),
            (Value::error("ERR x"), b"-ERR x\r\n"),
            (Value::Integer(i64::MIN), b":-9223372036854775808\r\n"),
            (Value::bulk("ab"), b"$2\r\nab\r\n"),
            (Value::Null, b"$-1\r\n"),
            (Value::NullArray, b"*-1\r\n"),
            (Value::Array(vec![]), b"*0\r\n"),
            (
                Value::Array(vec![Value::Integer(7), Value::Null]),
                b"*2\r\n:7\r\n$-1\r\n",
            ),
        ];
        for (value, wire) in cases {
            assert_eq!(&encoded(&value)[..], wire, "{value:?}");
        }
    }

    #[test]
    fn integers_are_strict() {
        for n in [i64::MIN, i64::MAX, 0, -1, 10] {
            assert_eq!(parse_i64(n.to_string().as_bytes()), Some(n));
        }
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b"1a",
            b" 1",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"00000000000000000001",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
        let err = decode_all(&mut RespCodec::new(), b":12x\r\n").unwrap_err();
        assert!(
            matches!(err, RespError::InvalidInteger { offset: 1 }),
            "{err}"
        );
        // A number line that goes on and on is refused without waiting for its end.
        let err = RespCodec::new()
            .decode(&mut BytesMut::from(&b"$111111111111111111111111"[..]))
            .unwrap_err();
        assert!(matches!(err, RespError::InvalidInteger { .. }), "{err}");
    }

    #[test]
    fn inline_commands_only_when_asked_for() {
        let err = decode_all(&mut RespCodec::new(), b"PING\r\n").unwrap_err();
        assert!(
            matches!(
                err,
                RespError::UnexpectedByte {
                    byte: b'P',
                    offset: 0
                }
            ),
            "{err}"
        );
        let mut server = RespCodec::new().inline_commands(true);
        let values = decode_all(
            &mut server,
            b"PING\r\n\r\n  \nSET  k\tv\n*1\r\n$4\r\nPING\r\n",
        )
        .unwrap();
        let cmd =
            |args: &[&'static str]| Value::Array(args.iter().map(|a| Value::bulk(*a)).collect());
        assert_eq!(
            values,
            vec![cmd(&["PING"]), cmd(&["SET", "k", "v"]), cmd(&["PING"])]
        );
        // Inline only starts a frame; inside an array a stray byte is an error.
        let err = decode_all(&mut server, b"*1\r\nPING\r\n").unwrap_err();
        assert!(
            matches!(err, RespError::UnexpectedByte { offset: 4, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_declared_bulk_over_the_limit_is_refused_from_its_header() {
        let mut codec = RespCodec::with_limits(RespLimits::new().max_bulk_len(10));
        let err = codec
            .decode(&mut BytesMut::from(&b"$11\r\n"[..]))
            .unwrap_err();
        assert!(
            matches!(err, RespError::BulkTooLong { len: 11, max: 10 }),
            "{err}"
        );
        let mut codec = RespCodec::new();
        let err = codec
            .decode(&mut BytesMut::from(&b"$99999999999\r\n"[..]))
            .unwrap_err();
        assert!(matches!(err, RespError::BulkTooLong { .. }), "{err}");
    }

    #[test]
    fn frames_over_the_limit_are_refused_before_they_are_buffered() {
        let limits = RespLimits::new().max_frame_len(32);
        // Declared: a bulk whose frame would need 6 + 40 + 2 bytes.
        let err = RespCodec::with_limits(limits)
            .decode(&mut BytesMut::from(&b"$40\r\n"[..]))
            .unwrap_err();
        assert!(
            matches!(err, RespError::FrameTooLarge { max: 32, .. }),
            "{err}"
        );
        // Declared: 20 elements cannot fit in 32 bytes.
        let err = RespCodec::with_limits(limits)
            .decode(&mut BytesMut::from(&b"*20\r\n"[..]))
            .unwrap_err();
        assert!(matches!(err, RespError::FrameTooLarge { .. }), "{err}");
        // Complete but too large.
        let err = decode_all(
            &mut RespCodec::with_limits(limits),
            b"*3\r\n$10\r\n0123456789\r\n$1\r\nx\r\n$1\r\ny\r\n",
        )
        .unwrap_err();
        assert!(matches!(err, RespError::FrameTooLarge { .. }), "{err}");
        // Within the limit: fine.
        let ok = decode_all(
            &mut RespCodec::with_limits(limits),
            b"$10\r\n0123456789\r\n",
        )
        .unwrap();
        assert_eq!(ok, vec![Value::bulk("0123456789")]);
    }

    #[test]
    fn depth_is_bounded_both_ways() {
        let limits = RespLimits::new().max_depth(2);
        let ok = decode_all(&mut RespCodec::with_limits(limits), b"*1\r\n*1\r\n:1\r\n").unwrap();
        assert_eq!(ok.len(), 1);
        let err = decode_all(
            &mut RespCodec::with_limits(limits),
            b"*1\r\n*1\r\n*1\r\n:1\r\n",
        )
        .unwrap_err();
        assert!(matches!(err, RespError::TooDeep { max: 2 }), "{err}");
        let deep = Value::Array(vec![Value::Array(vec![Value::Array(vec![Value::Null])])]);
        let mut buf = BytesMut::from(&b"keep"[..]);
        let err = RespCodec::with_limits(limits)
            .encode(&deep, &mut buf)
            .unwrap_err();
        assert!(matches!(err, RespError::TooDeep { max: 2 }), "{err}");
        assert_eq!(&buf[..], b"keep", "a failed encode wrote something");
    }

    #[test]
    fn a_hostile_depth_does_not_overflow_the_stack() {
        let depth = 200_000;
        let mut wire = b"*1\r\n".repeat(depth);
        wire.extend_from_slice(b":1\r\n");
        let limits = RespLimits::new().max_depth(usize::MAX);
        let values = decode_all(&mut RespCodec::with_limits(limits), &wire).unwrap();
        assert_eq!(values.len(), 1);
        // Dropping a deep value recurses in `Vec`'s drop; unwind it by hand.
        let mut v = values.into_iter().next().unwrap();
        while let Value::Array(mut items) = v {
            v = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn lines_must_end_with_crlf_and_stay_short() {
        let err = decode_all(&mut RespCodec::new(), b"+OK\n").unwrap_err();
        assert!(matches!(err, RespError::MissingCrlf { offset: 3 }), "{err}");
        let err = decode_all(&mut RespCodec::new(), b"$2\r\nabcd\r\n").unwrap_err();
        assert!(matches!(err, RespError::MissingCrlf { offset: 6 }), "{err}");
        let limits = RespLimits::new().max_line_len(4);
        let err = RespCodec::with_limits(limits)
            .decode(&mut BytesMut::from(&b"+abcdefgh"[..]))
            .unwrap_err();
        assert!(matches!(err, RespError::LineTooLong { max: 4 }), "{err}");
        let mut server = RespCodec::with_limits(limits).inline_commands(true);
        let err = server
            .decode(&mut BytesMut::from(&b"PINGPONG"[..]))
            .unwrap_err();
        assert!(matches!(err, RespError::LineTooLong { max: 4 }), "{err}");
        let ok = decode_all(&mut RespCodec::with_limits(limits), b"+abcd\r\n").unwrap();
        assert_eq!(ok, vec![Value::simple("abcd")]);
    }

    #[test]
    fn lengths_below_minus_one_are_invalid() {
        for wire in [&b"$-2\r\n"[..], b"*-5\r\n"] {
            let err = decode_all(&mut RespCodec::new(), wire).unwrap_err();
            assert!(matches!(err, RespError::InvalidLength { .. }), "{err}");
        }
    }

    #[test]
    fn simple_strings_with_line_breaks_are_not_encodable() {
        let mut buf = BytesMut::new();
        for bad in [Value::simple("a\r\nb"), Value::error("x\n")] {
            let err = RespCodec::new().encode(bad, &mut buf).unwrap_err();
            assert!(matches!(err, RespError::InvalidSimple), "{err}");
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn a_known_remainder_is_not_rescanned_byte_by_byte() {
        let mut codec = RespCodec::new();
        let mut buf = BytesMut::from(&b"$10\r\n01"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(codec.need, 17);
        buf.extend_from_slice(b"23456789\r\n");
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(Value::bulk("0123456789"))
        );
        assert_eq!(codec.need, 0);
    }

    #[test]
    fn decoded_strings_share_the_frame_buffer() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nabc\r\n+OK\r\n"[..]);
        let Some(Value::Array(items)) = RespCodec::new().decode(&mut buf).unwrap() else {
            panic!("not an array");
        };
        let (Value::Bulk(a), Value::Simple(b)) = (&items[0], &items[1]) else {
            panic!("{items:?}");
        };
        // Both slices point into one allocation, in frame order.
        assert_eq!(b.as_ptr() as usize - a.as_ptr() as usize, 6);
    }

    #[test]
    fn clones_start_with_fresh_state() {
        let mut codec = RespCodec::new().inline_commands(true);
        let mut buf = BytesMut::from(&b"$10\r\n"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        let mut clone = codec.clone();
        assert_eq!(clone.need, 0);
        assert_eq!(
            clone.decode(&mut BytesMut::from(&b"PING\n"[..])).unwrap(),
            Some(Value::Array(vec![Value::bulk("PING")]))
        );
    }
}
