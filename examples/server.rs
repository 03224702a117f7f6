//! `cargo run --example server`: the example authorization server, whose
//! code, templates and tests are in `examples/server/` (its own package).

// As the server's own binary: see examples/server/src/main.rs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    device_grant_example_server::cli::main()
}
