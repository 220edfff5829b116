use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;

use super::parse::{V2_SIGNATURE, encode};
use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn header_of(input: &[u8]) -> (ProxyHeader, usize) {
    match ProxyHeader::parse(input) {
        Ok(Parsed::Header { header, len }) => (header, len),
        other => panic!("not a header: {other:?}"),
    }
}

fn malformed(input: &[u8]) -> &'static str {
    match ProxyHeader::parse(input) {
        Err(ProxyError::Malformed { reason, .. }) => reason,
        other => panic!("not malformed: {other:?}"),
    }
}

fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x20 | command);
    out.push(family);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn v1_tcp4_and_tcp6_carry_both_ends_and_stop_at_the_line_end() {
    let input = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n";
    let (h, len) = header_of(input);
    assert_eq!(len, input.len() - 16);
    assert_eq!(h.version(), ProxyVersion::V1);
    assert_eq!(h.source(), Some(addr("192.0.2.7:56324")));
    assert_eq!(h.destination(), Some(addr("10.0.0.1:443")));
    assert!(!h.is_local() && h.tlvs().next().is_none());

    let (h, _) = header_of(b"PROXY TCP6 2001:db8::1 ::1 0 65535\r\n");
    assert_eq!(h.source(), Some(addr("[2001:db8::1]:0")));
    assert_eq!(h.destination(), Some(addr("[::1]:65535")));
}

#[test]
fn v1_unknown_keeps_the_real_address_and_ignores_the_rest_of_its_line() {
    for input in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY UNKNOWN ff:: 1.2.3.4 9 9\r\n",
    ] {
        let (h, len) = header_of(input);
        assert_eq!(len, input.len());
        assert_eq!(h.source(), None);
    }
}

#[test]
fn v1_errors_say_what_is_wrong() {
    assert!(malformed(b"PROXY TCP4 1.2.3.4\r\nmore").contains("destination address"));
    assert!(malformed(b"PROXY TCP4\r\n").contains("source address"));
    assert!(malformed(b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n").contains("family"));
    assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n").contains("port"));
    assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n").contains("port"));
    assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n").contains("port"));
    assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n").contains("more fields"));
    assert!(malformed(b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n").contains("protocol"));
    assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n").contains("carriage return"));
    assert!(malformed(b"PROXY TCP4 1.2.3.4\rX").contains("line feed"));
    assert!(malformed(b"PROXY \xff\xfe\r\n").contains("ASCII"));
    let long = [&b"PROXY UNKNOWN "[..], &[b'x'; 100]].concat();
    assert!(matches!(
        ProxyHeader::parse(&long),
        Err(ProxyError::TooLarge { max: 107, .. })
    ));
}

#[test]
fn a_complete_malformed_v1_line_is_an_error_not_a_wait() {
    // The line has ended: more bytes cannot make it a header. (The `ppp` crate reports this
    // one as incomplete, which would hold the connection until its timeout.)
    assert!(matches!(
        ProxyHeader::parse(b"PROXY TCP4 1.2.3.4\r\nGET /"),
        Err(ProxyError::Malformed { .. })
    ));
}

#[test]
fn v2_inet_and_inet6_with_tlvs() {
    let mut body = vec![192, 0, 2, 7, 10, 0, 0, 1];
    body.extend_from_slice(&56324u16.to_be_bytes());
    body.extend_from_slice(&443u16.to_be_bytes());
    body.extend_from_slice(&[0x01, 0, 2, b'h', b'2']);
    body.extend_from_slice(&[0x02, 0, 11]);
    body.extend_from_slice(b"example.com");
    body.extend_from_slice(&[0x05, 0, 3, 1, 2, 3, 0x04, 0, 0]);
    let mut input = v2(1, 0x11, &body);
    let header_len = input.len();
    input.extend_from_slice(b"client data");
    let (h, len) = header_of(&input);
    assert_eq!(len, header_len);
    assert_eq!(h.version(), ProxyVersion::V2);
    assert_eq!(h.source(), Some(addr("192.0.2.7:56324")));
    assert_eq!(h.destination(), Some(addr("10.0.0.1:443")));
    assert_eq!(h.alpn(), Some(&b"h2"[..]));
    assert_eq!(h.authority(), Some("example.com"));
    assert_eq!(h.unique_id(), Some(&[1u8, 2, 3][..]));
    let kinds: Vec<u8> = h.tlvs().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        [Tlv::ALPN, Tlv::AUTHORITY, Tlv::UNIQUE_ID, Tlv::NOOP]
    );

    let src = addr("[2001:db8::7]:1");
    let dst = addr("[2001:db8::1]:2");
    let mut bytes = Vec::new();
    encode(&ProxyHeader::new(ProxyVersion::V2, src, dst), &mut bytes);
    assert_eq!(bytes.len(), 16 + 36);
    let (h, _) = header_of(&bytes);
    assert_eq!((h.source(), h.destination()), (Some(src), Some(dst)));
}

#[test]
fn v2_local_unspec_and_unix_keep_the_real_address() {
    let (h, len) = header_of(&v2(0, 0x00, &[]));
    assert_eq!(len, 16);
    assert!(h.is_local() && h.source().is_none());
    // LOCAL with addresses: they are ignored.
    let (h, _) = header_of(&v2(0, 0x11, &[1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]));
    assert!(h.is_local() && h.source().is_none());
    // UNSPEC ignores its whole block, TLV-looking bytes included.
    let (h, len) = header_of(&v2(1, 0x00, &[9, 9]));
    assert_eq!((h.source(), len), (None, 18));
    assert!(h.tlvs().next().is_none());
    let (h, _) = header_of(&v2(1, 0x31, &[0u8; 216]));
    assert!(h.source().is_none());
}

#[test]
fn v2_errors_and_its_size_bound() {
    let mut bad_version = v2(1, 0x11, &[0; 12]);
    bad_version[12] = 0x11;
    assert!(malformed(&bad_version).contains("version"));
    assert!(malformed(&v2(2, 0x11, &[0; 12])).contains("command"));
    assert!(malformed(&v2(1, 0x41, &[0; 12])).contains("family"));
    assert!(malformed(&v2(1, 0x13, &[0; 12])).contains("family or transport"));
    assert!(malformed(&v2(1, 0x11, &[0; 11])).contains("shorter"));
    assert!(malformed(&v2(1, 0x21, &[0; 12])).contains("shorter"));
    let mut cut_tlv = vec![0u8; 12];
    cut_tlv.extend_from_slice(&[0x05, 0, 9, 1]);
    assert!(malformed(&v2(1, 0x11, &cut_tlv)).contains("TLV"));
    let mut cut_type = vec![0u8; 12];
    cut_type.extend_from_slice(&[0x05, 0]);
    assert!(malformed(&v2(1, 0x11, &cut_type)).contains("TLV"));
    // The length field decides, before anything past the fixed part is needed.
    let mut huge = V2_SIGNATURE.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    assert!(matches!(
        ProxyHeader::parse(&huge),
        Err(ProxyError::TooLarge {
            len: 65551,
            max: MAX_HEADER_LEN
        })
    ));
}

#[test]
fn prefixes_wait_and_other_bytes_are_not_a_header() {
    assert_eq!(
        ProxyHeader::parse(b"").unwrap(),
        Parsed::Incomplete { needed: 1 }
    );
    assert_eq!(
        ProxyHeader::parse(b"PROX").unwrap(),
        Parsed::Incomplete { needed: 5 }
    );
    assert_eq!(
        ProxyHeader::parse(b"\r\n\r\n").unwrap(),
        Parsed::Incomplete { needed: 5 }
    );
    assert_eq!(
        ProxyHeader::parse(&V2_SIGNATURE[..]).unwrap(),
        Parsed::Incomplete { needed: 16 }
    );
    assert_eq!(
        ProxyHeader::parse(&v2(1, 0x11, &[0; 12])[..20]).unwrap(),
        Parsed::Incomplete { needed: 28 }
    );
    for other in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"*1\r\n$4\r\nPING\r\n",
        b"PROXX",
        b"\r\n\r\nX",
    ] {
        assert_eq!(
            ProxyHeader::parse(other).unwrap(),
            Parsed::NotProxy,
            "{other:?}"
        );
    }
}

#[test]
fn builders_encode_what_parse_reads_back() {
    let (src, dst) = (addr("203.0.113.9:4000"), addr("10.1.1.1:6380"));
    let mut v1 = Vec::new();
    ProxyHeader::new(ProxyVersion::V1, src, dst).encode(&mut v1);
    assert_eq!(v1, b"PROXY TCP4 203.0.113.9 10.1.1.1 4000 6380\r\n");
    let mut unknown = Vec::new();
    ProxyHeader::local(ProxyVersion::V1).encode(&mut unknown);
    assert_eq!(unknown, b"PROXY UNKNOWN\r\n");
    let header = ProxyHeader::new(ProxyVersion::V2, src, dst)
        .with_tlv(Tlv::UNIQUE_ID, b"abc")
        .unwrap();
    let mut bytes = Vec::new();
    header.encode(&mut bytes);
    assert_eq!(header_of(&bytes), (header, bytes.len()));
    assert!(matches!(
        ProxyHeader::new(ProxyVersion::V2, src, dst).with_tlv(0xe0, &[0; MAX_HEADER_LEN]),
        Err(ProxyError::TooLarge { .. })
    ));
}

#[test]
fn trusted_ranges_match_by_prefix_and_mapped_addresses_as_ipv4() {
    let ten: Cidr = "10.0.0.0/8".parse().unwrap();
    assert!(ten.contains("10.255.0.1".parse().unwrap()));
    assert!(ten.contains("::ffff:10.1.2.3".parse().unwrap()));
    assert!(!ten.contains("11.0.0.1".parse().unwrap()));
    assert!(!ten.contains("::a00:1".parse().unwrap()));
    let mapped: Cidr = "::ffff:127.0.0.0/104".parse().unwrap();
    assert_eq!(mapped.to_string(), "127.0.0.0/8");
    let v6: Cidr = "2001:db8::/32".parse().unwrap();
    assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
    let all: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains("192.0.2.1".parse().unwrap()));
    let one = Cidr::from("127.0.0.2".parse::<IpAddr>().unwrap());
    assert!(!one.contains("127.0.0.3".parse().unwrap()));
    assert!(matches!(
        "10.0.0.0/33".parse::<Cidr>(),
        Err(CidrError::Prefix { max: 32, .. })
    ));
    assert!(matches!(
        "ten/8".parse::<Cidr>(),
        Err(CidrError::Address(_))
    ));
    assert!(matches!(
        "::/x".parse::<Cidr>(),
        Err(CidrError::Prefix { max: 128, .. })
    ));
}

fn any_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

proptest! {
    /// Whatever the bytes: no panic, a header never claims more than it was given or than
    /// the bound, and `needed` always asks for more than is there, within the bound.
    #[test]
    fn any_bytes_parse_to_a_bounded_answer(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        match ProxyHeader::parse(&input) {
            Ok(Parsed::Header { len, .. }) => prop_assert!(len <= input.len() && len <= MAX_HEADER_LEN),
            Ok(Parsed::Incomplete { needed }) => prop_assert!(needed > input.len() && needed <= MAX_HEADER_LEN),
            Ok(Parsed::NotProxy) | Err(_) => {}
        }
    }

    /// Encoded headers parse back, whole and cut at any point: a cut one waits for more and
    /// never errs, and trailing client bytes are never taken.
    #[test]
    fn encoded_headers_round_trip_at_any_cut(
        v1 in any::<bool>(),
        src in any_addr(),
        dst in any_addr(),
        id in proptest::collection::vec(any::<u8>(), 0..40),
        trailing in proptest::collection::vec(any::<u8>(), 0..20),
        cut in any::<prop::sample::Index>(),
    ) {
        let version = if v1 { ProxyVersion::V1 } else { ProxyVersion::V2 };
        let mut header = ProxyHeader::new(version, src, dst);
        if !v1 {
            header = header.with_tlv(Tlv::UNIQUE_ID, &id).unwrap();
        }
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        let len = bytes.len();
        let (parsed, parsed_len) = header_of(&[&bytes[..], &trailing[..]].concat());
        prop_assert_eq!(parsed_len, len);
        // One IPv6 end makes both IPv6 (IPv4 ones mapped), in either version.
        let mixed = src.is_ipv6() || dst.is_ipv6();
        let mapped = |a: SocketAddr| match a.ip() {
            IpAddr::V4(v4) if mixed => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
            _ => a,
        };
        prop_assert_eq!(parsed.source(), Some(mapped(src)));
        prop_assert_eq!(parsed.destination(), Some(mapped(dst)));
        if !v1 {
            prop_assert_eq!(parsed.unique_id(), Some(&id[..]));
        }
        let at = cut.index(len);
        match ProxyHeader::parse(&bytes[..at]) {
            Ok(Parsed::Incomplete { needed }) => prop_assert!(needed > at && needed <= len),
            other => prop_assert!(false, "a cut header gave {:?}", other),
        }
    }
}
