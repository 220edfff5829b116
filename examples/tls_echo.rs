//! A TLS echo server, written in the stream-owning form: each connection's function owns a
//! split reader and writer, and listens for the graceful shutdown.
//!
//! Try it:
//!
//! ```sh
//! cargo run --release --example tls_echo        # self-signed certificate, 127.0.0.1:7443
//! openssl s_client -connect 127.0.0.1:7443 -servername localhost -quiet
//! # verified: the server prints where it wrote its certificate
//! openssl s_client -connect 127.0.0.1:7443 -CAfile /tmp/beamline-tls-echo.pem -verify_return_error -quiet
//! # your own certificate and key (PEM), and address:
//! cargo run --release --example tls_echo -- --cert cert.pem --key key.pem --addr 127.0.0.1:8443
//! cargo run --release --example tls_echo -- --port 8443     # the same, on another port
//! ```
//!
//! Type lines in `s_client`; they come back. Ctrl-C in the server drains: each connection
//! says goodbye, sends TLS close_notify and closes; a plain-TCP client (`nc 127.0.0.1 7443`)
//! is a counted handshake failure and the server goes on serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use beamline::server::{Connection, ExitReason, Server};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;

/// Echoes until the peer closes or the server drains.
async fn echo(conn: Connection) -> Result<(), ExitReason> {
    let shutdown = conn.shutdown_signal();
    let greeting = format!(
        "hello {} (TLS, SNI {:?}, connection {})\n",
        conn.peer(),
        conn.info().sni().unwrap_or("none"),
        conn.id()
    );
    let (mut reader, mut writer) = conn.into_split();
    writer.write_all(greeting.as_bytes()).await?;
    tokio::select! {
        copied = tokio::io::copy(&mut reader, &mut writer) => { copied?; }
        () = shutdown.requested() => {
            writer.write_all(b"server shutting down, bye\n").await?;
        }
    }
    // TLS close_notify, then FIN.
    writer.shutdown().await?;
    Ok(())
}

/// `--cert` and `--key`, and the address (`--port` / `--addr`), from the command line.
struct Args {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    addr: SocketAddr,
}

fn args() -> Result<Args, Box<dyn std::error::Error>> {
    let (addr, values) =
        beamline_examples::cli::listen_addr_with("127.0.0.1:7443", &["--cert", "--key"])?;
    let mut values = values.into_iter().map(|v| v.map(PathBuf::from));
    Ok(Args {
        cert: values.next().flatten(),
        key: values.next().flatten(),
        addr,
    })
}

/// The certificate chain and key: from PEM files, or a self-signed one for `localhost`
/// (whose PEM is written to the temp dir, for `openssl s_client -CAfile`).
fn identity(
    args: &Args,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Box<dyn std::error::Error>> {
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
        return Ok((chain, PrivateKeyDer::from_pem_file(key)?));
    }
    if args.cert.is_some() != args.key.is_some() {
        return Err("give both --cert and --key, or neither".into());
    }
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    let pem_path = std::env::temp_dir().join("beamline-tls-echo.pem");
    std::fs::write(&pem_path, made.cert.pem())?;
    println!(
        "self-signed certificate for localhost written to {}",
        pem_path.display()
    );
    let key = PrivateKeyDer::try_from(made.signing_key.serialize_der())?;
    Ok((vec![made.cert.der().clone()], key))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    beamline_examples::cli::init_tracing();
    let args = args()?;
    let (chain, key) = identity(&args)?;
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;

    let server = Server::new()
        .bind_tls(args.addr, Arc::new(tls))
        // A client that never reads what is echoed: its writes fail with TimedOut after
        // 10 s without progress, `echo` returns the error, and the connection closes.
        .send_timeout(Some(Duration::from_secs(10)))
        .serve_fn(echo)?;
    println!(
        "TLS echo listening on {:?}; Ctrl-C stops it gracefully",
        server.local_addrs()
    );
    println!(
        "try: openssl s_client -connect {} -servername localhost -quiet",
        args.addr
    );

    tokio::signal::ctrl_c().await?;
    println!("draining (at most 5 s)...");
    let report = server.shutdown(Duration::from_secs(5)).await?;
    let stats = server.stats();
    println!(
        "stopped: {} drained, {} aborted; {} handshakes failed, {} bytes echoed",
        report.drained, report.aborted, stats.handshake_failures, stats.bytes_out
    );
    Ok(())
}
