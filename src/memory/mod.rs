//! The embedded default backends: a sharded in-memory store and attempt limiter.
//! They serve one process; several instances need a shared store (Redis, PostgreSQL).

mod limiter;
mod store;

pub use limiter::MemoryLimiter;
pub use store::MemoryStore;
