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
