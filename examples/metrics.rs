//! An echo server whose numbers Prometheus can scrape: beamline's `metrics` feature
//! publishes the server's counters (and a client's, and a pool's) through the `metrics`
//! facade, and metrics-exporter-prometheus serves them over HTTP.
//!
//! Try it:
//!
//! ```sh
//! cargo run --release --example metrics              # echo on 127.0.0.1:7000, metrics on :9100
//! cargo run --release --example metrics -- --port 7001
//! nc 127.0.0.1 7000                                  # type lines; they come back
//! curl -s 127.0.0.1:9100/metrics | grep beamline_    # what Prometheus would read
//! ```
//!
//! The metrics listen on the echo address's IP at port 9100 (`METRICS_PORT` changes it).
//! Every number is published once a second; Ctrl-C drains the server and stops.

use std::net::SocketAddr;
use std::time::Duration;

use beamline::metrics::Publisher;
use beamline::server::{ExitReason, Flow, Handler, HandlerContext, Server};
use bytes::BytesMut;
use metrics_exporter_prometheus::PrometheusBuilder;

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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    beamline_examples::cli::init_tracing();
    let addr = beamline_examples::cli::listen_addr("127.0.0.1:7000")?;
    let metrics_port: u16 = match std::env::var("METRICS_PORT") {
        Ok(port) => port.parse()?,
        Err(_) => 9100,
    };
    let metrics_addr = SocketAddr::new(addr.ip(), metrics_port);
    PrometheusBuilder::new()
        .with_http_listener(metrics_addr)
        .install()?;

    let server = Server::new()
        .bind(addr)
        .read_timeout(Some(Duration::from_secs(300)))
        .send_timeout(Some(Duration::from_secs(10)))
        .serve_handler(Echo)?;
    let publisher = Publisher::new()
        .server("echo", &server)
        .spawn(Duration::from_secs(1));
    println!(
        "echo listening on {:?}; metrics on http://{metrics_addr}/metrics; Ctrl-C stops it",
        server.local_addrs()
    );
    println!(
        "try: nc {addr_ip} {port}   and   curl -s http://{metrics_addr}/metrics | grep beamline_",
        addr_ip = addr.ip(),
        port = addr.port()
    );

    tokio::signal::ctrl_c().await?;
    let report = server.shutdown(Duration::from_secs(5)).await?;
    publisher.stop();
    println!(
        "stopped: {} drained, {} aborted",
        report.drained, report.aborted
    );
    Ok(())
}
