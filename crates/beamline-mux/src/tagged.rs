//! The seam for user protocols that carry their own request ids.

/// A message of a user protocol that carries a request id (its *tag*): Cassandra's stream
/// id, an HTTP/2 stream, a JSON-RPC `id`.
///
/// Implement it on your request and response types and the client driver multiplexes your
/// own codec by id, exactly as it does beamline's wire format
/// ([`Client::tagged`](crate::Client::tagged)); implement it on the server's request and
/// response types and [`serve_tagged`](crate::serve_tagged) answers out of order, copying each
/// request's tag onto its response.
///
/// The driver owns the tags: it overwrites whatever tag a request carries with
/// [`set_tag`](Self::set_tag) just before encoding it, and finds the caller of a response by
/// [`tag`](Self::tag). A tag is never handed to a second request while the first one could
/// still be answered (see [`Mux`](crate::Mux)), so a protocol with a small id space
/// ([`MAX_TAG`](Self::MAX_TAG)) is as safe as one with `u32` ids, only quicker to run out of
/// free ids (callers then wait).
///
/// Implement it when the id is a field of your message types (a `stream` field, as
/// below). When it is a header beside the message, use [`Envelope`] instead: it implements
/// this trait, and your types need no id field at all.
///
/// # Examples
///
/// ```
/// use beamline_mux::Tagged;
///
/// /// A request of a Cassandra-like protocol: 15-bit stream ids.
/// struct Query { stream: i16, cql: String }
///
/// impl Tagged for Query {
///     const MAX_TAG: u32 = i16::MAX as u32;
///     fn tag(&self) -> u32 { self.stream as u32 }
///     fn set_tag(&mut self, tag: u32) {
///         // MAX_TAG bounds every tag the driver hands out.
///         self.stream = i16::try_from(tag).unwrap_or(i16::MAX);
///     }
/// }
/// # let mut q = Query { stream: 0, cql: String::new() };
/// # q.set_tag(7);
/// # assert_eq!(q.tag(), 7);
/// ```
pub trait Tagged {
    /// The largest tag the protocol can carry: tags run over `0..=MAX_TAG`.
    ///
    /// Why it exists: the id allocator wraps around at this value and never hands out a tag
    /// the protocol cannot encode. Cassandra's stream ids stop at `i16::MAX`.
    const MAX_TAG: u32 = u32::MAX;

    /// The tag this message carries.
    fn tag(&self) -> u32;

    /// Writes `tag` into the message. Called by the driver on requests (and on the server's
    /// responses), with `tag <= MAX_TAG`.
    fn set_tag(&mut self, tag: u32);

    /// A message that cancels request `tag`, if the protocol has one.
    ///
    /// On a request type it is the cancel request the client sends when a caller gives up on
    /// a request already written; on a response type it is the acknowledgement a server
    /// sends instead of a response when it stopped that request's handler. The default,
    /// `None`, means the protocol has no such message: the abandoned tag then stays
    /// quarantined until its late answer arrives or its age limit passes.
    fn cancel(tag: u32) -> Option<Self>
    where
        Self: Sized,
    {
        let _ = tag;
        None
    }

    /// `Some(tag)` when this message is a cancel (see [`cancel`](Self::cancel)) for request
    /// `tag`, `None` for an ordinary message (the default).
    fn cancels(&self) -> Option<u32> {
        None
    }
}

/// A message and the tag the driver gives it, for protocols whose request id is a header
/// beside the message rather than a field of it: your message types need no id field, and
/// you never write a dummy id for the driver to overwrite.
///
/// Your codec encodes `Envelope<Request>` (writing [`tag`](Self::tag) in the header) and
/// decodes `Envelope<Response>` (building it with [`with_tag`](Self::with_tag)); callers
/// send [`Envelope::new`]`(request)` and read [`into_body`](Self::into_body) of the answer.
/// On the server, [`serve_tagged`](crate::serve_tagged) hands the handler an
/// `Envelope<Request>` and copies its tag onto the `Envelope<Response>` the handler
/// returns. `MAX_TAG` is the largest id the header can carry (`u32::MAX` unless given).
///
/// An envelope has no cancel message ([`Tagged::cancel`] is `None`): a protocol that has
/// one implements [`Tagged`] on its own types.
///
/// # Examples
/// ```
/// use beamline_mux::{Envelope, Tagged};
///
/// let mut request = Envelope::<_>::new("GET greeting");
/// request.set_tag(7); // what the client's driver does just before encoding it
/// assert_eq!((request.tag(), *request.body()), (7, "GET greeting"));
///
/// // What a codec decodes: the id from the header, the message from the rest.
/// let answer: Envelope<&str> = Envelope::with_tag(7, "hello");
/// assert_eq!(answer.into_body(), "hello");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Envelope<T, const MAX_TAG: u32 = { u32::MAX }> {
    tag: u32,
    body: T,
}

impl<T, const MAX_TAG: u32> Envelope<T, MAX_TAG> {
    /// `body` with no tag yet: the client's driver gives it one when it sends it, and
    /// [`serve_tagged`](crate::serve_tagged) gives a response its request's.
    pub fn new(body: T) -> Self {
        Envelope { tag: 0, body }
    }

    /// `body` carrying `tag`: what a codec decodes from the wire.
    pub fn with_tag(tag: u32, body: T) -> Self {
        Envelope { tag, body }
    }

    /// The tag: the request id on the wire (0 until the driver sets one on a new envelope).
    pub fn tag(&self) -> u32 {
        self.tag
    }

    /// The message.
    pub fn body(&self) -> &T {
        &self.body
    }

    /// The message, to change it.
    pub fn body_mut(&mut self) -> &mut T {
        &mut self.body
    }

    /// The message, without its tag.
    pub fn into_body(self) -> T {
        self.body
    }

    /// The tag and the message.
    pub fn into_parts(self) -> (u32, T) {
        (self.tag, self.body)
    }
}

impl<T, const MAX_TAG: u32> From<T> for Envelope<T, MAX_TAG> {
    fn from(body: T) -> Self {
        Envelope::new(body)
    }
}

impl<T, const MAX_TAG: u32> Tagged for Envelope<T, MAX_TAG> {
    const MAX_TAG: u32 = MAX_TAG;

    fn tag(&self) -> u32 {
        self.tag
    }

    fn set_tag(&mut self, tag: u32) {
        self.tag = tag;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_carries_the_tag_it_is_given() {
        let mut e: Envelope<&str, 255> = "ping".into();
        assert_eq!(e.tag(), 0);
        e.set_tag(200);
        assert_eq!(e.tag(), 200);
        assert_eq!(<Envelope<&str, 255> as Tagged>::MAX_TAG, 255);
        assert_eq!(<Envelope<()> as Tagged>::MAX_TAG, u32::MAX);
        *e.body_mut() = "pong";
        assert_eq!(e.into_parts(), (200, "pong"));
        assert!(Envelope::<()>::cancel(3).is_none());
        assert_eq!(Envelope::<()>::new(()).cancels(), None);
    }
}
