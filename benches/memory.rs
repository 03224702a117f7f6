//! Bytes per live pending request in the memory store, and whether memory comes
//! back after abandoned requests expire. Prints its numbers; asserts nothing.
//!
//! `cargo bench --bench memory`  (`DG_MEMORY_RECORDS` to change the 1,000,000)
//!
//! Two measures: the live heap bytes the process holds (an allocator wrapper
//! counts them exactly, so this one is free of noise) and the resident set size
//! from /proc (what the OS sees, allocator slack included).

mod common;

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

use common::{World, block_on, rss_bytes};
use time::Duration;

// Counts every allocation, so that bytes per record are exact, not RSS noise.
#[global_allocator]
static ALLOC: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes in use now.
fn live() -> i64 {
    let s = ALLOC.stats();
    // stats_alloc already books a realloc's growth and shrinkage in these two.
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

fn mib(b: i64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `--list` probes: nothing to list.
    }
    let n: usize = std::env::var("DG_MEMORY_RECORDS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);

    // An empty world: a grant, an empty store, no pool of codes kept.
    let world = World::new(0);
    world.clock.set(Duration::ZERO);
    let (heap0, rss0) = (live(), rss_bytes() as i64);
    for _ in 0..n {
        // Each response (with the secret codes) is dropped at once: only the
        // store keeps anything.
        drop(world.authorize());
    }
    let (heap1, rss1) = (live(), rss_bytes() as i64);
    assert_eq!(world.store.len(), n);
    println!("records: {n}");
    println!(
        "live pending request: {:.0} heap bytes/record, {:.0} RSS bytes/record (heap +{:.1} MiB, RSS +{:.1} MiB)",
        (heap1 - heap0) as f64 / n as f64,
        (rss1 - rss0) as f64 / n as f64,
        mib(heap1 - heap0),
        mib(rss1 - rss0),
    );
    println!(
        "size_of::<DeviceAuthorization>() = {}, size_of::<RequestDetails>() = {}",
        std::mem::size_of::<device_grant::store::DeviceAuthorization>(),
        std::mem::size_of::<device_grant::RequestDetails>()
    );

    // Everything expires; the next inserts sweep it out (the store sweeps each
    // shard on an insert at most once a minute, no background task).
    let round = (n / 10).max(1);
    let mut at = Duration::hours(2);
    let sweep = |at: Duration| {
        world.clock.set(at);
        // One insert per shard's worth of traffic triggers the self-sweep;
        // purge_expired does the same for every shard at once.
        block_on(world.strict.purge_expired()).expect("purge");
    };
    sweep(at);
    let (heap2, rss2) = (live(), rss_bytes() as i64);
    println!(
        "after all {n} expired and were swept: heap {:+.1} MiB, RSS {:+.1} MiB vs empty",
        mib(heap2 - heap0),
        mib(rss2 - rss0)
    );

    // Ten rounds of `round` abandoned requests, each expiring before the next.
    for r in 1..=10 {
        world.clock.set(at);
        for _ in 0..round {
            drop(world.authorize());
        }
        let (heap_full, rss_full) = (live(), rss_bytes() as i64);
        at += Duration::hours(2);
        sweep(at);
        println!(
            "round {r:2}: {round} abandoned: heap {:+.1} MiB / RSS {:+.1} MiB while live; after expiry heap {:+.1} MiB / RSS {:+.1} MiB; store holds {}",
            mib(heap_full - heap0),
            mib(rss_full - rss0),
            mib(live() - heap0),
            mib(rss_bytes() as i64 - rss0),
            world.store.len()
        );
    }
    // RSS keeps the freed pages for the allocator to reuse: it holds flat over
    // the rounds rather than growing, while the live heap returns to zero.
}
