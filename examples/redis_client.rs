//! A Redis client on beamline: one `beamline::Client` in FIFO mode (RESP has no request
//! ids, so replies match requests by order), shared by 64 concurrent callers. Their
//! requests go through a shared pool of up to 4 connections, 32 pipelined requests on
//! each (the pool opens another connection when all are full), and every connection
//! reconnects with a jittered backoff when redis goes away.
//!
//! Try it:
//!
//! ```sh
//! redis-server --port 6379 --save '' &            # any redis-server 5+
//! cargo run --release --example redis_client -- 127.0.0.1:6379 --seconds 30
//! ```
//!
//! Every second it prints how many requests got their own reply, and how many failed,
//! split by whether the request may have reached redis. While it runs, restart redis
//! (`redis-cli shutdown nosave; redis-server --port 6379 --save '' &`): requests in flight
//! fail as "maybe sent", requests made while redis is down wait up to 2 s in the offline
//! queue, the client reconnects with backoff, and "wrong replies" stays 0.
//!
//! Arguments: `[ADDR] [--callers N] [--connections N] [--per-connection N] [--seconds S]`.

use std::sync::Arc;
use std::time::Duration;

use beamline_examples::redis_client::{Options, Tally, connect, run};

fn parse_args() -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--callers" => {
                options.callers = value("--callers")?
                    .parse()
                    .map_err(|e| format!("--callers: {e}"))?;
            }
            "--connections" => {
                options.connections = value("--connections")?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?;
            }
            "--per-connection" => {
                options.per_connection = value("--per-connection")?
                    .parse()
                    .map_err(|e| format!("--per-connection: {e}"))?;
            }
            "--seconds" => {
                let seconds: u64 = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?;
                options.duration = Duration::from_secs(seconds);
            }
            "-h" | "--help" => {
                return Err(
                    "usage: redis_client [ADDR] [--callers N] [--connections N] \
                     [--per-connection N] [--seconds S]"
                        .to_owned(),
                );
            }
            addr if !addr.starts_with('-') => options.addr = addr.to_owned(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_args()?;
    let client = connect(&options).await?;
    println!(
        "{} callers, up to {} pipelined connections ({} in flight each) to {}, for {:?}",
        options.callers,
        options.connections,
        options.per_connection,
        options.addr,
        options.duration
    );
    let tally = Arc::new(Tally::default());
    let reporter = tokio::spawn({
        let tally = tally.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let (ok, not_sent, maybe_sent, wrong) = tally.snapshot();
                println!(
                    "{:>8} replies/s | failed: {not_sent} not sent, {maybe_sent} maybe sent | wrong replies: {wrong}",
                    ok - last
                );
                last = ok;
            }
        }
    });
    run(&client, &options, tally.clone()).await;
    reporter.abort();
    if let beamline::Stack::Shared(pool) = client.stack() {
        let metrics = pool.metrics();
        println!(
            "pool: {} connections open, {} opened in all",
            metrics.size, metrics.created
        );
    }
    let (ok, not_sent, maybe_sent, wrong) = tally.snapshot();
    println!(
        "done: {ok} replies, {not_sent} not sent, {maybe_sent} maybe sent, {wrong} wrong replies"
    );
    if wrong > 0 {
        return Err("a caller got a reply that was not its own".into());
    }
    Ok(())
}
