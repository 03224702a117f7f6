//! Connections to the example server: idle, trickled-header and slow-body
//! connections are closed by hyper's and tower-http's timeouts, the number of
//! connections is capped, and the server keeps serving others meanwhile.

mod support;

use std::time::Duration;

use support::Server;
use support::browser::Browser;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn short(o: &mut support::app::Options) {
    o.connections.header_read = Duration::from_secs(1);
    o.connections.request_body = Duration::from_secs(1);
    o.connections.request = Duration::from_secs(2);
}

/// Reads until the server closes the connection; whether it did within `within`.
async fn closed_by_server(mut stream: TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Writes `bytes` one at a time, `every` apart, until the server hangs up.
fn trickle(mut write: tokio::net::tcp::OwnedWriteHalf, bytes: Vec<u8>, every: Duration) {
    tokio::spawn(async move {
        for byte in bytes {
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
        // Then silence, the connection held open.
        std::future::pending::<()>().await;
        drop(write);
    });
}

#[tokio::test]
async fn idle_trickling_and_slow_body_connections_are_closed() {
    let server = Server::start(short).await;
    let mut readers = Vec::new();
    for kind in 0..45 {
        let stream = TcpStream::connect(server.addr()).await.unwrap();
        let (read, write) = stream.into_split();
        match kind % 3 {
            // Idle: connects and says nothing.
            0 => std::mem::forget(write),
            // Trickled headers: a byte every 200 ms, never ending the head.
            1 => trickle(
                write,
                b"GET /device HTTP/1.1\r\nHost: x\r\nX-Slow: "
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(b'a', 10_000))
                    .collect(),
                Duration::from_millis(200),
            ),
            // A slow body: the head at once, then a byte every 200 ms.
            _ => {
                let mut bytes = b"POST /device HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n".to_vec();
                let head = bytes.len();
                bytes.extend(std::iter::repeat_n(b'a', 5_000));
                let mut write = write;
                write.write_all(&bytes[..head]).await.unwrap();
                trickle(write, bytes[head..].to_vec(), Duration::from_millis(200));
            }
        }
        readers.push(read);
    }
    // All waited on at once, for 20 s at most.
    let waits = readers
        .into_iter()
        .map(|read| tokio::spawn(closed_by_half(read, Duration::from_secs(20))));
    let mut closed = 0;
    for wait in waits.collect::<Vec<_>>() {
        if wait.await.unwrap() {
            closed += 1;
        }
    }
    assert_eq!(closed, 45, "{closed} of 45 slow connections were closed");
}

async fn closed_by_half(mut read: tokio::net::tcp::OwnedReadHalf, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn with_300_slow_connections_open_a_new_client_is_served() {
    let server = Server::start(|_| {}).await;
    let mut slow = Vec::new();
    for i in 0..300 {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        if i % 2 == 0 {
            // Half of them in the middle of a head.
            stream
                .write_all(b"GET /device HTTP/1.1\r\nHo")
                .await
                .unwrap();
        }
        slow.push(stream);
    }
    let page = Browser::new().get(&server.url("/device")).await;
    assert_eq!(page.status, 200);
    assert!(page.contains("Connect a device"));
    drop(slow);
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once_and_the_cap_frees_up() {
    let server = Server::start(|o| {
        short(o);
        o.connections.max = 50;
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    // The backlog is first in, first out: the server accepts these fifty
    // before the next one.
    // One over the cap: hung up on without an answer, not left waiting.
    let mut over = TcpStream::connect(server.addr()).await.unwrap();
    over.write_all(b"GET /device HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), over.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection over the cap was left open");
    assert!(
        answer.is_empty(),
        "served over the cap: {}",
        String::from_utf8_lossy(&answer)
    );
    // The silent ones are closed by the header timeout, and the cap frees up.
    let waits: Vec<_> = silent
        .into_iter()
        .map(|stream| tokio::spawn(closed_by_server(stream, Duration::from_secs(20))))
        .collect();
    for wait in waits {
        assert!(wait.await.unwrap(), "a silent connection was left open");
    }
    let page = Browser::new().get(&server.url("/device")).await;
    assert_eq!(page.status, 200);
}

#[tokio::test]
async fn clients_that_never_read_their_answers_are_closed_and_the_cap_frees_up() {
    let server = Server::start(|o| {
        short(o);
        o.connections.response_write = Duration::from_secs(1);
        o.connections.max = 4;
    })
    .await;
    // Each fills every slot with pipelined requests for a page, through a
    // small receive window it never reads: the server's writes stall once
    // the buffers between them are full.
    let request = b"GET /device HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4000);
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(server.addr()).await.unwrap();
        let (read, mut write) = stream.into_split();
        let request = request.clone();
        tokio::spawn(async move {
            // The server stops reading while it cannot write: this may never end.
            let _ = write.write_all(&request).await;
            std::future::pending::<()>().await;
            drop(write);
        });
        stalled.push(read);
    }
    // Longer than every other timeout: only a limit on writing frees them.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let page = tokio::time::timeout(
        Duration::from_secs(20),
        reqwest::Client::new().get(server.url("/device")).send(),
    )
    .await
    .expect("no answer")
    .expect("the new client was turned away");
    assert_eq!(page.status(), 200);
    drop(stalled);
}
