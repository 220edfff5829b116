use std::net::TcpListener;
use std::os::fd::AsRawFd;

use super::*;

#[test]
fn the_variables_describe_descriptors_from_3_for_this_process_only() {
    let fds = parse_env(Some("77"), Some("3"), None, 77).unwrap();
    assert_eq!(fds, [(3, None), (4, None), (5, None)]);
    let named = parse_env(Some("77"), Some("2"), Some("web:"), 77).unwrap();
    assert_eq!(named, [(3, Some("web".to_owned())), (4, None)]);
    assert!(
        parse_env(Some("77"), Some("0"), None, 77)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn absent_or_wrong_variables_are_typed_errors() {
    assert!(matches!(
        parse_env(None, None, None, 1),
        Err(ActivationError::NotActivated)
    ));
    assert!(matches!(
        parse_env(Some("1"), None, None, 1),
        Err(ActivationError::NotActivated)
    ));
    assert!(matches!(
        parse_env(Some("2"), Some("1"), None, 1),
        Err(ActivationError::OtherProcess {
            listen_pid: 2,
            pid: 1
        })
    ));
    for (pid, fds, names, var) in [
        ("x", "1", None, "LISTEN_PID"),
        ("1", "-1", None, "LISTEN_FDS"),
        ("1", "two", None, "LISTEN_FDS"),
        ("1", "2", Some("only-one"), "LISTEN_FDNAMES"),
    ] {
        match parse_env(Some(pid), Some(fds), names, 1) {
            Err(e @ ActivationError::Invalid { var: v, .. }) => {
                assert_eq!(v, var);
                assert!(e.to_string().contains(var), "{e}");
            }
            other => panic!("{pid} {fds} {names:?}: {other:?}"),
        }
    }
}

#[test]
fn only_listening_stream_sockets_with_an_address_are_adopted() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let adopted = adopt(OwnedFd::from(tcp), Some("api".into()), false)
        .map_err(|(_, e)| e)
        .unwrap();
    assert_eq!(adopted.addr, ListenAddr::Tcp(addr));
    assert_eq!(adopted.name.as_deref(), Some("api"));

    // Connected, not listening: handed back open, with the reason.
    let client = std::net::TcpStream::connect(addr).unwrap();
    let raw = client.as_raw_fd();
    let (back, error) = adopt(OwnedFd::from(client), None, false).err().unwrap();
    assert_eq!(back.as_raw_fd(), raw);
    assert!(
        matches!(&error, ActivationError::NotListening { fd, reason } if *fd == raw && reason.contains("not listening")),
        "{error}"
    );

    let datagram = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (_, error) = adopt(OwnedFd::from(datagram), None, false).err().unwrap();
    assert!(error.to_string().contains("not a stream"), "{error}");

    let file = std::fs::File::open("/proc/self/stat").unwrap();
    let (_, error) = adopt(OwnedFd::from(file), None, false).err().unwrap();
    assert!(
        matches!(error, ActivationError::NotListening { .. }),
        "{error}"
    );
}
