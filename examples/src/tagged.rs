//! The `tagged` example's logic: your own protocol with request ids, end to end.
//!
//! The protocol is lines of text, `<id> <text>\n` both ways, so `nc` can speak it. The
//! server answers each request when it is ready, out of order; the client matches each
//! answer to its caller by the id. Neither side writes an id by hand: the messages are
//! [`Envelope`]s, whose tag the client's driver sets when it sends a request and
//! `serve_tagged` copies from a request onto its response.
//!
//! - Server: [`Server::serve_fn`] gives each connection its own supervised process, which runs
//!   [`serve_tagged`] over it with the [`Lines`] codec and [`handle`] per request.
//! - Client: [`ClientBuilder::tagged`](beamline::ClientBuilder::tagged) with the same codec:
//!   many callers on one connection (reconnecting, with the default 30 s request timeout).
//!
//! It lives here so that `examples/tests/tagged.rs` runs it in-process.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use beamline::mux::{Envelope, ServerConfig, serve_tagged};
use beamline::server::{ExitReason, Server, ServerHandle, StartError};
use beamline::{BuildError, Client};
use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LinesCodec};

/// One message of the protocol: a line of text, with the request id the driver gives it.
pub type Line = Envelope<String>;

/// A client of the protocol.
pub type LineClient = Client<Line, Line>;

/// The longest line either side accepts (a longer one is a protocol error that closes the
/// connection).
pub const MAX_LINE: usize = 64 * 1024;

/// The codec, the same on both sides: `<id> <text>\n`, the id in decimal.
#[derive(Debug, Clone)]
pub struct Lines(LinesCodec);

impl Lines {
    /// A codec with lines of at most [`MAX_LINE`] bytes.
    pub fn new() -> Self {
        Lines(LinesCodec::new_with_max_length(MAX_LINE))
    }
}

impl Default for Lines {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for Lines {
    type Item = Line;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Line>> {
        let Some(line) = self.0.decode(src).map_err(io::Error::other)? else {
            return Ok(None);
        };
        let (id, text) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let id = id.parse().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad id in {line:?}"))
        })?;
        Ok(Some(Envelope::with_tag(id, text.to_owned())))
    }
}

impl Encoder<Line> for Lines {
    type Error = io::Error;

    fn encode(&mut self, line: Line, dst: &mut BytesMut) -> io::Result<()> {
        if line.body().contains('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a message cannot contain a newline",
            ));
        }
        dst.reserve(line.body().len() + 12);
        dst.put_slice(line.tag().to_string().as_bytes());
        dst.put_u8(b' ');
        dst.put_slice(line.body().as_bytes());
        dst.put_u8(b'\n');
        Ok(())
    }
}

/// A request the server does not understand, answered with an `ERR` line.
#[derive(Debug)]
pub struct Refused(pub String);

impl From<Refused> for Line {
    fn from(refused: Refused) -> Line {
        Envelope::new(format!("ERR {}", refused.0))
    }
}

/// The server's requests: `UPPER <text>` answers the text in capitals; `SLEEP <ms> <text>`
/// answers the text after `ms` milliseconds (at most 10 s), so a slow request does not
/// hold up the quick ones behind it. Anything else is [`Refused`].
pub async fn handle(request: Line) -> Result<Line, Refused> {
    let text = request.into_body();
    let (command, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
    match command {
        "UPPER" => Ok(Envelope::new(rest.to_uppercase())),
        "SLEEP" => {
            let (ms, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let ms: u64 = ms
                .parse()
                .map_err(|_| Refused(format!("SLEEP wants milliseconds, not {ms:?}")))?;
            tokio::time::sleep(Duration::from_millis(ms.min(10_000))).await;
            Ok(Envelope::new(rest.to_owned()))
        }
        other => Err(Refused(format!("unknown command {other:?}"))),
    }
}

/// Starts the server on `addr`. Each connection is a process running [`serve_tagged`]: a
/// protocol error (an undecodable line) ends that connection only, counted in the
/// server's `errored`.
///
/// The function never takes the connection's shutdown signal, so a graceful shutdown
/// closes these connections at once instead of waiting for them (requests still being
/// handled are dropped); a connection idle for the read timeout (60 s) is closed.
///
/// # Errors
/// When the address cannot be bound, or outside a tokio runtime.
pub fn start_server(addr: SocketAddr) -> Result<ServerHandle, StartError> {
    Server::new().bind(addr).serve_fn(|conn| async move {
        serve_tagged(conn, Lines::new(), &ServerConfig::new(), handle).await?;
        Ok::<(), ExitReason>(())
    })
}

/// A client of the server at `addr`.
///
/// # Errors
/// When the first connection fails.
pub async fn connect(addr: SocketAddr) -> Result<LineClient, BuildError> {
    Client::builder(addr)
        .tagged(Lines::new())
        .name(format!("lines {addr}"))
        .connect()
        .await
}
