//! Batches of orders against a real PostgreSQL.

use flash_core::model::OrderEntry;
use flash_worker::apply::{BatchOrder, BatchWriter, Outcome};
use flash_worker::migrate::migrate;
use tokio_postgres::Client;

use crate::common::Database;

/// Keyboard (14): 3 units at 40.00; RAM (7): 5 units at 120.00; users 1 and 2. The writer
/// has a connection of its own; the client is for looking.
async fn shop() -> (Database, Client, BatchWriter) {
    let db = Database::start().await;
    let mut client = db.connect().await;
    migrate(&mut client).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO users (id, username) VALUES (1, 'alice'), (2, 'bob');
             INSERT INTO products (id, name, price_cents, stock)
             VALUES (14, 'Keyboard', 4000, 3), (7, 'RAM', 12000, 5);",
        )
        .await
        .unwrap();
    let writer = BatchWriter::new(db.connect().await).await.unwrap();
    (db, client, writer)
}

fn order(id: &str, user_id: i64, lines: &[(i64, i64)]) -> BatchOrder {
    let entry = OrderEntry {
        order: id.to_owned(),
        user: user_id.to_string(),
        lines: lines.to_vec(),
        units: lines.iter().map(|(_, qty)| qty).sum(),
    };
    BatchOrder::new(&format!("1-{id}"), entry).expect("a numeric user")
}

async fn stock(client: &Client) -> Vec<(i64, i64)> {
    client
        .query("SELECT id, stock FROM products ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn orders(client: &Client) -> Vec<(String, String)> {
    client
        .query("SELECT id, status FROM orders ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test]
async fn a_batch_confirms_what_fits_and_rejects_the_rest_whole() {
    let (_db, client, mut writer) = shop().await;
    let batch = [
        order("o1", 1, &[(14, 2)]),
        // Fits RAM but not the keyboard any more: refused whole, RAM untouched.
        order("o2", 2, &[(7, 1), (14, 2)]),
        order("o3", 2, &[(7, 5)]),
        order("o4", 1, &[(14, 1)]),
    ];
    let outcomes = writer.apply("s", &batch).await.unwrap();
    assert_eq!(
        outcomes,
        [
            Outcome::Confirmed,
            Outcome::Rejected,
            Outcome::Confirmed,
            Outcome::Confirmed
        ]
    );
    assert_eq!(stock(&client).await, [(7, 0), (14, 0)]);
    let lines: Vec<(String, i64, i64, i64)> = client
        .query(
            "SELECT order_id, product_id, qty, unit_price_cents FROM order_lines
             ORDER BY order_id, product_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    assert_eq!(lines[0], ("o1".to_owned(), 14, 2, 4000));
    assert_eq!(
        lines.len(),
        5,
        "refused orders keep their lines as a record"
    );
}

#[tokio::test]
async fn a_replayed_batch_changes_nothing_and_keeps_its_verdicts() {
    let (_db, client, mut writer) = shop().await;
    let batch = [order("o1", 1, &[(14, 3)]), order("o2", 2, &[(14, 1)])];
    let first = writer.apply("s", &batch).await.unwrap();
    assert_eq!(first, [Outcome::Confirmed, Outcome::Rejected]);
    // Stock back up: a replay must still not take it, nor turn the refusal into a sale.
    client
        .execute("UPDATE products SET stock = 10 WHERE id = 14", &[])
        .await
        .unwrap();
    let again = writer.apply("s", &batch).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(stock(&client).await, [(7, 5), (14, 10)]);
    // The same order twice in one batch counts once.
    let twice = [order("o3", 1, &[(7, 2)]), order("o3", 1, &[(7, 2)])];
    let outcomes = writer.apply("s", &twice).await.unwrap();
    assert_eq!(outcomes, [Outcome::Confirmed, Outcome::Confirmed]);
    assert_eq!(stock(&client).await, [(7, 3), (14, 10)]);
    assert_eq!(orders(&client).await.len(), 3);
}

/// After a claim, two workers can hold the same entries: the second to commit must find the
/// first's orders and take no stock for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_on_the_same_batch_take_its_stock_once() {
    let (db, client, mut first) = shop().await;
    let mut second = BatchWriter::new(db.connect().await).await.unwrap();
    // Both writers queue behind this lock, so they reach their decisions back to back.
    let blocker = db.connect().await;
    blocker
        .batch_execute("BEGIN; SELECT * FROM products FOR UPDATE")
        .await
        .unwrap();
    let batch = vec![order("o1", 1, &[(14, 2)]), order("o2", 2, &[(7, 3)])];
    let one = tokio::spawn({
        let batch = batch.clone();
        async move { first.apply("s", &batch).await.unwrap() }
    });
    let two = tokio::spawn(async move { second.apply("s", &batch).await.unwrap() });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    blocker.batch_execute("COMMIT").await.unwrap();
    let (one, two) = (one.await.unwrap(), two.await.unwrap());
    assert_eq!(one, [Outcome::Confirmed, Outcome::Confirmed]);
    assert_eq!(two, one, "the later writer reports the stored verdicts");
    assert_eq!(stock(&client).await, [(7, 2), (14, 1)], "stock taken once");
    assert_eq!(orders(&client).await.len(), 2);
}

#[tokio::test]
async fn unknown_products_and_users_are_invalid_and_write_nothing() {
    let (_db, client, mut writer) = shop().await;
    let batch = [
        order("o1", 1, &[(99, 1)]),
        order("o2", 42, &[(14, 1)]),
        order("o3", 1, &[(14, 1)]),
    ];
    let outcomes = writer.apply("s", &batch).await.unwrap();
    assert_eq!(outcomes[0], Outcome::Invalid("unknown product 99".into()));
    assert_eq!(outcomes[1], Outcome::Invalid("unknown user 42".into()));
    assert_eq!(outcomes[2], Outcome::Confirmed);
    assert_eq!(
        orders(&client).await,
        [("o3".to_owned(), "confirmed".to_owned())]
    );
}

/// Workers with overlapping products never deadlock and never sell a unit twice: each
/// takes the rows in ascending id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_with_overlapping_batches_neither_deadlock_nor_oversell() {
    let (db, client, _writer) = shop().await;
    client
        .execute("UPDATE products SET stock = 1000", &[])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let mut writer = BatchWriter::new(db.connect().await).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut confirmed = 0i64;
            for round in 0..20 {
                // Opposite line orders across workers: the classic deadlock shape.
                let batch: Vec<BatchOrder> = (0..10)
                    .map(|n| {
                        let lines = if worker % 2 == 0 {
                            [(7, 1), (14, 2)]
                        } else {
                            [(14, 2), (7, 1)]
                        };
                        order(&format!("w{worker}-{round}-{n}"), 1 + worker % 2, &lines)
                    })
                    .collect();
                let outcomes = writer.apply("s", &batch).await.unwrap();
                confirmed += outcomes
                    .iter()
                    .filter(|o| **o == Outcome::Confirmed)
                    .count() as i64;
            }
            confirmed
        }));
    }
    let mut confirmed = 0;
    for task in tasks {
        confirmed += task.await.unwrap();
    }
    // 800 orders of 1 RAM + 2 keyboards against 1000 of each: keyboards run out at 500.
    assert_eq!(confirmed, 500);
    assert_eq!(stock(&client).await, [(7, 500), (14, 0)]);
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM orders WHERE status = 'confirmed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, confirmed);
}
