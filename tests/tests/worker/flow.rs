//! Orders from the engine's stream to PostgreSQL and back to the engine as verdicts, against
//! both engine backends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flash_client::{Backend, FlashClient};
use flash_core::model::CartState;
use flash_tests::{RedisServer, ServerOptions, module_path};
use flash_worker::consumer::{Config, Counters, run};
use flash_worker::migrate::migrate;
use redis::AsyncCommands;

use crate::common::Database;

async fn engine(backend: Backend) -> (RedisServer, FlashClient) {
    let module = match backend {
        Backend::Module => Some(module_path().unwrap()),
        Backend::Lua => None,
    };
    let server = RedisServer::start(ServerOptions {
        module,
        ..ServerOptions::default()
    })
    .unwrap();
    let client = FlashClient::connect(&server.url()).await.unwrap();
    assert_eq!(client.backend(), backend);
    (server, client)
}

/// Alice, 5 keyboards (product 14) in the database and in sale `s` on the module.
async fn keyboard_sale() -> (Database, tokio_postgres::Client, RedisServer, FlashClient) {
    let db = Database::start().await;
    let mut pg = db.connect().await;
    migrate(&mut pg).await.unwrap();
    pg.batch_execute(
        "INSERT INTO users (id, username) VALUES (1, 'alice');
         INSERT INTO products (id, name, price_cents, stock) VALUES (14, 'Keyboard', 4000, 5);",
    )
    .await
    .unwrap();
    let (server, engine) = engine(Backend::Module).await;
    engine.sale("s", &Default::default()).await.unwrap();
    engine.load("s", &[(14, 5)]).await.unwrap();
    (db, pg, server, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_reach_postgres_and_come_back_as_verdicts_module() {
    orders_reach_postgres_and_come_back_as_verdicts(Backend::Module).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_reach_postgres_and_come_back_as_verdicts_lua() {
    orders_reach_postgres_and_come_back_as_verdicts(Backend::Lua).await;
}

async fn orders_reach_postgres_and_come_back_as_verdicts(backend: Backend) {
    let db = Database::start().await;
    let mut pg = db.connect().await;
    migrate(&mut pg).await.unwrap();
    pg.batch_execute(
        "INSERT INTO users (id, username) VALUES (1, 'alice'), (2, 'bob');
         INSERT INTO products (id, name, price_cents, stock)
         VALUES (14, 'Keyboard', 4000, 5), (7, 'RAM', 12000, 2);",
    )
    .await
    .unwrap();
    let (server, engine) = engine(backend).await;
    engine.sale("s", &Default::default()).await.unwrap();
    // The engine believes in 3 RAM; the database has 2: one RAM order must be refused.
    engine.load("s", &[(14, 5), (7, 3)]).await.unwrap();
    engine.buy("s", "o1", "1", 14, 2).await.unwrap();
    engine.reserve("s", "c2", "2", 7, 2).await.unwrap();
    engine.reserve("s", "c2", "2", 14, 1).await.unwrap();
    engine.checkout("s", "c2", "2").await.unwrap();
    engine.buy("s", "o3", "1", 7, 1).await.unwrap();
    let mut redis = engine.connection();
    // A poison entry: no such user, malformed lines.
    let _: String = redis
        .xadd(
            "flash:{s}:orders",
            "*",
            &[
                ("order", "bad"),
                ("user", "x"),
                ("lines", "1"),
                ("units", "1"),
            ],
        )
        .await
        .unwrap();

    let counters = Arc::new(Counters::default());
    let config = Config::new(&server.url(), &db.url, "s", "w1");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run(config, counters.clone(), async {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let states = [
            engine.cart("s", "o1").await.unwrap().state,
            engine.cart("s", "c2").await.unwrap().state,
            engine.cart("s", "o3").await.unwrap().state,
        ];
        if states == [CartState::Settled, CartState::Settled, CartState::Rejected] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled in time: {states:?}\n{}",
            db.server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    worker.await.unwrap();

    let orders: HashMap<String, String> = pg
        .query("SELECT id, status FROM orders", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(orders.len(), 3);
    assert_eq!(orders["o1"], "confirmed");
    assert_eq!(orders["c2"], "confirmed");
    assert_eq!(orders["o3"], "rejected");
    let stock: Vec<(i64, i64)> = pg
        .query("SELECT id, stock FROM products ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(stock, [(7, 0), (14, 2)]);

    // The engine's ledger agrees: sold = what the database took, the refusal back on sale.
    let info = engine.info("s").await.unwrap();
    let by_sku: HashMap<i64, _> = info.skus.into_iter().collect();
    assert_eq!((by_sku[&14].sold, by_sku[&14].pending), (3, 0));
    assert_eq!((by_sku[&7].sold, by_sku[&7].available), (2, 1));

    let dead: Vec<redis::Value> = redis.xrange_all("flash:{s}:dead").await.unwrap();
    assert_eq!(dead.len(), 1, "the poison entry is dead-lettered");
    let pending: redis::streams::StreamPendingReply = redis
        .xpending("flash:{s}:orders", "flash-workers")
        .await
        .unwrap();
    assert_eq!(pending.count(), 0, "every entry is acknowledged");
    assert_eq!(
        counters
            .confirmed
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        counters.rejected.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        counters
            .dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// An entry that keeps coming back unacknowledged (it crashed a worker each time, say) goes
/// to the dead letters instead of being tried forever; the entries behind it go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_delivered_too_often_is_dead_lettered_and_the_rest_go_on() {
    let (db, pg, server, engine) = keyboard_sale().await;
    let doomed = engine.buy("s", "o1", "1", 14, 1).await.unwrap();
    // Delivered to w1 once, then re-read five times: six deliveries, none acknowledged.
    let mut redis = engine.connection();
    let _: () = redis
        .xgroup_create("flash:{s}:orders", "flash-workers", "0")
        .await
        .unwrap();
    for from in [">", "0", "0", "0", "0", "0"] {
        let options = redis::streams::StreamReadOptions::default()
            .group("flash-workers", "w1")
            .count(1);
        let _: redis::streams::StreamReadReply = redis
            .xread_options(&["flash:{s}:orders"], &[from], &options)
            .await
            .unwrap();
    }
    engine.buy("s", "o2", "1", 14, 2).await.unwrap();

    let mut config = Config::new(&server.url(), &db.url, "s", "w1");
    config.max_deliveries = 5;
    let counters = Arc::new(Counters::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run(config, counters.clone(), async {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while engine.cart("s", "o2").await.unwrap().state != CartState::Settled {
        assert!(tokio::time::Instant::now() < deadline, "o2 not settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    worker.await.unwrap();

    let dead: redis::streams::StreamRangeReply = redis.xrange_all("flash:{s}:dead").await.unwrap();
    assert_eq!(dead.ids.len(), 1);
    let fields = &dead.ids[0];
    assert_eq!(
        fields.get::<String>("source_id").as_deref(),
        Some(doomed.entry.as_str())
    );
    assert_eq!(
        fields.get::<String>("reason").as_deref(),
        Some("delivered more than 5 times")
    );
    assert_eq!(fields.get::<String>("order").as_deref(), Some("o1"));
    let stored: Vec<String> = pg
        .query("SELECT id FROM orders", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(stored, ["o2"], "the dead entry was not applied");
    let pending: redis::streams::StreamPendingReply = redis
        .xpending("flash:{s}:orders", "flash-workers")
        .await
        .unwrap();
    assert_eq!(pending.count(), 0, "the dead entry is acknowledged too");
    // Its units stay pending in the engine: an operator decides (README, dead letters).
    assert_eq!(
        engine.cart("s", "o1").await.unwrap().state,
        CartState::CheckedOut
    );
}

/// Once a finished order's cart is gone (the sale's RETAIN passed), its id is free in the
/// engine, but the database holds the first order under it: a new order with that id is
/// refused (its units go back on sale), never mistaken for a replay of the first. The worker
/// also keeps running while the engine trims the stream it reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_id_used_again_after_retention_is_refused_not_replayed() {
    let db = Database::start().await;
    let mut pg = db.connect().await;
    migrate(&mut pg).await.unwrap();
    pg.batch_execute(
        "INSERT INTO users (id, username) VALUES (1, 'alice'), (2, 'bob');
         INSERT INTO products (id, name, price_cents, stock) VALUES (14, 'Keyboard', 4000, 5);",
    )
    .await
    .unwrap();
    let (server, engine) = engine(Backend::Module).await;
    let settings = flash_client::SaleSettings {
        retain_ms: Some(200),
        ..Default::default()
    };
    engine.sale("s", &settings).await.unwrap();
    engine.load("s", &[(14, 5)]).await.unwrap();
    let first = engine.buy("s", "o1", "1", 14, 1).await.unwrap();

    let counters = Arc::new(Counters::default());
    let config = Config::new(&server.url(), &db.url, "s", "w1");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run(config, counters.clone(), async {
        let _ = stopped.await;
    }));
    let state = |engine: FlashClient| async move {
        engine.cart("s", "o1").await.map(|cart| cart.state).ok()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while state(engine.clone()).await == Some(CartState::CheckedOut) {
        assert!(tokio::time::Instant::now() < deadline, "o1 not settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // RETAIN passes: the settled cart goes, and with it the engine's memory of the id.
    while state(engine.clone()).await.is_some() {
        assert!(tokio::time::Instant::now() < deadline, "o1 never removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = engine.buy("s", "o1", "2", 14, 2).await.unwrap();
    assert_ne!(second.entry, first.entry);
    while state(engine.clone()).await == Some(CartState::CheckedOut) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second o1 not settled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state(engine.clone()).await, Some(CartState::Rejected));
    let _ = stop.send(());
    worker.await.unwrap();

    let orders: Vec<(String, i64, String, String)> = pg
        .query("SELECT id, user_id, status, stream_id FROM orders", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    assert_eq!(
        orders,
        [(
            "o1".to_owned(),
            1,
            "confirmed".to_owned(),
            first.entry.clone()
        )]
    );
    let stock: i64 = pg
        .query_one("SELECT stock FROM products WHERE id = 14", &[])
        .await
        .unwrap()
        .get(0);
    // Conservation: the database's 4 = available 4 + held 0 + pending 0.
    assert_eq!(stock, 4);
    let ledger = engine.info("s").await.unwrap().total;
    assert_eq!(
        (ledger.available, ledger.held, ledger.pending, ledger.sold),
        (4, 0, 0, 1)
    );
    assert_eq!(
        counters.rejected.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// `--durability replica` on a server with no replica: nothing could take an order back, so
/// the worker writes it (it asks how many replicas could be promoted when WAIT falls short)
/// instead of waiting for a replica that will never come. The cut-off-replica case, where it
/// must wait, is `cluster_failover`'s crowd with a durable worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_worker_without_replicas_still_writes_orders() {
    let (db, pg, server, engine) = keyboard_sale().await;
    let mut config = Config::new(&server.url(), &db.url, "s", "w1");
    config.durability = Some(flash_client::Durability {
        replicas: 1,
        timeout: Duration::from_millis(200),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run(config, Arc::new(Counters::default()), async {
        let _ = stopped.await;
    }));
    for n in 1..=3 {
        engine.buy("s", &format!("o{n}"), "1", 14, 1).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for n in 1..=3 {
        while engine.cart("s", &format!("o{n}")).await.unwrap().state != CartState::Settled {
            assert!(
                tokio::time::Instant::now() < deadline,
                "o{n} not settled: the worker waits for a replica that does not exist"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let _ = stop.send(());
    worker.await.unwrap();
    let stock: i64 = pg
        .query_one("SELECT stock FROM products WHERE id = 14", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stock, 2);
}

/// With the Lua twin nothing admits by itself: the worker runs the sale's waiting room (about
/// every 50 ms), before the sale exists (NOSALE, no harm) and while its stream is idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_admits_for_the_lua_twin() {
    let db = Database::start().await;
    let mut pg = db.connect().await;
    migrate(&mut pg).await.unwrap();
    let (server, engine) = engine(Backend::Lua).await;
    let counters = Arc::new(Counters::default());
    let config = Config::new(&server.url(), &db.url, "s", "w1");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run(config, counters, async {
        let _ = stopped.await;
    }));
    // The worker is up before the sale is made.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settings = flash_client::SaleSettings {
        queue_cap: Some(1),
        seed: flash_core::model::Seed::parse(b"00112233445566778899aabbccddeeff"),
        ..Default::default()
    };
    engine.sale("s", &settings).await.unwrap();
    engine.load("s", &[(14, 5)]).await.unwrap();
    for user in ["u1", "u2"] {
        engine.join("s", user).await.unwrap();
    }
    let admitted = |user: &'static str| {
        let engine = engine.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let place = engine.position("s", user).await.unwrap();
                if place.state == flash_client::PlaceState::Admitted {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{user} never admitted: {place:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    admitted("u1").await;
    // CAP 1: u2 waits until u1's admission is used.
    let u2 = engine.position("s", "u2").await.unwrap();
    assert_eq!(
        (u2.state, u2.position),
        (flash_client::PlaceState::Waiting, 1)
    );
    engine.buy("s", "o1", "u1", 14, 1).await.unwrap();
    admitted("u2").await;
    let _ = stop.send(());
    worker.await.unwrap();
}
