//! What the adapter tests share: finding the servers the setup script started.
#![allow(dead_code)]
// Shared by several test binaries: `pub` for them, not for a public API.
#![allow(unreachable_pub)]

pub mod scenarios;

/// The URL in `var`, or `None` when the developer explicitly asked to skip
/// tests that need servers (`DEVICE_GRANT_SKIP_SERVICES=1`). A missing
/// variable otherwise fails the test: CI must never skip these silently.
pub fn service_url(var: &str) -> Option<String> {
    if std::env::var("DEVICE_GRANT_SKIP_SERVICES").as_deref() == Ok("1") {
        eprintln!("DEVICE_GRANT_SKIP_SERVICES=1: skipping a test that needs {var}");
        return None;
    }
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => panic!(
            "{var} is not set: run the tests through `bash scripts/test` (which starts the \
             servers), or set DEVICE_GRANT_SKIP_SERVICES=1 to skip tests that need them"
        ),
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{:x}_{}", std::process::id(), nanos, rand_u32())
}

fn rand_u32() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const FORWARD: u8 = 0;
const DROP_REPLIES: u8 = 1;
const REFUSE: u8 = 2;

/// A TCP proxy on loopback between an adapter and its real server, so that a
/// test can break the connection (as a dying server would) without stopping
/// the server that other tests share.
pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    conns: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let conns: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (mode, conns) = (mode.clone(), conns.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    if mode.load(Ordering::SeqCst) == REFUSE {
                        drop(client); // as a dead server's port: closed at once
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(&target).await else {
                        continue;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = tokio::spawn(pipe(cr, sw, mode.clone(), false));
                    let down = tokio::spawn(pipe(sr, cw, mode.clone(), true));
                    let mut conns = conns.lock().unwrap();
                    conns.push(up);
                    conns.push(down);
                }
            })
        };
        Self {
            port,
            mode,
            conns,
            accept,
        }
    }

    /// Every open connection breaks and new ones are closed at once: the
    /// server is gone.
    pub fn cut(&self) {
        self.mode.store(REFUSE, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// [`cut`](Self::cut), returning once no byte can pass any more: an
    /// aborted forwarding task may still be in the middle of a write until it
    /// has stopped.
    pub async fn cut_and_wait(&self) {
        self.mode.store(REFUSE, Ordering::SeqCst);
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for c in &conns {
            c.abort();
        }
        for c in conns {
            let _ = c.await;
        }
    }

    /// Requests still reach the server, but no reply comes back: a server that
    /// applied a write and then hung, or a network that died after it.
    pub fn drop_replies(&self) {
        self.mode.store(DROP_REPLIES, Ordering::SeqCst);
    }

    /// Back to normal, on fresh connections (the old ones may be mid-reply).
    pub fn restore(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
        self.mode.store(FORWARD, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: Arc<AtomicU8>,
    replies: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if replies && mode.load(Ordering::SeqCst) == DROP_REPLIES {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `url` with its `host:port` replaced by the proxy's.
pub fn via_proxy(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (userinfo, hostpath) = match rest.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let path = hostpath.find('/').map_or("", |i| &hostpath[i..]);
    format!("{scheme}://{userinfo}127.0.0.1:{port}{path}")
}

/// The `host:port` of a URL.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").expect("a URL with a scheme").1;
    let hostpath = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    hostpath.split('/').next().unwrap().to_owned()
}
