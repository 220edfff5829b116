//! Reading a reply without misreading it: an error reply as a typed [`ServerError`], and
//! `TryFrom<Value>` for the Rust types a reply usually is.

use std::borrow::Cow;
use std::str::Utf8Error;

use bytes::Bytes;

use super::Value;

/// A Redis error reply (`-ERR unknown command 'FOO'`, `-WRONGTYPE ...`, `-MOVED 3999 ...`)
/// as an error: the request was delivered and the server refused it.
///
/// Made by [`Value::into_result`] and by every `TryFrom<Value>` ([`FromValueError::Server`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("the server answered with an error: {}", self.message())]
pub struct ServerError {
    /// The error line without its `-`.
    line: Bytes,
}

impl ServerError {
    /// The error reply `-<line>`.
    pub fn new(line: impl Into<Bytes>) -> Self {
        ServerError { line: line.into() }
    }

    /// The whole error line, without the `-`: `ERR unknown command 'FOO'`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.line
    }

    /// [`as_bytes`](Self::as_bytes) as text (invalid UTF-8 replaced).
    pub fn message(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.line)
    }

    /// The error's code, by Redis's convention its first word: `ERR`, `WRONGTYPE`,
    /// `MOVED`, `NOAUTH`... `None` for an empty line or one that is not UTF-8.
    pub fn code(&self) -> Option<&str> {
        let word = self.line.split(|&b| b == b' ').next()?;
        std::str::from_utf8(word).ok().filter(|w| !w.is_empty())
    }

    /// The error line as a [`Value::Error`] again.
    pub fn into_value(self) -> Value {
        Value::Error(self.line)
    }
}

/// Why a reply did not convert into the type asked for (`String::try_from(value)`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FromValueError {
    /// The reply is an error reply: the server refused the request.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The reply is of a type the conversion does not take (an array where a string was
    /// expected, a null where a value was: use `Option<_>` for replies that may be null).
    #[error("expected {expected}, the reply is {found}")]
    Unexpected {
        /// What the conversion takes.
        expected: &'static str,
        /// What the reply is.
        found: &'static str,
    },
    /// A string reply that is not UTF-8, converted to `String`.
    #[error("the reply is not UTF-8 text")]
    NotUtf8 {
        /// Where the bytes stop being UTF-8.
        #[source]
        source: Utf8Error,
    },
    /// A string reply that is not a decimal `i64`, converted to `i64`.
    #[error("the reply {text:?} is not an integer")]
    NotInteger {
        /// The reply (lossily decoded).
        text: String,
    },
}

impl Value {
    /// The value, or the error reply as a typed [`ServerError`], so `?` stops at it.
    ///
    /// ```
    /// use beamline_resp::Value;
    ///
    /// assert_eq!(Value::ok().into_result(), Ok(Value::ok()));
    /// let refused = Value::error("ERR unknown command 'FOO'").into_result().unwrap_err();
    /// assert_eq!(refused.code(), Some("ERR"));
    /// ```
    ///
    /// # Errors
    /// [`ServerError`] for a [`Value::Error`].
    pub fn into_result(self) -> Result<Value, ServerError> {
        match self {
            Value::Error(line) => Err(ServerError::new(line)),
            value => Ok(value),
        }
    }

    /// What kind of value this is, in words (for error messages).
    fn kind(&self) -> &'static str {
        match self {
            Value::Simple(_) => "a simple string",
            Value::Error(_) => "an error",
            Value::Integer(_) => "an integer",
            Value::Bulk(_) => "a bulk string",
            Value::Null => "null",
            Value::Array(_) => "an array",
            Value::NullArray => "a null array",
        }
    }

    /// The error reply as an `Err`, any other value as `unexpected(expected)`.
    fn refuse<T>(self, expected: &'static str) -> Result<T, FromValueError> {
        Err(match self {
            Value::Error(line) => FromValueError::Server(ServerError::new(line)),
            other => FromValueError::Unexpected {
                expected,
                found: other.kind(),
            },
        })
    }
}

/// A simple or bulk string, without a copy.
impl TryFrom<Value> for Bytes {
    type Error = FromValueError;

    fn try_from(value: Value) -> Result<Bytes, FromValueError> {
        match value {
            Value::Simple(b) | Value::Bulk(b) => Ok(b),
            other => other.refuse("a string"),
        }
    }
}

/// A simple or bulk string, copied.
impl TryFrom<Value> for Vec<u8> {
    type Error = FromValueError;

    fn try_from(value: Value) -> Result<Vec<u8>, FromValueError> {
        Bytes::try_from(value).map(Vec::from)
    }
}

/// A simple or bulk string that is UTF-8.
impl TryFrom<Value> for String {
    type Error = FromValueError;

    fn try_from(value: Value) -> Result<String, FromValueError> {
        let bytes = Bytes::try_from(value)?;
        match std::str::from_utf8(&bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(source) => Err(FromValueError::NotUtf8 { source }),
        }
    }
}

/// An integer reply, or a string holding a decimal integer (`GET` of a counter).
impl TryFrom<Value> for i64 {
    type Error = FromValueError;

    fn try_from(value: Value) -> Result<i64, FromValueError> {
        match value {
            Value::Integer(n) => Ok(n),
            Value::Simple(b) | Value::Bulk(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| FromValueError::NotInteger {
                    text: String::from_utf8_lossy(&b).into_owned(),
                }),
            other => other.refuse("an integer"),
        }
    }
}

/// Redis's yes-or-no answers: an integer is `true` unless 0 (`EXISTS`, `SISMEMBER`,
/// `EXPIRE`, `SETNX`); `+OK` is `true` and a null `false` (`SET k v NX`).
impl TryFrom<Value> for bool {
    type Error = FromValueError;

    fn try_from(value: Value) -> Result<bool, FromValueError> {
        match value {
            Value::Integer(n) => Ok(n != 0),
            Value::Simple(ref s) if s.as_ref() == b"OK" => Ok(true),
            Value::Null | Value::NullArray => Ok(false),
            other => other.refuse("an integer, OK or null"),
        }
    }
}

/// Any reply but an error: for commands whose answer only says they worked (`SET`,
/// `DEL`, `EXPIRE`).
impl TryFrom<Value> for () {
    type Error = FromValueError;

    fn try_from(value: Value) -> Result<(), FromValueError> {
        value.into_result()?;
        Ok(())
    }
}

/// `None` for a null (`$-1` or `*-1`: `GET` of a missing key, a timed-out `BLPOP`), `T`'s
/// conversion of anything else.
impl<T> TryFrom<Value> for Option<T>
where
    T: TryFrom<Value, Error = FromValueError>,
{
    type Error = FromValueError;

    fn try_from(value: Value) -> Result<Option<T>, FromValueError> {
        match value {
            Value::Null | Value::NullArray => Ok(None),
            value => T::try_from(value).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> Value {
        Value::error(line.to_owned())
    }

    fn is_server(result: Result<impl std::fmt::Debug, FromValueError>, code: &str) -> bool {
        matches!(result, Err(FromValueError::Server(e)) if e.code() == Some(code))
    }

    fn is_unexpected(result: Result<impl std::fmt::Debug, FromValueError>) -> bool {
        matches!(result, Err(FromValueError::Unexpected { .. }))
    }

    #[test]
    fn into_result_separates_error_replies() {
        assert_eq!(Value::Integer(1).into_result(), Ok(Value::Integer(1)));
        let e = err("ERR unknown command 'FOO'").into_result().unwrap_err();
        assert_eq!(e.code(), Some("ERR"));
        assert_eq!(e.as_bytes(), b"ERR unknown command 'FOO'");
        assert_eq!(
            e.to_string(),
            "the server answered with an error: ERR unknown command 'FOO'"
        );
        assert_eq!(e.clone().into_value(), err("ERR unknown command 'FOO'"));
        assert_eq!(ServerError::new("").code(), None);
        assert_eq!(ServerError::new(vec![0xff, b' ', b'x']).code(), None);
    }

    #[test]
    fn an_error_reply_is_never_read_as_text() {
        let e = err("OK");
        assert_eq!(e.as_bytes(), None);
        assert_eq!(e.as_str(), None);
        assert_eq!(Value::simple("OK").as_str(), Some("OK"));
    }

    #[test]
    fn string_takes_simple_and_bulk_utf8() {
        assert_eq!(String::try_from(Value::bulk("ada")), Ok("ada".to_owned()));
        assert_eq!(
            String::try_from(Value::simple("PONG")),
            Ok("PONG".to_owned())
        );
        assert!(matches!(
            String::try_from(Value::bulk(vec![0xff])),
            Err(FromValueError::NotUtf8 { .. })
        ));
        assert!(is_server(String::try_from(err("WRONGTYPE x")), "WRONGTYPE"));
        assert!(is_unexpected(String::try_from(Value::Integer(1))));
        assert!(is_unexpected(String::try_from(Value::Null)));
    }

    #[test]
    fn bytes_and_vec_take_any_string_bytes() {
        let blob = vec![0_u8, 0xff, b'\r'];
        assert_eq!(
            Bytes::try_from(Value::bulk(blob.clone())),
            Ok(Bytes::from(blob.clone()))
        );
        assert_eq!(Vec::<u8>::try_from(Value::bulk(blob.clone())), Ok(blob));
        assert_eq!(Vec::<u8>::try_from(Value::simple("OK")), Ok(b"OK".to_vec()));
        assert!(is_server(Bytes::try_from(err("ERR no")), "ERR"));
        assert!(is_server(Vec::<u8>::try_from(err("ERR no")), "ERR"));
        assert!(is_unexpected(Bytes::try_from(Value::Array(vec![]))));
        assert!(is_unexpected(Vec::<u8>::try_from(Value::NullArray)));
    }

    #[test]
    fn i64_takes_integers_and_decimal_strings() {
        assert_eq!(i64::try_from(Value::Integer(-4)), Ok(-4));
        assert_eq!(i64::try_from(Value::bulk("42")), Ok(42));
        assert_eq!(
            i64::try_from(Value::bulk("4x")),
            Err(FromValueError::NotInteger {
                text: "4x".to_owned()
            })
        );
        assert!(is_server(i64::try_from(err("ERR not an integer")), "ERR"));
        assert!(is_unexpected(i64::try_from(Value::Null)));
    }

    #[test]
    fn bool_reads_redis_yes_and_no() {
        assert_eq!(bool::try_from(Value::Integer(1)), Ok(true));
        assert_eq!(bool::try_from(Value::Integer(2)), Ok(true));
        assert_eq!(bool::try_from(Value::Integer(0)), Ok(false));
        assert_eq!(bool::try_from(Value::ok()), Ok(true));
        assert_eq!(bool::try_from(Value::Null), Ok(false));
        assert!(is_unexpected(bool::try_from(Value::simple("QUEUED"))));
        assert!(is_unexpected(bool::try_from(Value::bulk("1"))));
        assert!(is_server(bool::try_from(err("ERR no")), "ERR"));
    }

    #[test]
    fn unit_takes_anything_but_an_error() {
        for ok in [
            Value::ok(),
            Value::Integer(0),
            Value::Null,
            Value::Array(vec![]),
        ] {
            assert_eq!(<()>::try_from(ok), Ok(()));
        }
        assert!(is_server(
            <()>::try_from(err("NOAUTH Authentication required")),
            "NOAUTH"
        ));
    }

    #[test]
    fn option_is_none_for_null_and_converts_the_rest() {
        assert_eq!(Option::<String>::try_from(Value::Null), Ok(None));
        assert_eq!(Option::<i64>::try_from(Value::NullArray), Ok(None));
        assert_eq!(
            Option::<String>::try_from(Value::bulk("v")),
            Ok(Some("v".to_owned()))
        );
        assert_eq!(Option::<i64>::try_from(Value::Integer(9)), Ok(Some(9)));
        assert!(is_server(Option::<Bytes>::try_from(err("ERR no")), "ERR"));
        assert!(is_unexpected(Option::<String>::try_from(Value::Integer(1))));
    }

    #[test]
    fn messages_say_what_was_expected_and_what_came() {
        let e = String::try_from(Value::Array(vec![])).unwrap_err();
        assert_eq!(e.to_string(), "expected a string, the reply is an array");
        let e = String::try_from(err("ERR x")).unwrap_err();
        assert_eq!(e.to_string(), "the server answered with an error: ERR x");
    }
}
