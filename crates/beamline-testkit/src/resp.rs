//! A blocking, one-command-per-connection RESP2 exchange, for driving real redis-servers
//! from test set-up code (no runtime, no dependency on the crates under test).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A reply from a real redis-server, as [`RedisCluster::command`](crate::RedisCluster::command)
/// reads it (RESP2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisReply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nfoo`, or `None` for `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...`, or `None` for `*-1`.
    Array(Option<Vec<RedisReply>>),
}

impl RedisReply {
    /// The text of a simple or bulk string (lossy UTF-8).
    pub fn text(&self) -> Option<String> {
        match self {
            RedisReply::Simple(s) => Some(s.clone()),
            RedisReply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// The integer of an integer reply.
    pub fn integer(&self) -> Option<i64> {
        match self {
            RedisReply::Integer(n) => Some(*n),
            _ => None,
        }
    }

    /// The elements of an array reply (empty for anything else).
    pub fn items(&self) -> &[RedisReply] {
        match self {
            RedisReply::Array(Some(items)) => items,
            _ => &[],
        }
    }

    /// Whether this is `+OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, RedisReply::Simple(s) if s == "OK")
    }
}

/// Deepest array nesting read (CLUSTER SLOTS nests 3 deep).
const MAX_DEPTH: usize = 8;

/// Sends one command to `addr` on a fresh connection and reads its reply, every step bounded
/// by `timeout`.
pub(crate) fn command(
    addr: SocketAddr,
    args: &[&[u8]],
    timeout: Duration,
) -> io::Result<RedisReply> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    stream.write_all(&out)?;
    let mut reader = BufReader::new(stream);
    read_reply(&mut reader, 0)
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed mid-reply",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_reply(reader: &mut impl BufRead, depth: usize) -> io::Result<RedisReply> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other("reply nested too deep"));
    }
    let line = read_line(reader)?;
    let bad = || io::Error::other(format!("unexpected reply line {line:?}"));
    let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
    let number = || rest.parse::<i64>().map_err(|_| bad());
    Ok(match kind {
        "+" => RedisReply::Simple(rest.to_owned()),
        "-" => RedisReply::Error(rest.to_owned()),
        ":" => RedisReply::Integer(number()?),
        "$" => {
            let len = number()?;
            if len < 0 {
                return Ok(RedisReply::Bulk(None));
            }
            let mut body = vec![0u8; usize::try_from(len).map_err(|_| bad())? + 2];
            io::Read::read_exact(reader, &mut body)?;
            body.truncate(body.len() - 2);
            RedisReply::Bulk(Some(body))
        }
        "*" => {
            let len = number()?;
            if len < 0 {
                return Ok(RedisReply::Array(None));
            }
            let mut items = Vec::new();
            for _ in 0..len {
                items.push(read_reply(reader, depth + 1)?);
            }
            RedisReply::Array(Some(items))
        }
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_replies() {
        let wire = b"*3\r\n:1\r\n$3\r\nfoo\r\n*2\r\n+OK\r\n$-1\r\n".to_vec();
        let reply = read_reply(&mut &wire[..], 0).unwrap();
        assert_eq!(
            reply,
            RedisReply::Array(Some(vec![
                RedisReply::Integer(1),
                RedisReply::Bulk(Some(b"foo".to_vec())),
                RedisReply::Array(Some(vec![
                    RedisReply::Simple("OK".into()),
                    RedisReply::Bulk(None)
                ])),
            ]))
        );
        assert!(read_reply(&mut &b"?x\r\n"[..], 0).is_err());
    }
}
