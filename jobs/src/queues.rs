//! The application's queue names.

/// Raw webhook bodies waiting to be parsed and stored.
pub const INGEST: &str = "ingest";
/// Charts waiting to be captured, by plan priority.
pub const SCREENSHOT: &str = "screenshot";
/// Audit events waiting to be written.
pub const AUDIT: &str = "audit";
/// Retention runs (from the cron schedule).
pub const RETENTION: &str = "retention";
/// Backup runs (from the cron schedule).
pub const BACKUP: &str = "backup";

/// Every trading queue.
pub const ALL: [&str; 5] = [INGEST, SCREENSHOT, AUDIT, RETENTION, BACKUP];
