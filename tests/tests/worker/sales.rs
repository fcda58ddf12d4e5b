//! Many sales: one worker for all the sales of the catalog (found while it runs, waited for
//! until the engine has them), and a worker per sale as before.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flash_client::{Backend, FlashClient, SaleSettings};
use flash_core::model::CartState;
use flash_tests::{RedisServer, ServerOptions, both_backends, module_path};
use flash_worker::consumer::{Config, Counters};
use flash_worker::migrate::migrate;
use flash_worker::stock::{reconcile_sale, sync_sale};
use flash_worker::{SaleSet, run_sales};
use redis::AsyncCommands;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::common::Database;

/// The default sale of these tests: it sells product 9, which no sale lists.
const DEFAULT_SALE: &str = "main";

both_backends!(one_worker_for_all_sales_consumes_every_sale_once);

async fn engine(backend: Backend) -> (RedisServer, FlashClient) {
    let server = RedisServer::start(ServerOptions {
        module: (backend == Backend::Module).then(|| module_path().unwrap()),
        ..ServerOptions::default()
    })
    .unwrap();
    let client = FlashClient::connect(&server.url()).await.unwrap();
    assert_eq!(client.backend(), backend);
    (server, client)
}

/// A database with users 1 and 2, products 1..=6 and 9 (10 units each), sales `a` (products
/// 1, 2), `b` (3, 4) and `c` (5, 6) in the catalog; product 9 is the default sale's.
async fn catalog(db: &Database) -> Client {
    let mut pg = db.connect().await;
    migrate(&mut pg).await.unwrap();
    pg.batch_execute(
        "INSERT INTO users (id, username) VALUES (1, 'alice'), (2, 'bob');
         INSERT INTO products (id, name, price_cents, stock)
         SELECT n, 'product ' || n, 100 * n, 10 FROM unnest(ARRAY[1, 2, 3, 4, 5, 6, 9]) n;",
    )
    .await
    .unwrap();
    for (sale, products) in [("a", [1, 2]), ("b", [3, 4]), ("c", [5, 6])] {
        flash_worker::sales::record(&mut pg, sale, Some(sale), &products)
            .await
            .unwrap();
    }
    pg
}

/// FLASH.SALE and the sale's stock from the database.
async fn open(pg: &Client, engine: &FlashClient, sale: &str, hold_ms: i64) {
    let settings = SaleSettings {
        hold_ms: Some(hold_ms),
        ..SaleSettings::default()
    };
    engine.sale(sale, &settings).await.unwrap();
    sync_sale(pg, engine, sale, DEFAULT_SALE).await.unwrap();
}

fn spawn_worker(
    redis_url: &str,
    database_url: &str,
    consumer: &str,
    sales: SaleSet,
) -> (tokio::sync::oneshot::Sender<()>, JoinHandle<()>) {
    let config = Config::new(redis_url, database_url, DEFAULT_SALE, consumer);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_sales(
        config,
        sales,
        Arc::new(Counters::default()),
        async {
            let _ = stopped.await;
        },
    ));
    (stop, worker)
}

/// Waits until every one of `orders` (sale, order) is settled in the engine.
async fn until_settled(engine: &FlashClient, orders: &[(&str, &str)], db: &Database) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut waiting = Vec::new();
        for (sale, order) in orders {
            if engine.cart(sale, order).await.unwrap().state != CartState::Settled {
                waiting.push((*sale, *order));
            }
        }
        if waiting.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled in time: {waiting:?}\n{}",
            db.server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Orders per sale in PostgreSQL, all confirmed.
async fn stored(pg: &Client) -> BTreeMap<String, Vec<String>> {
    let mut by_sale: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in pg
        .query("SELECT sale, id, status FROM orders ORDER BY sale, id", &[])
        .await
        .unwrap()
    {
        assert_eq!(row.get::<_, String>(2), "confirmed");
        by_sale.entry(row.get(0)).or_default().push(row.get(1));
    }
    by_sale
}

/// The books of `sale`: every product it sells matches, nothing pending, the ledger balanced.
async fn assert_balanced(pg: &Client, engine: &FlashClient, sale: &str, products: &[i64]) {
    let rows = reconcile_sale(pg, engine, sale, DEFAULT_SALE)
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|row| row.product).collect::<Vec<_>>(),
        products,
        "sale {sale} sells exactly its products"
    );
    assert!(rows.iter().all(|row| row.matches()), "{sale}: {rows:?}");
    let info = engine.info(sale).await.unwrap();
    assert_eq!(info.total.pending, 0, "{sale}");
    assert!(info.skus.iter().all(|(_, units)| units.is_conserved()));
}

/// One worker with `--all-sales` consumes the default sale and the three sales of the
/// catalog: every order once in PostgreSQL, each sale's books balanced; with the Lua twin it
/// also expires each sale's holds (nothing else calls FLASH.EXPIRE).
async fn one_worker_for_all_sales_consumes_every_sale_once(backend: Backend) {
    let db = Database::start().await;
    let pg = catalog(&db).await;
    let (server, engine) = engine(backend).await;
    for sale in [DEFAULT_SALE, "a", "b", "c"] {
        open(&pg, &engine, sale, 300).await;
    }
    let mut orders: Vec<(&str, String)> = Vec::new();
    for (sale, product) in [("a", 1), ("a", 2), ("b", 3), ("b", 4), ("c", 5), ("c", 6)] {
        for (user, qty) in [("1", 2), ("2", 1)] {
            let order = format!("o{product}-{user}");
            engine.buy(sale, &order, user, product, qty).await.unwrap();
            orders.push((sale, order));
        }
    }
    engine.buy(DEFAULT_SALE, "o9-1", "1", 9, 3).await.unwrap();
    orders.push((DEFAULT_SALE, "o9-1".to_owned()));
    // A hold in each sale, left to run out.
    for (sale, product) in [("a", 1), ("b", 3), ("c", 5)] {
        engine.reserve(sale, "left", "2", product, 1).await.unwrap();
    }

    let sales = SaleSet::all(DEFAULT_SALE, Duration::from_millis(200));
    let (stop, worker) = spawn_worker(&server.url(), &db.url, "w-all", sales);
    let all: Vec<(&str, &str)> = orders.iter().map(|(s, o)| (*s, o.as_str())).collect();
    until_settled(&engine, &all, &db).await;
    // Later orders go on being consumed.
    engine.buy("b", "late", "1", 4, 1).await.unwrap();
    until_settled(&engine, &[("b", "late")], &db).await;
    // Holds run out: by the module's timer, or by the worker's FLASH.EXPIRE per sale.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for sale in ["a", "b", "c"] {
        while engine.cart(sale, "left").await.unwrap().state != CartState::Expired {
            assert!(tokio::time::Instant::now() < deadline, "{sale}: hold kept");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let _ = stop.send(());
    worker.await.unwrap();

    let by_sale = stored(&pg).await;
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (sale, order) in orders.iter().chain(&[("b", "late".to_owned())]) {
        expected
            .entry((*sale).to_owned())
            .or_default()
            .push(order.clone());
    }
    for ids in expected.values_mut() {
        ids.sort();
    }
    assert_eq!(by_sale, expected, "every order once, in its sale");
    for (sale, products) in [
        ("a", vec![1, 2]),
        ("b", vec![3, 4]),
        ("c", vec![5, 6]),
        (DEFAULT_SALE, vec![9]),
    ] {
        assert_balanced(&pg, &engine, sale, &products).await;
    }
    let stock: Vec<(i64, i64)> = pg
        .query("SELECT id, stock FROM products ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        stock,
        [(1, 7), (2, 7), (3, 7), (4, 6), (5, 7), (6, 7), (9, 7)]
    );
}

/// A sale recorded in the catalog while the worker runs is consumed without a restart; one
/// the engine does not have yet is waited for (its stream is not made for it), then
/// consumed from its first order once FLASH.SALE makes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_recorded_while_the_worker_runs_is_picked_up() {
    let db = Database::start().await;
    let mut pg = catalog(&db).await;
    let (server, engine) = engine(Backend::Module).await;
    open(&pg, &engine, DEFAULT_SALE, 40_000).await;
    let sales = SaleSet::all(DEFAULT_SALE, Duration::from_millis(200));
    let (stop, worker) = spawn_worker(&server.url(), &db.url, "w-all", sales);
    // Sales a, b and c are in the catalog but not in the engine: waited for, quietly.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut redis = engine.connection();
    let made: bool = redis.exists("flash:{a}:orders").await.unwrap();
    assert!(!made, "a sale the engine does not have gets no stream");

    // Made in the engine after the worker started.
    open(&pg, &engine, "a", 40_000).await;
    engine.buy("a", "o1", "1", 1, 2).await.unwrap();
    // Recorded in the catalog after the worker started.
    pg.execute(
        "INSERT INTO products (id, name, price_cents, stock) VALUES (20, 'new', 100, 5)",
        &[],
    )
    .await
    .unwrap();
    flash_worker::sales::record(&mut pg, "fresh", Some("Fresh"), &[20])
        .await
        .unwrap();
    open(&pg, &engine, "fresh", 40_000).await;
    engine.buy("fresh", "o1", "2", 20, 3).await.unwrap();
    until_settled(&engine, &[("a", "o1"), ("fresh", "o1")], &db).await;
    let _ = stop.send(());
    worker.await.unwrap();

    let by_sale = stored(&pg).await;
    assert_eq!(by_sale.get("fresh").map(Vec::len), Some(1));
    assert_eq!(by_sale.get("a").map(Vec::len), Some(1));
    assert_balanced(&pg, &engine, "fresh", &[20]).await;
    assert_balanced(&pg, &engine, "a", &[1, 2]).await;
}

/// A worker per sale, as before the catalog: each consumes its own sale's stream only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_per_sale_consumes_its_own_sale() {
    let db = Database::start().await;
    let pg = catalog(&db).await;
    let (server, engine) = engine(Backend::Module).await;
    for sale in ["a", "b"] {
        open(&pg, &engine, sale, 40_000).await;
    }
    engine.buy("a", "o1", "1", 1, 1).await.unwrap();
    engine.buy("b", "o1", "1", 3, 2).await.unwrap();
    let (stop_a, worker_a) = spawn_worker(&server.url(), &db.url, "w-a", SaleSet::named(["a"]));
    let (stop_b, worker_b) = spawn_worker(&server.url(), &db.url, "w-b", SaleSet::named(["b"]));
    until_settled(&engine, &[("a", "o1"), ("b", "o1")], &db).await;
    let _ = stop_a.send(());
    let _ = stop_b.send(());
    worker_a.await.unwrap();
    worker_b.await.unwrap();

    let mut redis = engine.connection();
    for (sale, consumer) in [("a", "w-a"), ("b", "w-b")] {
        let consumers: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(format!("flash:{{{sale}}}:orders"))
            .arg("flash-workers")
            .query_async(&mut redis)
            .await
            .unwrap();
        let text = format!("{consumers:?}");
        assert_eq!(consumers.len(), 1, "{sale}: {text}");
        assert!(text.contains(consumer), "{sale}: {text}");
    }
    // Neither worker touched the catalog's other sales.
    let made: bool = redis.exists("flash:{c}:orders").await.unwrap();
    assert!(!made);
    assert_balanced(&pg, &engine, "a", &[1, 2]).await;
    assert_balanced(&pg, &engine, "b", &[3, 4]).await;
}
