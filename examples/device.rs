//! `cargo run --example device`: the example device, whose code is in
//! `examples/device/` (its own package).

fn main() -> std::process::ExitCode {
    device_grant_example_device::cli::main()
}
