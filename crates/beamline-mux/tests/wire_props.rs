//! Properties of the wire format codec: round trips through any split of the byte stream,
//! and garbage that never panics nor makes the decoder allocate past the limit.

use beamline_mux::{Frame, FrameCodec, FrameError, FrameKind, HEADER_LEN};
use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn kind() -> impl Strategy<Value = FrameKind> {
    (0u8..6).prop_map(|b| FrameKind::from_u8(b).unwrap_or(FrameKind::Request))
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        any::<u32>(),
        kind(),
        prop::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(|(id, kind, payload)| Frame::new(kind, id, payload))
}

/// Feeds `stream` to a decoder in the chunks `cuts` describes, like reads off a socket.
fn decode_in_chunks(
    codec: &mut FrameCodec,
    stream: &[u8],
    cuts: &[usize],
) -> Result<Vec<Frame>, FrameError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.push(stream.len());
    cuts.sort_unstable();
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    for cut in cuts {
        src.extend_from_slice(&stream[at..cut]);
        at = cut;
        while let Some(frame) = codec.decode(&mut src)? {
            out.push(frame);
        }
    }
    if let Some(frame) = codec.decode_eof(&mut src)? {
        out.push(frame);
    }
    Ok(out)
}

proptest! {
    #[test]
    fn frames_round_trip_through_any_split_of_the_stream(
        frames in prop::collection::vec(frame(), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..30),
    ) {
        let mut codec = FrameCodec::new();
        let mut stream = BytesMut::new();
        for f in &frames {
            codec.encode(f.clone(), &mut stream).unwrap();
        }
        prop_assert_eq!(stream.len(), frames.iter().map(Frame::wire_len).sum::<usize>());
        let decoded = decode_in_chunks(&mut codec, &stream, &cuts).unwrap();
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn garbage_never_panics_nor_allocates_past_the_limit(
        garbage in prop::collection::vec(any::<u8>(), 0..2048),
        max in 0usize..512,
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut codec = FrameCodec::with_max_frame_len(max);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (garbage.len() + 1)).collect();
        cuts.push(garbage.len());
        cuts.sort_unstable();
        let mut src = BytesMut::new();
        let mut at = 0;
        'feed: for cut in cuts {
            src.extend_from_slice(&garbage[at..cut]);
            at = cut;
            loop {
                let before = src.capacity().max(src.len());
                match codec.decode(&mut src) {
                    Ok(Some(frame)) => prop_assert!(frame.payload.len() <= max),
                    Ok(None) => {
                        // Growth happens only for a frame that passed the limit check, and
                        // only by that frame's size (the allocator may double it).
                        let grown = src.capacity() > before;
                        prop_assert!(!grown || src.capacity() <= 2 * (before + HEADER_LEN + max));
                        break;
                    }
                    Err(FrameError::TooLarge { len, max: m }) => {
                        prop_assert!(len > max);
                        prop_assert_eq!(m, max);
                        prop_assert!(src.capacity() <= before, "grew for a refused frame");
                        break 'feed;
                    }
                    Err(FrameError::UnknownKind { kind }) => {
                        prop_assert!(kind > 5);
                        break 'feed;
                    }
                    Err(other) => prop_assert!(false, "unexpected error {:?}", other),
                }
            }
        }
    }

    #[test]
    fn corrupted_streams_fail_typed_or_decode_within_the_limit(
        frames in prop::collection::vec(frame(), 1..10),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let max = 400;
        let mut codec = FrameCodec::new();
        let mut stream = BytesMut::new();
        for f in &frames {
            codec.encode(f.clone(), &mut stream).unwrap();
        }
        for (at, byte) in flips {
            let len = stream.len();
            stream[at % len] = byte;
        }
        let mut codec = FrameCodec::with_max_frame_len(max);
        match decode_in_chunks(&mut codec, &stream, &cuts) {
            Ok(decoded) => prop_assert!(decoded.iter().all(|f| f.payload.len() <= max)),
            Err(FrameError::TooLarge { len, .. }) => prop_assert!(len > max),
            Err(FrameError::UnknownKind { kind }) => prop_assert!(kind > 5),
            Err(FrameError::Truncated { have, need }) => prop_assert!(have < need),
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
    }
}

#[test]
fn a_header_claiming_four_gibibytes_allocates_nothing() {
    let mut codec = FrameCodec::new();
    let mut src = BytesMut::with_capacity(HEADER_LEN);
    src.put_u32(u32::MAX);
    src.put_u8(FrameKind::Response.as_u8());
    src.put_u32(7);
    let err = codec.decode(&mut src).unwrap_err();
    assert_eq!(
        err,
        FrameError::TooLarge {
            len: u32::MAX as usize,
            max: 16 * 1024 * 1024
        }
    );
    assert!(src.capacity() < 1024);
}
