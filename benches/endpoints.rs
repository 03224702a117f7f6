//! In-process cost of each endpoint through the public API, on the memory store,
//! at 1,000 / 100,000 / 1,000,000 live requests (`DG_BENCH_SIZES` to choose).
//!
//! `cargo bench --all-features --bench endpoints`
//!
//! Times are the benchmarking thread's CPU time (see `common::CpuTime`), except
//! in `threads_wall`, which is wall time: the scaling of two threads needs it.

mod common;

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, WallTime};

use common::{CpuTime, World, block_on, thread_cpu_time};
use criterion::{BenchmarkId, Criterion, Throughput};
use device_grant::store::LimiterKey;
use device_grant::{Clock, EndpointRequest, ScopeSet, Subject, UserCodePolicy, VerificationTicket};

// A batch of operations whose set-up (fresh requests) is done out of timing.
const BATCH: usize = 512;

fn per_size(c: &mut Criterion<CpuTime>, wall: &mut Criterion<WallTime>) {
    let mut g = c.benchmark_group("fixed");
    let policy = UserCodePolicy::default();
    g.bench_function("user_code_generate", |b| {
        b.iter(|| black_box(policy.generate()))
    });
    let clock = common::BenchClock::new();
    g.bench_function("bench_clock_now", |b| b.iter(|| black_box(clock.now())));
    g.bench_function("system_clock_now", |b| {
        b.iter(|| black_box(device_grant::SystemClock.now()))
    });
    g.finish();

    for count in common::sizes() {
        let world = World::new(count);
        let mut g = c.benchmark_group("endpoint");
        g.throughput(Throughput::Elements(1));

        // Each iteration adds a request; the benchmark's own requests are purged
        // (out of timing) before they outnumber the base by more than a quarter.
        g.bench_with_input(
            BenchmarkId::new("device_authorization", count),
            &world,
            |b, w| {
                let limit = (w.count / 4).max(BATCH);
                let mut added = 0;
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(BATCH as u64);
                        let start = thread_cpu_time();
                        for _ in 0..n {
                            black_box(w.authorize());
                        }
                        total += thread_cpu_time() - start;
                        left -= n;
                        added += n as usize;
                        if added >= limit {
                            w.purge_bench_records();
                            added = 0;
                        }
                    }
                    total
                })
            },
        );

        g.bench_with_input(BenchmarkId::new("poll_pending", count), &world, |b, w| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                let r = block_on(w.lenient.token(EndpointRequest::form(w.poll_body(i))));
                debug_assert!(matches!(
                    r,
                    Err(device_grant::OAuthError::AuthorizationPending)
                ));
                black_box(r)
            })
        });

        world.prime();
        g.bench_with_input(BenchmarkId::new("poll_slow_down", count), &world, |b, w| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                let r = block_on(w.strict.token(EndpointRequest::form(w.poll_body(i))));
                black_box(r)
            })
        });

        g.bench_with_input(
            BenchmarkId::new("verify_user_code", count),
            &world,
            |b, w| {
                let key = device_grant::CodeEntry::from_key(LimiterKey::new("bench-session"));
                let mut i = 0;
                b.iter(|| {
                    i += 1;
                    let r = block_on(w.strict.verify(w.typed_code(i), &key));
                    debug_assert!(r.is_ok());
                    black_box(r.is_ok())
                })
            },
        );

        g.bench_with_input(BenchmarkId::new("approve", count), &world, |b, w| {
            let key = device_grant::CodeEntry::from_key(LimiterKey::new("bench-session"));
            let scopes = ScopeSet::parse(common::SCOPE).expect("valid");
            let mut added = 0;
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH as u64) as usize;
                    let tickets: Vec<VerificationTicket> =
                        (0..n).map(|_| w.pending_with_ticket(&key).1).collect();
                    let start = thread_cpu_time();
                    for t in &tickets {
                        let r = block_on(w.strict.approve(
                            t,
                            device_grant::Approve::scopes(
                                Subject::new("alice"),
                                None,
                                scopes.clone(),
                            ),
                        ));
                        debug_assert!(r.is_ok());
                        black_box(r.is_ok());
                    }
                    total += thread_cpu_time() - start;
                    left -= n as u64;
                    added += n;
                    if added >= (w.count / 4).max(BATCH) {
                        w.purge_bench_records();
                        added = 0;
                    }
                }
                total
            })
        });

        g.bench_with_input(BenchmarkId::new("redeem", count), &world, |b, w| {
            let key = device_grant::CodeEntry::from_key(LimiterKey::new("bench-session"));
            let scopes = ScopeSet::parse(common::SCOPE).expect("valid");
            let mut added = 0;
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH as u64) as usize;
                    let polls: Vec<String> = (0..n)
                        .map(|_| {
                            let (poll, ticket) = w.pending_with_ticket(&key);
                            block_on(w.strict.approve(
                                &ticket,
                                device_grant::Approve::scopes(
                                    Subject::new("alice"),
                                    None,
                                    scopes.clone(),
                                ),
                            ))
                            .expect("approve");
                            poll
                        })
                        .collect();
                    let start = thread_cpu_time();
                    for p in &polls {
                        let r = block_on(w.strict.token(EndpointRequest::form(p.as_bytes())));
                        debug_assert!(r.is_ok());
                        black_box(r.is_ok());
                    }
                    total += thread_cpu_time() - start;
                    left -= n as u64;
                    added += n;
                    if added >= (w.count / 4).max(BATCH) {
                        w.purge_bench_records();
                        added = 0;
                    }
                }
                total
            })
        });
        g.finish();

        threads(c, "threads_cpu", &world, true);
        threads(wall, "threads_wall", &world, false);
    }
}

/// Pending polls on distinct codes from one and from two threads, measured the
/// same way (threads started per sample, timed from a barrier), so the ratio of
/// the two is the scaling. One iteration = one poll per thread. `cpu`: the sum of
/// the threads' CPU time (contention shows as more CPU per poll); else wall time
/// (needs two idle cores to mean anything).
fn threads<M: Measurement<Value = Duration>>(
    c: &mut Criterion<M>,
    name: &str,
    world: &World,
    cpu: bool,
) {
    let mut g = c.benchmark_group(name);
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_with_input(
            BenchmarkId::new(format!("poll_pending_x{threads}"), world.count),
            world,
            |b, w| {
                b.iter_custom(|iters| {
                    let barrier = Barrier::new(threads + 1);
                    std::thread::scope(|s| {
                        let workers: Vec<_> = (0..threads)
                            .map(|t| {
                                let barrier = &barrier;
                                s.spawn(move || {
                                    barrier.wait();
                                    let start = thread_cpu_time();
                                    for k in 0..iters as usize {
                                        // Thread t polls codes t, t+2, t+4…: never the same one.
                                        let i = t + 2 * k;
                                        black_box(block_on(
                                            w.lenient.token(EndpointRequest::form(w.poll_body(i))),
                                        ))
                                        .ok();
                                    }
                                    let spent = thread_cpu_time() - start;
                                    barrier.wait();
                                    spent
                                })
                            })
                            .collect();
                        barrier.wait();
                        let start = Instant::now();
                        barrier.wait();
                        let elapsed = start.elapsed();
                        let spent: Duration =
                            workers.into_iter().map(|h| h.join().expect("worker")).sum();
                        if cpu { spent } else { elapsed }
                    })
                })
            },
        );
    }
    g.finish();
}

fn main() {
    let config = |c: Criterion<CpuTime>| {
        c.sample_size(30)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .configure_from_args()
    };
    let mut cpu = config(Criterion::default().with_measurement(CpuTime));
    let mut wall = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    per_size(&mut cpu, &mut wall);
    cpu.final_summary();
}
