//! A typed error from the server's protocol is an answer, not a sick endpoint: servers that
//! answer every request with an error frame are never ejected and never retried elsewhere.

use std::net::SocketAddr;
use std::time::Duration;

use beamline::ClientError;
use beamline::balance::{BalanceError, Balanced, Discovery, EndpointState, HealthConfig};

use crate::fleet::{Backend, endpoint, payload, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_answering_typed_errors_are_never_ejected_nor_retried() {
    let backends: Vec<Backend> = (0..4)
        .map(|_| Backend::start_answering(Duration::ZERO, true))
        .collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(Backend::addr).collect();
    let client = Balanced::builder(Discovery::fixed(addrs.clone()), endpoint)
        .name("rejected")
        .timeout(Duration::from_secs(1))
        .health(HealthConfig::new().consecutive_failures(2))
        .seed(7)
        .start()
        .unwrap();
    wait_for(&client, "four endpoints ready", |s| {
        s.endpoints.len() == 4
            && s.endpoints
                .iter()
                .all(|(_, e)| e.state == EndpointState::Healthy)
    })
    .await;

    const REQUESTS: u32 = 40;
    for seq in 0..REQUESTS {
        let request = payload(0, seq);
        match client.call(request.clone()).await {
            Err(BalanceError::Endpoint {
                source: ClientError::Remote { payload, .. },
                ..
            }) => assert_eq!(payload, request, "its own error frame"),
            other => panic!("{request:?}: want the server's typed error, got {other:?}"),
        }
    }
    let stats = client.stats();
    assert_eq!(stats.totals.ejections, 0, "{stats:?}");
    assert_eq!(
        stats.totals.retries, 0,
        "delivered: never retried: {stats:?}"
    );
    assert_eq!(stats.totals.attempts, u64::from(REQUESTS), "{stats:?}");
    for (addr, e) in &stats.endpoints {
        assert_eq!(e.state, EndpointState::Healthy, "{addr}: {e:?}");
        assert_eq!(e.failures, 0, "{addr}: {e:?}");
    }
    let served: u64 = backends.iter().map(|b| b.seen.count()).sum();
    assert_eq!(served, u64::from(REQUESTS));
    client.close();
}
