//! The request dialect as Redis speaks it, over a real socket: one test per behaviour of
//! Redis's `protocol` unit that kv once answered differently.
#![allow(clippy::unwrap_used)]

mod kv_support;

use beamline::resp::Value;
use kv_support::{Conn, bulk, exchange, start};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_negative_multibulk_count_is_ignored_and_the_next_command_answered() {
    let kv = start();
    let mut conn = Conn::connect(kv.local_addr()).await;
    conn.send_raw(b"*-10\r\n").await;
    assert_eq!(conn.call(&["PING"]).await, Value::simple("PONG"));
    conn.send_raw(b"*-1\r\n*0\r\nECHO again\r\n").await;
    assert_eq!(conn.recv().await, bulk("again"));
}

#[tokio::test]
async fn an_out_of_range_multibulk_count_gets_redis_words_and_closes() {
    let kv = start();
    for header in ["*3000000000\r\n", "*2147483648\r\n", "*1x\r\n"] {
        assert_eq!(
            exchange(kv.local_addr(), header.as_bytes()).await,
            b"-ERR Protocol error: invalid multibulk length\r\n",
            "{header:?}"
        );
    }
    // INT_MAX itself is a valid count: nothing is allocated for it up front, and the
    // connection waits for its arguments (here: one, then a second request).
    let mut conn = Conn::connect(kv.local_addr()).await;
    conn.send_raw(b"*2147483647\r\n$4\r\nPING\r\n").await;
    drop(conn);
    assert_eq!(kv.server().stats().panicked, 0);
}

#[tokio::test]
async fn bulk_headers_get_redis_words() {
    let kv = start();
    for (input, error) in [
        (&b"*1\r\n$-10\r\n"[..], "invalid bulk length"),
        (b"*1\r\n$2000000000\r\n", "invalid bulk length"),
        (b"*1\r\n$blabla\r\n", "invalid bulk length"),
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
            "expected '$', got 'f'",
        ),
    ] {
        let reply = exchange(kv.local_addr(), input).await;
        assert_eq!(
            String::from_utf8_lossy(&reply),
            format!("-ERR Protocol error: {error}\r\n"),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[tokio::test]
async fn inline_commands_honour_quotes_and_backslash_escapes() {
    let kv = start();
    let mut conn = Conn::connect(kv.local_addr()).await;
    conn.send_raw(b"SET \"a key\" 'it\\'s'\r\n").await;
    assert_eq!(conn.recv().await, Value::simple("OK"));
    conn.send_raw(b"GET \"a key\"\r\n").await;
    assert_eq!(conn.recv().await, bulk("it's"));
    // Double quotes take C escapes and \xHH; single quotes only \'.
    conn.send_raw(b"ECHO \"\\x41\\tb\\n\\\"\"\r\n").await;
    assert_eq!(conn.recv().await, bulk("A\tb\n\""));
    conn.send_raw(b"ECHO 'a\\nb'\r\n").await;
    assert_eq!(conn.recv().await, bulk("a\\nb"));
    // Blanks between arguments are any run of spaces and tabs.
    conn.send_raw(b"  ECHO \t  \"\"  \r\n").await;
    assert_eq!(conn.recv().await, bulk(""));
}

#[tokio::test]
async fn unbalanced_quotes_get_redis_words_and_close() {
    let kv = start();
    // An unterminated quote, and a closing quote not followed by a blank.
    for line in ["ECHO \"abc\r\n", "ECHO 'abc\r\n", "ECHO \"a\"b\r\n"] {
        assert_eq!(
            exchange(kv.local_addr(), line.as_bytes()).await,
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
            "{line:?}"
        );
    }
    let mut bystander = Conn::over(TcpStream::connect(kv.local_addr()).await.unwrap());
    assert_eq!(bystander.call(&["PING"]).await, Value::simple("PONG"));
}
