//! How much one frame may make the decoder hold.

/// Default [`RespLimits::max_frame_len`]: 512 MiB, Redis's `proto-max-bulk-len`.
pub const DEFAULT_MAX_FRAME_LEN: usize = 512 * 1024 * 1024;
/// Default [`RespLimits::max_bulk_len`]: 512 MiB, Redis's `proto-max-bulk-len`.
pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Default [`RespLimits::max_depth`]: arrays nested 32 deep (Redis replies nest a few levels).
pub const DEFAULT_MAX_DEPTH: usize = 32;
/// Default [`RespLimits::max_line_len`]: 64 KiB, Redis's limit on an inline command.
pub const DEFAULT_MAX_LINE_LEN: usize = 64 * 1024;
/// The largest [`RespLimits::max_frame_len`] the decoder applies: 4 GiB - 1 (it keeps
/// positions in a frame as 32-bit offsets). Redis's own limit on a request is 1 GiB.
pub const MAX_FRAME_LEN: usize = u32::MAX as usize;

/// How much one frame may make the decoder hold. Each limit is checked from the headers as
/// they arrive, so a peer that *declares* a huge bulk string or a deep array is refused
/// before a byte of it is buffered beyond the limit or anything is allocated for it.
///
/// # Examples
/// ```
/// use beamline_resp::{RespCodec, RespLimits};
///
/// // A server that takes small commands only.
/// let limits = RespLimits::new().max_frame_len(1 << 20).max_bulk_len(64 * 1024).max_depth(2);
/// let codec = RespCodec::with_limits(limits).inline_commands(true);
/// # let _ = codec;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespLimits {
    max_frame_len: usize,
    max_bulk_len: usize,
    max_depth: usize,
    max_line_len: usize,
}

impl RespLimits {
    /// The defaults: 512 MiB frames and bulk strings, arrays 32 deep, 64 KiB lines.
    pub const fn new() -> Self {
        RespLimits {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
            max_line_len: DEFAULT_MAX_LINE_LEN,
        }
    }

    /// The most bytes one whole frame (a value with everything nested in it) may take.
    /// Why: it bounds what one reply or request makes the connection buffer. At most
    /// [`MAX_FRAME_LEN`] (4 GiB - 1): the decoder keeps positions in a frame as 32-bit
    /// offsets, so a larger setting counts as that.
    #[must_use]
    pub const fn max_frame_len(mut self, len: usize) -> Self {
        self.max_frame_len = len;
        self
    }

    /// The longest bulk string, checked against its declared length.
    #[must_use]
    pub const fn max_bulk_len(mut self, len: usize) -> Self {
        self.max_bulk_len = len;
        self
    }

    /// How deep arrays may nest (a flat array is depth 1). Why: the decoder itself never
    /// recurses, but encoding and dropping a value do, once per level, so a peer must not
    /// choose the depth.
    #[must_use]
    pub const fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// The longest simple string, error line or inline command.
    #[must_use]
    pub const fn max_line_len(mut self, len: usize) -> Self {
        self.max_line_len = len;
        self
    }
}

impl RespLimits {
    /// The frame limit the decoder applies: the setting, capped at [`MAX_FRAME_LEN`].
    pub(super) const fn frame_limit(&self) -> usize {
        if self.max_frame_len < MAX_FRAME_LEN {
            self.max_frame_len
        } else {
            MAX_FRAME_LEN
        }
    }

    pub(super) const fn bulk_limit(&self) -> usize {
        self.max_bulk_len
    }

    pub(super) const fn depth_limit(&self) -> usize {
        self.max_depth
    }

    pub(super) const fn line_limit(&self) -> usize {
        self.max_line_len
    }
}

impl Default for RespLimits {
    fn default() -> Self {
        Self::new()
    }
}
