use std::io;
use std::sync::Arc;

/// Why a frame could not be decoded or encoded.
///
/// Every decode error leaves the byte stream out of step, so the connection that produced it
/// must be closed; the client driver and the server do that and report the error as the
/// cause of the disconnect. The error is cheap to clone (the I/O case is shared).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame's payload is longer than the configured maximum. When decoding, this is
    /// reported from the header alone: nothing was allocated for the payload.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The payload length the header announced (or the caller tried to send).
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The kind byte of a header is not a [`FrameKind`](crate::FrameKind).
    #[error("unknown frame kind {kind}")]
    UnknownKind {
        /// The byte found.
        kind: u8,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: {have} of {need} bytes")]
    Truncated {
        /// Bytes of the partial frame that arrived.
        have: usize,
        /// Bytes the whole frame needs (the header alone, when even that is partial).
        need: usize,
    },
    /// Reading or writing the underlying stream failed (only through `Framed`).
    #[error("i/o error: {0}")]
    Io(Arc<io::Error>),
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        FrameError::Io(Arc::new(e))
    }
}

/// Equal when the variants and their fields are equal; two I/O errors are equal when their
/// [`io::ErrorKind`]s are.
impl PartialEq for FrameError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::TooLarge { len: a, max: b }, Self::TooLarge { len: c, max: d }) => {
                a == c && b == d
            }
            (Self::UnknownKind { kind: a }, Self::UnknownKind { kind: b }) => a == b,
            (Self::Truncated { have: a, need: b }, Self::Truncated { have: c, need: d }) => {
                a == c && b == d
            }
            (Self::Io(a), Self::Io(b)) => a.kind() == b.kind(),
            _ => false,
        }
    }
}

impl Eq for FrameError {}
