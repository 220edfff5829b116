//! The request dialect (`decode_request`): each edge case of Redis's own request parser
//! (`processMultibulkBuffer`, `processInlineBuffer`, `sdssplitargs`), one test each, and the
//! client's strict decoding beside it, unchanged.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::super::*;

/// Every request `input` decodes to, until it needs more or fails (the error, with what is
/// left in the buffer).
fn requests(input: &[u8]) -> (Vec<Request>, Option<(RespError, usize)>) {
    let mut server = RespCodec::new().inline_commands(true);
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match server.decode_request(&mut buf) {
            Ok(Some(request)) => out.push(request),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some((e, buf.len()))),
        }
    }
}

/// The arguments of each command `input` decodes to (it must decode without error).
fn commands(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let (requests, error) = requests(input);
    assert!(error.is_none(), "{error:?}");
    requests
        .into_iter()
        .filter_map(|r| match r {
            Request::Command(args) => Some(args.iter().map(<[u8]>::to_vec).collect()),
            Request::Other(_) => None,
        })
        .collect()
}

fn args(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// The request error `input` ends with, checking that the failed frame was left whole.
fn refused(input: &[u8]) -> RequestError {
    let (_, error) = requests(input);
    match error {
        Some((RespError::Request { error, .. }, _)) => error,
        other => panic!(
            "{:?}: not a request error: {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

#[test]
fn an_empty_query_is_skipped() {
    assert_eq!(commands(b"\r\n\r\n  \t\r\nPING\r\n"), [args(&["PING"])]);
}

#[test]
fn a_negative_multibulk_count_is_an_empty_request_and_the_next_command_is_read() {
    let (requests, error) = requests(b"*-10\r\n*1\r\n$4\r\nPING\r\n");
    assert!(error.is_none());
    assert_eq!(requests[0], Request::Other(Value::NullArray));
    assert!(matches!(&requests[1], Request::Command(args) if &args[0] == b"PING"));
    assert_eq!(commands(b"*0\r\n*-1\r\nPING\r\n"), [args(&["PING"])]);
}

#[test]
fn an_out_of_range_multibulk_count_is_an_invalid_multibulk_length() {
    for input in [
        &b"*3000000000\r\n"[..],
        b"*2147483648\r\n",
        b"*abc\r\n",
        b"*\r\n",
        b"*01\r\n",
        b"*99999999999999999999999\r\n",
    ] {
        assert_eq!(
            refused(input),
            RequestError::MultibulkLength,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // The largest count Redis takes is still bounded by the frame limit, from its header.
    let (_, error) = requests(b"*2147483647\r\n");
    assert!(
        matches!(error, Some((RespError::FrameTooLarge { .. }, 13))),
        "{error:?}"
    );
    assert_eq!(
        RequestError::MultibulkLength.to_string(),
        "invalid multibulk length"
    );
}

#[test]
fn a_wrong_multibulk_payload_header_expects_a_bulk() {
    let input = b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n";
    let error = refused(input);
    assert_eq!(error, RequestError::ExpectedBulk { got: b'f' });
    assert_eq!(error.to_string(), "expected '$', got 'f'");
    let (_, left) = requests(input).1.unwrap();
    assert_eq!(left, input.len(), "the failed frame is left whole");
}

#[test]
fn a_multibulk_not_followed_by_bulk_arguments_expects_a_bulk() {
    assert_eq!(
        refused(b"*1\r\nfoo\r\n"),
        RequestError::ExpectedBulk { got: b'f' }
    );
    assert_eq!(
        refused(b"*1\r\n:1\r\n"),
        RequestError::ExpectedBulk { got: b':' }
    );
    // Nested arrays are not arguments either.
    assert_eq!(
        refused(b"*1\r\n*1\r\n$1\r\nx\r\n"),
        RequestError::ExpectedBulk { got: b'*' }
    );
    let unprintable = RequestError::ExpectedBulk { got: b'\r' };
    assert_eq!(unprintable.to_string(), "expected '$', got '?'");
}

#[test]
fn a_negative_bulk_length_is_an_invalid_bulk_length() {
    assert_eq!(
        refused(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n"),
        RequestError::BulkLength
    );
    // The null bulk string is not an argument.
    assert_eq!(refused(b"*1\r\n$-1\r\n"), RequestError::BulkLength);
    assert_eq!(RequestError::BulkLength.to_string(), "invalid bulk length");
}

#[test]
fn a_non_number_bulk_length_is_an_invalid_bulk_length() {
    for input in [
        &b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n"[..],
        b"*1\r\n$01\r\nx\r\n",
        b"*1\r\n$\r\n",
        b"*1\r\n$99999999999999999999999\r\n",
    ] {
        assert_eq!(refused(input), RequestError::BulkLength);
    }
}

#[test]
fn an_out_of_range_bulk_length_is_refused_from_its_header() {
    let (_, error) = requests(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n");
    assert!(
        matches!(
            error,
            Some((
                RespError::BulkTooLong {
                    len: 2_000_000_000,
                    ..
                },
                _
            ))
        ),
        "{error:?}"
    );
}

#[test]
fn unbalanced_quotes_are_refused_and_consume_nothing() {
    for line in [
        &b"set \"\"\"test-key\"\"\" test-value\r\nping\r\n"[..],
        b"set \"open\r\n",
        b"set 'open\r\n",
        b"set \"closed\"against\r\n",
        b"set 'closed'against\r\n",
        b"set \"ends with a backslash\\\r\n",
    ] {
        let (decoded, error) = requests(line);
        assert!(decoded.is_empty());
        match error {
            Some((
                RespError::Request {
                    error: RequestError::UnbalancedQuotes,
                    offset: 0,
                },
                left,
            )) => assert_eq!(left, line.len()),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
        }
    }
    assert_eq!(
        RequestError::UnbalancedQuotes.to_string(),
        "unbalanced quotes in request"
    );
}

#[test]
fn inline_commands_follow_sdssplitargs() {
    let cases: [(&[u8], Vec<&[u8]>); 10] = [
        (b"SET k \"a b\"", vec![b"SET", b"k", b"a b"]),
        (b"SET k \"\"", vec![b"SET", b"k", b""]),
        (b"SET k 'it\\'s'", vec![b"SET", b"k", b"it's"]),
        // Single quotes keep any other backslash.
        (b"SET k 'a\\nb'", vec![b"SET", b"k", b"a\\nb"]),
        (
            b"SET k \"\\x41\\x4a\\n\\r\\t\\b\\a\\\\\\\"\\q\"",
            vec![b"SET", b"k", b"AJ\n\r\t\x08\x07\\\"q"],
        ),
        // Not two hex digits: a plain `x`.
        (b"SET k \"\\xZZ\"", vec![b"SET", b"k", b"xZZ"]),
        // A quote may open inside a word; it must close at the word's end.
        (b"SET k a\"b c\"", vec![b"SET", b"k", b"ab c"]),
        // Only space, tab, CR and LF end a word; other C blanks separate words only
        // between them.
        (b"SET\x0bk\x0c v", vec![b"SET\x0bk\x0c", b"v"]),
        // A NUL byte ends the line.
        (b"PING\x00 ignored", vec![b"PING"]),
        (b"  ECHO\t 'x y'  ", vec![b"ECHO", b"x y"]),
    ];
    for (line, want) in cases {
        let mut input = line.to_vec();
        input.extend_from_slice(b"\r\n");
        let got = commands(&input);
        let want: Vec<Vec<u8>> = want.into_iter().map(<[u8]>::to_vec).collect();
        assert_eq!(got, [want], "{:?}", String::from_utf8_lossy(line));
    }
    // A line of blanks, or one that starts with NUL, has no words: skipped.
    assert_eq!(
        commands(b"\x00PING\r\n \x0b\r\nPING\r\n"),
        [args(&["PING"])]
    );
}

#[test]
fn an_inline_commands_arguments_are_rewritten_in_its_own_frame() {
    let mut server = RespCodec::new().inline_commands(true);
    let mut buf = BytesMut::from(&b"SET \"k\\x31\" 'v w'\r\n"[..]);
    let Some(Request::Command(set)) = server.decode_request(&mut buf).unwrap() else {
        panic!("not a command")
    };
    assert_eq!(set.iter().collect::<Vec<_>>(), [&b"SET"[..], b"k1", b"v w"]);
    let (a, b) = (set.bytes(1).unwrap(), set.bytes(2).unwrap());
    // Both are slices of one buffer: no copy per argument.
    let distance = (b.as_ptr() as usize).abs_diff(a.as_ptr() as usize);
    assert!(distance < 20, "{distance}");
}

#[test]
fn anything_but_an_array_starts_an_inline_command() {
    // Redis reads a request that does not start with `*` as an inline command.
    assert_eq!(
        commands(b"$3\r\nGET\r\n:1\r\n+OK\r\n"),
        [args(&["$3"]), args(&["GET"]), args(&[":1"]), args(&["+OK"])]
    );
    // Without inline commands, it is not a request at all.
    let mut strict = RespCodec::new();
    let err = strict
        .decode_request(&mut BytesMut::from(&b"$3\r\nGET\r\n"[..]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            RespError::UnexpectedByte {
                byte: b'$',
                offset: 0
            }
        ),
        "{err}"
    );
}

#[test]
fn a_client_keeps_decoding_strictly() {
    let mut client = RespCodec::new();
    let err = client
        .decode(&mut BytesMut::from(&b"*-10\r\n"[..]))
        .unwrap_err();
    assert!(
        matches!(err, RespError::InvalidLength { len: -10, .. }),
        "{err}"
    );
    let mut buf = BytesMut::from(&b"*1\r\n:1\r\n*1\r\n*0\r\n"[..]);
    assert_eq!(
        client.decode(&mut buf).unwrap(),
        Some(Value::Array(vec![Value::Integer(1)]))
    );
    assert_eq!(
        client.decode(&mut buf).unwrap(),
        Some(Value::Array(vec![Value::Array(vec![])]))
    );
    // A server reading values (not requests) splits inline lines at blanks only.
    let mut values = RespCodec::new().inline_commands(true);
    let got = values
        .decode(&mut BytesMut::from(&b"SET \"a b\"\r\n"[..]))
        .unwrap();
    assert_eq!(
        got,
        Some(Value::Array(vec![
            Value::bulk("SET"),
            Value::bulk("\"a"),
            Value::bulk("b\"")
        ]))
    );
}

#[test]
fn switching_dialects_mid_frame_starts_the_scan_over() {
    let mut codec = RespCodec::new().inline_commands(true);
    let mut buf = BytesMut::from(&b"*1\r\n"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b":1\r\n");
    let err = codec.decode_request(&mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            RespError::Request {
                error: RequestError::ExpectedBulk { got: b':' },
                offset: 4
            }
        ),
        "{err}"
    );
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(Value::Array(vec![Value::Integer(1)]))
    );
}

/// Every answer `codec` gives for `wire` arriving in the pieces `cuts` makes: each request
/// (as its arguments), each `None`, and the error it stops at with what is left buffered.
fn answers(mut codec: RespCodec, wire: &[u8], cuts: &[usize]) -> Vec<String> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(wire.len());
    points.sort_unstable();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut from = 0;
    for to in points {
        buf.extend_from_slice(&wire[from..to]);
        from = to;
        loop {
            match codec.decode_request(&mut buf) {
                Ok(Some(Request::Command(args))) => {
                    out.push(format!("{:?}", args.iter().collect::<Vec<_>>()));
                }
                Ok(Some(Request::Other(other))) => out.push(format!("other {other:?}")),
                Ok(None) => {
                    out.push("none".into());
                    break;
                }
                Err(e) => {
                    out.push(format!("{e:?} with {} left", buf.len()));
                    return out;
                }
            }
        }
    }
    out
}

proptest::proptest! {
    /// The whole-request shortcut is only a shortcut: on well-formed requests, requests
    /// near the limits, and requests with a byte changed or cut anywhere, split anywhere, the
    /// codec answers exactly as the general scan does.
    #[test]
    fn the_whole_request_shortcut_answers_as_the_general_scan(
        commands in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12), 0..5),
            1..6,
        ),
        changes in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..3),
        cuts in proptest::collection::vec(proptest::prelude::any::<usize>(), 0..4),
        max_bulk in 0usize..16,
        max_frame in 8usize..96,
        depth in 0usize..3,
        zeros in proptest::prelude::any::<bool>(),
    ) {
        let mut wire = Vec::new();
        for args in &commands {
            let pad = if zeros { "0" } else { "" };
            wire.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                wire.extend_from_slice(format!("${pad}{}\r\n", a.len()).as_bytes());
                wire.extend_from_slice(a);
                wire.extend_from_slice(b"\r\n");
            }
        }
        for (at, byte) in changes {
            let at = at % wire.len();
            wire[at] = byte;
        }
        let limits = RespLimits::new()
            .max_bulk_len(max_bulk)
            .max_frame_len(max_frame)
            .max_depth(depth);
        for (limits, inline) in [(RespLimits::new(), true), (limits, false)] {
            let fast = RespCodec::with_limits(limits).inline_commands(inline);
            let general = RespCodec::with_limits(limits)
                .inline_commands(inline)
                .without_shortcut();
            proptest::prop_assert_eq!(
                answers(fast, &wire, &cuts),
                answers(general, &wire, &cuts)
            );
        }
    }
}
