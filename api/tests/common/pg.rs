//! A PostgreSQL schema of the test's own, migrated, dropped afterwards.

use sluice_jobs::db::DbConfig;

pub fn database_url() -> String {
    std::env::var("SLUICE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub struct TestSchema {
    pub db: DbConfig,
}

impl TestSchema {
    pub async fn new(tag: &str) -> Self {
        let mut db = DbConfig::new(database_url());
        db.schema = Some(format!(
            "t_{tag}_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        sluice_jobs::db::migrate(&db).await.expect("migrate");
        Self { db }
    }

    pub fn name(&self) -> &str {
        self.db.schema.as_deref().unwrap_or_default()
    }

    pub fn pool(&self) -> sqlx::PgPool {
        self.db.pool().expect("pool")
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .arg(database_url())
            .arg("-qc")
            .arg(format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name()))
            .output();
    }
}
