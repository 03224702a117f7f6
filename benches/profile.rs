//! A fixed workload for instruction-level profiling (noise-free, unlike timing):
//!
//! `valgrind --tool=callgrind --toggle-collect='*profile::run*' target/release/deps/profile-* pending 100000`
//!
//! Operations: `pending`, `slow_down`, `authorize`, `verify`. Prints nothing but
//! the count; asserts nothing.

mod common;

use std::hint::black_box;

use common::{World, block_on};
use device_grant::EndpointRequest;
use device_grant::store::LimiterKey;

#[inline(never)]
fn run(world: &World, op: &str, n: usize) {
    let key = device_grant::CodeEntry::from_key(LimiterKey::new("profile"));
    for i in 0..n {
        match op {
            "pending" => {
                black_box(block_on(
                    world
                        .lenient
                        .token(EndpointRequest::form(world.poll_body(i))),
                ))
                .ok();
            }
            "slow_down" => {
                black_box(block_on(
                    world
                        .strict
                        .token(EndpointRequest::form(world.poll_body(i))),
                ))
                .ok();
            }
            "authorize" => {
                black_box(world.authorize());
            }
            "verify" => {
                black_box(block_on(world.strict.verify(world.typed_code(i), &key))).ok();
            }
            other => panic!("unknown operation {other}"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args
        .iter()
        .any(|a| a == "--list" || a == "--test" || a == "--bench")
    {
        return;
    }
    let op = args.get(1).map(String::as_str).unwrap_or("pending");
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let world = World::new(1000);
    if op == "slow_down" {
        world.prime();
    }
    run(&world, op, n);
    println!("{op}: {n}");
}
