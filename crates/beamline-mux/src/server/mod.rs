//! The server side: answer multiplexed requests on one connection, out of order.

mod conn;
mod error;
mod proto;

pub use error::ServeError;

use std::error::Error as StdError;
use std::future::Future;
use std::marker::PhantomData;

use bytes::Bytes;
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{DEFAULT_MAX_FRAME_LEN, FrameCodec};
use crate::tagged::Tagged;
use conn::ServeConn;
use proto::{TaggedServer, WireServer};

/// Default bound on handlers running at once on one connection.
pub const DEFAULT_MAX_CONCURRENT: usize = 256;

/// Settings for serving one connection.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    max_concurrent: usize,
    max_frame_len: usize,
}

impl ServerConfig {
    /// 256 concurrent handlers, 16 MiB frames.
    pub fn new() -> Self {
        ServerConfig {
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// At most `n` handlers run at once (at least 1). Up to `n` more requests are read and
    /// queued; beyond that the server stops reading, and TCP flow control holds the client
    /// back. Why: one connection must not make the server hold unbounded work.
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n.max(1);
        self
    }

    /// The wire format's maximum payload length, both ways (default 16 MiB).
    pub fn max_frame_len(mut self, len: usize) -> Self {
        self.max_frame_len = len;
        self
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves beamline's [wire format](crate::frame) on `io` until the client closes it.
///
/// Each request frame's payload goes to `handler`; its answer becomes a `Response` frame
/// (`Ok`) or an `Error` frame (`Err`) carrying the request's id. Up to
/// [`max_concurrent`](ServerConfig::max_concurrent) handlers run at once, inside this
/// future (spawn from a handler for CPU-heavy work), and answers are written as they
/// complete, out of order, coalesced into as few writes as possible. Pings are answered.
///
/// # Guarantees
/// - **Every request gets exactly one answer**: a response, an error, or (after the client
///   cancelled it) a `Cancel` acknowledgement. A cancel stops a running handler (its future
///   is dropped) or drops a queued request; a cancel for a request already answered is
///   ignored. A response too large for the frame limit is replaced by an error frame
///   saying so.
/// - **Bounded work per connection**: `max_concurrent` running plus `max_concurrent`
///   queued requests at most.
/// - **Clean end**: when the client closes its side, running handlers finish, their
///   answers are written, and the connection is shut down; the future resolves `Ok(())`.
///
/// A panicking handler panics this future (and so the task running it): its connection is
/// lost, nothing else.
///
/// # Errors
/// A [`ServeError`] when the connection fails, the client breaks the protocol (an
/// undecodable frame, a frame over the size limit, an id reused while its request is
/// unanswered), or an answer cannot be encoded. The connection is finished then.
///
/// # Examples
///
/// ```no_run
/// use beamline_mux::{ServerConfig, serve_wire};
/// use bytes::Bytes;
///
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// loop {
///     let (stream, _) = listener.accept().await?;
///     tokio::spawn(serve_wire(stream, &ServerConfig::new(), |request: Bytes| async move {
///         Ok::<_, Bytes>(request) // echo
///     }));
/// }
/// # }
/// ```
pub fn serve_wire<T, H, F>(
    io: T,
    config: &ServerConfig,
    handler: H,
) -> impl Future<Output = Result<(), ServeError>> + use<T, H, F>
where
    T: AsyncRead + AsyncWrite + Unpin,
    H: FnMut(Bytes) -> F,
    F: Future<Output = Result<Bytes, Bytes>>,
{
    let proto = WireServer {
        codec: FrameCodec::with_max_frame_len(config.max_frame_len),
    };
    ServeConn::new(io, proto, handler, config.max_concurrent)
}

/// Serves a user protocol whose messages carry ids ([`Tagged`]), framed by `codec`, with
/// the same guarantees as [`serve_wire`].
///
/// Each decoded request goes to `handler`, which returns the response, or, like
/// [`serve_wire`]'s, a `Result` whose error becomes the response (`Result<Resp, E>` with
/// `E: Into<Resp>`: your protocol's error message; see [`IntoReply`]). The response gets
/// the request's tag ([`Tagged::set_tag`]) and is written as soon as it is ready: build it
/// with any tag (an [`Envelope::new`](crate::Envelope::new) has none). A request for which
/// [`Tagged::cancels`] returns a tag cancels that request; the acknowledgement is the
/// response type's [`Tagged::cancel`] message, if the protocol has one.
///
/// # Errors
/// As for [`serve_wire`].
///
/// # Examples
/// A protocol of lines `<id> <text>`, its messages in [`Envelope`](crate::Envelope)s; a
/// request the handler refuses is answered with an `ERR` line.
/// ```no_run
/// use beamline_mux::{Envelope, ServerConfig, serve_tagged};
/// # use bytes::{BufMut, BytesMut};
/// # use tokio_util::codec::{Decoder, Encoder};
/// # #[derive(Clone)] struct Lines;
/// # impl Decoder for Lines {
/// #     type Item = Envelope<String>; type Error = std::io::Error;
/// #     fn decode(&mut self, _: &mut BytesMut) -> std::io::Result<Option<Envelope<String>>> { Ok(None) }
/// # }
/// # impl Encoder<Envelope<String>> for Lines {
/// #     type Error = std::io::Error;
/// #     fn encode(&mut self, m: Envelope<String>, dst: &mut BytesMut) -> std::io::Result<()> {
/// #         dst.put_slice(format!("{} {}\n", m.tag(), m.body()).as_bytes()); Ok(())
/// #     }
/// # }
/// # use beamline_mux::Tagged;
///
/// struct Refused(&'static str);
///
/// impl From<Refused> for Envelope<String> {
///     fn from(why: Refused) -> Self {
///         Envelope::new(format!("ERR {}", why.0))
///     }
/// }
///
/// # async fn run(stream: tokio::net::TcpStream) -> Result<(), beamline_mux::ServeError> {
/// serve_tagged(stream, Lines, &ServerConfig::new(), |req: Envelope<String>| async move {
///     match req.body().strip_prefix("UPPER ") {
///         Some(text) => Ok(Envelope::new(text.to_uppercase())),
///         None => Err(Refused("unknown command")),
///     }
/// })
/// .await
/// # }
/// ```
pub fn serve_tagged<T, C, Req, Resp, H, F>(
    io: T,
    codec: C,
    config: &ServerConfig,
    mut handler: H,
) -> impl Future<Output = Result<(), ServeError>> + use<T, C, Req, Resp, H, F>
where
    T: AsyncRead + AsyncWrite + Unpin,
    C: Decoder<Item = Req> + Encoder<Resp>,
    <C as Decoder>::Error: StdError + Send + Sync + 'static,
    <C as Encoder<Resp>>::Error: StdError + Send + Sync + 'static,
    Req: Tagged,
    Resp: Tagged,
    H: FnMut(Req) -> F,
    F: Future,
    F::Output: IntoReply<Resp>,
{
    let proto = TaggedServer {
        codec,
        types: PhantomData,
    };
    let handler = move |req| handler(req).map(IntoReply::into_reply as fn(_) -> Resp);
    ServeConn::new(io, proto, handler, config.max_concurrent)
}

/// What a [`serve_tagged`] handler may return: the response itself, or a `Result` whose
/// error is turned into a response (`E: Into<Resp>`), so a handler can use `?` and answer
/// a failure with the protocol's own error message.
pub trait IntoReply<Resp> {
    /// The response to write.
    fn into_reply(self) -> Resp;
}

impl<Resp> IntoReply<Resp> for Resp {
    fn into_reply(self) -> Resp {
        self
    }
}

impl<Resp, E: Into<Resp>> IntoReply<Resp> for Result<Resp, E> {
    fn into_reply(self) -> Resp {
        self.unwrap_or_else(Into::into)
    }
}
