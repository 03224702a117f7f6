//! A device-flow authorization server: the crate wired to axum, with sign-in,
//! consent, tokens and a protected API.
//!
//! ```text
//! cargo run --release --example server -- [--addr 127.0.0.1:8080] [--issuer URL]
//!     [--expires-in SECS] [--interval SECS] [--store memory|redis://…|postgres://…]
//!     [--rate-limits on|off] [--client-address peer|x-forwarded-for]
//!     [--log-format text|json]
//! ```
//!
//! Then run the device side (`cargo run --example device`) and open the page it
//! shows. Sign in as alice / wonderland or bob / builder.
//!
//! Several instances share the device grant through one Redis or PostgreSQL
//! (`--store redis://…`, `--store postgres://…`) and one user-code key, given to every instance as 64
//! hex digits in `DEVICE_GRANT_USER_CODE_KEY`. Each instance keeps its own
//! sessions, tokens and signing key.

// A server answering a poll allocates and frees the same few small objects
// over and over; mimalloc's per-thread free lists serve that better than
// glibc's malloc (benches/README.md has the numbers).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    device_grant_example_server::cli::main()
}
