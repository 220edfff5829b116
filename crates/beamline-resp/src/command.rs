//! A command as a client sends it: an array of bulk strings, encoded as it is built.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::ToArg;
use super::encode::{put_bulk, put_decimal};

/// A Redis command (`SET key value`): an array of bulk strings.
///
/// Each argument is encoded into one buffer as it is added, so sending a command is one
/// copy into the connection's write buffer and building it is one growing allocation,
/// whatever the number of arguments. Any bytes are a valid argument, so encoding a command
/// never fails; a command the server does not know is answered with an error reply.
/// Arguments are anything [`ToArg`]: strings, byte strings, integers and floats.
///
/// A `Command` is not a `Bytes`: a client speaking beamline's wire format
/// (`Client<Bytes, Bytes>`) does not take one, so forgetting
/// `ClientBuilder::resp` (of the `beamline` facade) is a compile error rather than a
/// Redis request sent in the wrong framing. [`encode`](Self::encode) gives the wire form
/// when you do want the bytes.
///
/// # Examples
/// ```
/// use beamline_resp::Command;
///
/// let set = Command::new("SET").arg("user:1").arg(b"ada").arg(42).arg(1.5);
/// assert_eq!(set.len(), 5);
/// let args: Vec<&[u8]> = set.args().collect();
/// assert_eq!(args, [b"SET".as_slice(), b"user:1", b"ada", b"42", b"1.5"]);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// How many arguments (including the command name) `data` holds.
    argc: usize,
    /// The arguments, each already encoded as a bulk string (`$<len>\r\n<bytes>\r\n`).
    data: BytesMut,
}

impl Command {
    /// A command named `name` (`GET`, `SET`, ...), without arguments yet.
    pub fn new(name: impl ToArg) -> Self {
        name.with_arg(|name| {
            let mut data = BytesMut::with_capacity(64.max(name.len() + 16));
            put_bulk(&mut data, name);
            Command { argc: 1, data }
        })
    }

    /// A command made of `args`, the first being its name.
    ///
    /// ```
    /// use beamline_resp::Command;
    /// assert_eq!(Command::from_args(["GET", "k"]), Command::new("GET").arg("k"));
    /// ```
    pub fn from_args<I>(args: I) -> Self
    where
        I: IntoIterator,
        I::Item: ToArg,
    {
        let mut command = Command {
            argc: 0,
            data: BytesMut::with_capacity(64),
        };
        for arg in args {
            command.push(arg);
        }
        command
    }

    /// Appends one argument (copied into the command's buffer; an integer is written in
    /// decimal).
    #[must_use]
    pub fn arg(mut self, arg: impl ToArg) -> Self {
        self.push(arg);
        self
    }

    /// Appends one argument in place.
    pub fn push(&mut self, arg: impl ToArg) {
        arg.with_arg(|bytes| put_bulk(&mut self.data, bytes));
        self.argc += 1;
    }

    /// The number of arguments, counting the command's name.
    pub fn len(&self) -> usize {
        self.argc
    }

    /// Whether the command has no arguments at all (only [`from_args`](Self::from_args) of
    /// an empty list makes one; a server answers it with an error).
    pub fn is_empty(&self) -> bool {
        self.argc == 0
    }

    /// The arguments, the command's name first.
    pub fn args(&self) -> Args<'_> {
        Args { rest: &self.data }
    }

    /// How many bytes the command takes on the wire.
    pub fn encoded_len(&self) -> usize {
        1 + decimal_len(self.argc as u64) + 2 + self.data.len()
    }

    /// The command's wire form: a RESP array of bulk strings, as
    /// [`RespCodec`](super::RespCodec) writes it. For sending it over a transport of your
    /// own; the `beamline` facade's `Client` built with `resp()` takes the `Command`
    /// itself.
    ///
    /// ```
    /// use beamline_resp::Command;
    /// assert_eq!(&Command::new("GET").arg("k").encode()[..], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    /// ```
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out.freeze()
    }

    /// Writes the command, RESP-encoded, to `dst`.
    pub(crate) fn encode_into(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_u8(b'*');
        put_decimal(dst, self.argc as i64);
        dst.put_slice(b"\r\n");
        dst.put_slice(&self.data);
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.args().map(|a| String::from_utf8_lossy(a).into_owned()))
            .finish()
    }
}

/// The arguments of a [`Command`], from [`Command::args`].
#[derive(Debug, Clone)]
pub struct Args<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // `$<len>\r\n<bytes>\r\n`, as `put_bulk` wrote it.
        let header_end = self.rest.iter().position(|&b| b == b'\r')?;
        let len: usize = std::str::from_utf8(self.rest.get(1..header_end)?)
            .ok()?
            .parse()
            .ok()?;
        let start = header_end + 2;
        let arg = self.rest.get(start..start + len)?;
        self.rest = self.rest.get(start + len + 2..)?;
        Some(arg)
    }
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_an_array_of_bulk_strings() {
        let cmd = Command::new("SET").arg("k").arg("");
        let wire = cmd.encode();
        assert_eq!(&wire[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
        assert_eq!(cmd.encoded_len(), wire.len());
    }

    #[test]
    fn args_survive_binary_content() {
        let blob = [0u8, b'\r', b'\n', 255, b'$'];
        let cmd = Command::from_args([b"ECHO".as_slice(), &blob]);
        let args: Vec<&[u8]> = cmd.args().collect();
        assert_eq!(args, [b"ECHO".as_slice(), &blob]);
        assert_eq!(cmd.len(), 2);
        assert!(!cmd.is_empty());
        assert!(Command::from_args(Vec::<&str>::new()).is_empty());
    }

    #[test]
    fn encoded_len_counts_large_argument_counts() {
        let cmd = Command::from_args((0..1234).map(|i| i.to_string()));
        assert_eq!(cmd.encoded_len(), cmd.encode().len());
    }

    #[test]
    fn numbers_are_arguments_in_decimal() {
        let cmd = Command::new("INCRBY").arg("n").arg(-5).arg(7_u64).arg(0.5);
        let args: Vec<&[u8]> = cmd.args().collect();
        assert_eq!(args, [b"INCRBY".as_slice(), b"n", b"-5", b"7", b"0.5"]);
        assert_eq!(Command::from_args([1, 2]), Command::new(1).arg(2));
    }

    #[test]
    fn debug_lists_the_arguments() {
        assert_eq!(
            format!("{:?}", Command::new("GET").arg("k")),
            r#"["GET", "k"]"#
        );
    }
}
