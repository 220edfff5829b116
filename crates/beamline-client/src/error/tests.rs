use super::*;
use beamline_mux::ConnectionError;

fn mux_lost(sent: bool) -> MuxError {
    let (peer, cause) = (Arc::from("p"), ConnectionError::PeerClosed);
    if sent {
        MuxError::ConnectionLost { peer, cause }
    } else {
        MuxError::NotSent { peer, cause }
    }
}

#[test]
fn every_reconnect_error_keeps_whether_it_was_sent() {
    let name: Arc<str> = Arc::from("redis 127.0.0.1:6379");
    let cases: Vec<(ReconnectError<MuxError>, bool, &str)> = vec![
        (
            ReconnectError::Disconnected { name: name.clone() },
            false,
            "Disconnected",
        ),
        (
            ReconnectError::QueueFull {
                name: name.clone(),
                max: 4,
            },
            false,
            "QueueFull",
        ),
        (
            ReconnectError::Timeout {
                name: name.clone(),
                deadline: Duration::from_secs(1),
            },
            false,
            "OfflineTimeout",
        ),
        (
            ReconnectError::NotSent {
                name: name.clone(),
                source: mux_lost(false),
            },
            false,
            "NotSent",
        ),
        (
            ReconnectError::ConnectionLost {
                name: name.clone(),
                source: mux_lost(true),
            },
            true,
            "ConnectionLost",
        ),
        (
            ReconnectError::Request {
                name: name.clone(),
                source: MuxError::Timeout {
                    peer: name.clone(),
                    sent: true,
                },
                sent: true,
            },
            true,
            "Timeout",
        ),
        (
            ReconnectError::Request {
                name: name.clone(),
                source: MuxError::Timeout {
                    peer: name.clone(),
                    sent: false,
                },
                sent: false,
            },
            false,
            "Timeout",
        ),
        (
            ReconnectError::Request {
                name: name.clone(),
                source: MuxError::Remote {
                    peer: name.clone(),
                    payload: Bytes::from("no"),
                },
                sent: true,
            },
            true,
            "Remote",
        ),
        (
            ReconnectError::Request {
                name: name.clone(),
                source: MuxError::Cancelled { peer: name.clone() },
                sent: true,
            },
            true,
            "Cancelled",
        ),
        (
            ReconnectError::Request {
                name: name.clone(),
                source: MuxError::FrameTooLarge {
                    peer: name.clone(),
                    len: 9,
                    max: 8,
                },
                sent: false,
            },
            false,
            "Request",
        ),
        (
            ReconnectError::Closed {
                name: name.clone(),
                reason: CloseReason::Requested,
            },
            false,
            "Closed",
        ),
    ];
    for (e, sent, variant) in cases {
        let text = e.to_string();
        let client = ClientError::from(e);
        assert_eq!(client.was_sent(), sent, "{client}");
        assert!(
            format!("{client:?}").starts_with(variant),
            "{client:?} from {text}"
        );
        assert_eq!(client.name(), "redis 127.0.0.1:6379");
        assert!(
            client.to_string().starts_with("redis 127.0.0.1:6379: "),
            "{client}"
        );
    }
}

#[test]
fn timeouts_are_timeouts() {
    let name: Arc<str> = Arc::from("c");
    assert!(
        ClientError::Timeout {
            name: name.clone(),
            sent: true
        }
        .is_timeout()
    );
    assert!(
        ClientError::OfflineTimeout {
            name: name.clone(),
            deadline: Duration::ZERO
        }
        .is_timeout()
    );
    assert!(!ClientError::Disconnected { name }.is_timeout());
}

#[test]
fn the_real_connect_error_comes_back_out_of_reconnect() {
    let (name, target): (Arc<str>, Arc<str>) = (Arc::from("c"), Arc::from("127.0.0.1:1"));
    let refused = TransportError::Connect {
        target: target.clone(),
        source: Arc::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
    };
    let wrapped = StartError::Connect(ConnectError::Failed {
        name: name.clone(),
        attempt: 1,
        source: refused,
    });
    let BuildError::Connect { source: back, .. } = BuildError::from_start(wrapped, &name, &target)
    else {
        panic!("a failed first attempt is BuildError::Connect");
    };
    assert_eq!(
        back.io_error().map(io::Error::kind),
        Some(io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(back.target(), "127.0.0.1:1");
    let timed_out = StartError::Connect(ConnectError::Timeout {
        name: name.clone(),
        attempt: 2,
        timeout: Duration::from_secs(3),
    });
    assert!(matches!(
        BuildError::from_start(timed_out, &name, &target),
        BuildError::Connect { source: TransportError::Timeout { timeout, .. }, .. }
            if timeout == Duration::from_secs(3)
    ));
    let panicked = StartError::Connect(ConnectError::Panicked {
        name: name.clone(),
        attempt: 1,
        message: Arc::from("codec clone exploded"),
    });
    assert!(matches!(
        BuildError::from_start(panicked, &name, &target),
        BuildError::Start {
            source: StartError::Connect(ConnectError::Panicked { .. }),
            ..
        }
    ));
}
