//! 10,000 requests from 64 tasks over one TCP connection, with random server delays and
//! random caller cancellations: every completed call carries its own request's payload, and
//! no slot leaks.
#![cfg(feature = "driver")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use beamline_mux::{Client, ClientConfig, ServerConfig};
use bytes::{BufMut, Bytes, BytesMut};
use common::{Rng, connect, spawn_server};

const TASKS: u64 = 64;
const REQUESTS: u64 = 10_000;

/// Yields to the scheduler `n` times: a delay measured in scheduling rounds, which
/// reorders completions without sleeping.
async fn yield_times(n: u64) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

/// Counts a handler as running until it finishes or is dropped (cancelled).
struct Running(Arc<AtomicUsize>);

impl Running {
    fn enter(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Running(count)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_from_64_tasks_with_cancellations() {
    let running = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(AtomicU64::new(0));
    let addr = {
        let (running, handled) = (running.clone(), handled.clone());
        spawn_server(ServerConfig::new(), move |req: Bytes| {
            let (running, handled) = (running.clone(), handled.clone());
            async move {
                let _running = Running::enter(running);
                // The request carries the delay the server should take, in yields.
                let delay = u64::from(req[16]);
                yield_times(delay).await;
                handled.fetch_add(1, Ordering::SeqCst);
                Ok(req)
            }
        })
        .await
    };
    let config = ClientConfig::new().peer("stress").max_in_flight(48);
    let (client, driver) = Client::wire(connect(addr).await, &config).unwrap();
    let driver = tokio::spawn(driver);

    let completed = Arc::new(AtomicU64::new(0));
    let cancelled = Arc::new(AtomicU64::new(0));
    let per_task = REQUESTS / TASKS + 1;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let client: Client<Bytes, Bytes> = client.clone();
            let (completed, cancelled) = (completed.clone(), cancelled.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(task);
                for i in 0..per_task {
                    if task * per_task + i >= REQUESTS {
                        break;
                    }
                    // task, index, server delay, then padding of random length.
                    let mut payload = BytesMut::new();
                    payload.put_u64(task);
                    payload.put_u64(i);
                    payload.put_u8(rng.below(30) as u8);
                    payload.put_bytes(task as u8, rng.below(200) as usize);
                    let payload = payload.freeze();
                    // One call in eight is abandoned after a random number of rounds.
                    let patience = (rng.below(8) == 0).then(|| rng.below(40));
                    let call = client.call(payload.clone());
                    match patience {
                        None => {
                            assert_eq!(call.await.unwrap(), payload, "answer misrouted");
                            completed.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(rounds) => {
                            tokio::select! {
                                answer = call => {
                                    assert_eq!(answer.unwrap(), payload, "answer misrouted");
                                    completed.fetch_add(1, Ordering::Relaxed);
                                }
                                () = yield_times(rounds) => {
                                    cancelled.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("10,000 calls did not finish within 60 s");

    let (done, gave_up) = (
        completed.load(Ordering::SeqCst),
        cancelled.load(Ordering::SeqCst),
    );
    assert_eq!(done + gave_up, REQUESTS);
    assert!(gave_up > 100, "only {gave_up} cancellations happened");
    assert_eq!(client.in_flight(), 0, "a slot leaked");

    // Every abandoned request gets its late answer or its cancel acknowledged.
    tokio::time::timeout(Duration::from_secs(10), async {
        while client.stats().abandoned != 0 || running.load(Ordering::SeqCst) != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "abandoned requests were never resolved: {:?}, {} handlers running",
            client.stats(),
            running.load(Ordering::SeqCst)
        )
    });
    let stats = client.stats();
    assert_eq!((stats.in_flight, stats.abandoned), (0, 0));
    // A caller that gave up while waiting for a slot, or after its answer had arrived,
    // cancels nothing in the mux.
    assert!(
        stats.cancelled > 0 && stats.cancelled <= gave_up,
        "{stats:?}"
    );
    assert_eq!(stats.stray_replies, 0, "every answer matched a request");
    // Requests cancelled before they were written never reached the server.
    assert!(handled.load(Ordering::SeqCst) <= REQUESTS);

    drop(client);
    assert!(driver.await.unwrap().is_ok());
}
