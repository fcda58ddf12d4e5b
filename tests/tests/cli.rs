//! The `flash` operator commands against a real redis-server and a real PostgreSQL: the
//! built binary, run as an operator would.

#![allow(clippy::unwrap_used)]

use std::process::Output;

use flash_tests::{CliServers, explain, flash_binary};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_reconcile_keep_the_books_and_say_when_they_differ() {
    let servers = CliServers::start();
    let migrated = servers.flash(&["migrate"]);
    assert!(migrated.status.success(), "{}", explain(&migrated));
    let pg = servers.database().await;
    pg.batch_execute(
        "INSERT INTO products (id, name, price_cents, stock)
         VALUES (1, 'Keyboard', 8900, 10), (2, 'Mouse', 2900, 4)",
    )
    .await
    .unwrap();

    let created = servers.flash(&["sale", "create", "--hold-ms", "60000", "--limit", "3"]);
    assert!(created.status.success(), "{}", explain(&created));
    assert!(
        stdout(&created).contains("hold 60000 ms, limit 3"),
        "{}",
        explain(&created)
    );
    let synced = servers.flash(&["stock", "sync"]);
    assert!(synced.status.success(), "{}", explain(&synced));
    assert!(stdout(&synced).contains("loaded 2 products"));

    // Units held in a cart are not counted twice by a second sync.
    let engine = flash_client::FlashClient::connect(&servers.redis.url())
        .await
        .unwrap();
    engine.reserve("cli", "c1", "7", 1, 3).await.unwrap();
    assert!(servers.flash(&["stock", "sync"]).status.success());
    let reconciled = servers.flash(&["reconcile"]);
    assert!(reconciled.status.success(), "{}", explain(&reconciled));
    assert!(stdout(&reconciled).contains("every product matches"));
    let shown = servers.flash(&["sale", "show"]);
    assert!(shown.status.success(), "{}", explain(&shown));
    let keyboard_row = stdout(&shown)
        .lines()
        .find(|line| line.trim_start().starts_with("1 "))
        .map(|line| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .unwrap();
    // product, loaded, available, held, pending, sold
    assert_eq!(keyboard_row, ["1", "10", "7", "3", "0", "0"]);

    // Someone changes the database behind the sale's back: reconcile says so and fails.
    pg.execute("UPDATE products SET stock = 9 WHERE id = 2", &[])
        .await
        .unwrap();
    let differs = servers.flash(&["reconcile"]);
    assert_eq!(differs.status.code(), Some(1), "{}", explain(&differs));
    assert!(stdout(&differs).contains("differ"), "{}", explain(&differs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_lists_recent_orders_with_their_engine_state() {
    let servers = CliServers::start();
    assert!(servers.flash(&["migrate"]).status.success());
    let pg = servers.database().await;
    pg.batch_execute(
        "INSERT INTO users (id, username) VALUES (7, 'alice');
         INSERT INTO products (id, name, price_cents, stock) VALUES (1, 'Keyboard', 8900, 10);
         INSERT INTO orders (sale, id, user_id, status, stream_id)
         VALUES ('cli', 'order-1', 7, 'confirmed', '1-0');
         INSERT INTO order_lines (sale, order_id, product_id, qty, unit_price_cents)
         VALUES ('cli', 'order-1', 1, 2, 8900);",
    )
    .await
    .unwrap();
    assert!(servers.flash(&["sale", "create"]).status.success());
    let listed = servers.flash(&["orders", "--limit", "5"]);
    assert!(listed.status.success(), "{}", explain(&listed));
    let line = stdout(&listed)
        .lines()
        .find(|line| line.starts_with("order-1"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{}", explain(&listed)));
    // Known to PostgreSQL, unknown to the engine (it was written by hand): both are shown.
    for expected in ["alice", "confirmed", "178.00", "NOCART"] {
        assert!(line.contains(expected), "{expected} in {line}");
    }
}

#[test]
fn errors_say_what_to_do() {
    let output = std::process::Command::new(flash_binary())
        .args(["reconcile"])
        .env_remove("DATABASE_URL")
        .env("REDIS_URL", "redis://127.0.0.1:1/")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL is not set"), "{stderr}");
    let help = std::process::Command::new(flash_binary())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for command in [
        "up",
        "edge",
        "worker",
        "sale",
        "stock",
        "reconcile",
        "orders",
        "simulate",
    ] {
        assert!(help.contains(command), "{command} in --help:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_catalog_goes_into_an_empty_database_once() {
    let servers = CliServers::start();
    let first = servers.flash(&["stock", "demo"]);
    assert!(first.status.success(), "{}", explain(&first));
    assert!(
        stdout(&first).contains("added the demo catalog"),
        "{}",
        explain(&first)
    );
    let again = servers.flash(&["stock", "demo"]);
    assert!(again.status.success(), "{}", explain(&again));
    assert!(
        stdout(&again).contains("was not added"),
        "{}",
        explain(&again)
    );
    let pg = servers.database().await;
    let (products, units): (i64, i64) = {
        let row = pg
            .query_one("SELECT count(*), sum(stock)::bigint FROM products", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(products >= 24, "dozens of products: {products}");
    assert!(servers.flash(&["sale", "create"]).status.success());
    assert!(servers.flash(&["stock", "sync"]).status.success());
    let engine = flash_client::FlashClient::connect(&servers.redis.url())
        .await
        .unwrap();
    assert_eq!(engine.info("cli").await.unwrap().total.available, units);
}

#[test]
fn worker_and_edge_take_the_same_worker_flags() {
    for command in ["worker", "edge"] {
        let help = std::process::Command::new(flash_binary())
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in ["--batch-size", "--consumer", "--claim-idle-ms", "--sale"] {
            assert!(
                help.contains(flag),
                "{flag} in flash {command} --help:\n{help}"
            );
        }
    }
}

/// `docker stop` and service managers send SIGTERM: the worker stops as on Ctrl-C, exit 0,
/// under the consumer name it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stops_cleanly_on_sigterm() {
    let servers = CliServers::start();
    let mut worker = std::process::Command::new(flash_binary())
        .args(["worker", "--consumer", "w-term", "--batch-size", "8"])
        .env("REDIS_URL", servers.redis.url())
        .env("DATABASE_URL", &servers.database_url)
        .env("FLASH_SALE", "cli")
        .env("RUST_LOG", "warn")
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The worker joins the group once it runs (its signal handlers are in place by then).
    let mut redis = servers.redis.client().get_connection().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let consumers = loop {
        let consumers: redis::RedisResult<Vec<redis::Value>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg("flash:{cli}:orders")
            .arg("flash-workers")
            .query(&mut redis);
        if let Ok(consumers) = consumers
            && !consumers.is_empty()
        {
            break consumers;
        }
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker exited before it joined the group"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never joined"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(format!("{consumers:?}").contains("w-term"), "{consumers:?}");
    let pid = libc::pid_t::try_from(worker.id()).unwrap();
    // SAFETY: kill(2) on our own, unreaped child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 20 s after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status}");
}
