//! What the balancer does is told as `tracing` events: an ejection (with its duration and
//! count), the probing that follows, the probe's success, a retry on another endpoint and
//! a retry the budget refused, each naming its endpoint.
//!
//! Its own test binary: a thread-scoped subscriber shares tracing's global callsite cache
//! with whatever else runs in the process, so it must run alone.

#![allow(clippy::unwrap_used)]

use beamline_testkit::TraceCapture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use beamline_balance::{
    Balanced, BudgetConfig, Endpoint, EndpointError, EndpointState, Failure, HealthConfig, WasSent,
};
#[derive(Debug, thiserror::Error)]
#[error("refused")]
struct Refused;

impl WasSent for Refused {
    fn was_sent(&self) -> bool {
        false
    }
}

impl EndpointError for Refused {
    fn failure(&self) -> Failure {
        Failure::Unreachable
    }
}

/// Answers after 10 ms, or refuses at once while `down` (a refusal counts as a round trip
/// of twice the 1 ms first estimate, still less than the others': it is picked again).
struct Fake {
    down: Arc<AtomicBool>,
}

impl Endpoint for Fake {
    type Request = u32;
    type Response = u32;
    type Error = Refused;

    async fn call(&self, request: u32) -> Result<u32, Refused> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Refused);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(request)
    }

    fn close(&self) {}
}

#[tokio::test(start_paused = true)]
async fn ejection_probing_recovery_and_retries_are_traced() {
    let capture = TraceCapture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let addrs: Vec<SocketAddr> = (0..4)
        .map(|n| SocketAddr::from(([127, 0, 0, 1], 7100 + n)))
        .collect();
    let sick = addrs[0];
    let down = Arc::new(AtomicBool::new(true));
    let make = {
        let down = Arc::clone(&down);
        move |addr: SocketAddr| {
            let down = if addr == sick {
                Arc::clone(&down)
            } else {
                Arc::new(AtomicBool::new(false))
            };
            async move { Ok::<_, std::io::Error>(Fake { down }) }
        }
    };
    let client = Balanced::builder(addrs.clone(), make)
        .name("traced")
        .seed(11)
        .health(
            HealthConfig::new()
                .consecutive_failures(2)
                .base_ejection(Duration::from_secs(1)),
        )
        .start()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;

    // The sick endpoint refuses until it is ejected; every refusal is retried elsewhere.
    let mut n = 0;
    while !matches!(
        client.stats().endpoint(sick).map(|s| s.state),
        Some(EndpointState::Ejected { .. })
    ) {
        assert_eq!(client.call(n).await.unwrap(), n);
        n += 1;
        assert!(n < 1000, "never ejected: {:?}", client.stats());
    }
    let ejected = capture.with(&["WARN", "endpoint ejected", &sick.to_string()]);
    assert_eq!(ejected.len(), 1, "{:?}", capture.events());
    assert!(
        ejected[0].contains("duration=1s") && ejected[0].contains("ejections=1"),
        "{ejected:?}"
    );
    let retried = capture.with(&["retrying on another endpoint", "balancer=traced"]);
    assert_eq!(
        retried.len() as u64,
        client.stats().totals.retries,
        "one event per retry spent"
    );
    assert!(retried.iter().all(|e| e.contains(&sick.to_string())));

    // Its ejection ends: probing, then the probe's success brings it back.
    down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    while client.stats().endpoint(sick).map(|s| s.state) != Some(EndpointState::Healthy) {
        assert_eq!(client.call(n).await.unwrap(), n);
        n += 1;
        assert!(n < 5000, "never back: {:?}", client.stats());
    }
    let order: Vec<String> = capture
        .events()
        .into_iter()
        .filter(|e| e.contains(&sick.to_string()) && !e.contains("balancer="))
        .collect();
    assert_eq!(order.len(), 3, "the health events, in order: {order:?}");
    assert!(order[0].contains("endpoint ejected"), "{order:?}");
    assert!(order[1].contains("probing the endpoint"), "{order:?}");
    assert!(order[2].contains("takes full load again"), "{order:?}");
    client.close();
}

#[tokio::test(start_paused = true)]
async fn a_retry_the_budget_refuses_is_traced() {
    let capture = TraceCapture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let addrs: Vec<SocketAddr> = (0..2)
        .map(|n| SocketAddr::from(([127, 0, 0, 1], 7200 + n)))
        .collect();
    let make = |_addr: SocketAddr| async {
        Ok::<_, std::io::Error>(Fake {
            down: Arc::new(AtomicBool::new(true)),
        })
    };
    // No reserve and no share: not a single retry.
    let client = Balanced::builder(addrs, make)
        .name("broke")
        .budget(BudgetConfig::new().ratio(0.0).min_per_sec(0))
        .health(HealthConfig::new().consecutive_failures(1000))
        .start()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    client.call(1).await.unwrap_err();
    let refused = capture.with(&["not retried", "balancer=broke"]);
    assert_eq!(refused.len(), 1, "{:?}", capture.events());
    assert_eq!(client.stats().totals.retries_refused, 1);
    client.close();
}
