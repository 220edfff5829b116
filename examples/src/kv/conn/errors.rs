//! What a connection answers to input it cannot read, and how its I/O errors end it.

use std::io;

use beamline::resp::{RespError, Value};
use beamline::server::ExitReason;
use bytes::Bytes;

fn protocol(what: &str) -> Value {
    Value::Error(Bytes::from(format!("ERR Protocol error: {what}")))
}

/// The error reply Redis gives for input it cannot parse (kv's own limits are worded as
/// Redis words its own: "too big request", "invalid bulk length").
pub(super) fn protocol_error(error: &RespError) -> Value {
    match error {
        // The request dialect words what Redis refuses as Redis does.
        RespError::Request { error, .. } => protocol(&error.to_string()),
        RespError::BulkTooLong { .. } => protocol("invalid bulk length"),
        RespError::LineTooLong { .. } => protocol("too big inline request"),
        RespError::FrameTooLarge { .. } => protocol("too big request"),
        RespError::MissingCrlf { .. } => protocol("expected '\\r\\n'"),
        RespError::UnexpectedByte { byte, .. } => protocol(&format!(
            "expected '*', got '{}'",
            if byte.is_ascii_graphic() {
                char::from(*byte)
            } else {
                '?'
            }
        )),
        other => protocol(&other.to_string()),
    }
}

pub(super) fn flush_failed(error: RespError) -> Result<(), ExitReason> {
    match error {
        RespError::Io(e) => peer_gone(e),
        other => Err(ExitReason::error(other)),
    }
}

/// A peer that resets or vanishes is the peer's business: the connection ends normally.
/// Any other I/O error ends it with that error.
pub(super) fn peer_gone(error: io::Error) -> Result<(), ExitReason> {
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::Other => Ok(()),
        _ => Err(ExitReason::error(error)),
    }
}
