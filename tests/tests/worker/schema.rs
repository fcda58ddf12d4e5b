//! The migrations and what the schema itself guarantees.

use flash_worker::migrate::{MIGRATIONS, migrate};

use crate::common::Database;

#[tokio::test]
async fn migrations_apply_once_and_then_are_a_no_op() {
    let db = Database::start().await;
    let mut client = db.connect().await;
    let all: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(migrate(&mut client).await.unwrap(), all);
    assert_eq!(migrate(&mut client).await.unwrap(), Vec::<i32>::new());
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY table_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "flash_migrations",
            "order_lines",
            "orders",
            "products",
            "sale_products",
            "sales",
            "users"
        ]
    );
}

#[tokio::test]
async fn processes_starting_together_apply_each_migration_once() {
    let db = Database::start().await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut client = db.connect().await;
        tasks.push(tokio::spawn(
            async move { migrate(&mut client).await.unwrap() },
        ));
    }
    let mut applied = Vec::new();
    for task in tasks {
        applied.extend(task.await.unwrap());
    }
    applied.sort_unstable();
    let all: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(applied, all, "every migration applied exactly once");
}

#[tokio::test]
async fn the_schema_refuses_negative_stock_and_duplicate_orders() {
    let db = Database::start().await;
    let mut client = db.connect().await;
    migrate(&mut client).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO users (id, username) VALUES (1, 'alice');
             INSERT INTO products (id, name, price_cents, stock) VALUES (14, 'Keyboard', 4000, 2);",
        )
        .await
        .unwrap();
    let negative = client
        .execute("UPDATE products SET stock = stock - 3 WHERE id = 14", &[])
        .await;
    assert!(negative.is_err(), "stock below zero must be refused");
    let insert = "INSERT INTO orders (sale, id, user_id, status, stream_id)
                  VALUES ('s', 'o1', 1, 'confirmed', '1-0') ON CONFLICT DO NOTHING";
    assert_eq!(client.execute(insert, &[]).await.unwrap(), 1);
    assert_eq!(
        client.execute(insert, &[]).await.unwrap(),
        0,
        "a replay is a no-op"
    );
    let other_sale = "INSERT INTO orders (sale, id, user_id, status, stream_id)
                      VALUES ('s2', 'o1', 1, 'confirmed', '1-0')";
    assert_eq!(
        client.execute(other_sale, &[]).await.unwrap(),
        1,
        "ids are per sale"
    );
}

/// The foreign keys gave way to per-batch checks in the worker; what they also guarded, a
/// referenced row deleted or renumbered, the triggers still refuse.
#[tokio::test]
async fn users_and_products_with_orders_cannot_be_deleted_or_renumbered() {
    let db = Database::start().await;
    let mut client = db.connect().await;
    migrate(&mut client).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO users (id, username) VALUES (1, 'alice'), (2, 'bob');
             INSERT INTO products (id, name, price_cents, stock)
             VALUES (14, 'Keyboard', 4000, 2), (15, 'Mouse', 900, 1);
             INSERT INTO orders (sale, id, user_id, status, stream_id)
             VALUES ('s', 'o1', 1, 'confirmed', '1-0');
             INSERT INTO order_lines (sale, order_id, product_id, qty, unit_price_cents)
             VALUES ('s', 'o1', 14, 1, 4000);",
        )
        .await
        .unwrap();
    for refused in [
        "DELETE FROM users WHERE id = 1",
        "UPDATE users SET id = 3 WHERE id = 1",
        "DELETE FROM products WHERE id = 14",
        "UPDATE products SET id = 16 WHERE id = 14",
    ] {
        let error = client.execute(refused, &[]).await.unwrap_err();
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION),
            "{refused}"
        );
    }
    // Rows nobody references, and changes that keep the id, go through.
    client
        .execute(
            "UPDATE products SET stock = 5, name = 'Keys' WHERE id = 14",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        client
            .execute("DELETE FROM users WHERE id = 2", &[])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        client
            .execute("DELETE FROM products WHERE id = 15", &[])
            .await
            .unwrap(),
        1
    );
}

/// A database from before migration 0003 may hold names that differ only in case: each
/// keeps its row (and so its orders), the later ones renamed, and from then on a name is
/// unique whatever its case.
#[tokio::test]
async fn usernames_become_unique_in_any_case_without_merging_old_twins() {
    let db = Database::start().await;
    let mut client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE flash_migrations (
                 version INT PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .unwrap();
    for migration in MIGRATIONS.iter().filter(|m| m.version < 3) {
        client.batch_execute(migration.sql).await.unwrap();
        client
            .execute(
                "INSERT INTO flash_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await
            .unwrap();
    }
    let long = "L".repeat(64);
    client
        .batch_execute(&format!(
            "INSERT INTO users (id, username) VALUES
                 (1, 'Alice'), (2, 'alice'), (3, 'bob'), (4, 'ALICE'),
                 (5, '{long}'), (6, '{}')",
            long.to_lowercase()
        ))
        .await
        .unwrap();
    // 3, and every migration after it.
    let from_three: Vec<i32> = flash_worker::migrate::MIGRATIONS
        .iter()
        .map(|migration| migration.version)
        .filter(|version| *version >= 3)
        .collect();
    assert_eq!(migrate(&mut client).await.unwrap(), from_three);
    let names: Vec<(i64, String)> = client
        .query("SELECT id, username FROM users ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let cut = format!("{}-6", "l".repeat(62));
    assert_eq!(
        names,
        [
            (1, "Alice".to_owned()),
            (2, "alice-2".to_owned()),
            (3, "bob".to_owned()),
            (4, "ALICE-4".to_owned()),
            (5, long),
            (6, cut),
        ]
    );
    // Explicit ids: the refusal must come from the name, not from the key.
    let insert = "INSERT INTO users (id, username) VALUES ($1, $2)";
    for (id, twin) in [(100_i64, "ALICE"), (101, "Bob"), (102, "alice-2")] {
        let refused = client.execute(insert, &[&id, &twin]).await;
        assert!(refused.is_err(), "{twin} is taken (in some case)");
    }
    client.execute(insert, &[&103_i64, &"carol"]).await.unwrap();
}
