use std::sync::{Mutex, MutexGuard};

use time::{Duration, OffsetDateTime};

use super::PassThroughMap;
use crate::host::store::{Inserted, Store};
use crate::protocol::authorization::DeviceAuthorization;
use crate::protocol::device_code::DeviceCodeHash;
use crate::protocol::error::BackendError;
use crate::protocol::user_code::UserCodeHash;

// A power of two. Many shards keep lock contention small, and the pause of one
// shard's table growing too: at 1,000,000 records a shard holds ~4,000, and its
// table (40-byte slots) is copied in well under a millisecond.
const SHARDS: usize = 256;

/// A record's key: the SHA-256 of its device code, compared as plain bytes.
/// `DeviceCodeHash`'s own comparison is constant-time, which a map probing on a
/// digest does not need: the bytes an attacker could learn the timing of are
/// those of a SHA-256 output, and they reveal nothing about a code.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key([u8; 32]);

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(prefix(&self.0));
    }
}

fn prefix(hash: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(first)
}

struct Shard<K, V> {
    map: PassThroughMap<K, V>,
    next_sweep: Option<OffsetDateTime>,
}

impl<K, V> Default for Shard<K, V> {
    fn default() -> Self {
        Self {
            map: PassThroughMap::default(),
            next_sweep: None,
        }
    }
}

impl<K, V> Shard<K, V> {
    /// Whether it is time to sweep this shard; schedules the next sweep.
    fn sweep_due(&mut self, now: OffsetDateTime, every: Duration) -> bool {
        match self.next_sweep {
            Some(at) if now < at => false,
            Some(_) => {
                self.next_sweep = Some(now + every);
                true
            }
            None => {
                self.next_sweep = Some(now + every);
                false
            }
        }
    }
}

/// User-code index entry, keyed by the first 8 bytes of the user-code hash: the
/// record it points to and when the code expires.
///
/// The short key halves the index. It is exact where it must be: a look-up
/// checks the full hash against the record it finds. Two live codes whose keyed
/// hashes share 64 bits (odds about one in 2^64 per pair) would make an insert
/// answer `UserCodeTaken`, and the endpoint then simply draws another code.
#[derive(Clone, Copy)]
struct CodeEntry {
    device: Key,
    expires: OffsetDateTime,
}

/// The embedded store: records in 256 mutex-guarded shards, a user-code index
/// sharded the same way. No lock is ever held while another is taken.
///
/// Expired records go on their own: each shard sweeps itself, on an insert, at
/// most once per [`MemoryStore::with_sweep_every`] (default 60 s), so memory
/// follows the number of live requests without a background task.
pub struct MemoryStore {
    // Boxed: a table grows by doubling and so is up to half empty; empty slots
    // of 40 bytes (key and pointer) cost a quarter of empty 192-byte ones.
    records: Box<[Mutex<Shard<Key, Box<DeviceAuthorization>>>]>,
    codes: Box<[Mutex<Shard<u64, CodeEntry>>]>,
    sweep_every: Duration,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("records", &self.len())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard cannot leave a record half-written (every
    // write is one assignment), so a poisoned lock is safe to keep using.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn shard_of(hash: &[u8; 32]) -> usize {
    // Byte 8: independent of the bytes the hash map itself uses (0..8).
    hash[8] as usize & (SHARDS - 1)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            records: (0..SHARDS).map(|_| Mutex::default()).collect(),
            codes: (0..SHARDS).map(|_| Mutex::default()).collect(),
            sweep_every: Duration::seconds(60),
        }
    }

    /// Sets how often each shard sweeps out purgeable records.
    pub fn with_sweep_every(mut self, every: Duration) -> Self {
        self.sweep_every = every;
        self
    }

    /// The number of records held (live or awaiting purge).
    pub fn len(&self) -> usize {
        self.records.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn purge_records(&self, now: OffsetDateTime) -> u64 {
        let mut removed = 0;
        for shard in self.records.iter() {
            let mut shard = lock(shard);
            let before = shard.map.len();
            shard.map.retain(|_, r| r.purge_at > now);
            removed += (before - shard.map.len()) as u64;
            shrink(&mut shard.map);
        }
        for shard in self.codes.iter() {
            let mut shard = lock(shard);
            shard.map.retain(|_, e| e.expires > now);
            shrink(&mut shard.map);
        }
        removed
    }
}

/// Gives memory back once a table is mostly empty, so that a burst of abandoned
/// requests does not leave the store at its high-water mark.
fn shrink<K: std::hash::Hash + Eq, V>(map: &mut PassThroughMap<K, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn insert(
        &self,
        record: &DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<Inserted, BackendError> {
        {
            let mut codes = lock(&self.codes[shard_of(&record.user_code_hash.0)]);
            if codes.sweep_due(now, self.sweep_every) {
                codes.map.retain(|_, e| e.expires > now);
                shrink(&mut codes.map);
            }
            let code = prefix(&record.user_code_hash.0);
            if codes.map.get(&code).is_some_and(|e| e.expires > now) {
                return Ok(Inserted::UserCodeTaken);
            }
            codes.map.insert(
                code,
                CodeEntry {
                    device: Key(record.device_code_hash.0),
                    expires: record.request.expires_at,
                },
            );
        }
        let record = Box::new(record.clone());
        let mut records = lock(&self.records[shard_of(&record.device_code_hash.0)]);
        if records.sweep_due(now, self.sweep_every) {
            records.map.retain(|_, r| r.purge_at > now);
            shrink(&mut records.map);
        }
        records.map.insert(Key(record.device_code_hash.0), record);
        Ok(Inserted::Stored)
    }

    async fn by_device_code(
        &self,
        hash: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        Ok(lock(&self.records[shard_of(&hash.0)])
            .map
            .get(&Key(hash.0))
            .map(|r| DeviceAuthorization::clone(r)))
    }

    async fn by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let device = match lock(&self.codes[shard_of(&hash.0)])
            .map
            .get(&prefix(&hash.0))
        {
            Some(e) if e.expires > now => e.device,
            _ => return Ok(None),
        };
        Ok(lock(&self.records[shard_of(&device.0)])
            .map
            .get(&device)
            .filter(|r| r.status.is_pending() && r.user_code_hash == *hash)
            .map(|r| DeviceAuthorization::clone(r)))
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError> {
        let device = Key(next.device_code_hash.0);
        let left_pending = {
            let mut records = lock(&self.records[shard_of(&device.0)]);
            let Some(current) = records.map.get_mut(&device) else {
                return Ok(false);
            };
            if current.version != expected_version || next.version != expected_version + 1 {
                return Ok(false);
            }
            let left_pending = current.status.is_pending() && !next.status.is_pending();
            // In place: the box is reused, nothing is allocated.
            **current = next.clone();
            left_pending
        };
        if left_pending {
            let mut codes = lock(&self.codes[shard_of(&next.user_code_hash.0)]);
            let code = prefix(&next.user_code_hash.0);
            if codes.map.get(&code).is_some_and(|e| e.device == device) {
                codes.map.remove(&code);
            }
        }
        Ok(true)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        Ok(self.purge_records(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::authorization::tests::{approval, at, pending};

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn with_codes(device: u8, user: u8) -> DeviceAuthorization {
        let mut r = pending("openid");
        r.device_code_hash = DeviceCodeHash([device; 32]);
        r.user_code_hash = UserCodeHash([user; 32]);
        r
    }

    #[test]
    fn the_store_contract() {
        run(async {
            let s = MemoryStore::new();
            let a = with_codes(1, 2);
            assert_eq!(s.insert(&a, at(0)).await.unwrap(), Inserted::Stored);
            // The same user code, live: refused. Another one: stored.
            assert_eq!(
                s.insert(&with_codes(3, 2), at(1)).await.unwrap(),
                Inserted::UserCodeTaken
            );
            let mut other_user = [2u8; 32];
            other_user[31] = 9;
            let mut b = with_codes(4, 0);
            b.user_code_hash = UserCodeHash(other_user);
            // Shares the index's 8-byte key with `a`'s live code: refused, harmlessly.
            assert_eq!(s.insert(&b, at(1)).await.unwrap(), Inserted::UserCodeTaken);
            assert_eq!(
                s.by_user_code(&UserCodeHash(other_user), at(1))
                    .await
                    .unwrap(),
                None
            );
            assert_eq!(
                s.by_device_code(&a.device_code_hash).await.unwrap(),
                Some(a.clone())
            );
            assert_eq!(
                s.by_user_code(&a.user_code_hash, at(1)).await.unwrap(),
                Some(a.clone())
            );
            // Expired code: index dead; the record stays until purge_at.
            assert_eq!(
                s.by_user_code(&a.user_code_hash, at(600)).await.unwrap(),
                None
            );
            // Compare-and-set: wrong versions refused; leaving Pending drops the code.
            let approved = a.approve(approval("openid"), at(5)).unwrap();
            assert!(!s.compare_and_set(1, &approved).await.unwrap());
            assert!(s.compare_and_set(0, &approved).await.unwrap());
            assert!(!s.compare_and_set(0, &approved).await.unwrap());
            assert_eq!(
                s.by_user_code(&a.user_code_hash, at(6)).await.unwrap(),
                None
            );
            assert_eq!(
                s.by_device_code(&a.device_code_hash).await.unwrap(),
                Some(approved)
            );
            // The user code is free again for a new request.
            assert_eq!(
                s.insert(&with_codes(5, 2), at(7)).await.unwrap(),
                Inserted::Stored
            );
            // Retention: kept before purge_at (600 + 300), deleted from it on.
            assert_eq!(s.purge_expired(at(899)).await.unwrap(), 0);
            assert_eq!(s.purge_expired(at(900)).await.unwrap(), 2);
            assert!(s.is_empty());
        });
    }
}
