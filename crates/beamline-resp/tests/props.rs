//! Properties of the RESP2 codec: any sequence of values survives encoding and decoding
//! through any split of the byte stream, a frame split at any point (or at every point)
//! decodes as the whole does, commands arrive as the arguments they were built from, and no
//! input makes the decoder panic.

use beamline_resp::{Command, Request, RespCodec, RespLimits, Value};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn line_text() -> impl Strategy<Value = Bytes> {
    // Anything but CR and LF, which simple strings and errors cannot carry.
    proptest::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..24,
    )
    .prop_map(Bytes::from)
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        line_text().prop_map(Value::Simple),
        line_text().prop_map(Value::Error),
        any::<i64>().prop_map(Value::Integer),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| Value::Bulk(b.into())),
        Just(Value::Null),
        Just(Value::NullArray),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        proptest::collection::vec(inner, 0..6).prop_map(Value::Array)
    })
}

/// Feeds `wire` to `codec` in the pieces `cuts` makes and collects what it decodes.
fn decode_in_pieces(codec: &mut RespCodec, wire: &[u8], cuts: &[usize]) -> Vec<Value> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(wire.len());
    points.sort_unstable();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    for point in points {
        buf.extend_from_slice(&wire[at..point]);
        at = point;
        while let Some(v) = codec.decode(&mut buf).expect("valid input decodes") {
            out.push(v);
        }
    }
    assert!(buf.is_empty(), "bytes left over");
    out
}

/// Every frame of `wire`, decoded from one buffer holding all of it.
fn decode_whole(codec: &mut RespCodec, wire: &[u8]) -> Vec<Value> {
    decode_in_pieces(codec, wire, &[])
}

/// `wire` fed to a server codec with `decode_request`, in the pieces `cuts` makes.
fn requests_in_pieces(wire: &[u8], cuts: &[usize]) -> Vec<Request> {
    let mut codec = RespCodec::new().inline_commands(true);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    for &point in cuts.iter().chain([&wire.len()]) {
        buf.extend_from_slice(&wire[at..point]);
        at = point;
        while let Some(r) = codec.decode_request(&mut buf).expect("valid input decodes") {
            out.push(r);
        }
    }
    out
}

proptest! {
    /// The resumable scan keeps its place: a frame cut in two at any point decodes as the
    /// whole frame does, and so does one fed a byte at a time (cut at every point).
    #[test]
    fn a_frame_split_at_every_point_decodes_as_the_whole(value in value(), inline in any::<bool>()) {
        let mut wire = BytesMut::new();
        RespCodec::new().encode(&value, &mut wire).unwrap();
        let fresh = || RespCodec::new().inline_commands(inline);
        let whole = decode_whole(&mut fresh(), &wire);
        prop_assert_eq!(&whole, &vec![value]);
        for cut in 0..=wire.len() {
            prop_assert_eq!(&decode_in_pieces(&mut fresh(), &wire, &[cut]), &whole, "cut at {}", cut);
        }
        let every: Vec<usize> = (0..wire.len()).collect();
        prop_assert_eq!(&decode_in_pieces(&mut fresh(), &wire, &every), &whole);
        // A server reads a command (an array of bulk strings) the same way; other values
        // are not requests in its dialect.
        if whole[0].clone().into_args().is_some() {
            let requests = requests_in_pieces(&wire, &every);
            prop_assert_eq!(requests.len(), 1);
            prop_assert_eq!(requests.into_iter().map(Request::into_value).collect::<Vec<_>>(), whole);
        }
    }

    #[test]
    fn a_command_split_at_every_point_is_the_same_request(
        args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 1..6),
    ) {
        let mut wire = BytesMut::new();
        RespCodec::new().encode(&Command::from_args(&args), &mut wire).unwrap();
        let whole = requests_in_pieces(&wire, &[]);
        let Some(Request::Command(command)) = whole.first() else {
            panic!("not a command: {whole:?}");
        };
        prop_assert_eq!(command.iter().collect::<Vec<_>>(), args.iter().map(Vec::as_slice).collect::<Vec<_>>());
        for cut in 0..=wire.len() {
            prop_assert_eq!(&requests_in_pieces(&wire, &[cut]), &whole, "cut at {}", cut);
        }
    }

    /// Any arguments typed as an inline command, each in double quotes with every byte as
    /// `\xHH`, arrive as themselves, however the line is split.
    #[test]
    fn quoted_inline_arguments_arrive_as_themselves(
        args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 1..6),
        cut in any::<usize>(),
    ) {
        let mut line = Vec::new();
        for arg in &args {
            line.extend_from_slice(b" \"");
            for byte in arg {
                line.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
            }
            line.push(b'"');
        }
        line.extend_from_slice(b"\r\n");
        let requests = requests_in_pieces(&line, &[cut % line.len()]);
        let [Request::Command(command)] = &requests[..] else {
            panic!("not one command: {requests:?}");
        };
        prop_assert_eq!(command.iter().collect::<Vec<_>>(), args.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }

    #[test]
    fn values_round_trip_through_any_split(
        values in proptest::collection::vec(value(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut codec = RespCodec::new();
        let mut wire = BytesMut::new();
        for v in &values {
            codec.encode(v, &mut wire).unwrap();
        }
        prop_assert_eq!(decode_in_pieces(&mut RespCodec::new(), &wire, &cuts), values.clone());
        // A server codec reads typed frames the same way.
        let mut server = RespCodec::new().inline_commands(true);
        prop_assert_eq!(decode_in_pieces(&mut server, &wire, &cuts), values);
    }

    #[test]
    fn commands_arrive_as_their_arguments(
        args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let command = Command::from_args(&args);
        let mut wire = BytesMut::new();
        RespCodec::new().encode(&command, &mut wire).unwrap();
        prop_assert_eq!(wire.len(), command.encoded_len());
        let mut server = RespCodec::new().inline_commands(true);
        let decoded = decode_in_pieces(&mut server, &wire, &cuts);
        prop_assert_eq!(decoded.len(), 1);
        let got = decoded.into_iter().next().and_then(Value::into_args).unwrap();
        let want: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn garbage_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        inline in any::<bool>(),
        small in any::<bool>(),
    ) {
        let limits = if small {
            RespLimits::new().max_frame_len(64).max_bulk_len(16).max_depth(3).max_line_len(8)
        } else {
            RespLimits::new()
        };
        let mut codec = RespCodec::with_limits(limits).inline_commands(inline);
        let mut buf = BytesMut::from(&bytes[..]);
        // Each successful decode consumes bytes, so this ends.
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
    }

    #[test]
    fn garbage_never_panics_a_server(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut codec = RespCodec::new().inline_commands(true);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = codec.decode_request(&mut buf) {}
    }

    #[test]
    fn typed_garbage_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just(&b"*"[..]), Just(&b"$"[..]), Just(&b"+"[..]), Just(&b"-"[..]), Just(&b":"[..]),
                Just(&b"\r\n"[..]), Just(&b"\r"[..]), Just(&b"\n"[..]), Just(&b"-1"[..]),
                Just(&b"0"[..]), Just(&b"3"[..]), Just(&b"99999999999999999999"[..]), Just(&b"ab"[..]),
            ],
            0..40,
        ),
    ) {
        let bytes: Vec<u8> = parts.concat();
        for inline in [false, true] {
            let mut codec = RespCodec::new().inline_commands(inline);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
        }
    }
}
