//! A request as a server reads it: a command's arguments, kept as positions in their frame.

use std::fmt;
use std::ops::Index;

use bytes::Bytes;

use super::Value;
use super::error::RequestError;
use super::scan::Span;

/// One frame as a server decodes it ([`RespCodec::decode_request`](super::RespCodec::decode_request)).
///
/// A command (a non-empty array of bulk strings, or an inline command) is
/// [`Request::Command`]: its arguments, as positions in the frame, with no [`Value`] built
/// for each. An array of zero elements, or with a negative count, is [`Request::Other`]
/// (`Value::Array(vec![])` or `Value::NullArray`): Redis ignores such a request, and so
/// should the server. Anything else a server cannot read is an error
/// ([`RespError::Request`](super::RespError::Request)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::exhaustive_enums)] // closed: a request is a command or something else
pub enum Request {
    /// A command's arguments, its name first.
    Command(Arguments),
    /// An empty request (`*0`, or a negative count such as `*-10`): nothing to run.
    Other(Value),
}

impl Request {
    /// The frame as a [`Value`] (a command becomes an array of bulk strings).
    pub fn into_value(self) -> Value {
        match self {
            Request::Command(args) => Value::Array(
                (0..args.len())
                    .filter_map(|i| args.bytes(i))
                    .map(Value::Bulk)
                    .collect(),
            ),
            Request::Other(value) => value,
        }
    }
}

/// A command's arguments (the name first), as a server decodes them: one frame's bytes and
/// where each argument is in them.
///
/// Reading an argument copies nothing ([`get`](Self::get), indexing, [`iter`](Self::iter)
/// borrow from the frame; [`bytes`](Self::bytes) is a slice sharing it), and the whole
/// command costs one allocation of 8 bytes per argument, whatever its size. Never empty.
///
/// # Examples
/// ```
/// use beamline_resp::{RespCodec, Request};
/// use bytes::BytesMut;
///
/// let mut codec = RespCodec::new().inline_commands(true);
/// let mut input = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nhi\r\nGET k\r\n"[..]);
/// let Some(Request::Command(set)) = codec.decode_request(&mut input)? else { panic!() };
/// assert_eq!(set.len(), 3);
/// assert_eq!(&set[0], b"SET");
/// assert_eq!(set.iter().collect::<Vec<_>>(), [&b"SET"[..], b"k", b"hi"]);
/// let Some(Request::Command(get)) = codec.decode_request(&mut input)? else { panic!() };
/// assert_eq!(get.get(1), Some(&b"k"[..]));
/// # Ok::<(), beamline_resp::RespError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Arguments {
    frame: Bytes,
    spans: Vec<Span>,
}

impl Arguments {
    /// Arguments at `spans` of `frame` (at least one, each within the frame).
    pub(super) fn new(frame: Bytes, spans: Vec<Span>) -> Self {
        Arguments { frame, spans }
    }

    /// How many arguments, counting the command's name.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Always `false`: a command has at least its name.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Argument `index` (0 is the command's name), borrowed from the frame.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.spans
            .get(index)
            .and_then(|span| self.frame.get(span.range()))
    }

    /// Argument `index` as [`Bytes`] sharing the frame's buffer (no copy; the frame stays in
    /// memory while the slice lives).
    pub fn bytes(&self, index: usize) -> Option<Bytes> {
        self.spans
            .get(index)
            .map(|span| self.frame.slice(span.range()))
    }

    /// The arguments in order, the command's name first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + DoubleEndedIterator + '_ {
        self.spans
            .iter()
            .map(|span| self.frame.get(span.range()).unwrap_or_default())
    }
}

impl Index<usize> for Arguments {
    type Output = [u8];

    /// Argument `index`.
    ///
    /// # Panics
    /// If there is no argument `index` (as slice indexing does).
    fn index(&self, index: usize) -> &[u8] {
        match self.get(index) {
            Some(arg) => arg,
            None => panic!("argument {index} of a command of {} arguments", self.len()),
        }
    }
}

impl fmt::Debug for Arguments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

/// A line an inline command is split in: read byte by byte, and (when it is the frame's own
/// buffer) written back with each argument's bytes, quotes removed and escapes decoded.
pub(super) trait Line {
    /// The byte at `at`, or 0 past the end (the line reads as a C string, as in Redis).
    fn at(&self, at: usize) -> u8;
    /// Writes an argument's byte at `at` (never past the byte being read).
    fn put(&mut self, at: usize, byte: u8);
}

impl Line for &[u8] {
    fn at(&self, at: usize) -> u8 {
        self.get(at).copied().unwrap_or(0)
    }

    /// Reading only (checking a line before its frame is taken).
    fn put(&mut self, _: usize, _: u8) {}
}

impl Line for &mut [u8] {
    fn at(&self, at: usize) -> u8 {
        self.get(at).copied().unwrap_or(0)
    }

    fn put(&mut self, at: usize, byte: u8) {
        if let Some(slot) = self.get_mut(at) {
            *slot = byte;
        }
    }
}

/// Splits an inline command's line into arguments by Redis's `sdssplitargs` rules: words
/// between blanks; `"double quotes"` with `\n \r \t \b \a \xHH` and `\<any>` escapes;
/// `'single quotes'` with `\'`; a closing quote must be followed by a blank or the end; a
/// NUL byte ends the line. Each argument's bytes are written back into the line, from its
/// start (an argument is never longer than its text), and `argument(start, end)` is called
/// with where it now is.
///
/// # Errors
/// [`RequestError::UnbalancedQuotes`] for a quote left open or closed against a word.
pub(super) fn split_args(
    line: &mut impl Line,
    mut argument: impl FnMut(usize, usize),
) -> Result<(), RequestError> {
    let (mut read, mut write) = (0, 0);
    loop {
        while is_c_space(line.at(read)) {
            read += 1;
        }
        if line.at(read) == 0 {
            return Ok(());
        }
        let start = write;
        let mut quote = None;
        loop {
            let byte = line.at(read);
            let out = match (quote, byte) {
                (Some(_), 0) => return Err(RequestError::UnbalancedQuotes),
                (Some(close), _) if byte == close => {
                    let after = line.at(read + 1);
                    if after != 0 && !is_c_space(after) {
                        return Err(RequestError::UnbalancedQuotes);
                    }
                    read += 1;
                    break;
                }
                (Some(b'"'), b'\\') => {
                    let (decoded, used) = unescape(line, read);
                    read += used - 1;
                    Some(decoded)
                }
                (Some(_), b'\\') if line.at(read + 1) == b'\'' => {
                    read += 1;
                    Some(b'\'')
                }
                (Some(_), _) => Some(byte),
                (None, b' ' | b'\n' | b'\r' | b'\t' | 0) => break,
                (None, b'"' | b'\'') => {
                    quote = Some(byte);
                    None
                }
                (None, _) => Some(byte),
            };
            if let Some(out) = out {
                line.put(write, out);
                write += 1;
            }
            read += 1;
        }
        argument(start, write);
    }
}

/// The escape at `at` (a backslash) inside double quotes: the byte it stands for and how many
/// bytes of the line it takes.
fn unescape(line: &impl Line, at: usize) -> (u8, usize) {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    match line.at(at + 1) {
        b'x' => match (hex(line.at(at + 2)), hex(line.at(at + 3))) {
            (Some(high), Some(low)) => (high * 16 + low, 4),
            _ => (b'x', 2),
        },
        b'n' => (b'\n', 2),
        b'r' => (b'\r', 2),
        b't' => (b'\t', 2),
        b'b' => (0x08, 2),
        b'a' => (0x07, 2),
        // A lone backslash at the end of the line is itself.
        0 => (b'\\', 1),
        other => (other, 2),
    }
}

/// C's `isspace`.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}
