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
