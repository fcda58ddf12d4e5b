//! Workers die and others take over: every checked-out order ends in PostgreSQL exactly
//! once, and the database and the engine agree.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use flash_client::{Backend, FlashClient};
use flash_tests::{RedisServer, ServerOptions, flash_binary, module_path};
use flash_worker::consumer::{Config, Counters, run};
use flash_worker::migrate::migrate;
use flash_worker::stock::{reconcile, sync};
use futures::future::join_all;

use crate::common::Database;

/// A sale of products 1..=products with `units` each in both PostgreSQL and the engine,
/// and `orders` single-line orders checked out over them.
async fn sale_with_orders(
    products: i64,
    units: i64,
    orders: usize,
) -> (Database, tokio_postgres::Client, RedisServer, FlashClient) {
    let db = Database::start().await;
    let mut pg = db.connect().await;
    migrate(&mut pg).await.unwrap();
    pg.execute(
        "INSERT INTO users (id, username) VALUES (1, 'alice'), (2, 'bob')",
        &[],
    )
    .await
    .unwrap();
    pg.execute(
        "INSERT INTO products (id, name, price_cents, stock)
         SELECT g, 'product ' || g, 100 * g, $1 FROM generate_series(1, $2::bigint) AS g",
        &[&units, &products],
    )
    .await
    .unwrap();
    let server = RedisServer::start(ServerOptions {
        module: Some(module_path().unwrap()),
        ..ServerOptions::default()
    })
    .unwrap();
    let engine = FlashClient::connect(&server.url()).await.unwrap();
    assert_eq!(engine.backend(), Backend::Module);
    engine.sale("s", &Default::default()).await.unwrap();
    sync(&pg, &engine, "s").await.unwrap();
    for chunk in (0..orders).collect::<Vec<_>>().chunks(200) {
        join_all(chunk.iter().map(|n| {
            let engine = engine.clone();
            async move {
                let product = 1 + (*n as i64 % products);
                let user = if n % 2 == 0 { "1" } else { "2" };
                engine
                    .buy("s", &format!("o{n}"), user, product, 1)
                    .await
                    .unwrap();
            }
        }))
        .await;
    }
    (db, pg, server, engine)
}

async fn settled(engine: &FlashClient) -> bool {
    let info = engine.info("s").await.unwrap();
    info.total.pending == 0
}

async fn wait_until_settled(engine: &FlashClient, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !settled(engine).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "orders still pending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_exactly_once(pg: &tokio_postgres::Client, engine: &FlashClient, orders: i64) {
    let row = pg
        .query_one(
            "SELECT count(*), count(DISTINCT id), coalesce(sum(qty), 0)::bigint
             FROM orders JOIN order_lines ON order_lines.sale = orders.sale
                                         AND order_lines.order_id = orders.id
             WHERE status = 'confirmed'",
            &[],
        )
        .await
        .unwrap();
    let (count, distinct, units): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (count, distinct),
        (orders, orders),
        "every order exactly once"
    );
    let info = engine.info("s").await.unwrap();
    assert_eq!(
        info.total.sold, units,
        "the engine's sold units = the database's"
    );
    let rows = reconcile(pg, engine, "s").await.unwrap();
    assert!(rows.iter().all(|row| row.matches()), "{rows:?}");
}

fn spawn_worker(server: &RedisServer, database_url: &str, batch: usize) -> std::process::Child {
    Command::new(flash_binary())
        .args([
            "worker",
            "--redis-url",
            &server.url(),
            "--database-url",
            database_url,
            "--sale",
            "s",
        ])
        .args(["--consumer", "w1", "--batch-size", &batch.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_loses_and_doubles_nothing() {
    let orders = 3000;
    let (db, pg, server, engine) = sale_with_orders(5, 10_000, orders).await;
    let mut worker = spawn_worker(&server, &db.url, 20);
    // Kill it once some, not all, orders are in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let applied: i64 = pg
            .query_one("SELECT count(*) FROM orders", &[])
            .await
            .unwrap()
            .get(0);
        if applied > 200 {
            assert!(
                applied < orders as i64,
                "the worker finished before the kill"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker applied nothing"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    // The same consumer comes back: its pending entries first.
    let mut again = spawn_worker(&server, &db.url, 256);
    wait_until_settled(&engine, Duration::from_secs(60)).await;
    again.kill().unwrap();
    again.wait().unwrap();
    assert_exactly_once(&pg, &engine, orders as i64).await;
}

/// Two and four workers share one stream over overlapping products: no deadlock, no
/// duplicate, and everything settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_workers_share_one_stream() {
    for workers in [2, 4] {
        let orders = 2000;
        let (db, pg, server, engine) = sale_with_orders(3, 10_000, orders).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for n in 0..workers {
            let mut config = Config::new(&server.url(), &db.url, "s", &format!("w{n}"));
            config.batch_size = 64;
            let mut stopped = stopped.clone();
            tasks.push(tokio::spawn(run(
                config,
                Arc::new(Counters::default()),
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            )));
        }
        wait_until_settled(&engine, Duration::from_secs(60)).await;
        stop.send(true).unwrap();
        for task in tasks {
            task.await.unwrap();
        }
        assert_exactly_once(&pg, &engine, orders as i64).await;
    }
}
