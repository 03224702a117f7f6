//! Latency of single operations while the memory store grows from 0 to 1,000,000
//! live requests: p50, p99, p99.9 and max. Prints its numbers; asserts nothing.
//!
//! `cargo bench --bench stalls`  (`DG_STALL_RECORDS` to change the 1,000,000)
//!
//! One thread adds requests through `device_authorization` (the growth), timing
//! each; a second thread polls a fixed set of pending requests meanwhile, timing
//! each poll, so a pause of a shard while it grows shows in both. A control
//! (one SHA-256, no store) is timed on the growing thread between operations:
//! its max is what the machine itself adds (preemption by other processes), the
//! floor under which no store can push its max. The growing thread also records
//! each operation's CPU time: a pause of the store's own making (a table
//! growing, a sweep) is CPU work and shows there, while preemption by other
//! processes does not.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use common::{World, block_on, thread_cpu_time};
use device_grant::{DeviceCode, EndpointRequest};

fn report(name: &str, mut ns: Vec<u32>) {
    ns.sort_unstable();
    let q = |p: f64| ns[((ns.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    let over_1ms = ns.iter().filter(|&&v| v > 1_000_000).count();
    println!(
        "{name:<22} n={:>8}  p50 {:>7.2} µs  p99 {:>7.2} µs  p99.9 {:>8.2} µs  max {:>9.1} µs  >1 ms: {over_1ms}",
        ns.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n: usize = std::env::var("DG_STALL_RECORDS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    // 1,024 requests for the poller; the growth starts from there.
    let world = World::new(1024);
    let done = AtomicBool::new(false);
    let code = DeviceCode::generate();
    let (grow, grow_cpu, control, polls) = std::thread::scope(|s| {
        let poller = s.spawn(|| {
            let mut lat = Vec::with_capacity(4 << 20);
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                i += 1;
                let body = world.poll_body(i);
                let start = Instant::now();
                let r = block_on(world.lenient.token(EndpointRequest::form(body)));
                lat.push(start.elapsed().as_nanos() as u32);
                black_box(r).ok();
            }
            lat
        });
        let mut grow = Vec::with_capacity(n);
        let mut grow_cpu = Vec::with_capacity(n);
        let mut control = Vec::with_capacity(n / 16 + 1);
        for k in 0..n {
            let cpu = thread_cpu_time();
            let start = Instant::now();
            let r = world.authorize();
            grow.push(start.elapsed().as_nanos() as u32);
            grow_cpu.push((thread_cpu_time() - cpu).as_nanos() as u32);
            black_box(r);
            if k % 16 == 0 {
                let start = Instant::now();
                black_box(black_box(&code).hash());
                control.push(start.elapsed().as_nanos() as u32);
            }
        }
        done.store(true, Ordering::Relaxed);
        (grow, grow_cpu, control, poller.join().expect("poller"))
    });
    println!(
        "grew the memory store from 1,024 to {} live requests",
        world.store.len()
    );
    report("device_authorization", grow);
    report("  same, CPU time", grow_cpu);
    report("poll (other thread)", polls);
    report("control: one SHA-256", control);
}
