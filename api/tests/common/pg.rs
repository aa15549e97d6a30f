//! A PostgreSQL schema of the test's own, migrated, dropped afterwards (on
//! the test kit's [`PgSchema`]).
#![allow(unused_imports)]

use sluice_testkit::PgSchema;
pub use sluice_testkit::{PrivatePostgres, database_url};
use sluice_trading::db::DbConfig;

pub struct TestSchema {
    pub db: DbConfig,
    _schema: PgSchema,
}

impl TestSchema {
    pub async fn new(tag: &str) -> Self {
        let schema = PgSchema::new(tag);
        let mut db = DbConfig::new(database_url());
        db.schema = Some(schema.name.clone());
        sluice_trading::db::migrate(&db).await.expect("migrate");
        Self {
            db,
            _schema: schema,
        }
    }

    pub fn name(&self) -> &str {
        self.db.schema.as_deref().unwrap_or_default()
    }

    pub fn pool(&self) -> sqlx::PgPool {
        self.db.pool().expect("pool")
    }
}
