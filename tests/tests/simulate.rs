//! `flash simulate` against a whole sale in this process: a small crowd through the real
//! edge, then its verification, which must pass (on the module and on the Lua twin, whose
//! holds the embedded worker expires); and fail once the books are tampered with.
//!
//! `FLASH_SIM_BUYERS` (default 300), `FLASH_SIM_CONCURRENCY` (default 50) and
//! `FLASH_SIM_STOCK` (a multiplier of every product's stock, default 1) make it a bigger run;
//! `-- --nocapture` prints the report, e.g. `FLASH_SIM_BUYERS=20000 FLASH_SIM_CONCURRENCY=200
//! FLASH_SIM_STOCK=20 cargo test --release -p flash-tests --test simulate -- --nocapture`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use flash_cli::common::{Common, Servers};
use flash_cli::simulate::{self, Config, Report};
use flash_client::SaleSettings;
use flash_tests::stack::CatalogRow;
use flash_tests::{Stack, StackOptions, workspace_root};

/// Small stocks on the hot products, so the crowd sells them out; more on the tail.
/// `FLASH_SIM_STOCK` multiplies every stock, for bigger runs.
fn catalog() -> Vec<CatalogRow> {
    let scale = env_number("FLASH_SIM_STOCK", 1) as i64;
    let rows: Vec<CatalogRow> = vec![
        (1, "Limited sneakers", 12900, 8),
        (2, "Console bundle", 49900, 5),
        (3, "Signed vinyl", 3900, 12),
        (4, "Drone", 89900, 6),
        (5, "Mechanical keyboard", 8900, 20),
        (6, "Wireless earbuds", 12900, 25),
        (7, "Smart watch", 19900, 30),
        (8, "Espresso machine", 29900, 40),
        (9, "Backpack", 5900, 60),
        (10, "Water bottle", 1900, 80),
    ];
    rows.into_iter()
        .map(|(id, name, price, stock)| (id, name, price, stock * scale))
        .collect()
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The tools' settings for the stack's servers, its sale the default one.
fn common_of(stack: &Stack) -> Common {
    Common::new(
        Servers {
            redis_url: stack.redis.url(),
            database_url: Some(stack.database_url.clone()),
        },
        &stack.sale,
    )
}

/// The crowd the suite sends (`FLASH_SIM_BUYERS`, `FLASH_SIM_CONCURRENCY`; 15% abandon, 15%
/// remove a line) to the edge at `url`.
fn crowd_config(url: String, common: Common, seed: u64, chart: Option<PathBuf>) -> Config {
    Config {
        url,
        common,
        buyers: env_number("FLASH_SIM_BUYERS", 300),
        concurrency: env_number("FLASH_SIM_CONCURRENCY", 50),
        products: None,
        abandon: 0.15,
        remove: 0.15,
        chart,
        wait_timeout: Duration::from_secs(20),
        seed: Some(seed),
        progress: false,
    }
}

/// Starts a sale with [`catalog`] and a 1.5 s cart timer, on the module or the Lua twin,
/// and sends a crowd through its edge. The chart goes to
/// `target/test-artifacts/<chart_name>`.
async fn crowd(module: bool, chart_name: &str) -> (Stack, Common, Report, PathBuf) {
    let stack = Stack::start(StackOptions {
        catalog: catalog(),
        module,
        sale: SaleSettings {
            // Short, so the abandoned holds run out within the test.
            hold_ms: Some(1500),
            ..SaleSettings::default()
        },
        ..StackOptions::default()
    })
    .await
    .expect("the stack starts");
    let chart = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
        .join("test-artifacts")
        .join(chart_name);
    let _ = std::fs::remove_file(&chart);
    let common = common_of(&stack);
    let config = crowd_config(stack.url(""), common.clone(), 42, Some(chart.clone()));
    let report = simulate::simulate(&config)
        .await
        .expect("the run completes");
    println!("{report}");
    (stack, common, report, chart)
}

/// What every clean run shows: no violation, sell-outs, holds that ran out, and every
/// accepted order confirmed.
fn assert_clean(report: &Report) {
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(report.fates.no_session, 0);
    assert!(report.fates.checked_out > 0);
    assert!(
        report.summary.rejects_of("SOLDOUT") > 0,
        "the hot products sell out"
    );
    assert!(
        report.verification.holds_expired > 0,
        "abandoned holds ran out by themselves"
    );
    assert!(report.release_lag.is_some());
    assert!(report.drain.is_some());
    // Stock never diverged, so the worker rejected nothing: every 202 is a confirmed order.
    assert_eq!(
        report.verification.orders_confirmed,
        report.fates.checked_out
    );
    assert_eq!(report.verification.orders_rejected, 0);
    assert_eq!(
        report.verification.sold.values().sum::<i64>(),
        report.units_checked_out
    );
    assert_eq!(report.summary.with_status(429), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_crowd_sells_out_without_overselling_and_the_books_balance() {
    let (mut stack, common, report, chart) = crowd(true, "simulate.png").await;
    assert_clean(&report);

    assert!(
        matches!(&report.chart, Some(Ok(path)) if *path == chart),
        "{:?}",
        report.chart
    );
    let png = std::fs::read(&chart).expect("the chart was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);

    // The verification can fail: one unit appears in PostgreSQL that the engine never had.
    let pg = stack.database().await.unwrap();
    pg.execute("UPDATE products SET stock = stock + 1 WHERE id = 1", &[])
        .await
        .unwrap();
    let again = simulate::verify_again(&common, &report.journal)
        .await
        .unwrap();
    let violations = again.violations();
    assert!(
        violations
            .iter()
            .any(|v| v.starts_with("conservation: product 1: database stock")),
        "{violations:#?}"
    );
    // And an order that no buyer of the run checked out is noticed.
    pg.execute(
        "INSERT INTO orders (sale, id, user_id, status, stream_id)
         SELECT $1, 'forged-order', id, 'confirmed', '0-1' FROM users
         WHERE username LIKE $2 LIMIT 1",
        &[&stack.sale, &format!("sim-{}-%", report.run_id)],
    )
    .await
    .unwrap();
    let again = simulate::verify_again(&common, &report.journal)
        .await
        .unwrap();
    assert!(
        again
            .violations()
            .iter()
            .any(|v| v.contains("forged-order") && v.contains("no buyer of this run")),
        "{:#?}",
        again.violations()
    );
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lua_twin_keeps_the_same_books_with_the_worker_expiring_holds() {
    let (mut stack, _, report, _) = crowd(false, "simulate-lua.png").await;
    assert_clean(&report);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_count_as_rejects_and_are_named_not_a_crash() {
    let mut stack = Stack::start(StackOptions {
        catalog: catalog(),
        // Carts whose checkout was refused are left holding: their holds must run out soon.
        sale: SaleSettings {
            hold_ms: Some(1500),
            ..SaleSettings::default()
        },
        // 20 requests a second per address (burst 40): the crowd, all from 127.0.0.1, hits it.
        edge: Box::new(|settings| settings.rate_per_ip = 20),
        ..StackOptions::default()
    })
    .await
    .expect("the stack starts");
    let config = Config {
        url: stack.url(""),
        common: common_of(&stack),
        buyers: 100,
        concurrency: 20,
        products: None,
        abandon: 0.0,
        remove: 0.0,
        chart: None,
        wait_timeout: Duration::from_secs(20),
        seed: Some(7),
        progress: false,
    };
    let report = simulate::simulate(&config)
        .await
        .expect("the run completes");
    println!("{report}");
    assert!(report.summary.rejects_of("RATE_LIMITED") > 0);
    assert!(report.fates.no_session > 0);
    assert!(
        report
            .to_string()
            .contains("--rate-per-ip 0 --rate-per-user 0"),
        "{report}"
    );
    // Refused requests change nothing, so the books still balance.
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    stack.stop().await.unwrap();
}

/// A sale other than the edge's default one, through its own base URL (`--url
/// <edge>/sales/<sale>`, `--sale <sale>`): the crowd shops that sale only, and the
/// verification balances its books.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_in_another_sale_goes_through_its_own_base_url() {
    let stack = Stack::start(StackOptions {
        catalog: vec![(100, "Default-sale thing", 500, 5)],
        sale: SaleSettings {
            hold_ms: Some(1500),
            ..SaleSettings::default()
        },
        ..StackOptions::default()
    })
    .await
    .expect("the stack starts");
    let second = "second";
    let settings = SaleSettings {
        hold_ms: Some(1500),
        ..SaleSettings::default()
    };
    stack
        .add_sale(second, &catalog(), &settings)
        .await
        .expect("a second sale");
    let mut common = common_of(&stack);
    common.sale = Some(second.to_owned());
    let config = crowd_config(stack.url(&format!("/sales/{second}")), common, 7, None);
    let report = simulate::simulate(&config)
        .await
        .expect("the run completes");
    println!("{report}");
    assert_clean(&report);
    // The default sale was not touched.
    let engine = stack.engine().await.unwrap();
    let info = engine.info(&stack.sale).await.unwrap();
    assert_eq!(
        (info.total.available, info.total.pending, info.total.sold),
        (5, 0, 0)
    );
}

/// `flash simulate --queue` on a redis-server, with the module or the Lua twin (whose
/// admissions the run makes itself, as the worker does): `FLASH_SIM_ARRIVALS` (default
/// 3000) shoppers, half before START, admitted 600 a second; every fairness check passes,
/// and the admission timeline is charted. `FLASH_SIM_ARRIVALS=100000` with
/// `FLASH_SIM_QUEUE_RATE=2000` is the run (README, "Waiting room").
async fn queue_crowd(module: bool, chart_name: &str) {
    let redis = flash_tests::RedisServer::start(flash_tests::ServerOptions {
        module: module.then(|| flash_tests::module_path().expect("the module")),
        ..flash_tests::ServerOptions::default()
    })
    .expect("redis-server");
    let common = Common::new(
        Servers {
            redis_url: redis.url(),
            database_url: None,
        },
        "unused",
    );
    let chart = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
        .join("test-artifacts")
        .join(chart_name);
    let _ = std::fs::remove_file(&chart);
    let config = simulate::queue::QueueConfig {
        arrivals: env_number("FLASH_SIM_ARRIVALS", 3000),
        rate: env_number("FLASH_SIM_QUEUE_RATE", 600) as i64,
        pre_start: Duration::from_secs(2),
        abandon: 0.05,
        poll: Duration::from_millis(300),
        idle_ms: 1500,
        chart: Some(chart.clone()),
        seed: Some(7),
    };
    let report = simulate::queue::simulate_queue(&common, &config)
        .await
        .expect("the queue simulation runs");
    println!("{report}");
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!(report.before_start, config.arrivals / 2);
    assert!(report.abandoned_in_engine > 0, "{report}");
    assert!(chart.exists(), "the chart at {}", chart.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_crowd_is_admitted_fairly_and_at_the_rate() {
    queue_crowd(true, "simulate-queue.png").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_crowd_is_admitted_fairly_by_the_lua_twin() {
    queue_crowd(false, "simulate-queue-lua.png").await;
}
