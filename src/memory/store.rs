use std::sync::{Mutex, MutexGuard};

use time::{Duration, OffsetDateTime};

use super::PassThroughMap;
use crate::host::store::{Inserted, Store};
use crate::protocol::authorization::DeviceAuthorization;
use crate::protocol::device_code::DeviceCodeHash;
use crate::protocol::error::BackendError;
use crate::protocol::user_code::UserCodeHash;

// A power of two. Many shards keep both lock contention and the pause of one
// shard's table growing (it holds 1/64 of the records) small.
const SHARDS: usize = 64;

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

/// User-code index entry: the record it points to and when the code expires.
type CodeEntry = (DeviceCodeHash, OffsetDateTime);

/// The embedded store: records in 64 mutex-guarded shards, a user-code index
/// sharded the same way. No lock is ever held while another is taken.
///
/// Expired records go on their own: each shard sweeps itself, on an insert, at
/// most once per [`MemoryStore::with_sweep_every`] (default 60 s), so memory
/// follows the number of live requests without a background task.
pub struct MemoryStore {
    records: Box<[Mutex<Shard<DeviceCodeHash, DeviceAuthorization>>]>,
    codes: Box<[Mutex<Shard<UserCodeHash, CodeEntry>>]>,
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
            shard.map.retain(|_, (_, expires)| *expires > now);
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
                codes.map.retain(|_, (_, expires)| *expires > now);
                shrink(&mut codes.map);
            }
            match codes.map.get(&record.user_code_hash) {
                Some((_, expires)) if *expires > now => return Ok(Inserted::UserCodeTaken),
                _ => {}
            }
            codes.map.insert(
                record.user_code_hash,
                (record.device_code_hash, record.request.expires_at),
            );
        }
        let mut records = lock(&self.records[shard_of(&record.device_code_hash.0)]);
        if records.sweep_due(now, self.sweep_every) {
            records.map.retain(|_, r| r.purge_at > now);
            shrink(&mut records.map);
        }
        records.map.insert(record.device_code_hash, record.clone());
        Ok(Inserted::Stored)
    }

    async fn by_device_code(
        &self,
        hash: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        Ok(lock(&self.records[shard_of(&hash.0)])
            .map
            .get(hash)
            .cloned())
    }

    async fn by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let device = match lock(&self.codes[shard_of(&hash.0)]).map.get(hash) {
            Some((device, expires)) if *expires > now => *device,
            _ => return Ok(None),
        };
        Ok(lock(&self.records[shard_of(&device.0)])
            .map
            .get(&device)
            .filter(|r| r.status.is_pending() && r.user_code_hash == *hash)
            .cloned())
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError> {
        let left_pending = {
            let mut records = lock(&self.records[shard_of(&next.device_code_hash.0)]);
            let Some(current) = records.map.get_mut(&next.device_code_hash) else {
                return Ok(false);
            };
            if current.version != expected_version || next.version != expected_version + 1 {
                return Ok(false);
            }
            let left_pending = current.status.is_pending() && !next.status.is_pending();
            *current = next.clone();
            left_pending
        };
        if left_pending {
            let mut codes = lock(&self.codes[shard_of(&next.user_code_hash.0)]);
            if codes
                .map
                .get(&next.user_code_hash)
                .is_some_and(|(device, _)| *device == next.device_code_hash)
            {
                codes.map.remove(&next.user_code_hash);
            }
        }
        Ok(true)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        Ok(self.purge_records(now))
    }
}
