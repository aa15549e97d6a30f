//! The application's error type.

/// What can go wrong in the application's handlers and operator commands.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PostgreSQL refused or could not be reached.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The queue engine (Redis) failed.
    #[error("queue: {0}")]
    Queue(#[from] sluice_engine::Error),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Bad input from an operator or a config file.
    #[error("{0}")]
    Invalid(String),
    /// Stored cookies could not be decrypted (wrong key or tampered data).
    #[error("cannot decrypt the stored cookies: wrong cookie key or tampered data")]
    Decrypt,
    /// The screenshot store (a directory or an S3 bucket) failed.
    #[error("screenshot store: {0}")]
    Storage(String),
    /// The browser failed, or could not reach the page: what says the
    /// chart host (or the browser) is unwell.
    #[error("browser: {0}")]
    Browser(String),
    /// The page loaded but did not get ready in time: the chart host
    /// answered, so this says nothing about it.
    #[error("browser: {0}")]
    PageNotReady(String),
    /// The chart page answered with a client error (404: no such chart):
    /// trying again changes nothing.
    #[error("chart page: {0}")]
    ChartMissing(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// The application's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
