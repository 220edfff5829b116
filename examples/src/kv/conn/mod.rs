//! One connection, as its own process: RESP requests in, replies out in request order, one
//! flush per batch of requests that arrived together; a blocked command waits in the
//! process's mailbox; published messages arrive there too.
//!
//! The server gives each connection a process (the stream-owning form), which has no
//! mailbox of its own; the connection's session therefore runs as a process it spawns,
//! whose mailbox takes [`KvMsg`]s, and which is killed with the connection.

mod errors;

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use beamline::process::{Context, Event, Pid, SpawnConfig, spawn_with};
use beamline::resp::{Arguments, Request, RespCodec, RespError, Value};
use beamline::server::{Connection, ExitReason};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder, Framed};

use self::errors::{flush_failed, peer_gone, protocol_error};
use super::blocking::Blocked;
use super::commands::pubsub_leave;
use super::commands::{Reply, execute};
use super::session::{KvMsg, Session};
use super::shared::Shared;
use super::store::Clock;

/// How much a connection reads at a time.
const READ_CAPACITY: usize = 16 * 1024;

/// Replies are flushed mid-batch once this many bytes wait, so a batch of requests for big
/// values never piles up in memory: the socket's backpressure reaches the reader.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// Draining, a connection closes once no request has come for this long.
const DRAIN_QUIET: Duration = Duration::from_millis(100);

/// Draining, a connection that never pauses that long is closed at its first moment with
/// nothing to answer once the drain has lasted this long.
const DRAIN_LINGER: Duration = Duration::from_secs(1);

/// How many messages a connection's mailbox holds. A subscriber is cut off by the bytes it
/// is behind (the hub's limit) long before this many small messages wait.
const MAILBOX: usize = 1 << 20;

/// What a blocked connection reads ahead (requests pipelined behind the blocking one, and a
/// close) before it stops reading until it is answered.
const BLOCKED_READ_AHEAD: usize = 1024 * 1024;

/// A connection's codec: requests in ([`RespCodec::decode_request`]: a command is its
/// arguments' positions in the frame, with no value built per argument), replies out.
#[derive(Debug)]
struct Codec(RespCodec);

impl Decoder for Codec {
    type Item = Request;
    type Error = RespError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, RespError> {
        self.0.decode_request(src)
    }
}

impl Encoder<Value> for Codec {
    type Error = RespError;

    fn encode(&mut self, reply: Value, dst: &mut BytesMut) -> Result<(), RespError> {
        self.0.encode(reply, dst)
    }
}

/// Serves one connection: its session runs as a process with a mailbox, ended with the
/// connection (a kill of this process, a drain, the peer closing).
pub(crate) async fn serve(conn: Connection, shared: Arc<Shared>) -> Result<(), ExitReason> {
    let id = conn.id().as_u64();
    let shutdown = conn.shutdown_signal();
    run_session(conn, id, async move { shutdown.requested().await }, shared).await
}

/// Runs [`serve_stream`] over `io` in a process of its own and waits for it to end.
async fn run_session<T>(
    io: T,
    id: u64,
    drain: impl Future<Output = ()> + Send + 'static,
    shared: Arc<Shared>,
) -> Result<(), ExitReason>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config =
        SpawnConfig::new().capacity(NonZeroUsize::new(MAILBOX).unwrap_or(NonZeroUsize::MIN));
    let session = spawn_with(config, move |ctx| async move {
        serve_stream(io, id, drain, &shared, ctx).await
    });
    let guard = KillOnDrop(session.pid());
    let reason = guard.0.exited().await;
    match reason {
        ExitReason::Normal => Ok(()),
        other => Err(other),
    }
}

/// Kills the session's process when the connection's own ends first (the server killed it).
struct KillOnDrop(Pid);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill();
    }
}

/// A connection's session, and what it must undo however the connection ends: its
/// subscriptions, its wait, its place in the client count.
struct Live<'a> {
    session: Session,
    shared: &'a Shared,
    /// The wait it is in.
    blocked: Option<u64>,
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        pubsub_leave(&self.shared.hub, &mut self.session);
        if let Some(ticket) = self.blocked.take() {
            self.shared.blocking.lock().cancel(ticket);
        }
        self.shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a batch of requests ended.
enum Flow {
    /// Everything buffered is answered.
    Done,
    /// The connection closes (QUIT, bad input): what is buffered is sent first.
    Close(Result<(), ExitReason>),
    /// A command blocks: wait for it before the next request.
    Block(Blocked),
}

/// The connection loop over any byte stream; `drain` resolves when the server asks the
/// connection to finish; `ctx` is the session process's mailbox.
pub(crate) async fn serve_stream<T>(
    io: T,
    id: u64,
    drain: impl Future<Output = ()>,
    shared: &Shared,
    mut ctx: Context<KvMsg>,
) -> Result<(), ExitReason>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    shared.stats.connected.fetch_add(1, Ordering::Relaxed);
    let mut live = Live {
        session: Session::new(id, Some(ctx.addr())),
        shared,
        blocked: None,
    };
    // The argument slices of one request at a time; the allocation is kept between them.
    let mut spare_args: Vec<&'static [u8]> = Vec::new();
    let mut drain = pin!(drain);
    let mut framed = Framed::with_capacity(io, Codec(shared.codec()), READ_CAPACITY);
    // Replies are encoded straight into the write buffer by a second codec (encoding keeps
    // no state), so a batch costs one flush rather than one `Sink::send` per reply.
    let mut encoder = RespCodec::new();
    // When the drain began: from then on the connection closes at a quiet moment.
    let mut draining: Option<Instant> = None;
    loop {
        let first = if let Some(since) = draining {
            // A request may be on its way (a client that has just connected, or one between
            // two requests): RESP has no way to say "closing", and a client meeting a closed
            // socket reports an error. So close only after a quiet spell, or, once the drain
            // has lingered, at the first moment nothing is buffered.
            let quiet = if since.elapsed() >= DRAIN_LINGER {
                Duration::ZERO
            } else {
                DRAIN_QUIET
            };
            match tokio::time::timeout(quiet, framed.next()).await {
                Ok(Some(next)) => next,
                Ok(None) | Err(_) => return close(&mut framed).await,
            }
        } else {
            tokio::select! {
            biased;
            () = &mut drain => {
                draining = Some(Instant::now());
                continue;
            }
            event = ctx.recv() => {
                if let Event::Msg(KvMsg::Published(frame)) = event
                    && let Err(e) = deliver(&mut framed, &mut ctx, &live.session, frame).await
                {
                    return flush_failed(e);
                }
                continue;
            }
            next = framed.next() => match next {
                Some(next) => next,
                // The peer closed.
                None => return close(&mut framed).await,
            },
            }
        };
        let mut flow = batch(
            Some(first),
            &mut framed,
            &mut encoder,
            &mut spare_args,
            &mut live,
        );
        loop {
            match flow {
                Flow::Done => break,
                Flow::Close(ended) => {
                    return match close(&mut framed).await {
                        Ok(()) => ended,
                        closed => closed,
                    };
                }
                Flow::Block(blocked) => {
                    if let Err(e) = flush(&mut framed).await {
                        return flush_failed(e);
                    }
                    live.blocked = Some(blocked.ticket);
                    let drain = (draining.is_none()).then_some(&mut drain);
                    let waited = wait(&blocked, &mut framed, &mut ctx, drain, &live).await;
                    let reply = match waited {
                        Waited::Answer(reply) => {
                            live.blocked = None;
                            reply
                        }
                        // `live` still names the wait: its drop removes it.
                        Waited::Gone(ended) => return ended,
                        Waited::Drained(reply) => {
                            encode(&mut encoder, &reply, framed.write_buffer_mut());
                            return close(&mut framed).await;
                        }
                    };
                    if live.session.reply_mode.sends() {
                        encode(&mut encoder, &reply, framed.write_buffer_mut());
                    }
                    // Then what was pipelined behind the blocking command.
                    flow = batch(None, &mut framed, &mut encoder, &mut spare_args, &mut live);
                }
            }
        }
        if let Err(e) = flush(&mut framed).await {
            return flush_failed(e);
        }
    }
}

/// Answers `first` (if any) and every request already decodable after it, stopping at one
/// that blocks or closes.
fn batch<T: AsyncRead + AsyncWrite + Unpin>(
    first: Option<Result<Request, RespError>>,
    framed: &mut Framed<T, Codec>,
    encoder: &mut RespCodec,
    spare: &mut Vec<&'static [u8]>,
    live: &mut Live<'_>,
) -> Flow {
    let mut clock = Clock::new();
    let mut next = match first {
        Some(first) => Some(first),
        None => decode_buffered(framed).transpose(),
    };
    loop {
        let request = match next {
            None => return Flow::Done,
            Some(Ok(request)) => request,
            Some(Err(RespError::Io(e))) => return Flow::Close(peer_gone(e)),
            Some(Err(e)) => {
                let reply = protocol_error(&e);
                encode(encoder, &reply, framed.write_buffer_mut());
                return Flow::Close(Ok(()));
            }
        };
        if let Request::Command(args) = request {
            let reply = run(&args, spare, live, &mut clock);
            let sends = live.session.reply_mode.sends();
            match reply {
                Reply::Value(value) if sends => encode(encoder, &value, framed.write_buffer_mut()),
                Reply::Many(values) if sends => {
                    for value in &values {
                        encode(encoder, value, framed.write_buffer_mut());
                    }
                }
                Reply::Block(blocked) => return Flow::Block(blocked),
                Reply::Value(_) | Reply::Many(_) => {}
            }
            if live.session.quit {
                return Flow::Close(Ok(()));
            }
            if framed.write_buffer().len() >= WRITE_HIGH_WATER {
                // A full write buffer is flushed by the caller between batches; stop here so
                // replies never pile up past the high-water mark.
                return Flow::Done;
            }
        }
        // Anything else is an empty request (`*0`, `*-1`): Redis ignores it.
        next = decode_buffered(framed).transpose();
    }
}

/// The next request already in the read buffer, without reading the socket.
fn decode_buffered<T>(framed: &mut Framed<T, Codec>) -> Result<Option<Request>, RespError> {
    // The codec and the buffer are both inside `framed`: take the buffer out for the call
    // (moving a `BytesMut` copies four words and allocates nothing).
    let mut buffer = std::mem::take(framed.read_buffer_mut());
    let decoded = framed.codec_mut().decode(&mut buffer);
    *framed.read_buffer_mut() = buffer;
    decoded
}

/// Runs one command; `spare` lends the argument vector its allocation. The command (and the
/// frame its arguments are in) is dropped by the caller right after, so the read buffer's
/// space is reused rather than reallocated.
fn run(
    command: &Arguments,
    spare: &mut Vec<&'static [u8]>,
    live: &mut Live<'_>,
    clock: &mut Clock,
) -> Reply {
    let mut args = reuse(std::mem::take(spare));
    args.extend(command.iter());
    let reply = execute(&args, live.shared, &mut live.session, clock);
    *spare = reuse(args);
    reply
}

/// An empty vector of argument slices in `spare`'s allocation. The slices of one request
/// borrow its frame, so the vector cannot outlive the request; its allocation can, and a
/// request then costs no allocation here. (Collecting an empty vector's iterator into one of
/// the same element size reuses its allocation.)
fn reuse<'a>(mut spare: Vec<&[u8]>) -> Vec<&'a [u8]> {
    spare.clear();
    spare.into_iter().map(|_| &[][..]).collect()
}

/// How a wait ended.
enum Waited {
    /// The reply to send (served, timed out, unblocked).
    Answer(Value),
    /// The peer went away (the wait is cancelled when the session drops).
    Gone(Result<(), ExitReason>),
    /// The server drains: this reply, then close.
    Drained(Value),
}

/// Waits for a blocked command's answer: a push serving it (a message), its timeout, CLIENT
/// UNBLOCK (a message), a drain (`drain`; `None` if it has already begun). Meanwhile it reads
/// ahead, so a peer that closes is noticed (and its wait removed).
async fn wait<T: AsyncRead + AsyncWrite + Unpin>(
    blocked: &Blocked,
    framed: &mut Framed<T, Codec>,
    ctx: &mut Context<KvMsg>,
    mut drain: Option<&mut std::pin::Pin<&mut impl Future<Output = ()>>>,
    live: &Live<'_>,
) -> Waited {
    let mut timeout = pin!(async {
        match blocked.deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    });
    let (mut timed_out, mut drained) = (false, false);
    loop {
        let mut buffer = std::mem::take(framed.read_buffer_mut());
        let room = buffer.len() < BLOCKED_READ_AHEAD;
        // Resolves when the drain begins (at once if it already has); polled until then only.
        let drain_begins = async {
            if let Some(drain) = drain.as_mut() {
                drain.as_mut().await;
            }
        };
        let event = tokio::select! {
            biased;
            event = ctx.recv() => Some(event),
            () = drain_begins, if !drained => {
                drained = true;
                *framed.read_buffer_mut() = buffer;
                if live.shared.blocking.lock().cancel(blocked.ticket) {
                    return Waited::Drained(Value::error("UNBLOCKED the server is shutting down"));
                }
                // Already answered: the answer is in the mailbox.
                continue;
            }
            () = &mut timeout, if !timed_out => {
                timed_out = true;
                *framed.read_buffer_mut() = buffer;
                if live.shared.blocking.lock().cancel(blocked.ticket) {
                    return Waited::Answer(blocked.on_timeout.clone());
                }
                continue;
            }
            read = framed.get_mut().read_buf(&mut buffer), if room => {
                *framed.read_buffer_mut() = buffer;
                match read {
                    Ok(0) => return Waited::Gone(Ok(())),
                    Ok(_) => continue,
                    Err(e) => return Waited::Gone(peer_gone(e)),
                }
            }
        };
        *framed.read_buffer_mut() = buffer;
        match event {
            Some(Event::Msg(KvMsg::Served { ticket, reply })) if ticket == blocked.ticket => {
                return Waited::Answer(reply);
            }
            // A late answer to an older wait, or a notice: not for this wait.
            _ => {}
        }
    }
}

/// Writes a published message (and those queued behind it) to the socket, then lowers the
/// subscriber's backlog by what the socket took.
async fn deliver<T: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<T, Codec>,
    ctx: &mut Context<KvMsg>,
    session: &Session,
    first: Bytes,
) -> Result<(), RespError> {
    let mut written = 0;
    let mut next = Some(first);
    while let Some(frame) = next.take() {
        written += frame.len() + super::pubsub::MESSAGE_OVERHEAD;
        framed.write_buffer_mut().extend_from_slice(&frame);
        if framed.write_buffer().len() >= WRITE_HIGH_WATER {
            break;
        }
        if let Some(Event::Msg(KvMsg::Published(frame))) = ctx.try_recv() {
            next = Some(frame);
        }
    }
    flush(framed).await?;
    session
        .subscriptions
        .backlog
        .fetch_sub(written, Ordering::Relaxed);
    Ok(())
}

fn encode(encoder: &mut RespCodec, reply: &Value, out: &mut BytesMut) {
    if encoder.encode(reply, out).is_err() {
        // Only a line break in a simple string or an error fails, and every reply built
        // here has none; should one slip through, the client still gets an answer in order.
        let _ = encoder.encode(
            &Value::Error(Bytes::from_static(b"ERR reply could not be encoded")),
            out,
        );
    }
}

/// Sends what is buffered, then lets the connection close.
async fn close<T: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<T, Codec>,
) -> Result<(), ExitReason> {
    match SinkExt::<Value>::close(framed).await {
        Ok(()) => Ok(()),
        Err(e) => flush_failed(e),
    }
}

async fn flush<T: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<T, Codec>,
) -> Result<(), RespError> {
    SinkExt::<Value>::flush(framed).await
}

#[cfg(test)]
mod tests;
