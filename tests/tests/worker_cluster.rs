//! One worker for all sales on a real Redis Cluster (three masters, three replicas): three
//! sales of the catalog whose slots are on three different masters, consumed by one
//! `--all-sales` worker (each sale's XREADGROUP routed to its own master), on both backends.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use flash_client::{Backend, FlashClient, SaleSettings};
use flash_core::model::CartState;
use flash_tests::{ClusterOptions, PostgresServer, RedisCluster, both_backends};
use flash_worker::consumer::{Config, Counters};
use flash_worker::migrate::migrate;
use flash_worker::stock::{reconcile_sale, sync_sale};
use flash_worker::{SaleSet, run_sales};
use tokio_postgres::NoTls;

both_backends!(one_worker_consumes_sales_on_three_masters);

const DEFAULT_SALE: &str = "main";

async fn one_worker_consumes_sales_on_three_masters(backend: Backend) {
    let cluster = RedisCluster::start(ClusterOptions::for_backend(backend).unwrap()).unwrap();
    let engine = FlashClient::connect(&cluster.redis_url()).await.unwrap();
    assert_eq!(engine.backend(), backend);
    let postgres = PostgresServer::start().unwrap();
    let database_url = postgres.create_database().unwrap();
    let (mut pg, connection) = tokio_postgres::connect(&database_url, NoTls).await.unwrap();
    tokio::spawn(connection);
    migrate(&mut pg).await.unwrap();
    pg.batch_execute(
        "INSERT INTO users (id, username) VALUES (1, 'alice'), (2, 'bob');
         INSERT INTO products (id, name, price_cents, stock)
         SELECT n, 'product ' || n, 100, 10 FROM generate_series(1, 3) n;",
    )
    .await
    .unwrap();

    let sales = cluster.sales_on_masters("spread", 3).await.unwrap();
    let masters: BTreeSet<u16> = sales.iter().map(|(_, master)| *master).collect();
    assert_eq!(masters.len(), 3);
    for (product, (sale, _)) in (1..).zip(&sales) {
        flash_worker::sales::record(&mut pg, sale, None, &[product])
            .await
            .unwrap();
        let settings = SaleSettings {
            hold_ms: Some(300),
            ..SaleSettings::default()
        };
        engine.sale(sale, &settings).await.unwrap();
        sync_sale(&pg, &engine, sale, DEFAULT_SALE).await.unwrap();
        engine.buy(sale, "o1", "1", product, 2).await.unwrap();
        engine.reserve(sale, "c2", "2", product, 3).await.unwrap();
        engine.checkout(sale, "c2", "2").await.unwrap();
        // Left to run out: the module's timer, or the worker's FLASH.EXPIRE on that master.
        engine.reserve(sale, "left", "2", product, 1).await.unwrap();
    }

    let config = Config::new(&cluster.redis_url(), &database_url, DEFAULT_SALE, "w-all");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_sales(
        config,
        SaleSet::all(DEFAULT_SALE, Duration::from_millis(200)),
        Arc::new(Counters::default()),
        async {
            let _ = stopped.await;
        },
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    for (sale, _) in &sales {
        for (cart, state) in [
            ("o1", CartState::Settled),
            ("c2", CartState::Settled),
            ("left", CartState::Expired),
        ] {
            while engine.cart(sale, cart).await.unwrap().state != state {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{sale} {cart}: not {state:?} in time\n{}",
                    postgres.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let _ = stop.send(());
    worker.await.unwrap();

    let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in pg
        .query("SELECT sale, id FROM orders ORDER BY sale, id", &[])
        .await
        .unwrap()
    {
        stored.entry(row.get(0)).or_default().push(row.get(1));
    }
    let expected: BTreeMap<String, Vec<String>> = sales
        .iter()
        .map(|(sale, _)| (sale.clone(), vec!["c2".to_owned(), "o1".to_owned()]))
        .collect();
    assert_eq!(stored, expected, "every order once, in its sale");
    for (product, (sale, _)) in (1..).zip(&sales) {
        let rows = reconcile_sale(&pg, &engine, sale, DEFAULT_SALE)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{sale}: {rows:?}");
        assert_eq!(rows[0].product, product);
        assert_eq!((rows[0].database, rows[0].engine), (5, Some(5)), "{sale}");
        let total = engine.info(sale).await.unwrap().total;
        assert_eq!(
            (total.available, total.held, total.pending, total.sold),
            (5, 0, 0, 5),
            "{sale}"
        );
    }
}
