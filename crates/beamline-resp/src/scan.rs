//! The first pass of decoding: find where a frame ends, checking every limit from the headers,
//! and record each value's header (positions in the frame, never copies).
//!
//! The scan is resumable. Between calls it keeps its place: the position of the next byte to
//! look at, what that byte is part of (a [`Step`]), the headers recorded so far and how many
//! elements each open array still expects. A frame that arrives in pieces is therefore
//! scanned once, however it is split: a call looks only at the bytes that arrived since the
//! last one (the digits of a number line are read twice: once looking for its end, once
//! parsing it), and a bulk string's body is never looked at, only its final `\r\n`.
//!
//! Nothing is allocated for what a header *declares*: the header list grows by one entry per
//! value actually received (each at least 3 bytes of the frame), the open-array stack by one
//! per level (bounded by the depth limit).
//!
//! Two dialects share the scan ([`Dialect`]): any RESP2 value, as a client reads replies, and
//! a request as Redis's server reads one.

use super::error::{RequestError, RespError};
use super::limits::RespLimits;
use super::request::split_args;

/// The longest number line: a sign and the 19 digits of an `i64`.
const MAX_NUMBER_LEN: usize = 20;

/// Where a string is in its frame: `start..end`, as 32-bit offsets (a frame is at most
/// [`MAX_FRAME_LEN`](super::limits::MAX_FRAME_LEN) bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) end: u32,
}

impl Span {
    /// `start..end`, both within the frame limit (checked before any span is made).
    pub(super) fn new(start: usize, end: usize) -> Self {
        let offset = |at: usize| u32::try_from(at).unwrap_or(u32::MAX);
        Span {
            start: offset(start),
            end: offset(end),
        }
    }

    pub(super) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One value's header, as found by the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Header {
    Simple(Span),
    Error(Span),
    Integer(i64),
    Bulk(Span),
    Null,
    /// An array of `n` elements (their headers follow); `n` may be 0.
    Array(usize),
    NullArray,
    /// An inline command's line (without its line ending).
    Inline(Span),
}

/// The rules a frame is read by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// Any RESP2 value, strictly: what a client reads ([`Decoder::decode`](tokio_util::codec::Decoder::decode)).
    Values,
    /// A request, as Redis's server reads one
    /// ([`RespCodec::decode_request`](super::RespCodec::decode_request)): an array of bulk
    /// strings whose count is at most `i32::MAX` (a count of zero or below is an empty
    /// request, which Redis ignores), or, when inline commands are on, any other line, split
    /// by Redis's `sdssplitargs` rules; a malformed one is a [`RequestError`] in Redis's
    /// words. Lengths are read as Redis reads them (no leading zeros, no `-0`).
    Requests,
}

/// The largest count of a request's array Redis takes (`INT_MAX`).
const MAX_REQUEST_COUNT: i64 = i32::MAX as i64;

/// What a scan of the buffer found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Scan {
    /// One complete frame of this many bytes; its headers are in [`Scanner::headers`].
    Done(usize),
    /// Not complete: the buffer must hold at least `need` bytes before the scan can go on.
    Incomplete { need: usize },
    /// A blank inline line of this many bytes, to skip.
    Skip(usize),
}

/// What the byte at the scan's position is part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A value starts here: its type byte.
    Value,
    /// The line of a header whose type byte is at `start`: searched for its `\n` up to the
    /// scan's position.
    Line { start: usize },
    /// An inline command's line (from the frame's first byte), searched up to the position.
    Inline,
    /// A bulk string's body, `start..end`, then its `\r\n`.
    Body { start: usize, end: usize },
}

/// The resumable scan of one frame at a time. See the module docs.
#[derive(Debug)]
pub(super) struct Scanner {
    /// The next byte to look at, from the frame's first byte.
    pos: usize,
    step: Step,
    /// The headers of the frame so far, in order (reused between frames).
    pub(super) headers: Vec<Header>,
    /// How many elements each open array still expects (reused).
    open: Vec<usize>,
    /// Bytes of input this scanner has looked at, over its life.
    examined: u64,
    /// Whether a request that is whole in the buffer is read by [`Scanner::whole_request`]
    /// (off only in the tests that hold it to the general scan).
    shortcut: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            pos: 0,
            step: Step::Value,
            headers: Vec::new(),
            open: Vec::new(),
            examined: 0,
            shortcut: true,
        }
    }
}

impl Scanner {
    /// Forgets the frame in progress (after it was taken, or after an error): the next scan
    /// starts at the buffer's first byte.
    pub(super) fn reset(&mut self) {
        self.pos = 0;
        self.step = Step::Value;
        self.headers.clear();
        self.open.clear();
        // A big frame's header list is not kept around between frames.
        if self.headers.capacity() > 4096 {
            self.headers = Vec::new();
        }
    }

    /// How far into the frame the scan has got.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// Turns the whole-request shortcut off, so the general scan reads every frame: the
    /// tests that hold the two to the same answers.
    #[cfg(test)]
    pub(super) fn without_shortcut(mut self) -> Self {
        self.shortcut = false;
        self
    }

    #[cfg(test)]
    /// How many bytes of input this scanner has looked at since it was made: the measure of
    /// its work that the tests hold to the input's length.
    pub(super) fn examined(&self) -> u64 {
        self.examined
    }

    /// Goes on scanning the frame at the start of `buf`, which holds what it held at the
    /// previous call plus what arrived since (the [`Decoder`](tokio_util::codec::Decoder)
    /// contract); the caller resets the scan for a buffer shorter than its position.
    pub(super) fn scan(
        &mut self,
        buf: &[u8],
        limits: &RespLimits,
        inline: bool,
        dialect: Dialect,
    ) -> Result<Scan, RespError> {
        let max_frame = limits.frame_limit();
        if self.shortcut
            && dialect == Dialect::Requests
            && self.pos == 0
            && self.step == Step::Value
            && self.headers.is_empty()
            && let Some(len) = self.whole_request(buf, limits)
        {
            return Ok(Scan::Done(len));
        }
        loop {
            match self.step {
                Step::Value => {
                    let Some(&kind) = buf.get(self.pos) else {
                        return Ok(Scan::Incomplete { need: self.pos + 1 });
                    };
                    self.examined += 1;
                    let typed = match dialect {
                        Dialect::Values => matches!(kind, b'+' | b'-' | b':' | b'$' | b'*'),
                        Dialect::Requests if self.open.is_empty() => kind == b'*',
                        Dialect::Requests => kind == b'$',
                    };
                    if typed {
                        self.step = Step::Line { start: self.pos };
                        self.pos += 1;
                    } else if self.pos == 0 && inline {
                        self.step = Step::Inline;
                    } else if dialect == Dialect::Requests && !self.open.is_empty() {
                        return Err(request_error(
                            RequestError::ExpectedBulk { got: kind },
                            self.pos,
                        ));
                    } else {
                        return Err(RespError::UnexpectedByte {
                            byte: kind,
                            offset: self.pos,
                        });
                    }
                }
                Step::Line { start } => {
                    let line = self
                        .line(buf, start, limits)
                        .map_err(|e| in_dialect(e, buf, start, dialect))?;
                    let Some((end, next)) = line else {
                        return Ok(Scan::Incomplete {
                            need: buf.len() + 1,
                        });
                    };
                    let header = match dialect {
                        Dialect::Values => self.header(buf, start, end, next, limits)?,
                        Dialect::Requests => self.request_header(buf, start, end, next, limits)?,
                    };
                    if let Some(header) = header {
                        self.headers.push(header);
                        if let Some(done) = self.completed(max_frame)? {
                            return Ok(done);
                        }
                    }
                }
                Step::Body { start, end } => {
                    let after = end + 2;
                    let Some(crlf) = buf.get(end..after) else {
                        return Ok(Scan::Incomplete { need: after });
                    };
                    self.examined += 2;
                    if crlf != b"\r\n" {
                        return Err(RespError::MissingCrlf { offset: end });
                    }
                    self.headers.push(Header::Bulk(Span::new(start, end)));
                    self.pos = after;
                    self.step = Step::Value;
                    if let Some(done) = self.completed(max_frame)? {
                        return Ok(done);
                    }
                }
                Step::Inline => {
                    let Some((end, next)) = self.inline_line(buf, limits.line_limit())? else {
                        return Ok(Scan::Incomplete {
                            need: buf.len() + 1,
                        });
                    };
                    let line = buf.get(..end).unwrap_or_default();
                    self.examined += end as u64;
                    let blank = match dialect {
                        Dialect::Values => line.iter().all(|b| is_space(*b)),
                        Dialect::Requests => {
                            // Checked now, before the frame is taken: a failed decode
                            // consumes nothing.
                            let mut words = 0;
                            split_args(&mut &*line, |_, _| words += 1)
                                .map_err(|error| request_error(error, 0))?;
                            words == 0
                        }
                    };
                    if blank {
                        return Ok(Scan::Skip(next));
                    }
                    self.headers.push(Header::Inline(Span::new(0, end)));
                    self.pos = next;
                    self.step = Step::Value;
                    if let Some(done) = self.completed(max_frame)? {
                        return Ok(done);
                    }
                }
            }
        }
    }

    /// The common case read in one pass: a request (`*<n>` and `n` bulk strings) whole at
    /// the start of `buf`, every number in canonical form, nothing near a limit. Its headers
    /// are recorded as the general scan records them and its length returned; anything else
    /// (a part still to come, an edge case, an error) gives `None` with the scan untouched,
    /// and the general scan reads it. It is tried once per frame (only from the frame's first
    /// byte), so a frame arriving in pieces costs at most one extra pass.
    fn whole_request(&mut self, buf: &[u8], limits: &RespLimits) -> Option<usize> {
        if buf.first() != Some(&b'*') || limits.depth_limit() == 0 {
            return None;
        }
        let (count, mut at) = short_number(buf, 1)?;
        let least = at.saturating_add(count.saturating_mul(3));
        if count == 0 || least > limits.frame_limit() {
            return None;
        }
        self.headers.push(Header::Array(count));
        for _ in 0..count {
            let Some((start, end)) = whole_bulk(buf, at, limits) else {
                self.headers.clear();
                return None;
            };
            self.headers.push(Header::Bulk(Span::new(start, end)));
            at = end + 2;
        }
        self.examined += at as u64;
        Some(at)
    }

    /// The end (at `\r`) and the next position of the header line whose type byte is at
    /// `start`, if its `\n` has arrived; goes on from where the last call stopped looking.
    fn line(
        &mut self,
        buf: &[u8],
        start: usize,
        limits: &RespLimits,
    ) -> Result<Option<(usize, usize)>, RespError> {
        let content = start + 1;
        let number = !matches!(buf.get(start), Some(b'+' | b'-'));
        let max = if number {
            MAX_NUMBER_LEN
        } else {
            limits.line_limit()
        };
        let window_end = buf.len().min(content.saturating_add(max).saturating_add(2));
        let from = self.pos.min(window_end);
        let window = buf.get(from..window_end).unwrap_or_default();
        let Some(i) = window.iter().position(|&b| b == b'\n') else {
            self.examined += window.len() as u64;
            self.pos = window_end;
            if window_end - content >= max.saturating_add(2) {
                return Err(if number {
                    // No `i64` is that long.
                    RespError::InvalidInteger { offset: content }
                } else {
                    RespError::LineTooLong { max }
                });
            }
            return Ok(None);
        };
        self.examined += i as u64 + 1;
        let lf = from + i;
        if lf == content || buf.get(lf - 1) != Some(&b'\r') {
            return Err(RespError::MissingCrlf { offset: lf });
        }
        Ok(Some((lf - 1, lf + 1)))
    }

    /// An inline command's line, ended by `\n` with an optional `\r` before it.
    fn inline_line(&mut self, buf: &[u8], max: usize) -> Result<Option<(usize, usize)>, RespError> {
        let window_end = buf.len().min(max.saturating_add(2));
        let from = self.pos.min(window_end);
        let window = buf.get(from..window_end).unwrap_or_default();
        let Some(i) = window.iter().position(|&b| b == b'\n') else {
            self.examined += window.len() as u64;
            self.pos = window_end;
            if window_end >= max.saturating_add(2) {
                return Err(RespError::LineTooLong { max });
            }
            return Ok(None);
        };
        self.examined += i as u64 + 1;
        let lf = from + i;
        let end = if lf > 0 && buf.get(lf - 1) == Some(&b'\r') {
            lf - 1
        } else {
            lf
        };
        if end > max {
            return Err(RespError::LineTooLong { max });
        }
        Ok(Some((end, lf + 1)))
    }

    /// The header on the complete line `start..end` (type byte at `start`), moving the scan
    /// past it. `None` when the value goes on (a bulk body, an array's elements).
    fn header(
        &mut self,
        buf: &[u8],
        start: usize,
        end: usize,
        next: usize,
        limits: &RespLimits,
    ) -> Result<Option<Header>, RespError> {
        let content = start + 1;
        let header = match buf.get(start) {
            Some(b'+') => Header::Simple(Span::new(content, end)),
            Some(b'-') => Header::Error(Span::new(content, end)),
            Some(b':') => Header::Integer(self.number(buf, content, end)?),
            Some(b'$') => match self.number(buf, content, end)? {
                -1 => Header::Null,
                len if len < -1 => return Err(RespError::InvalidLength { len, offset: start }),
                len => return self.sized(b'$', len.unsigned_abs(), next, limits),
            },
            _ => match self.number(buf, content, end)? {
                -1 => Header::NullArray,
                n if n < -1 => {
                    return Err(RespError::InvalidLength {
                        len: n,
                        offset: start,
                    });
                }
                n => return self.sized(b'*', n.unsigned_abs(), next, limits),
            },
        };
        self.pos = next;
        self.step = Step::Value;
        Ok(Some(header))
    }

    /// [`header`](Self::header) in the request dialect: an array's count or an argument's
    /// length, read as Redis reads them.
    fn request_header(
        &mut self,
        buf: &[u8],
        start: usize,
        end: usize,
        next: usize,
        limits: &RespLimits,
    ) -> Result<Option<Header>, RespError> {
        let digits = buf.get(start + 1..end).unwrap_or_default();
        self.examined += digits.len() as u64;
        let kind = buf.get(start).copied().unwrap_or_default();
        let n = match (kind, parse_redis_int(digits)) {
            (b'$', Some(len)) if len >= 0 => len,
            (b'$', _) => return Err(request_error(RequestError::BulkLength, start)),
            (_, Some(count)) if count <= MAX_REQUEST_COUNT => count,
            _ => return Err(request_error(RequestError::MultibulkLength, start)),
        };
        if n < 0 {
            // A negative count: Redis skips the request, as it does an empty one.
            self.pos = next;
            self.step = Step::Value;
            return Ok(Some(Header::NullArray));
        }
        self.sized(kind, n.unsigned_abs(), next, limits)
    }

    /// A bulk string of `n` bytes (`kind` `$`) or an array of `n` elements (`*`) whose header
    /// line ends before `next`: checked against the limits from the header, before anything
    /// of it is buffered, and the scan moved into it. `Some` for an empty array, complete.
    fn sized(
        &mut self,
        kind: u8,
        n: u64,
        next: usize,
        limits: &RespLimits,
    ) -> Result<Option<Header>, RespError> {
        self.pos = next;
        self.step = Step::Value;
        if kind == b'$' {
            if n > limits.bulk_limit() as u64 {
                return Err(RespError::BulkTooLong {
                    len: n,
                    max: limits.bulk_limit(),
                });
            }
            // `n` is at most the bulk limit, a `usize`.
            let body_end = next.saturating_add(n as usize);
            // The frame needs the body and its `\r\n`: over the limit, it is refused now,
            // before the body is buffered.
            let needed = body_end.saturating_add(2);
            if needed > limits.frame_limit() {
                return Err(RespError::FrameTooLarge {
                    len: needed,
                    max: limits.frame_limit(),
                });
            }
            self.step = Step::Body {
                start: next,
                end: body_end,
            };
            return Ok(None);
        }
        if n == 0 {
            return Ok(Some(Header::Array(0)));
        }
        if self.open.len() >= limits.depth_limit() {
            return Err(RespError::TooDeep {
                max: limits.depth_limit(),
            });
        }
        // Every element takes at least 3 bytes, so a count the frame limit cannot hold is
        // refused now, not after buffering.
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let least = next.saturating_add(n.saturating_mul(3));
        if least > limits.frame_limit() {
            return Err(RespError::FrameTooLarge {
                len: least,
                max: limits.frame_limit(),
            });
        }
        self.headers.push(Header::Array(n));
        self.open.push(n);
        Ok(None)
    }

    fn number(&mut self, buf: &[u8], content: usize, end: usize) -> Result<i64, RespError> {
        let digits = buf.get(content..end).unwrap_or_default();
        self.examined += digits.len() as u64;
        parse_i64(digits).ok_or(RespError::InvalidInteger { offset: content })
    }

    /// A value ended at the scan's position: it completes the arrays whose last element it
    /// was. `Some` when that completes the frame (the scan is then reset for the next one,
    /// keeping the headers for the caller).
    fn completed(&mut self, max_frame: usize) -> Result<Option<Scan>, RespError> {
        if self.pos > max_frame {
            return Err(RespError::FrameTooLarge {
                len: self.pos,
                max: max_frame,
            });
        }
        loop {
            match self.open.last_mut() {
                None => {
                    let len = self.pos;
                    self.pos = 0;
                    self.step = Step::Value;
                    return Ok(Some(Scan::Done(len)));
                }
                Some(remaining) if *remaining > 1 => {
                    *remaining -= 1;
                    return Ok(None);
                }
                Some(_) => {
                    self.open.pop();
                }
            }
        }
    }
}

/// A count or a length of 1 to 9 digits at `at`, canonical as Redis reads it
/// ([`parse_redis_int`]: no sign, no leading zero but `0` itself) and ended by `\r\n`: the
/// number and the position after its line.
fn short_number(buf: &[u8], at: usize) -> Option<(usize, usize)> {
    let rest = buf.get(at..)?;
    let digits = rest
        .iter()
        .take(10)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits > 9 || rest.get(digits..digits + 2) != Some(b"\r\n") {
        return None;
    }
    let n = parse_redis_int(rest.get(..digits)?)?;
    Some((usize::try_from(n).ok()?, at + digits + 2))
}

/// A whole bulk string whose `$` is at `at`, within the limits: its body's `start..end`.
fn whole_bulk(buf: &[u8], at: usize, limits: &RespLimits) -> Option<(usize, usize)> {
    if buf.get(at) != Some(&b'$') {
        return None;
    }
    let (len, start) = short_number(buf, at + 1)?;
    let end = start + len;
    if len > limits.bulk_limit() || end + 2 > limits.frame_limit() {
        return None;
    }
    (buf.get(end..end + 2)? == b"\r\n").then_some((start, end))
}

fn request_error(error: RequestError, offset: usize) -> RespError {
    RespError::Request { error, offset }
}

/// A header line's error as the dialect words it: in a request, a count or a length that
/// cannot be read is Redis's "invalid multibulk length" or "invalid bulk length".
fn in_dialect(error: RespError, buf: &[u8], start: usize, dialect: Dialect) -> RespError {
    match (dialect, error) {
        (Dialect::Requests, RespError::InvalidInteger { .. }) => {
            let error = if buf.get(start) == Some(&b'$') {
                RequestError::BulkLength
            } else {
                RequestError::MultibulkLength
            };
            request_error(error, start)
        }
        (_, error) => error,
    }
}

/// A decimal `i64` as Redis reads one (`string2ll`): [`parse_i64`], and no leading zero (but
/// `0` itself), no `-0`.
pub(super) fn parse_redis_int(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if digits.first() == Some(&b'0') && text != b"0" {
        return None;
    }
    parse_i64(text)
}

/// A strict decimal `i64`: an optional `-`, then 1 to 19 digits, no overflow.
pub(super) fn parse_i64(text: &[u8]) -> Option<i64> {
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

pub(super) fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}
