//! Bytes per live pending request in the memory store, and whether memory comes
//! back after abandoned requests expire. Prints its numbers; asserts nothing.
//!
//! `cargo bench --bench memory`  (`DG_MEMORY_RECORDS` to change the 1,000,000)
//!
//! Two measures: the live heap bytes the process holds (an allocator wrapper
//! counts them exactly, so this one is free of noise) and the resident set size
//! from /proc (what the OS sees, allocator slack included).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use common::{World, block_on, rss_bytes};
use time::Duration;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same pointer and layout, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same pointer and layout, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

unsafe extern "C" {
    // glibc: returns free heap memory to the OS. Used only to show that what
    // RSS still holds after expiry is free allocator memory, not live records.
    fn malloc_trim(pad: usize) -> i32;
}

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed) as i64
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
        std::mem::size_of::<device_grant::DeviceAuthorization>(),
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
    // SAFETY: glibc's malloc_trim has no preconditions.
    unsafe { malloc_trim(0) };
    println!(
        "after malloc_trim(0): heap {:+.1} MiB, RSS {:+.1} MiB vs empty",
        mib(live() - heap0),
        mib(rss_bytes() as i64 - rss0)
    );
}
