//! A pool of real connections to a real `redis-server` (started by the test on a free
//! loopback port) survives the server being killed and restarted: dead connections are found
//! by the PING check or by their user and discarded, checkouts while the server is down get
//! the OS's connect error (not a timeout), and once it is back the pool opens new connections.
#![allow(clippy::unwrap_used)]

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use beamline_backoff::BackoffConfig;
use beamline_pool::{CheckPolicy, CheckoutError, CloseReason, Manager, Pool, PoolConfig};
use beamline_testkit::RedisServer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One RESP connection. Any I/O error leaves it `broken`: its protocol state is unknown.
#[derive(Debug)]
struct RedisConn {
    stream: BufReader<TcpStream>,
    broken: bool,
}

impl RedisConn {
    /// Sends one command and reads its reply as text (`OK`, `PONG`, a bulk string, `(nil)`).
    async fn command(&mut self, args: &[&str]) -> io::Result<String> {
        let result = self.exchange(args).await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    async fn exchange(&mut self, args: &[&str]) -> io::Result<String> {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let line = self.line().await?;
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" | ":" => Ok(rest.to_owned()),
            "-" => Err(io::Error::other(rest.to_owned())),
            "$" if rest == "-1" => Ok("(nil)".to_owned()),
            "$" => {
                let len: usize = rest.parse().map_err(io::Error::other)?;
                let mut body = vec![0; len + 2];
                self.stream.read_exact(&mut body).await?;
                body.truncate(len);
                String::from_utf8(body).map_err(io::Error::other)
            }
            _ => Err(io::Error::other(format!("unexpected reply {line:?}"))),
        }
    }

    async fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end().to_owned())
    }
}

/// Connections to one redis-server; PING is the health check.
struct Redis(SocketAddr);

impl Manager for Redis {
    type Connection = RedisConn;
    type Error = io::Error;

    async fn create(&self) -> io::Result<RedisConn> {
        let stream = TcpStream::connect(self.0).await?;
        stream.set_nodelay(true)?;
        Ok(RedisConn {
            stream: BufReader::new(stream),
            broken: false,
        })
    }

    fn target(&self) -> String {
        format!("redis://{}", self.0)
    }

    async fn check(&self, conn: &mut RedisConn) -> io::Result<()> {
        match conn.command(&["PING"]).await?.as_str() {
            "PONG" => Ok(()),
            other => Err(io::Error::other(format!("PING answered {other:?}"))),
        }
    }

    fn is_broken(&self, conn: &RedisConn) -> bool {
        conn.broken
    }
}

/// Checkouts until one succeeds (the server is coming back), at most for `limit`.
async fn first_success(pool: &Pool<Redis>, limit: Duration) -> beamline_pool::PoolGuard<'_, Redis> {
    let start = Instant::now();
    loop {
        match pool.get().await {
            Ok(conn) => return conn,
            Err(CheckoutError::Connect(_)) if start.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the server is back, yet: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_real_connections_survives_a_redis_restart() {
    let mut server = RedisServer::start();
    let config = PoolConfig::new(4)
        .name("redis")
        .min_idle(2)
        .check(CheckPolicy::Always)
        .checkout_timeout(Some(Duration::from_secs(5)))
        .backoff(BackoffConfig::constant(Duration::from_millis(50)));
    let pool = Pool::start(Redis(server.addr()), config).await.unwrap();

    // Concurrent traffic: 8 tasks share 4 connections.
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let key = format!("k{t}-{i}");
                    let mut conn = pool.get().await.unwrap();
                    assert_eq!(conn.command(&["SET", &key, "v"]).await.unwrap(), "OK");
                    assert_eq!(conn.command(&["GET", &key]).await.unwrap(), "v");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let before = pool.metrics();
    assert!(before.size <= 4 && before.idle >= 2, "{before:?}");

    // A connection in use when the server dies: its user sees the error, and the connection
    // is discarded when it comes back.
    let mut in_use = pool.get().await.unwrap();
    server.stop();
    assert!(in_use.command(&["GET", "k0-0"]).await.is_err());
    drop(in_use);
    assert!(pool.metrics().closed.get(CloseReason::Broken) >= 1);

    // While the server is down: idle connections fail their PING and are discarded, then the
    // checkout gets the connect error itself, promptly.
    let start = Instant::now();
    let err = pool.get().await.map(|_| ()).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "not a checkout timeout"
    );
    let CheckoutError::Connect(connect) = &err else {
        panic!("expected the connect error, got {err}");
    };
    assert_eq!(
        connect.error().unwrap().kind(),
        io::ErrorKind::ConnectionRefused
    );
    assert_eq!(connect.target(), format!("redis://{}", server.addr()));
    let down = pool.metrics();
    assert!(down.closed.get(CloseReason::CheckFailed) >= 1, "{down:?}");
    assert_eq!(down.size, 0, "no dead connection is kept: {down:?}");

    // Back on the same port, empty: the pool reconnects.
    server.restart().unwrap();
    let mut conn = first_success(&pool, Duration::from_secs(5)).await;
    assert_eq!(conn.command(&["GET", "k0-0"]).await.unwrap(), "(nil)");
    assert_eq!(conn.command(&["SET", "after", "1"]).await.unwrap(), "OK");
    drop(conn);
    let after = pool.metrics();
    assert!(after.created > before.created);
    assert!(after.connect_failures >= 1);
    pool.close();
}
