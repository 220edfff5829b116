//! RESP2, the Redis serialization protocol: typed values, commands, and a bounded codec.
//!
//! Both ends of a Redis conversation in one [`RespCodec`]: a client encodes [`Command`]s
//! and decodes reply [`Value`]s; a server decodes requests (including inline commands typed
//! into `nc`), as `Value`s or, cheaper, as [`Request`]s whose [`Arguments`] are positions in
//! the frame ([`RespCodec::decode_request`]), and encodes replies. RESP carries no request
//! ids, so a client multiplexes it by order: `Client::builder(addr).fifo(RespCodec::new())`
//! (or `.resp()`) with the composed client of the `beamline` crate, which re-exports this
//! crate as `beamline::resp`.
//!
//! # Guarantees
//! - Every limit of [`RespLimits`] (frame length, bulk length, array depth, line length)
//!   is checked from the headers, before anything is allocated or buffered past it.
//! - Malformed input is a typed [`RespError`], never a panic; the decoder never recurses.
//! - A frame is scanned once, however it arrives: the decoder keeps its place in a partial
//!   frame between reads, so a frame of `n` bytes costs O(n) whatever the number of pieces
//!   (a 100 MB request arriving 32 KiB at a time is not rescanned 3,000 times).
//! - Decoded strings are slices of the read buffer (no copies).
//!
//! # Examples
//! ```
//! use beamline_resp::{Command, RespCodec, Value};
//! use bytes::BytesMut;
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! // What a server reads, and what it answers.
//! let mut codec = RespCodec::new().inline_commands(true);
//! let mut input = BytesMut::from(&b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n"[..]);
//! let request = codec.decode(&mut input)?.expect("a whole frame");
//! assert_eq!(request.into_args(), Some(vec!["INCR".into(), "n".into()]));
//! let mut output = BytesMut::new();
//! codec.encode(Value::Integer(1), &mut output)?;
//! assert_eq!(&output[..], b":1\r\n");
//! # let _ = Command::new("PING");
//! # Ok::<(), beamline_resp::RespError>(())
//! ```

#![forbid(unsafe_code)]
// Every public type decides whether it may grow: #[non_exhaustive], or an allow that says why
// it is closed.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod arg;
mod codec;
mod command;
mod convert;
mod decode;
mod encode;
mod error;
mod limits;
mod request;
mod scan;
#[cfg(test)]
mod tests;

pub use arg::ToArg;
pub use codec::RespCodec;
pub use command::{Args, Command};
pub use convert::{FromValueError, ServerError};
pub use error::{RequestError, RespError};
pub use limits::{
    DEFAULT_MAX_BULK_LEN, DEFAULT_MAX_DEPTH, DEFAULT_MAX_FRAME_LEN, DEFAULT_MAX_LINE_LEN,
    MAX_FRAME_LEN, RespLimits,
};
pub use request::{Arguments, Request};

use bytes::Bytes;

/// One RESP2 value.
///
/// Strings are [`Bytes`]: binary-safe, and when decoded, slices of the frame they came in
/// (no copy). Only simple strings and errors have a rule a value can break (no `\r` or
/// `\n`); encoding such a value fails with [`RespError::InvalidSimple`] and writes nothing.
/// Redis distinguishes a null bulk string (`$-1`, the answer to `GET` of a
/// missing key) from a null array (`*-1`, a timed-out `BLPOP`); so does this type.
///
/// # Reading a reply
/// A Redis error reply (`-ERR ...`, `-WRONGTYPE ...`) is a `Value` like any other: the
/// request was delivered and answered, so a client returns it as `Ok(Value::Error(..))`.
/// So that it is never read as data, [`as_bytes`](Self::as_bytes) and
/// [`as_str`](Self::as_str) return `None` for it, [`into_result`](Self::into_result) turns
/// it into a typed [`ServerError`], and every `TryFrom<Value>` (`String`, `Vec<u8>`,
/// `Bytes`, `i64`, `bool`, `()`, `Option<_>` of those) fails with
/// [`FromValueError::Server`] on it.
///
/// ```
/// use beamline_resp::{FromValueError, Value};
///
/// let hit: Option<String> = Value::bulk("ada").try_into()?;
/// assert_eq!(hit.as_deref(), Some("ada"));
/// let miss: Option<String> = Value::Null.try_into()?;
/// assert_eq!(miss, None);
/// let n: i64 = Value::Integer(3).try_into()?;
/// assert_eq!(n, 3);
/// let wrong = String::try_from(Value::error("WRONGTYPE Operation against a key"));
/// assert!(matches!(wrong, Err(FromValueError::Server(e)) if e.code() == Some("WRONGTYPE")));
/// # Ok::<(), FromValueError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed: RESP2's five types (RESP3 would be a type of its own)
pub enum Value {
    /// `+OK`: a short status line. Cannot contain `\r` or `\n`.
    Simple(Bytes),
    /// `-ERR message`: the server's error answer. Cannot contain `\r` or `\n`.
    Error(Bytes),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nfoo`: a binary-safe string.
    Bulk(Bytes),
    /// `$-1`: the null bulk string.
    Null,
    /// `*2\r\n...`: an array of values (a command, as a server reads it, is an array of
    /// bulk strings).
    Array(Vec<Value>),
    /// `*-1`: the null array.
    NullArray,
}

impl Value {
    /// A simple string (`+OK`).
    pub fn simple(text: impl Into<Bytes>) -> Value {
        Value::Simple(text.into())
    }

    /// `+OK`, the usual success answer.
    pub fn ok() -> Value {
        Value::Simple(Bytes::from_static(b"OK"))
    }

    /// An error (`-ERR unknown command`).
    pub fn error(message: impl Into<Bytes>) -> Value {
        Value::Error(message.into())
    }

    /// A bulk string.
    pub fn bulk(data: impl Into<Bytes>) -> Value {
        Value::Bulk(data.into())
    }

    /// The bytes of a simple string or a bulk string. `None` for anything else, an error
    /// reply included: `v.as_str() == Some("OK")` is never true of `-OK`. An error's text
    /// is in [`into_result`](Self::into_result)'s [`ServerError`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Simple(b) | Value::Bulk(b) => Some(b),
            _ => None,
        }
    }

    /// [`as_bytes`](Self::as_bytes), when they are UTF-8 (so `None` for an error reply too).
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The integer of an integer reply.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(n) => Some(*n),
            _ => None,
        }
    }

    /// Whether this is a null bulk string or a null array.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null | Value::NullArray)
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }

    /// A command's arguments, as a server reads them: `Some` for a non-empty array whose
    /// elements are all bulk strings, `None` for anything else (answer it with an error).
    pub fn into_args(self) -> Option<Vec<Bytes>> {
        let Value::Array(items) = self else {
            return None;
        };
        if items.is_empty() {
            return None;
        }
        items
            .into_iter()
            .map(|item| match item {
                Value::Bulk(b) => Some(b),
                _ => None,
            })
            .collect()
    }
}

impl From<Command> for Value {
    /// The command as the array of bulk strings a server decodes.
    fn from(command: Command) -> Value {
        Value::Array(
            command
                .args()
                .map(|a| Value::Bulk(Bytes::copy_from_slice(a)))
                .collect(),
        )
    }
}
