//! A Redis client on beamline that lives in a supervision tree, the way an Elixir
//! application starts Redix: each connection is a supervised process (one pipelined
//! `beamline::Client` in FIFO mode: RESP has no request ids, so replies match requests by
//! order), and 64 caller processes share them.
//!
//! ```text
//! app          Supervisor, rest_for_one
//! ├── redis    Supervisor, one_for_one: redis-0 .. redis-3, one connection each
//! └── callers  DynamicSupervisor: 64 callers doing SET/GET pairs
//! ```
//!
//! Try it:
//!
//! ```sh
//! redis-server --port 6379 --save '' &            # any redis-server 5+
//! cargo run --release --example redis_client -- 127.0.0.1:6379 --seconds 30
//! ```
//!
//! Every second it prints how many requests got their own reply, how many failed (split by
//! whether the request may have reached redis) and how many times the connections were
//! restarted. While it runs, restart redis (`redis-cli shutdown nosave; redis-server --port
//! 6379 --save '' &`): each connection exits with a typed reason (the connection was lost),
//! its supervisor starts a new one, which reconnects with a jittered backoff; requests in
//! flight fail as "maybe sent", requests made meanwhile wait up to 2 s in the offline queue,
//! and "wrong replies" stays 0. Stop redis for good and each connection gives up after
//! `--outage` (default 10 s), then the next one too, until their supervisor exceeds its
//! restart intensity (about two outages in) and the application stops with that error
//! rather than retrying in silence.
//!
//! Arguments: `[ADDR] [--callers N] [--connections N] [--per-connection N] [--seconds S]
//! [--outage S]`.

use std::sync::Arc;
use std::time::Duration;

use beamline_examples::redis_client::{Options, Tally, run, start};

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
            "--outage" => {
                let seconds: u64 = value("--outage")?
                    .parse()
                    .map_err(|e| format!("--outage: {e}"))?;
                options.outage = Duration::from_secs(seconds);
            }
            "-h" | "--help" => {
                return Err(
                    "usage: redis_client [ADDR] [--callers N] [--connections N] \
                     [--per-connection N] [--seconds S] [--outage S]"
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
    if options.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    let app = Arc::new(start(&options).await?);
    println!(
        "{} callers, {} supervised connections ({} in flight each) to {}, for {:?}",
        options.callers,
        options.connections,
        options.per_connection,
        options.addr,
        options.duration
    );
    let tally = Arc::new(Tally::default());
    let reporter = tokio::spawn({
        let (app, tally) = (app.clone(), tally.clone());
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let (ok, not_sent, maybe_sent, wrong) = tally.snapshot();
                println!(
                    "{:>8} replies/s | failed: {not_sent} not sent, {maybe_sent} maybe sent | wrong replies: {wrong} | connection restarts: {}",
                    ok - last,
                    app.restarts().await
                );
                last = ok;
            }
        }
    });
    // The run ends at its deadline, or early if the tree gives up (redis away too long):
    // stopping, the application stops the callers first.
    run(&app, &options, tally.clone()).await;
    reporter.abort();
    if let Err(stopped) = app.sup.count_children().await {
        return Err(format!("the application stopped: {}", stopped.reason).into());
    }
    let restarts = app.restarts().await;
    app.sup.shutdown().await?;
    let (ok, not_sent, maybe_sent, wrong) = tally.snapshot();
    println!(
        "done: {ok} replies, {not_sent} not sent, {maybe_sent} maybe sent, {wrong} wrong replies, \
         {restarts} connection restarts"
    );
    if wrong > 0 {
        return Err("a caller got a reply that was not its own".into());
    }
    Ok(())
}
