//! The audit log: every event of the grant as one JSON object per line, for a
//! SIEM to read (`--audit-log PATH`, or `-` for stdout). The members are the
//! crate's `Event` serialization: stable names, RFC 3339 times, no secrets.

use std::io::Write;
use std::sync::Mutex;

use device_grant::{Event, EventSink};

/// Writes each event as a JSON line to `W`.
pub struct JsonLines<W>(Mutex<W>);

impl<W> std::fmt::Debug for JsonLines<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonLines")
    }
}

impl<W: Write + Send> JsonLines<W> {
    /// Events to `writer`.
    pub fn new(writer: W) -> Self {
        Self(Mutex::new(writer))
    }
}

impl<W: Write + Send> EventSink for JsonLines<W> {
    fn record(&self, event: &Event) {
        let Ok(mut line) = serde_json::to_vec(event) else {
            return;
        };
        line.push(b'\n');
        let mut writer = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // One write per line, then a flush: a reader tailing the file never
        // sees half an event, and nothing waits in a buffer when the process
        // stops. A failed write loses this line, never the request.
        if writer
            .write_all(&line)
            .and_then(|()| writer.flush())
            .is_err()
        {
            tracing::error!(event = "audit_log_failed", "cannot write the audit log");
        }
    }
}
