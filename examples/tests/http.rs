//! The `http` example's app as a user tries it, with the real curl: HTTP/1.1 and h2c, the
//! `HttpConn` extension, a panicking route answered 500, and a drain with a request in flight.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use beamline_examples::http::start;

/// curl's body and status code for `args` (curl must be installed: `apt-get install -y curl`).
async fn curl(args: &[&str]) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "--silent",
        "--max-time",
        "10",
        "--write-out",
        " %{http_code}",
    ])
    .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("curl: {e} (install it: `apt-get install -y curl`)"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once(' ').unwrap();
    (body.to_owned(), code.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_app_answers_curl_and_drains() {
    let server = start("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());

    let (body, code) = curl(&[&format!("{base}/")]).await;
    assert_eq!(
        (body.as_str(), code.as_str()),
        ("hello from beamline-http\n", "200")
    );
    let (body, _) = curl(&["--http2-prior-knowledge", &format!("{base}/conn")]).await;
    assert!(
        body.contains("over tcp") && body.ends_with("HTTP/2\n"),
        "{body}"
    );
    let (body, _) = curl(&["--data-binary", "ping", &format!("{base}/echo")]).await;
    assert_eq!(body, "ping");
    assert_eq!(curl(&[&format!("{base}/panic")]).await.1, "500");
    assert_eq!(curl(&[&format!("{base}/")]).await.1, "200");

    let slow = tokio::spawn(curl_owned(format!("{base}/slow/1")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = server.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!((report.drained, report.aborted), (1, 0));
    assert_eq!(
        slow.await.unwrap(),
        ("answered after 1 s\n".to_owned(), "200".to_owned())
    );
    assert_eq!(server.stats().panics, 1);
}

async fn curl_owned(url: String) -> (String, String) {
    curl(&[&url]).await
}
