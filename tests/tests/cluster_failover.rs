//! A crowd buys while its sale's master is killed with -9 (issue 11, "Failover"): the
//! replica is promoted, the clients and the worker follow it, and the books balance. Redis
//! replication is asynchronous, so a checkout the old master acknowledged may not have
//! reached the replica: with durable checkouts (`DurableWrites`, the edge's `--durability
//! replica`) no order answered OK is lost; without, the lost ones are counted. Either way the
//! worker writes to PostgreSQL only entries a replica has (its own `--durability replica`), so
//! the database still matches the engine: a lost checkout never reached the database, and its
//! units are back on sale in the promoted master's ledger. The `flash simulate` runs make the
//! loss certain: the replication link is cut before the master dies.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flash_client::{ClientError, Durability, DurableWrites, FlashClient, SaleSettings};
use flash_core::keys::SaleKeys;
use flash_tests::{ClusterOptions, PostgresServer, RedisCluster, module_path};
use flash_worker::consumer::{Config as WorkerConfig, Counters};
use flash_worker::migrate::migrate;
use flash_worker::stock::{reconcile_sale, sync_sale};
use flash_worker::{SaleSet, run_sales};
use tokio_postgres::NoTls;

const SALE: &str = "crowd";
const STOCK: i64 = 400;
const BUYERS: usize = 600;
const TASKS: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_durable_checkouts_no_answered_order_is_lost_to_a_failover() {
    crowd_through_a_failover(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_durability_the_books_balance_through_a_failover() {
    crowd_through_a_failover(false).await;
}

/// What the crowd was told.
#[derive(Default)]
struct Answers {
    /// Orders answered OK (durable ones, when durable).
    ok: Mutex<Vec<String>>,
    /// Orders taken by the master but not confirmed by a replica in time.
    not_durable: AtomicUsize,
    /// Calls that failed on the way (the failover's seconds) or were refused (SOLDOUT).
    failed: AtomicUsize,
}

async fn crowd_through_a_failover(durable: bool) {
    let mut cluster = RedisCluster::start(ClusterOptions {
        module: Some(module_path().unwrap()),
        ..ClusterOptions::default()
    })
    .unwrap();
    let url = cluster.redis_url();
    let engine = FlashClient::connect(&url).await.unwrap();
    let postgres = PostgresServer::start().unwrap();
    let database_url = postgres.create_database().unwrap();
    let (mut pg, connection) = tokio_postgres::connect(&database_url, NoTls).await.unwrap();
    tokio::spawn(connection);
    migrate(&mut pg).await.unwrap();
    pg.batch_execute(&format!(
        "INSERT INTO users (id, username) SELECT n, 'buyer' || n FROM generate_series(1, {BUYERS}) n;
         INSERT INTO products (id, name, price_cents, stock) VALUES (1, 'the hot one', 100, {STOCK});"
    ))
    .await
    .unwrap();
    flash_worker::sales::record(&mut pg, SALE, None, &[1])
        .await
        .unwrap();
    let settings = SaleSettings {
        hold_ms: Some(1_500),
        ..SaleSettings::default()
    };
    engine.sale(SALE, &settings).await.unwrap();
    sync_sale(&pg, &engine, SALE, SALE).await.unwrap();
    let master = cluster
        .master_of(&SaleKeys::new(SALE).sale())
        .await
        .unwrap()
        .unwrap();
    cluster.wait_replicated(master).await.unwrap();

    // The worker writes only what a replica has (its `--durability replica`), with or without
    // durable checkouts: else an order it wrote just before the kill could be missing on the
    // promoted master, which would sell its units again.
    let mut config = WorkerConfig::new(&url, &database_url, SALE, "w-failover");
    config.durability = Some(Durability {
        replicas: 1,
        timeout: Duration::from_millis(500),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_sales(
        config,
        SaleSet::named([SALE]),
        Arc::new(Counters::default()),
        async {
            let _ = stopped.await;
        },
    ));

    let durable_writes = if durable {
        let durability = Durability {
            replicas: 1,
            timeout: Duration::from_millis(500),
        };
        Some(
            DurableWrites::connect(&url, TASKS, durability)
                .await
                .unwrap(),
        )
    } else {
        None
    };
    let answers = Arc::new(Answers::default());
    let next_buyer = Arc::new(AtomicUsize::new(1));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (engine, durable_writes) = (engine.clone(), durable_writes.clone());
        let (answers, next_buyer) = (answers.clone(), next_buyer.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let buyer = next_buyer.fetch_add(1, Ordering::SeqCst);
                if buyer > BUYERS {
                    return;
                }
                let (cart, user) = (format!("c{buyer}"), buyer.to_string());
                if engine.reserve(SALE, &cart, &user, 1, 1).await.is_err() {
                    answers.failed.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let checked_out = match &durable_writes {
                    Some(durable) => durable.checkout(SALE, &cart, &user).await,
                    None => engine.checkout(SALE, &cart, &user).await,
                };
                match checked_out {
                    Ok(order) => answers.ok.lock().unwrap().push(order.order),
                    Err(ClientError::NotDurable { .. }) => {
                        answers.not_durable.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => {
                        answers.failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    // A third of the crowd in, the sale's master dies.
    while next_buyer.load(Ordering::SeqCst) < BUYERS / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill_node(master);
    for task in tasks {
        task.await.unwrap();
    }
    let promoted = cluster
        .master_of(&SaleKeys::new(SALE).sale())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(promoted, master, "a replica took over");

    // The holds run out on the promoted master and the worker settles every order.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let info = engine.info(SALE).await;
        if let Ok(info) = &info
            && info.total.held == 0
            && info.total.pending == 0
            && info.held_carts == 0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "holds or orders left: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    worker.await.unwrap();

    // Every order once; never more sold than there was.
    let rows = pg
        .query("SELECT id, status FROM orders WHERE sale = $1", &[&SALE])
        .await
        .unwrap();
    let stored: BTreeSet<String> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(stored.len(), rows.len(), "an order stored twice");
    let stock: i64 = pg
        .query_one("SELECT stock FROM products WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    let sold: i64 = pg
        .query_one(
            "SELECT coalesce(sum(qty), 0)::bigint FROM order_lines l JOIN orders o \
             ON o.sale = l.sale AND o.id = l.order_id WHERE o.status = 'confirmed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        stock >= 0 && sold + stock == STOCK,
        "stock {stock}, sold {sold}"
    );
    // The books: the database's stock is what the engine has on sale.
    let reconciled = reconcile_sale(&pg, &engine, SALE, SALE).await.unwrap();
    assert_eq!(reconciled.len(), 1);
    assert_eq!(
        Some(reconciled[0].database),
        reconciled[0].engine,
        "{reconciled:?}"
    );
    let total = engine.info(SALE).await.unwrap().total;
    assert_eq!(
        total.sold, sold,
        "the engine sold what the database confirmed"
    );

    let ok = answers.ok.lock().unwrap().clone();
    let lost: Vec<&String> = ok.iter().filter(|order| !stored.contains(*order)).collect();
    eprintln!(
        "failover ({}): {} answered OK, {} stored, {} lost, {} not confirmed by a replica, {} \
         failed or refused",
        if durable {
            "durable checkouts"
        } else {
            "no durability"
        },
        ok.len(),
        stored.len(),
        lost.len(),
        answers.not_durable.load(Ordering::SeqCst),
        answers.failed.load(Ordering::SeqCst)
    );
    assert!(!ok.is_empty(), "the crowd bought nothing");
    if durable {
        assert!(lost.is_empty(), "orders answered OK and lost: {lost:?}");
    }
}

/// `flash simulate` through an edge with `--durability replica` on the cluster; a few dozen
/// orders in, the sale's master loses its replica (the link cut) and, once it has taken a few
/// more checkouts alone, is killed with -9. The run's own verification holds (no oversell,
/// conservation, every order answered 202 in PostgreSQL exactly once, the holds released),
/// the checkouts the replica never got are answered 503 NOTDURABLE, not 202, and none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_crowd_keeps_its_books_through_a_failover_with_durable_checkouts() {
    let report = simulated_crowd_through_a_failover(DurableIn::Everywhere).await;
    assert!(
        report.verification.orders_lost.is_empty(),
        "durable 202s lost: {:?}",
        report.verification.orders_lost
    );
    assert!(
        report.summary.rejects_of("NOTDURABLE") > 0,
        "the checkouts the replica never got are answered NOTDURABLE: {report}"
    );
}

/// The same crowd and failover with an edge that answers 202 as soon as the master has an
/// order (`--durability none`) and a worker that writes to PostgreSQL only what a replica has
/// (`flash worker --durability replica`): the checkouts the master took alone are answered
/// 202 and lost with it. The report counts them, and the books are still exact: the lost
/// orders are in neither PostgreSQL nor the promoted master, whose timer released their
/// holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_durable_checkouts_the_report_counts_the_orders_a_failover_lost() {
    let report = simulated_crowd_through_a_failover(DurableIn::WorkerOnly).await;
    assert!(
        !report.verification.orders_lost.is_empty(),
        "checkouts taken by the master alone were answered 202 and lost: {report}"
    );
    assert!(
        report.to_string().contains(&format!(
            "lost to a failover: {} orders answered 202",
            report.verification.orders_lost.len()
        )),
        "{report}"
    );
    assert_eq!(report.summary.rejects_of("NOTDURABLE"), 0, "{report}");
}

/// Where `--durability replica` is set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DurableIn {
    /// The edge (its 202s) and its embedded worker.
    Everywhere,
    /// A worker of its own; the edge runs `--no-worker` and answers 202 on the master's word.
    WorkerOnly,
}

/// Runs `flash simulate` over a 3-master cluster and fails the sale's master under it: the
/// replication link cut once 30 orders are in the stream, the master killed once 5 more
/// arrived (taken by it alone). Returns the run's report, its violations checked to be none.
async fn simulated_crowd_through_a_failover(durability: DurableIn) -> flash_cli::simulate::Report {
    use flash_cli::common::{Common, Servers};
    use flash_cli::simulate::{self, Config};
    use flash_tests::{Stack, StackOptions};
    use flash_worker::settings::{DurabilityMode, DurabilitySettings};

    const CUT_AT_ORDERS: i64 = 30;
    const ALONE_ORDERS: i64 = 5;
    let cluster = RedisCluster::start(ClusterOptions {
        module: Some(module_path().unwrap()),
        ..ClusterOptions::default()
    })
    .unwrap();
    let url = cluster.redis_url();
    let replica = DurabilitySettings {
        mode: DurabilityMode::Replica,
        durability_timeout_ms: 300,
    };
    let edge_durability = replica.clone();
    let mut stack = Stack::start_on(
        cluster,
        StackOptions {
            catalog: (1..=5).map(|id| (id, "item", 1000, 60)).collect(),
            sale: SaleSettings {
                hold_ms: Some(1_500),
                ..SaleSettings::default()
            },
            edge: Box::new(move |settings| match durability {
                DurableIn::Everywhere => settings.worker.durability = edge_durability,
                DurableIn::WorkerOnly => settings.no_worker = true,
            }),
            ..StackOptions::default()
        },
    )
    .await
    .unwrap();
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = (durability == DurableIn::WorkerOnly).then(|| {
        let mut config = WorkerConfig::new(&url, &stack.database_url, &stack.sale, "w-own");
        config.durability = replica.durability();
        tokio::spawn(run_sales(
            config,
            SaleSet::named([stack.sale.clone()]),
            Arc::new(Counters::default()),
            async {
                let _ = worker_stopped.await;
            },
        ))
    });
    let keys = SaleKeys::new(&stack.sale);
    let master = stack.redis.master_of(&keys.sale()).await.unwrap().unwrap();
    stack.redis.wait_replicated(master).await.unwrap();
    let config = Config {
        url: stack.url(""),
        common: Common::new(
            Servers {
                redis_url: url,
                database_url: Some(stack.database_url.clone()),
            },
            &stack.sale,
        ),
        buyers: 600,
        concurrency: 20,
        products: None,
        abandon: 0.1,
        remove: 0.1,
        chart: None,
        wait_timeout: Duration::from_secs(40),
        seed: Some(11),
        progress: false,
    };
    let redis = &mut stack.redis;
    let orders_key = keys.orders();
    let (report, ()) = tokio::join!(simulate::simulate(&config), async {
        let orders_in_stream = || async {
            redis
                .query::<i64>(master, &["XLEN", &orders_key])
                .await
                .unwrap()
        };
        let until = |at_least: i64| async move {
            let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
            while orders_in_stream().await < at_least {
                assert!(
                    tokio::time::Instant::now() < give_up,
                    "the crowd stopped before {at_least} orders"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        until(CUT_AT_ORDERS).await;
        redis.cut_replication(master).await.unwrap();
        let replicated = orders_in_stream().await;
        until(replicated + ALONE_ORDERS).await;
        redis.kill_node(master);
    });
    let report = report.expect("the run completes");
    println!("{report}");
    if let Some(worker) = worker {
        let _ = stop_worker.send(());
        worker.await.unwrap();
    }
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(
        report.fates.checked_out > 0,
        "some checkouts were answered 202"
    );
    report
}

/// A waiting room on a cluster lives through its master's death: shoppers who joined the
/// pre-queue before START are on the replica once it is promoted, and the promoted master's
/// own timer admits them from START on, in the order drawn from the seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_room_is_admitted_in_its_drawn_order_by_the_promoted_master() {
    const ROOM: &str = "room";
    const SEED: &str = "c0ffeec0ffeec0ffeec0ffeec0ffee00";
    let mut cluster = RedisCluster::start(ClusterOptions {
        module: Some(module_path().unwrap()),
        ..ClusterOptions::default()
    })
    .unwrap();
    let engine = FlashClient::connect(&cluster.redis_url()).await.unwrap();
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    // START after the failover: the first admissions are the promoted master's.
    let start_ms = now_ms() + 6_000;
    engine
        .sale(
            ROOM,
            &SaleSettings {
                start_ms: Some(start_ms),
                queue_rate: Some(20),
                idle_ms: Some(120_000),
                admit_ms: Some(120_000),
                seed: flash_core::model::Seed::parse(SEED.as_bytes()),
                ..SaleSettings::default()
            },
        )
        .await
        .unwrap();
    let users: Vec<String> = (0..30).map(|i| format!("shopper{i}")).collect();
    for user in &users {
        let place = engine.join(ROOM, user).await.unwrap();
        assert_eq!(place.state, flash_client::PlaceState::Early);
    }
    let master = cluster
        .master_of(&SaleKeys::new(ROOM).sale())
        .await
        .unwrap()
        .unwrap();
    cluster.wait_replicated(master).await.unwrap();
    cluster.kill_node(master);

    // Every shopper admitted, by whichever master holds the sale now.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut until: Vec<(String, i64)> = Vec::new();
    while until.len() < users.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "admitted {} of {} after the failover",
            until.len(),
            users.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        until.clear();
        for user in &users {
            // Failing while the replica is promoted: asked again on the next round.
            match engine.position(ROOM, user).await {
                Ok(place) if place.state == flash_client::PlaceState::Admitted => {
                    until.push((user.clone(), place.until_ms));
                }
                _ => {}
            }
        }
    }
    let promoted = cluster
        .master_of(&SaleKeys::new(ROOM).sale())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(promoted, master, "a replica took over");
    // The draw, from the seed the promoted master reveals: admissions in its order.
    let info = engine.info(ROOM).await.unwrap().queue.unwrap();
    assert_eq!(info.seed.as_deref(), Some(SEED));
    assert_eq!(info.admitted, users.len() as i64);
    let mut drawn = users.clone();
    drawn.sort_by_key(|user| (flash_core::queue::draw_score(SEED, user), user.clone()));
    let admitted_at = |user: &String| until.iter().find(|(u, _)| u == user).map(|(_, t)| *t);
    let in_draw_order: Vec<i64> = drawn.iter().filter_map(admitted_at).collect();
    assert!(
        in_draw_order.windows(2).all(|pair| pair[0] <= pair[1]),
        "admitted out of the drawn order: {in_draw_order:?}"
    );
    assert!(
        in_draw_order
            .first()
            .is_some_and(|first| *first - 120_000 >= start_ms),
        "nobody is admitted before START"
    );
}
