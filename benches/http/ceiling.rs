//! The ceiling of the HTTP load benchmark (`benches/http/run.sh`): the least an
//! axum server can do for a request, against which the example server's
//! `POST /device_authorization` and `POST /token` are compared.
//!
//! ```text
//! cargo run --release --example http-ceiling -- --addr 127.0.0.1:0 \
//!     --route /token=400=FILE [--route PATH=STATUS=FILE …]
//! ```
//!
//! Each `--route` answers `POST PATH` with `STATUS` and the bytes of `FILE` (the
//! script saves a real response of the example server there, so the sizes
//! match). Kept as close to the example server as a fixed answer allows: the same
//! axum with the same features (the dev-dependency), `#[tokio::main]` (the
//! multi-threaded runtime with its default worker count), `axum::serve` with
//! connect info, the request body read in full, and the same response headers:
//! `Content-Type`, `Cache-Control` and `Pragma` as the crate sends, and the four
//! security headers the example server adds to every response. It prints
//! `listening on http://ADDR` as the example server does.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

const USAGE: &str = "usage: http-ceiling [--addr 127.0.0.1:0] --route PATH=STATUS=FILE …";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut router = Router::new();
    let mut routes = 0;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--addr" => {
                addr = value
                    .parse()
                    .map_err(|_| format!("--addr: got `{value}`"))?
            }
            "--route" => {
                let mut parts = value.splitn(3, '=');
                let (Some(path), Some(status), Some(file)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(format!("--route: expected PATH=STATUS=FILE, got `{value}`"));
                };
                let status = status
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .ok_or_else(|| format!("--route: bad status in `{value}`"))?;
                let body = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
                router = router.route(path, post(fixed(status, Bytes::from(body))));
                routes += 1;
            }
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if routes == 0 {
        return Err(USAGE.to_owned());
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on http://{addr}");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .map_err(|e| format!("server failed: {e}"))
}

/// A handler that reads the request body and answers `status` and `body` with
/// the example server's headers.
fn fixed(
    status: StatusCode,
    body: Bytes,
) -> impl Fn(Bytes) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    let mut headers = HeaderMap::new();
    let statics = [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in statics {
        headers.insert(name, HeaderValue::from_static(value));
    }
    move |_request: Bytes| {
        std::future::ready((status, headers.clone(), body.clone()).into_response())
    }
}
