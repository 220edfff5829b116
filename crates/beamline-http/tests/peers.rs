//! Real HTTP peers against an axum Router served by beamline-http: curl over HTTP/1.1,
//! HTTP/2 with prior knowledge and HTTPS with ALPN h2 (a certificate made in the test);
//! h2load (HTTP/2) and wrk (HTTP/1.1 keep-alive) for load. Real time: the peers are other
//! processes.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;

use beamline_http::serve;
use beamline_server::Server;
use beamline_testkit::TestPki;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_http1_h2c_and_https_with_alpn_h2() {
    let (app, state) = app();
    let pki = TestPki::new();
    let server = serve(
        Server::new().bind(localhost()).bind_tls(
            localhost(),
            pki.server_config_with_alpn(&[b"h2", b"http/1.1"]),
        ),
        app,
    )
    .unwrap();
    let addrs = server.server().local_addrs().to_vec();
    let (plain, tls) = (addrs[0].to_string(), addrs[1].to_string());
    let plain_port = plain.rsplit(':').next().unwrap().to_owned();
    let tls_port = tls.rsplit(':').next().unwrap().to_owned();

    let version = "%{http_version} %{http_code}";
    let mut h1 = curl();
    h1.args(["--http1.1", "-w", version])
        .arg(format!("http://127.0.0.1:{plain_port}/"));
    let out = run(h1).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello1.1 200");

    let mut h2c = curl();
    h2c.args(["--http2-prior-knowledge", "-w", version])
        .arg(format!("http://127.0.0.1:{plain_port}/"));
    let out = run(h2c).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello2 200");

    let ca = std::env::temp_dir().join(format!("beamline-http-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let mut https = curl();
    https
        .args(["--http2", "-w", version, "--cacert"])
        .arg(&ca)
        .arg(format!("https://localhost:{tls_port}/"));
    let out = run(https).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello2 200");

    // A body both ways, over HTTPS and HTTP/1.1 (ALPN http/1.1).
    let mut post = curl();
    post.args(["--http1.1", "--data-binary", "ping over tls", "--cacert"])
        .arg(&ca)
        .arg(format!("https://localhost:{tls_port}/echo"));
    let out = run(post).await;
    let _ = std::fs::remove_file(&ca);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ping over tls");

    assert_eq!(state.handled.load(Ordering::Relaxed), 3);
    let report = server
        .shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(report.aborted, 0);
    let (s, h) = (server.server().stats(), server.stats());
    assert_eq!(s.accepted, 4, "one connection per curl run: {s:?}");
    assert_eq!(s.handshake_failures, 0);
    assert_eq!(h.requests, 4);
    assert_eq!(h.panics, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_gets_every_request_answered_over_http2() {
    let (app, state) = app();
    let server = serve(Server::new().bind(localhost()), app).unwrap();
    let addr = server.local_addr().unwrap();
    let mut h2load = program("h2load", "nghttp2-client");
    h2load
        .args(["-n", "4000", "-c", "8", "-m", "8", "-t", "1"])
        .arg(format!("http://{addr}/"));
    let out = run(h2load).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("4000 succeeded, 0 failed, 0 errored"),
        "h2load: {text}"
    );
    assert!(text.contains("status codes: 4000 2xx"), "h2load: {text}");
    assert_eq!(state.handled.load(Ordering::Relaxed), 4000);
    server
        .shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let s = server.server().stats();
    assert_eq!((s.accepted, s.closed), (8, 8), "{s:?}");
    assert_eq!(server.stats().requests, 4000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrk_keeps_http1_connections_alive_without_errors() {
    let (app, state) = app();
    let server = serve(Server::new().bind(localhost()), app).unwrap();
    let addr = server.local_addr().unwrap();
    let mut wrk = program("wrk", "wrk");
    wrk.args(["-t", "1", "-c", "16", "-d", "1s"])
        .arg(format!("http://{addr}/"));
    let out = run(wrk).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("Non-2xx"), "wrk saw errors: {text}");
    assert!(!text.contains("Socket errors"), "wrk saw errors: {text}");
    server
        .shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    // Read once the drain has returned: wrk exits with requests still in the server, and
    // their handlers may run after it.
    let handled = state.handled.load(Ordering::Relaxed);
    assert!(handled > 16, "wrk made {handled} requests: {text}");
    // Keep-alive: the 16 connections carried every request (wrk opens one more first, to
    // check the address).
    let s = server.server().stats();
    assert!(s.accepted <= 17, "{s:?}");
    // Every request handed to the service is counted by the time the drain returns (the
    // connections add their last uncounted ones before their processes exit). A handler runs
    // for each, except at most one per connection that wrk's close cut before it started.
    let requests = server.stats().requests;
    assert!(
        (handled..=handled + 16).contains(&requests),
        "{requests} requests counted, {handled} handled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_lets_curls_requests_in_flight_finish_and_refuses_new_ones() {
    let (app, state) = app();
    let server = std::sync::Arc::new(serve(Server::new().bind(localhost()), app).unwrap());
    let addr = server.local_addr().unwrap();
    let mut in_flight = Vec::new();
    for h2 in [false, true] {
        let mut cmd = curl();
        cmd.arg(if h2 {
            "--http2-prior-knowledge"
        } else {
            "--http1.1"
        })
        .arg(format!("http://{addr}/wait"));
        in_flight.push(tokio::spawn(run(cmd)));
    }
    until(|| state.waiting.load(Ordering::SeqCst) == 2).await;
    let draining = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .shutdown(std::time::Duration::from_secs(10))
                .await
                .unwrap()
        })
    };
    until(|| server.server().state() == beamline_server::ServerState::Draining).await;
    let mut refused = curl();
    refused.arg(format!("http://{addr}/"));
    let out = run(refused).await;
    assert_eq!(
        out.status.code(),
        Some(7),
        "curl: couldn't connect: {out:?}"
    );

    state.release.notify_waiters();
    for curl in in_flight {
        let out = curl.await.unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "released");
    }
    let report = draining.await.unwrap();
    assert_eq!((report.drained, report.aborted), (2, 0), "{report:?}");
}
