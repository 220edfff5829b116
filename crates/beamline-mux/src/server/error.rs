use std::error::Error as StdError;
use std::io;

use crate::frame::FrameKind;

/// Why [`serve_wire`](crate::serve_wire) or [`serve_tagged`](crate::serve_tagged) stopped
/// serving a connection. The connection is finished either way; requests still running
/// were dropped (their handlers' futures with them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Reading or writing the connection failed.
    #[error("i/o error")]
    Io(#[from] io::Error),
    /// The client sent bytes that do not decode (for the wire format a
    /// [`FrameError`](crate::FrameError), e.g. a frame over the size limit). The stream is
    /// out of step.
    #[error("undecodable request: {0}")]
    Decode(Box<dyn StdError + Send + Sync>),
    /// A response could not be encoded (a user codec's error).
    #[error("could not encode a response: {0}")]
    Encode(Box<dyn StdError + Send + Sync>),
    /// The client reused the id of a request that is still being handled, so answers
    /// would be ambiguous.
    #[error("request id {id} is already in use by an unanswered request")]
    DuplicateId {
        /// The id.
        id: u32,
    },
    /// The client sent a frame only a server sends.
    #[error("unexpected {kind:?} frame (id {id}) from the client")]
    UnexpectedFrame {
        /// Its kind.
        kind: FrameKind,
        /// Its id.
        id: u32,
    },
}
