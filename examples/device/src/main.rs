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

fn main() -> std::process::ExitCode {
    device_grant_example_device::cli::main()
}
