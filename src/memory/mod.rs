//! The embedded default backends: a sharded in-memory store and attempt limiter.
//! They serve one process; several instances need a shared store (Redis, PostgreSQL).

mod limiter;
mod store;

pub use limiter::MemoryLimiter;
pub use store::MemoryStore;

use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for keys that are already uniform hashes (SHA-256, HMAC): it passes
/// their first eight bytes through. Attackers cannot choose such keys' values for
/// stored records, so there is nothing to flood.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-hash keys; fold the bytes in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type PassThroughMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<PassThrough>>;
