use std::fmt;

/// Why [`Mux::admit`](crate::Mux::admit) did not admit a request. The request and its
/// waiter come back untouched ([`into_parts`](Self::into_parts)), so nothing is lost.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum AdmitError<R, T> {
    /// `max_in_flight` requests are live: wait for one to finish (the client driver's callers
    /// wait on a semaphore before they get here, so they never see this).
    #[error("{max_in_flight} requests in flight: the bound is reached")]
    Full {
        /// The request, unsent.
        request: R,
        /// Its waiter.
        waiter: T,
        /// The bound.
        max_in_flight: usize,
    },
    /// Abandoned requests fill the table (`max_abandoned`), or every id is in use: wait until
    /// late answers arrive or quarantines age out.
    #[error("blocked: {abandoned} abandoned requests await their late answers")]
    Blocked {
        /// The request, unsent.
        request: R,
        /// Its waiter.
        waiter: T,
        /// How many abandoned requests are outstanding.
        abandoned: usize,
    },
}

impl<R, T> AdmitError<R, T> {
    /// The request and waiter that were refused.
    pub fn into_parts(self) -> (R, T) {
        match self {
            AdmitError::Full {
                request, waiter, ..
            }
            | AdmitError::Blocked {
                request, waiter, ..
            } => (request, waiter),
        }
    }
}

impl<R, T> fmt::Debug for AdmitError<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdmitError::Full { max_in_flight, .. } => f
                .debug_struct("Full")
                .field("max_in_flight", max_in_flight)
                .finish_non_exhaustive(),
            AdmitError::Blocked { abandoned, .. } => f
                .debug_struct("Blocked")
                .field("abandoned", abandoned)
                .finish_non_exhaustive(),
        }
    }
}
