//! Versioned SQL migrations, embedded in the binary and applied in order.
//!
//! Each migration runs in its own transaction together with its row in `flash_migrations`,
//! so it is applied whole or not at all. A transaction-scoped advisory lock serializes
//! processes that start at once (the edge and several workers): one applies, the others
//! find it applied.

use tokio_postgres::Client;

/// One schema step. Versions only grow; an applied file is never edited.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "schema",
        sql: include_str!("../migrations/0001_schema.sql"),
    },
    Migration {
        version: 2,
        name: "batch_integrity",
        sql: include_str!("../migrations/0002_batch_integrity.sql"),
    },
    Migration {
        version: 3,
        name: "usernames_case_insensitive",
        sql: include_str!("../migrations/0003_usernames_case_insensitive.sql"),
    },
    Migration {
        version: 4,
        name: "sales",
        sql: include_str!("../migrations/0004_sales.sql"),
    },
    Migration {
        version: 5,
        name: "shop_logins",
        sql: include_str!("../migrations/0005_shop_logins.sql"),
    },
];

/// Any constant unique to Flash: the key of the advisory lock migrations take.
const LOCK_KEY: i64 = 0x0f1a_5400_0001;

#[derive(Debug, thiserror::Error)]
#[error("migration {version} ({name}) failed: {source}")]
pub struct MigrateError {
    pub version: i32,
    pub name: &'static str,
    #[source]
    pub source: tokio_postgres::Error,
}

/// Applies every migration the database lacks; returns the versions applied now.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, MigrateError> {
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        let fail = |source| MigrateError {
            version: migration.version,
            name: migration.name,
            source,
        };
        let tx = client.transaction().await.map_err(fail)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(fail)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS flash_migrations (
                 version INT PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(fail)?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM flash_migrations WHERE version = $1",
                &[&migration.version],
            )
            .await
            .map_err(fail)?;
        if done.is_some() {
            continue;
        }
        tx.batch_execute(migration.sql).await.map_err(fail)?;
        tx.execute(
            "INSERT INTO flash_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        applied.push(migration.version);
    }
    Ok(applied)
}
