//! backups (next)
