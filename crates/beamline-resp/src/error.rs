//! What the RESP codec refuses, and why.

use std::io;

/// Why a RESP frame could not be decoded or a value could not be encoded.
///
/// Decoding errors mean the byte stream is out of step (or hostile): nothing of the
/// offending frame was returned and the connection should be closed, because no later
/// frame boundary can be trusted. Every limit ([`RespLimits`](crate::RespLimits)) is
/// checked from the headers, **before** anything is allocated or buffered past it.
///
/// Encoding errors leave the destination buffer as it was: nothing of the value was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RespError {
    /// Reading or writing the transport failed (what `Framed` reports through the codec).
    #[error("i/o error")]
    Io(#[from] io::Error),
    /// A frame starts with a byte that is not a RESP2 type (`+ - : $ *`), and inline
    /// commands are off (or the byte is inside an array).
    #[error("unexpected byte {byte:#04x} at offset {offset} where a RESP type was expected")]
    UnexpectedByte {
        /// The byte.
        byte: u8,
        /// Its offset from the start of the frame.
        offset: usize,
    },
    /// An integer, a bulk length or an array length is not a decimal `i64`.
    #[error("invalid number at offset {offset}")]
    InvalidInteger {
        /// Where the number starts, from the start of the frame.
        offset: usize,
    },
    /// A bulk or array length below -1 (-1 is null).
    #[error("invalid length {len} at offset {offset}")]
    InvalidLength {
        /// The length as sent.
        len: i64,
        /// Where the header starts, from the start of the frame.
        offset: usize,
    },
    /// A line or a bulk body does not end with `\r\n`.
    #[error("missing \\r\\n at offset {offset}")]
    MissingCrlf {
        /// Where the terminator was expected, from the start of the frame.
        offset: usize,
    },
    /// A simple string, an error, an inline command or a header line is longer than
    /// [`RespLimits::max_line_len`](crate::RespLimits::max_line_len) (or a number
    /// line longer than any `i64`).
    #[error("line longer than {max} bytes")]
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// A bulk string's declared length is over
    /// [`RespLimits::max_bulk_len`](crate::RespLimits::max_bulk_len).
    #[error("bulk string of {len} bytes exceeds the limit of {max}")]
    BulkTooLong {
        /// The declared length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// Arrays nest deeper than
    /// [`RespLimits::max_depth`](crate::RespLimits::max_depth).
    #[error("arrays nested deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// One frame needs more than
    /// [`RespLimits::max_frame_len`](crate::RespLimits::max_frame_len) bytes.
    #[error("frame of at least {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// How many bytes the frame is known to need.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Encoding: a simple string or an error contains `\r` or `\n`, which RESP2 cannot
    /// carry in them (send it as a bulk string).
    #[error("a simple string or error cannot contain \\r or \\n")]
    InvalidSimple,
    /// A request a server cannot read
    /// ([`RespCodec::decode_request`](crate::resp::RespCodec::decode_request) only): the
    /// [`RequestError`] says what, in the words Redis answers it with.
    #[error("bad request at offset {offset}: {error}")]
    Request {
        /// What is wrong with it.
        error: RequestError,
        /// Where, from the start of the frame.
        offset: usize,
    },
}

/// What is wrong with a request, as Redis words it: a server answers
/// `-ERR Protocol error: {error}` (its `Display`) and closes the connection, as Redis does.
///
/// Only [`RespCodec::decode_request`](crate::resp::RespCodec::decode_request) reports these
/// (inside [`RespError::Request`]); a client's decoding keeps its own strict errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The count of a command's array (`*N`) is not a decimal integer or is over
    /// 2,147,483,647 (`*3000000000`). A count of zero or below is not an error: Redis
    /// ignores such a request, and so does a server reading with `decode_request`.
    #[error("invalid multibulk length")]
    MultibulkLength,
    /// An argument's length (`$N`) is not a decimal integer, or is negative (`$-10`, and the
    /// null `$-1`, which is not an argument).
    #[error("invalid bulk length")]
    BulkLength,
    /// An element of a command's array is not a bulk string (`:1`, `*1`, or a word).
    #[error("expected '$', got '{}'", printable(*got))]
    ExpectedBulk {
        /// The byte found where `$` was expected.
        got: u8,
    },
    /// An inline command opens a quote it never closes, or closes one that is not followed
    /// by a space or the end of the line (Redis's `sdssplitargs` rules).
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
}

/// A byte as Redis shows it in an error line, with `?` for one that would break the line.
fn printable(byte: u8) -> char {
    if byte.is_ascii_graphic() || byte == b' ' {
        char::from(byte)
    } else {
        '?'
    }
}
