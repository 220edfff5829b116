//! Your own protocol with request ids, end to end: a server (`Server::serve_fn` +
//! `serve_tagged`) and a client (`ClientBuilder::tagged`) of lines `<id> <text>`.
//!
//! Try it:
//!
//! ```sh
//! cargo run --release --example tagged            # serves on 127.0.0.1:7100, runs a client
//! nc 127.0.0.1 7100                               # while it waits: type `1 UPPER hi`,
//!                                                 # `2 SLEEP 2000 slow` then `3 UPPER fast`
//! ```
//!
//! The client sends a slow request and a quick one on the same connection: the quick answer
//! comes back first, each to its own caller, matched by the id the client's driver wrote.
//! Then the program keeps serving until Ctrl-C. The logic is in
//! `beamline_examples::tagged`.

use std::time::{Duration, Instant};

use beamline::mux::Envelope;
use beamline_examples::cli;
use beamline_examples::tagged::{connect, start_server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    cli::init_tracing();
    let server = start_server(cli::listen_addr("127.0.0.1:7100")?)?;
    let addr = server.local_addr().ok_or("the server has no TCP address")?;
    let client = connect(addr).await?;

    let started = Instant::now();
    let slow = client.call(Envelope::new("SLEEP 300 slow".to_owned()));
    let quick = async {
        let answer = client.call(Envelope::new("UPPER quick".to_owned())).await;
        println!(
            "{:>4} ms  {:?}",
            started.elapsed().as_millis(),
            answer.map(Envelope::into_body)
        );
    };
    let (slow, ()) = tokio::join!(slow, quick);
    println!(
        "{:>4} ms  {:?}",
        started.elapsed().as_millis(),
        slow.map(Envelope::into_body)
    );
    let refused = client.call(Envelope::new("SHOUT hi".to_owned())).await?;
    println!("refused: {}", refused.into_body());

    println!(
        "serving on {addr}; try `nc {} {}`; Ctrl-C stops",
        addr.ip(),
        addr.port()
    );
    tokio::signal::ctrl_c().await?;
    let report = server.shutdown(Duration::from_secs(5)).await?;
    println!(
        "stopped: {} drained, {} aborted",
        report.drained, report.aborted
    );
    Ok(())
}
