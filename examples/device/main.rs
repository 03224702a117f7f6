//! The device side of the flow: a TV, a printer, a CLI without a keyboard
//! worth typing a password on.
//!
//! ```text
//! cargo run --example device -- --server http://127.0.0.1:8080 --client tv-app \
//!     --scope "profile offline_access" [--secret SECRET]
//! ```
//!
//! It asks the server for codes, shows where to go and the code (and a QR code
//! of the link with the code in it), polls until the person answers, then calls
//! the API as them.

mod flow;

use std::process::ExitCode;

const USAGE: &str =
    "usage: device [--server URL] [--client ID] [--secret SECRET] [--scope \"A B\"]";

fn parse_args() -> Result<flow::Options, String> {
    let mut options = flow::Options {
        server: "http://127.0.0.1:8080".to_owned(),
        client_id: "tv-app".to_owned(),
        client_secret: None,
        scope: Some("profile offline_access".to_owned()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--server" => options.server = value.trim_end_matches('/').to_owned(),
            "--client" => options.client_id = value,
            "--secret" => options.client_secret = Some(value),
            "--scope" => options.scope = Some(value).filter(|s| !s.is_empty()),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    match flow::run(&options, &mut std::io::stdout()).await {
        Ok(me) => {
            println!(
                "\nSigned in. Acting for {} (client {}, scope \"{}\").",
                me.sub, me.client_id, me.scope
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("\n{error}");
            ExitCode::FAILURE
        }
    }
}
