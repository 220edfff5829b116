//! A request as a server reads it: a command's arguments, kept as positions in their frame.

use std::fmt;
use std::ops::Index;

use bytes::Bytes;

use super::Value;
use super::scan::Span;

/// One frame as a server decodes it ([`RespCodec::decode_request`](super::RespCodec::decode_request)).
///
/// A well-formed command (a non-empty array of bulk strings, or an inline command) is
/// [`Request::Command`]: its arguments, as positions in the frame, with no [`Value`] built
/// for each. Anything else is [`Request::Other`], the frame as a [`Value`], for the server to
/// ignore (an empty or null array) or answer with a protocol error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A command's arguments, its name first.
    Command(Arguments),
    /// A frame that is not a command.
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
