//! Unit tests of the codec: every type both ways, every limit, every error, and the scan's
//! cost over a frame that arrives in pieces.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::scan::parse_i64;
use super::*;

fn decode_all(codec: &mut RespCodec, bytes: &[u8]) -> Result<Vec<Value>, RespError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(v) = codec.decode(&mut buf)? {
        out.push(v);
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(out)
}

fn encoded(value: &Value) -> BytesMut {
    let mut buf = BytesMut::new();
    RespCodec::new().encode(value, &mut buf).unwrap();
    buf
}

#[test]
fn decodes_every_type() {
    let wire = b"+OK\r\n-ERR no\r\n:-42\r\n$3\r\nfoo\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n";
    let values = decode_all(&mut RespCodec::new(), wire).unwrap();
    assert_eq!(
        values,
        vec![
            Value::simple("OK"),
            Value::error("ERR no"),
            Value::Integer(-42),
            Value::bulk("foo"),
            Value::bulk(""),
            Value::Null,
            Value::NullArray,
            Value::Array(vec![]),
            Value::Array(vec![
                Value::Integer(1),
                Value::Array(vec![Value::bulk("x")])
            ]),
        ]
    );
}

#[test]
fn encodes_every_type_as_redis_does() {
    let cases: [(Value, &[u8]); 8] = [
        (Value::simple("OK"), b"+OK\r\n"),
        (Value::error("ERR x"), b"-ERR x\r\n"),
        (Value::Integer(i64::MIN), b":-9223372036854775808\r\n"),
        (Value::bulk("ab"), b"$2\r\nab\r\n"),
        (Value::Null, b"$-1\r\n"),
        (Value::NullArray, b"*-1\r\n"),
        (Value::Array(vec![]), b"*0\r\n"),
        (
            Value::Array(vec![Value::Integer(7), Value::Null]),
            b"*2\r\n:7\r\n$-1\r\n",
        ),
    ];
    for (value, wire) in cases {
        assert_eq!(&encoded(&value)[..], wire, "{value:?}");
    }
}

#[test]
fn integers_are_strict() {
    for n in [i64::MIN, i64::MAX, 0, -1, 10] {
        assert_eq!(parse_i64(n.to_string().as_bytes()), Some(n));
    }
    for bad in [
        &b""[..],
        b"-",
        b"+1",
        b"1a",
        b" 1",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"00000000000000000001",
    ] {
        assert_eq!(parse_i64(bad), None, "{bad:?}");
    }
    let err = decode_all(&mut RespCodec::new(), b":12x\r\n").unwrap_err();
    assert!(
        matches!(err, RespError::InvalidInteger { offset: 1 }),
        "{err}"
    );
    // A number line that goes on and on is refused without waiting for its end.
    let err = RespCodec::new()
        .decode(&mut BytesMut::from(&b"$111111111111111111111111"[..]))
        .unwrap_err();
    assert!(matches!(err, RespError::InvalidInteger { .. }), "{err}");
}

#[test]
fn inline_commands_only_when_asked_for() {
    let err = decode_all(&mut RespCodec::new(), b"PING\r\n").unwrap_err();
    assert!(
        matches!(
            err,
            RespError::UnexpectedByte {
                byte: b'P',
                offset: 0
            }
        ),
        "{err}"
    );
    let mut server = RespCodec::new().inline_commands(true);
    let values = decode_all(
        &mut server,
        b"PING\r\n\r\n  \nSET  k\tv\n*1\r\n$4\r\nPING\r\n",
    )
    .unwrap();
    let cmd = |args: &[&'static str]| Value::Array(args.iter().map(|a| Value::bulk(*a)).collect());
    assert_eq!(
        values,
        vec![cmd(&["PING"]), cmd(&["SET", "k", "v"]), cmd(&["PING"])]
    );
    // Inline only starts a frame; inside an array a stray byte is an error.
    let err = decode_all(&mut server, b"*1\r\nPING\r\n").unwrap_err();
    assert!(
        matches!(err, RespError::UnexpectedByte { offset: 4, .. }),
        "{err}"
    );
}

#[test]
fn a_declared_bulk_over_the_limit_is_refused_from_its_header() {
    let mut codec = RespCodec::with_limits(RespLimits::new().max_bulk_len(10));
    let err = codec
        .decode(&mut BytesMut::from(&b"$11\r\n"[..]))
        .unwrap_err();
    assert!(
        matches!(err, RespError::BulkTooLong { len: 11, max: 10 }),
        "{err}"
    );
    let mut codec = RespCodec::new();
    let err = codec
        .decode(&mut BytesMut::from(&b"$99999999999\r\n"[..]))
        .unwrap_err();
    assert!(matches!(err, RespError::BulkTooLong { .. }), "{err}");
}

#[test]
fn frames_over_the_limit_are_refused_before_they_are_buffered() {
    let limits = RespLimits::new().max_frame_len(32);
    // Declared: a bulk whose frame would need 6 + 40 + 2 bytes.
    let err = RespCodec::with_limits(limits)
        .decode(&mut BytesMut::from(&b"$40\r\n"[..]))
        .unwrap_err();
    assert!(
        matches!(err, RespError::FrameTooLarge { max: 32, .. }),
        "{err}"
    );
    // Declared: 20 elements cannot fit in 32 bytes.
    let err = RespCodec::with_limits(limits)
        .decode(&mut BytesMut::from(&b"*20\r\n"[..]))
        .unwrap_err();
    assert!(matches!(err, RespError::FrameTooLarge { .. }), "{err}");
    // Complete but too large.
    let err = decode_all(
        &mut RespCodec::with_limits(limits),
        b"*3\r\n$10\r\n0123456789\r\n$1\r\nx\r\n$1\r\ny\r\n",
    )
    .unwrap_err();
    assert!(matches!(err, RespError::FrameTooLarge { .. }), "{err}");
    // Within the limit: fine.
    let ok = decode_all(
        &mut RespCodec::with_limits(limits),
        b"$10\r\n0123456789\r\n",
    )
    .unwrap();
    assert_eq!(ok, vec![Value::bulk("0123456789")]);
}

#[test]
fn depth_is_bounded_both_ways() {
    let limits = RespLimits::new().max_depth(2);
    let ok = decode_all(&mut RespCodec::with_limits(limits), b"*1\r\n*1\r\n:1\r\n").unwrap();
    assert_eq!(ok.len(), 1);
    let err = decode_all(
        &mut RespCodec::with_limits(limits),
        b"*1\r\n*1\r\n*1\r\n:1\r\n",
    )
    .unwrap_err();
    assert!(matches!(err, RespError::TooDeep { max: 2 }), "{err}");
    let deep = Value::Array(vec![Value::Array(vec![Value::Array(vec![Value::Null])])]);
    let mut buf = BytesMut::from(&b"keep"[..]);
    let err = RespCodec::with_limits(limits)
        .encode(&deep, &mut buf)
        .unwrap_err();
    assert!(matches!(err, RespError::TooDeep { max: 2 }), "{err}");
    assert_eq!(&buf[..], b"keep", "a failed encode wrote something");
}

#[test]
fn a_hostile_depth_does_not_overflow_the_stack() {
    let depth = 200_000;
    let mut wire = b"*1\r\n".repeat(depth);
    wire.extend_from_slice(b":1\r\n");
    let limits = RespLimits::new().max_depth(usize::MAX);
    let values = decode_all(&mut RespCodec::with_limits(limits), &wire).unwrap();
    assert_eq!(values.len(), 1);
    // Dropping a deep value recurses in `Vec`'s drop; unwind it by hand.
    let mut v = values.into_iter().next().unwrap();
    while let Value::Array(mut items) = v {
        v = items.pop().unwrap_or(Value::Null);
    }
}

#[test]
fn lines_must_end_with_crlf_and_stay_short() {
    let err = decode_all(&mut RespCodec::new(), b"+OK\n").unwrap_err();
    assert!(matches!(err, RespError::MissingCrlf { offset: 3 }), "{err}");
    let err = decode_all(&mut RespCodec::new(), b"$2\r\nabcd\r\n").unwrap_err();
    assert!(matches!(err, RespError::MissingCrlf { offset: 6 }), "{err}");
    let limits = RespLimits::new().max_line_len(4);
    let err = RespCodec::with_limits(limits)
        .decode(&mut BytesMut::from(&b"+abcdefgh"[..]))
        .unwrap_err();
    assert!(matches!(err, RespError::LineTooLong { max: 4 }), "{err}");
    let mut server = RespCodec::with_limits(limits).inline_commands(true);
    let err = server
        .decode(&mut BytesMut::from(&b"PINGPONG"[..]))
        .unwrap_err();
    assert!(matches!(err, RespError::LineTooLong { max: 4 }), "{err}");
    let ok = decode_all(&mut RespCodec::with_limits(limits), b"+abcd\r\n").unwrap();
    assert_eq!(ok, vec![Value::simple("abcd")]);
}

#[test]
fn lengths_below_minus_one_are_invalid() {
    for wire in [&b"$-2\r\n"[..], b"*-5\r\n"] {
        let err = decode_all(&mut RespCodec::new(), wire).unwrap_err();
        assert!(matches!(err, RespError::InvalidLength { .. }), "{err}");
    }
}

#[test]
fn simple_strings_with_line_breaks_are_not_encodable() {
    let mut buf = BytesMut::new();
    for bad in [Value::simple("a\r\nb"), Value::error("x\n")] {
        let err = RespCodec::new().encode(bad, &mut buf).unwrap_err();
        assert!(matches!(err, RespError::InvalidSimple), "{err}");
    }
    assert!(buf.is_empty());
}

#[test]
fn a_known_remainder_is_not_rescanned_byte_by_byte() {
    let mut codec = RespCodec::new();
    let mut buf = BytesMut::from(&b"$10\r\n01"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert_eq!(codec.need(), 17);
    buf.extend_from_slice(b"23456789\r\n");
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(Value::bulk("0123456789"))
    );
    assert_eq!(codec.need(), 0);
}

#[test]
fn decoded_strings_share_the_frame_buffer() {
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nabc\r\n+OK\r\n"[..]);
    let Some(Value::Array(items)) = RespCodec::new().decode(&mut buf).unwrap() else {
        panic!("not an array");
    };
    let (Value::Bulk(a), Value::Simple(b)) = (&items[0], &items[1]) else {
        panic!("{items:?}");
    };
    // Both slices point into one allocation, in frame order.
    assert_eq!(b.as_ptr() as usize - a.as_ptr() as usize, 6);
}

#[test]
fn clones_start_with_fresh_state() {
    let mut codec = RespCodec::new().inline_commands(true);
    let mut buf = BytesMut::from(&b"$10\r\n"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    let mut clone = codec.clone();
    assert_eq!(clone.need(), 0);
    assert_eq!(
        clone.decode(&mut BytesMut::from(&b"PING\n"[..])).unwrap(),
        Some(Value::Array(vec![Value::bulk("PING")]))
    );
}

#[test]
fn accessors() {
    assert_eq!(Value::ok().as_str(), Some("OK"));
    assert_eq!(Value::bulk(vec![0xff]).as_str(), None);
    assert_eq!(Value::bulk(vec![0xff]).as_bytes(), Some(&[0xff][..]));
    assert_eq!(Value::Integer(3).as_integer(), Some(3));
    assert_eq!(Value::Integer(3).as_bytes(), None);
    assert!(Value::Null.is_null() && Value::NullArray.is_null());
    assert!(!Value::bulk("").is_null());
    assert!(Value::error("ERR").is_error());
}

#[test]
fn into_args_takes_only_arrays_of_bulk_strings() {
    let cmd = Value::from(Command::new("GET").arg("k"));
    assert_eq!(
        cmd.into_args(),
        Some(vec![Bytes::from("GET"), Bytes::from("k")])
    );
    assert_eq!(Value::Array(vec![]).into_args(), None);
    assert_eq!(Value::Array(vec![Value::Integer(1)]).into_args(), None);
    assert_eq!(Value::bulk("GET").into_args(), None);
}

/// `*n` and `n` bulk strings of 4 bytes (10 bytes each on the wire).
fn big_array(n: usize) -> Vec<u8> {
    let mut wire = format!("*{n}\r\n").into_bytes();
    for i in 0..n {
        wire.extend_from_slice(format!("$4\r\n{:04}\r\n", i % 10_000).as_bytes());
    }
    wire
}

/// The resumable scan's promise, counted rather than timed: a frame that arrives in pieces
/// is looked at about once (the digits of each length twice), however many pieces.
#[test]
fn a_million_element_array_in_4_kib_pieces_is_scanned_once() {
    let n = 1_000_000;
    let wire = big_array(n);
    let mut codec = RespCodec::new();
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for piece in wire.chunks(4096) {
        buf.extend_from_slice(piece);
        while let Some(value) = codec.decode(&mut buf).unwrap() {
            decoded.push(value);
        }
    }
    assert!(buf.is_empty());
    let [Value::Array(items)] = &decoded[..] else {
        panic!("one array expected, got {} values", decoded.len());
    };
    assert_eq!(items.len(), n);
    assert_eq!(items[12_345], Value::bulk("2345"));
    let examined = codec.examined();
    let limit = 2 * wire.len() as u64;
    assert!(
        examined <= limit,
        "the scanner looked at {examined} bytes of a {}-byte frame sent in {} pieces",
        wire.len(),
        wire.len().div_ceil(4096)
    );
}

#[test]
fn a_header_line_split_anywhere_resumes_where_it_stopped() {
    let wire = b"*2\r\n+a simple string\r\n$12345\r\n";
    let mut codec = RespCodec::new();
    let mut buf = BytesMut::new();
    for &byte in wire {
        buf.extend_from_slice(&[byte]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }
    // Each byte looked at once, the digits of the numbers twice.
    assert_eq!(codec.examined(), wire.len() as u64 + 1 + 5);
    assert_eq!(
        codec.need(),
        wire.len() + 12_345 + 2,
        "the body is waited for"
    );
}

#[test]
fn a_failed_decode_fails_the_same_way_again_and_leaves_the_frame() {
    let mut codec = RespCodec::new();
    let mut buf = BytesMut::from(&b"*2\r\n:1\r\n"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"$x\r\n");
    for _ in 0..2 {
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, RespError::InvalidInteger { offset: 9 }),
            "{err}"
        );
        assert_eq!(buf.len(), 12);
    }
}

#[test]
fn a_buffer_shorter_than_what_was_scanned_starts_the_scan_over() {
    let mut codec = RespCodec::new();
    let mut buf = BytesMut::from(&b"*2\r\n:1\r\n:2"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    // Not the buffer the decoder was reading: it starts over rather than trust its place.
    let mut other = BytesMut::from(&b":7\r\n"[..]);
    assert_eq!(codec.decode(&mut other).unwrap(), Some(Value::Integer(7)));
}

#[test]
fn requests_are_commands_or_empty() {
    let mut server = RespCodec::new().inline_commands(true);
    let mut buf =
        BytesMut::from(&b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nSET  k\tv\r\n*0\r\n*-1\r\n"[..]);
    let mut next = || server.decode_request(&mut buf).unwrap().unwrap();
    let Request::Command(echo) = next() else {
        panic!("not a command")
    };
    assert_eq!(echo.iter().collect::<Vec<_>>(), [&b"ECHO"[..], b"hi"]);
    assert_eq!(echo.bytes(1), Some(bytes::Bytes::from("hi")));
    assert_eq!(format!("{echo:?}"), r#"["ECHO", "hi"]"#);
    let Request::Command(set) = next() else {
        panic!("not a command")
    };
    assert_eq!((set.len(), &set[2]), (3, &b"v"[..]));
    assert_eq!(next(), Request::Other(Value::Array(vec![])));
    assert_eq!(next(), Request::Other(Value::NullArray));
    assert_eq!(server.decode_request(&mut buf).unwrap(), None);
    assert_eq!(
        Request::Command(echo).into_value(),
        Value::Array(vec![Value::bulk("ECHO"), Value::bulk("hi")])
    );
}

mod requests;
