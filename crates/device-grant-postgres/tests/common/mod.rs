//! What the PostgreSQL tests share: the server the setup script started, and
//! names no other test uses.
#![allow(unreachable_pub, dead_code)]

/// `var`, or `None` when the developer asked to skip tests that need servers
/// (`DEVICE_GRANT_SKIP_SERVICES=1`). A missing variable otherwise fails the
/// test: CI must never skip these silently.
pub fn service_url(var: &str) -> Option<String> {
    if std::env::var("DEVICE_GRANT_SKIP_SERVICES").as_deref() == Ok("1") {
        eprintln!("DEVICE_GRANT_SKIP_SERVICES=1: skipping a test that needs {var}");
        return None;
    }
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => panic!(
            "{var} is not set: run the tests through `bash scripts/test` (which starts the \
             servers), or set DEVICE_GRANT_SKIP_SERVICES=1 to skip tests that need them"
        ),
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{:x}_{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
