//! Copying values out of a request's frame, packed: the elements of one `RPUSH` of many small
//! values share a few blocks instead of one allocation each.
//!
//! A value kept by the store must not be a slice of the request frame (it would pin the whole
//! read buffer, megabytes for a big request, as long as it lives), so it is copied. One copy
//! per value costs an allocation and a free per element; here small values are copied into a
//! block of up to [`BLOCK`] bytes, frozen, and each value is a slice of its block. A block
//! stays in memory while any of its values does: at most `BLOCK` bytes pinned by one value.

use bytes::{Bytes, BytesMut};

/// The most bytes one block holds.
pub(crate) const BLOCK: usize = 4096;

/// Values longer than this get a copy of their own.
const SMALL: usize = BLOCK / 8;

/// Calls `put` with a copy of each of `values`, in order.
pub(crate) fn copy_packed(values: &[&[u8]], mut put: impl FnMut(Bytes)) {
    let mut rest = values;
    while let Some((&first, after)) = rest.split_first() {
        // The run of small values that fits one block.
        let mut size = 0;
        let run = rest
            .iter()
            .take_while(|v| {
                size += v.len();
                v.len() <= SMALL && size <= BLOCK
            })
            .count();
        if run <= 1 {
            put(Bytes::copy_from_slice(first));
            rest = after;
            continue;
        }
        let (packed, after) = rest.split_at(run);
        let mut block = BytesMut::with_capacity(packed.iter().map(|v| v.len()).sum());
        for v in packed {
            block.extend_from_slice(v);
        }
        let block = block.freeze();
        let mut at = 0;
        for v in packed {
            put(block.slice(at..at + v.len()));
            at += v.len();
        }
        rest = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copied(values: &[&[u8]]) -> Vec<Bytes> {
        let mut out = Vec::new();
        copy_packed(values, |v| out.push(v));
        out
    }

    #[test]
    fn copies_every_value_in_order_small_ones_sharing_blocks() {
        let big = vec![7u8; SMALL + 1];
        let smalls: Vec<Vec<u8>> = (0..2000u32).map(|i| i.to_string().into_bytes()).collect();
        let mut values: Vec<&[u8]> = vec![b"", b"a", &big, b"bc"];
        values.extend(smalls.iter().map(Vec::as_slice));
        values.push(b"");
        let out = copied(&values);
        assert_eq!(out.len(), values.len());
        for (got, want) in out.iter().zip(&values) {
            assert_eq!(got, want);
        }
        // Neighbours in a block are adjacent in memory; the big one is apart.
        let (a, b) = (&out[4], &out[5]);
        assert_eq!(a.as_ptr() as usize + a.len(), b.as_ptr() as usize);
        // No block holds more than BLOCK bytes: 2000 small values take several.
        let blocks = out
            .windows(2)
            .filter(|w| w[0].as_ptr() as usize + w[0].len() != w[1].as_ptr() as usize)
            .count();
        assert!(blocks >= 2, "{blocks}");
    }

    #[test]
    fn a_lone_small_value_is_a_plain_copy() {
        let out = copied(&[b"x"]);
        assert_eq!(out, [Bytes::from("x")]);
    }
}
