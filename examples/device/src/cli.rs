//! The command line of the example device.

use std::process::ExitCode;

const USAGE: &str =
    "usage: device [--server URL] [--client ID] [--secret SECRET] [--scope \"A B\"]";

fn parse_args() -> Result<crate::Options, String> {
    let mut options = crate::Options {
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

/// Parses the command line and runs the flow, printing what the person needs.
#[tokio::main]
pub async fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    match crate::run(&options, &mut std::io::stdout()).await {
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
