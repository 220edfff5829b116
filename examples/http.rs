//! An axum app served by beamline-http: HTTP/1.1 and HTTP/2, every connection a supervised
//! process under the server's limits (connections, per-IP cap, handshake / header / idle /
//! read / send timeouts), a panicking handler answered `500` without touching anything else,
//! and a graceful drain on Ctrl-C.
//!
//! Try it:
//!
//! ```sh
//! cargo run --release --example http                   # http://127.0.0.1:8080
//! cargo run --release --example http -- --port 8081    # or --addr 0.0.0.0:8080
//! cargo run --release --example http -- --tls          # https, a certificate made at start
//!
//! curl http://127.0.0.1:8080/
//! curl http://127.0.0.1:8080/conn                          # HTTP/1.1
//! curl --http2-prior-knowledge http://127.0.0.1:8080/conn  # HTTP/2 without TLS (h2c)
//! curl --data-binary 'hello' http://127.0.0.1:8080/echo
//! curl -N http://127.0.0.1:8080/stream/20                  # a line every 100 ms
//! curl -i http://127.0.0.1:8080/panic                      # 500, and the server goes on
//! curl http://127.0.0.1:8080/slow/10 & sleep 1; kill -INT <server pid>
//!                                                          # the drain answers it, then stops
//! # with --tls (the CA's PEM path is printed at start):
//! curl --cacert /tmp/beamline-http-ca.pem https://localhost:8080/conn   # ALPN h2
//! h2load -n 10000 -c 8 -m 8 http://127.0.0.1:8080/
//! wrk -c 64 -d 5s http://127.0.0.1:8080/
//! ```
//!
//! A slowloris (`nc 127.0.0.1 8080` and type half a request) is closed after 10 s; an idle
//! connection after 30 s. Ctrl-C stops accepting, lets every request in flight finish (HTTP/2
//! clients get GOAWAY), kills what is left after 10 s, and prints the report.

use std::time::Duration;

use beamline_examples::cli;
use beamline_examples::http::{DEFAULT_ADDR, start};
use beamline_testkit::TestPki;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    cli::init_tracing();
    let (addr, tls) = cli::listen_addr_and(DEFAULT_ADDR, "--tls")?;
    let config = if tls {
        let pki = TestPki::with_names(&["localhost", "127.0.0.1"]);
        let ca = std::env::temp_dir().join("beamline-http-ca.pem");
        std::fs::write(&ca, pki.ca_pem())?;
        println!(
            "TLS with a certificate for localhost; its CA is in {}",
            ca.display()
        );
        Some(pki.server_config_with_alpn(&[b"h2", b"http/1.1"]))
    } else {
        None
    };
    let scheme = if tls { "https" } else { "http" };
    let server = start(addr, config)?;
    let bound = server.local_addr().ok_or("no TCP address")?;
    println!(
        "http listening on {scheme}://{bound}/; try `curl {scheme}://{bound}/conn`; Ctrl-C stops it gracefully"
    );

    tokio::signal::ctrl_c().await?;
    println!("draining (at most 10 s)...");
    let report = server.shutdown(Duration::from_secs(10)).await?;
    let (conns, http) = (server.server().stats(), server.stats());
    println!(
        "stopped: {} drained, {} aborted; {} connections, {} requests, {} handler panics, {} slow heads, {} idle closes",
        report.drained,
        report.aborted,
        conns.accepted,
        http.requests,
        http.panics,
        http.header_timeouts,
        http.idle_closes
    );
    Ok(())
}
