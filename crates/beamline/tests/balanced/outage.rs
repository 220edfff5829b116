//! A total outage: every server gone. Requests fail, typed and unsent, and the attempts
//! stay within one per request plus the retry budget.

use std::net::SocketAddr;
use std::time::Duration;

use beamline::WasSent;
use beamline::balance::{BalanceError, Balanced, BudgetConfig, Discovery};
use tokio::time::Instant;

use crate::fleet::{endpoint, fleet, payload, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_total_outage_attempts_stay_within_one_plus_the_budget_per_request() {
    let mut nodes = fleet(5, Duration::ZERO, 23).await;
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr()).collect();
    let budget = BudgetConfig::new();
    let client = Balanced::builder(Discovery::fixed(addrs.clone()), endpoint)
        .name("outage")
        .timeout(Duration::from_secs(1))
        .budget(budget.clone())
        .seed(23)
        .start()
        .unwrap();
    wait_for(&client, "five endpoints ready", |s| {
        s.endpoints.len() == 5
            && s.endpoints
                .iter()
                .all(|(_, e)| e.state == beamline::balance::EndpointState::Healthy)
    })
    .await;
    assert_eq!(client.call(payload(0, 0)).await.unwrap(), payload(0, 0));

    // Every server dies and every proxy refuses: nothing to connect to.
    for node in &mut nodes {
        node.backend.kill();
        node.proxy.refuse_new(true).unwrap();
        node.proxy.reset_all();
    }
    // A request written before its connection read the reset may have been delivered:
    // the outage is counted from when every client has seen it.
    wait_for(&client, "every endpoint's client saw the outage", |s| {
        s.endpoints
            .iter()
            .all(|(_, e)| e.state != beamline::balance::EndpointState::Healthy)
    })
    .await;
    let before = client.stats().totals;
    let stop = Instant::now() + Duration::from_millis(1500);
    let mut requests = 0u64;
    let mut seq = 1;
    while Instant::now() < stop {
        let started = Instant::now();
        let err = client.call(payload(0, seq)).await.unwrap_err();
        seq += 1;
        requests += 1;
        assert!(started.elapsed() <= Duration::from_secs(2), "{err}");
        assert!(
            matches!(
                err,
                BalanceError::Endpoint { .. }
                    | BalanceError::NoEndpoint { .. }
                    | BalanceError::Timeout { .. }
            ),
            "{err}"
        );
        assert!(!err.was_sent(), "nothing can have been delivered: {err}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let after = client.stats().totals;
    let attempts = after.attempts - before.attempts;
    // One attempt per request, plus the retries the budget held: the reserve and 20% of
    // every request in the window (the one made before the outage too).
    let allowed = requests as f64 + budget.allowance(after.requests);
    println!(
        "{requests} requests, {attempts} attempts (allowed {allowed:.0}), {:?}",
        after
    );
    assert!(requests > 100, "{requests}");
    assert!(
        attempts as f64 <= allowed,
        "{attempts} attempts for {requests} requests"
    );
    client.close();
}
