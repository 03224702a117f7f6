//! The raw `MemoryStore` operations, without the endpoints around them, at
//! 1,000 / 100,000 / 1,000,000 records (`DG_BENCH_SIZES` to choose).
//!
//! `cargo bench --all-features --bench store`  (times are thread CPU time)

mod common;

use std::hint::black_box;
use std::time::Duration as StdDuration;

use common::{CpuTime, block_on, thread_cpu_time};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use device_grant::store::{DeviceAuthorization, DeviceCodeHash, Store, UserCodeHash};
use device_grant::{
    AuthorizationId, ClientId, DeviceCode, Interval, MemoryStore, RequestContext, RequestDetails,
    ScopeSet,
};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(common::T0_NS)).expect("in range")
}

fn hash(domain: u8, i: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([domain]);
    h.update(i.to_le_bytes());
    h.finalize().into()
}

fn record(i: u64, now: OffsetDateTime) -> DeviceAuthorization {
    DeviceAuthorization::new(
        AuthorizationId::from_bytes([0; 16]),
        DeviceCodeHash::from_bytes(hash(0, i)),
        UserCodeHash::from_bytes(hash(1, i)),
        RequestDetails {
            client_id: ClientId::new(common::CLIENT),
            scopes: ScopeSet::parse(common::SCOPE).expect("valid"),
            created_at: now,
            expires_at: now + Duration::minutes(30),
            context: RequestContext::default(),
            code_challenge: None,
            authorization_details: None,
            dpop_jkt: None,
        },
        Interval::DEFAULT,
        Duration::minutes(10),
    )
}

fn store_ops(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("hash");
    let code = DeviceCode::generate();
    g.bench_function("sha256_device_code", |b| {
        b.iter(|| black_box(black_box(&code).hash()))
    });
    g.finish();

    let now = t0();
    for count in common::sizes() {
        let store = MemoryStore::new();
        let records: Vec<DeviceAuthorization> = (0..count as u64).map(|i| record(i, now)).collect();
        for r in &records {
            block_on(store.insert(r, now)).expect("insert");
        }
        let mut g = c.benchmark_group("store");
        g.bench_with_input(
            BenchmarkId::new("by_device_code", count),
            &records,
            |b, rs| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % rs.len();
                    black_box(block_on(store.by_device_code(&rs[i].device_code_hash)))
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("by_user_code", count),
            &records,
            |b, rs| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % rs.len();
                    black_box(block_on(store.by_user_code(&rs[i].user_code_hash, now)))
                })
            },
        );
        // Read, then write the successor: what a pending poll does to the store.
        g.bench_with_input(
            BenchmarkId::new("get_and_compare_and_set", count),
            &records,
            |b, rs| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % rs.len();
                    let r = block_on(store.by_device_code(&rs[i].device_code_hash))
                        .expect("ok")
                        .expect("found");
                    let mut next = r.clone();
                    next.version += 1;
                    next.last_poll = Some(now);
                    black_box(block_on(store.compare_and_set(r.version, &next)).expect("ok"))
                })
            },
        );
        // Inserts of new records; purged out of timing every `count / 4` (at
        // least 512) so the store stays near its size.
        g.bench_with_input(BenchmarkId::new("insert", count), &count, |b, &count| {
            let mut next = count as u64;
            b.iter_custom(|iters| {
                let mut total = StdDuration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min((count as u64 / 4).max(512));
                    // Inserted far ahead of the base so a purge removes only these.
                    let batch: Vec<DeviceAuthorization> = (next..next + n)
                        .map(|i| record(i, now - Duration::hours(1)))
                        .collect();
                    next += n;
                    let start = thread_cpu_time();
                    for r in &batch {
                        black_box(block_on(store.insert(r, now)).expect("insert"));
                    }
                    total += thread_cpu_time() - start;
                    left -= n;
                    block_on(store.purge_expired(now)).expect("purge");
                }
                total
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(CpuTime)
        .sample_size(30)
        .warm_up_time(StdDuration::from_millis(500))
        .measurement_time(StdDuration::from_secs(2));
    targets = store_ops
}
criterion_main!(benches);
