//! Encoding: [`Value`]s and [`Command`]s into RESP2, as Redis writes them.

use bytes::{BufMut, BytesMut};
use tokio_util::codec::Encoder;

use super::arg::{DECIMAL_LEN, decimal};
use super::{Command, RespCodec, RespError, Value};

/// Writes `n` in decimal.
pub(crate) fn put_decimal(dst: &mut BytesMut, n: i64) {
    let mut buf = [0u8; DECIMAL_LEN];
    dst.put_slice(decimal(n < 0, n.unsigned_abs(), &mut buf));
}

/// Writes `data` as a bulk string: `$<len>\r\n<data>\r\n`.
pub(super) fn put_bulk(dst: &mut BytesMut, data: &[u8]) {
    dst.reserve(data.len() + 24);
    dst.put_u8(b'$');
    put_decimal(dst, data.len() as i64);
    dst.put_slice(b"\r\n");
    dst.put_slice(data);
    dst.put_slice(b"\r\n");
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
        let result = encode_value(value, dst, 0, self.limits().depth_limit());
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
        Value::Bulk(b) => put_bulk(dst, b),
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
