//! A device-flow authorization server: the crate wired to axum, with sign-in,
//! consent, tokens and a protected API.
//!
//! ```text
//! cargo run --release --example server -- [--addr 127.0.0.1:8080] [--issuer URL]
//!     [--expires-in SECS] [--interval SECS] [--store memory]
//! ```
//!
//! Then run the device side (`cargo run --example device`) and open the page it
//! shows. Sign in as alice / wonderland or bob / builder.

mod app;

use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: server [--addr 127.0.0.1:8080] [--issuer URL] \
                     [--expires-in SECS] [--interval SECS] [--store memory]";

struct Args {
    addr: SocketAddr,
    issuer: Option<String>,
    expires_in: i64,
    interval: u32,
    store: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        issuer: None,
        expires_in: 600,
        interval: 5,
        store: "memory".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |what: &str| format!("{flag}: {what}, got `{value}`");
        match flag.as_str() {
            "--addr" => args.addr = value.parse().map_err(|_| bad("expected HOST:PORT"))?,
            "--issuer" => args.issuer = Some(value),
            "--expires-in" => {
                args.expires_in = value.parse().map_err(|_| bad("expected seconds"))?
            }
            "--interval" => args.interval = value.parse().map_err(|_| bad("expected seconds"))?,
            "--store" => args.store = value,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(args)
}

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
    let args = parse_args()?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // The issuer is where people and devices reach this server; behind a proxy
    // or on another host it differs from the listening address.
    let issuer = args.issuer.unwrap_or_else(|| format!("http://{addr}"));

    let mut options = app::Options::new(issuer.clone());
    options.expires_in = time::Duration::seconds(args.expires_in);
    options.interval = args.interval;
    options.store = app::open_store(&args.store).map_err(|e| e.to_string())?;
    let router = app::router(options).map_err(|e| format!("cannot start: {e}"))?;

    println!("listening on http://{addr}");
    println!("  verification page: {issuer}/device");
    println!("  metadata:          {issuer}/.well-known/oauth-authorization-server");
    println!("  demo users:        alice / wonderland, bob / builder");
    app::serve(listener, router)
        .await
        .map_err(|e| format!("server failed: {e}"))
}
