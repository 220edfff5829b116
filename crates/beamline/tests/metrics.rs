//! The metrics publisher against a real Prometheus exporter (metrics-exporter-prometheus's
//! HTTP listener on loopback), scraped by the real curl: what a server, a pooled client and
//! a single-connection client did is what Prometheus reads.
#![allow(clippy::unwrap_used)]
#![cfg(all(feature = "metrics", feature = "server", feature = "client"))]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use beamline::metrics::{METRICS, Publisher, PublisherError};
use beamline::pool::PoolConfig;
use beamline::server::{ExitReason, Flow, Handler, HandlerContext, Server};
use beamline::{Client, Pooling};
use bytes::{Bytes, BytesMut};
use common::{echo, wire_server};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone)]
struct Echo;

impl Handler for Echo {
    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        conn.send(data).await?;
        data.clear();
        Ok(Flow::Continue)
    }
}

/// GET /metrics with curl (bounded by its own timeout).
fn scrape(port: u16) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .output()
        .expect("curl is installed by `cargo xtask test` (package curl)");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The sample of `metric` with label `name="<name>"` in a Prometheus text page.
fn sample(page: &str, metric: &str, name: &str) -> Option<f64> {
    let prefix = format!("{metric}{{name=\"{name}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_what_the_publisher_wrote() {
    let port = beamline_testkit::free_port();
    PrometheusBuilder::new()
        .with_http_listener(SocketAddr::from(([127, 0, 0, 1], port)))
        .install()
        .unwrap();

    // A server that three connections come to and leave.
    let server = Server::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .serve_handler(Echo)
        .unwrap();
    for _ in 0..3 {
        let mut peer = tokio::net::TcpStream::connect(server.local_addr().unwrap())
            .await
            .unwrap();
        peer.write_all(b"ping").await.unwrap();
        let mut reply = [0u8; 4];
        peer.read_exact(&mut reply).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stats().closed < 3 {
        assert!(Instant::now() < deadline, "{:?}", server.stats());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Two clients of a wire-format server: a pool of two, and one connection.
    let (addr, _wire) = wire_server(echo).await;
    let pooled = Client::builder(addr)
        .name("pooled")
        .pool(Pooling::Exclusive(PoolConfig::new(2)))
        .connect()
        .await
        .unwrap();
    let single = Client::builder(addr)
        .name("single")
        .connect()
        .await
        .unwrap();
    for i in 0..5 {
        let payload = Bytes::from(format!("call-{i}"));
        assert_eq!(pooled.call(payload.clone()).await.unwrap(), payload);
        assert_eq!(single.call(payload.clone()).await.unwrap(), payload);
    }

    let publisher = Publisher::new()
        .server("edge", &server)
        .client("pooled", &pooled)
        .client("single", &single);
    assert_eq!(
        publisher.names().collect::<Vec<_>>(),
        ["edge", "pooled", "single"]
    );
    let task = publisher.spawn(Duration::from_millis(20));

    // The exporter renders what was recorded; wait (bounded) for the first publish.
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = tokio::task::spawn_blocking(move || scrape(port))
            .await
            .unwrap();
        if sample(&page, "beamline_server_connections_accepted_total", "edge").is_some() {
            break page;
        }
        assert!(Instant::now() < deadline, "nothing published:\n{page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let server_says = |metric| sample(&page, metric, "edge");
    assert_eq!(
        server_says("beamline_server_connections_accepted_total"),
        Some(3.0)
    );
    assert_eq!(
        server_says("beamline_server_connections_closed_total"),
        Some(3.0)
    );
    assert_eq!(server_says("beamline_server_connections_active"), Some(0.0));
    assert_eq!(
        server_says("beamline_server_connections_errored_total"),
        Some(0.0)
    );
    assert_eq!(
        server_says("beamline_server_received_bytes_total"),
        Some(12.0)
    );
    assert_eq!(server_says("beamline_server_sent_bytes_total"), Some(12.0));

    // The pool lent a connection five times and opened at least one, at most two.
    assert_eq!(
        sample(&page, "beamline_pool_checkouts_total", "pooled"),
        Some(5.0)
    );
    assert_eq!(sample(&page, "beamline_pool_max_size", "pooled"), Some(2.0));
    let opened = sample(&page, "beamline_pool_connections_created_total", "pooled").unwrap();
    assert!((1.0..=2.0).contains(&opened), "{page}");
    assert!(
        page.contains(
            "beamline_pool_connections_closed_total{name=\"pooled\",reason=\"broken\"} 0"
        ) || page.contains("reason=\"broken\",name=\"pooled\"} 0"),
        "{page}"
    );

    // The single connection is up, on no attempt, nothing queued.
    assert_eq!(
        sample(&page, "beamline_reconnect_connected", "single"),
        Some(1.0)
    );
    assert_eq!(
        sample(&page, "beamline_reconnect_attempt", "single"),
        Some(0.0)
    );
    assert_eq!(
        sample(&page, "beamline_reconnect_queued", "single"),
        Some(0.0)
    );

    // Every counter and gauge written is described (Prometheus's HELP and TYPE lines).
    for (metric, _, _) in METRICS {
        if page.contains(&format!("\n{metric}{{")) {
            assert!(
                page.contains(&format!("# HELP {metric} ")),
                "{metric}:\n{page}"
            );
            assert!(
                page.contains(&format!("# TYPE {metric} ")),
                "{metric}:\n{page}"
            );
        }
    }

    // The single client is closed: the next publish says so.
    single.close();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = tokio::task::spawn_blocking(move || scrape(port))
            .await
            .unwrap();
        if sample(&page, "beamline_reconnect_closed", "single") == Some(1.0) {
            assert_eq!(
                sample(&page, "beamline_reconnect_connected", "single"),
                Some(0.0)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the close was never published:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The publisher keeps the server's counters, not the server: shut down, it stays
    // readable, and stopping the task leaves the task finished.
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(!task.is_finished());
    task.stop();
}

#[tokio::test]
async fn publisher_task_reports_a_panicking_source() {
    beamline_testkit::quiet_panics(|message| message.contains("the source broke"));
    let task = Publisher::new()
        .source("fine", |_| {})
        .source("broken", |name| panic!("the source broke: {name}"))
        .spawn(Duration::from_millis(10));
    let reason = tokio::time::timeout(Duration::from_secs(10), task.join())
        .await
        .expect("a panicking publish ends the task");
    assert_eq!(
        reason,
        PublisherError::Panicked("the source broke: broken".to_owned())
    );
    assert_eq!(
        reason.to_string(),
        "a metrics publish panicked: the source broke: broken"
    );
}
