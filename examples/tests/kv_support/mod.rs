//! What the kv test files share: a server on a free loopback port, the Redis tools run as
//! processes, and a raw RESP connection that reads replies with the client-side decoder.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command as Process, Output, Stdio};
use std::time::Duration;

use beamline::resp::{RespCodec, RespError, Value};
use beamline_examples::kv::{self, KvConfig, KvServer};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// A kv server on 127.0.0.1, on a port of its choosing.
pub(crate) fn start() -> KvServer {
    start_with(KvConfig::new())
}

/// As [`start`], with `config`'s other settings.
pub(crate) fn start_with(config: KvConfig) -> KvServer {
    kv::start(config.addr("127.0.0.1:0".parse().unwrap())).unwrap()
}

/// Starts one of the Redis tools. A missing tool fails the test with the command that
/// installs it: these tests never skip.
pub(crate) fn spawn_tool(program: &str, args: &[String]) -> std::process::Child {
    match Process::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{program} not found: run `apt-get install -y redis-tools`")
        }
        Err(e) => panic!("cannot start {program}: {e}"),
    }
}

/// Runs one of the Redis tools to completion, feeding it `stdin`.
pub(crate) async fn run_tool(program: &'static str, args: Vec<String>, stdin: Vec<u8>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = spawn_tool(program, &args);
        let mut input = child.stdin.take().unwrap();
        input.write_all(&stdin).unwrap();
        drop(input);
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    })
    .await
    .unwrap()
}

/// `redis-cli -p <port> <args...>`: its output, one line per reply line.
pub(crate) async fn cli(addr: SocketAddr, args: &[&str]) -> String {
    let mut all = vec!["-p".to_owned(), addr.port().to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let output = run_tool("redis-cli", all, Vec::new()).await;
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

/// Sends `input` on a fresh connection and reads until the server closes it.
pub(crate) async fn exchange(addr: SocketAddr, input: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(input).await.unwrap();
    // The client keeps its side open: only the server can end this read.
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the server did not close after {:?}",
                String::from_utf8_lossy(&input[..input.len().min(60)])
            )
        })
        .unwrap();
    reply
}

/// The RESP array of bulk strings that sends `args`.
pub(crate) fn request(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

/// A raw connection: requests written as RESP arrays, replies read one at a time.
pub(crate) struct Conn(Framed<TcpStream, RespCodec>);

impl Conn {
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        Self::over(TcpStream::connect(addr).await.unwrap())
    }

    pub(crate) fn over(stream: TcpStream) -> Self {
        Self(Framed::new(stream, RespCodec::new()))
    }

    pub(crate) async fn send(&mut self, args: &[&str]) {
        self.0.get_mut().write_all(&request(args)).await.unwrap();
    }

    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        self.0.get_mut().write_all(bytes).await.unwrap();
    }

    /// The next reply; `None` once the server closed the connection. A reply that does not
    /// come within a minute (of paused time too) fails the test.
    pub(crate) async fn next(&mut self) -> Option<Value> {
        self.try_next().await.map(|r| r.unwrap())
    }

    /// As [`next`](Self::next), with the decoder's error (a frame cut short by the close).
    pub(crate) async fn try_next(&mut self) -> Option<Result<Value, RespError>> {
        tokio::time::timeout(Duration::from_secs(60), self.0.next())
            .await
            .expect("no reply within a minute")
    }

    pub(crate) async fn recv(&mut self) -> Value {
        self.next().await.expect("the server closed the connection")
    }

    pub(crate) async fn call(&mut self, args: &[&str]) -> Value {
        self.send(args).await;
        self.recv().await
    }
}

pub(crate) fn bulk(text: &str) -> Value {
    Value::bulk(text.to_owned())
}

pub(crate) fn bulks(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|i| bulk(i)).collect())
}
