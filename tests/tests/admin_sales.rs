//! The `flash` commands over many sales, as an operator runs them (the built binary against a
//! real redis-server and PostgreSQL): `flash sale create --title/--products` records the sale
//! in the catalog and loads its products, refusing a product of another sale; `stock sync`
//! and `reconcile` see only the sale's products; `flash worker --all-sales` consumes a sale
//! of the catalog that FLASH.SALE makes while it runs.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use flash_core::ErrorCode;
use flash_core::model::CartState;
use flash_tests::{CLI_SALE, CliServers, explain};

/// The product ids of a `reconcile` table, in its order.
fn reconciled_products(table: &str) -> Vec<i64> {
    table
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect()
}

async fn catalog(servers: &CliServers) -> tokio_postgres::Client {
    servers.ok(&["migrate"]);
    let pg = servers.database().await;
    pg.batch_execute(
        "INSERT INTO users (id, username) VALUES (1, 'alice');
         INSERT INTO products (id, name, price_cents, stock)
         SELECT n, 'product ' || n, 100, 10 FROM generate_series(1, 4) n;",
    )
    .await
    .unwrap();
    pg
}

async fn catalog_rows(pg: &tokio_postgres::Client) -> (Vec<(String, String)>, Vec<(String, i64)>) {
    let sales = pg
        .query("SELECT name, title FROM sales ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let products = pg
        .query(
            "SELECT sale, product_id FROM sale_products ORDER BY product_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    (sales, products)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sale_create_records_the_sale_and_refuses_a_product_of_another_sale() {
    let servers = CliServers::start();
    let pg = catalog(&servers).await;
    let engine = servers.engine().await;

    let created = servers.ok(&[
        "sale",
        "--sale",
        "spring",
        "create",
        "--title",
        "Spring sale",
        "--products",
        "1,2",
    ]);
    assert!(
        created.contains("loaded 2 products into sale 'spring'"),
        "{created}"
    );
    let spring: Vec<(i64, i64)> = engine
        .info("spring")
        .await
        .unwrap()
        .skus
        .iter()
        .map(|(sku, units)| (*sku, units.available))
        .collect();
    assert_eq!(spring, [(1, 10), (2, 10)], "its products' stock, loaded");

    // Product 2 is spring's: the whole call is refused, nothing recorded, no sale made.
    let refused = servers.flash(&["sale", "--sale", "autumn", "create", "--products", "2,3"]);
    assert_eq!(refused.status.code(), Some(1), "{}", explain(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("INOTHERSALE") && stderr.contains("product 2 is in sale 'spring'"),
        "{stderr}"
    );
    let expected_catalog = (
        vec![("spring".to_owned(), "Spring sale".to_owned())],
        vec![("spring".to_owned(), 1), ("spring".to_owned(), 2)],
    );
    assert_eq!(catalog_rows(&pg).await, expected_catalog);
    assert_eq!(
        engine.info("autumn").await.err().and_then(|e| e.code()),
        Some(ErrorCode::NoSale)
    );

    // The default sale sells what no sale lists: 3 and 4.
    servers.ok(&["sale", "create"]);
    let synced = servers.ok(&["stock", "sync"]);
    assert!(
        synced.contains("loaded 2 products into sale 'cli'"),
        "{synced}"
    );
    assert_eq!(reconciled_products(&servers.ok(&["reconcile"])), [3, 4]);
    assert_eq!(
        reconciled_products(&servers.ok(&["reconcile", "--sale", "spring"])),
        [1, 2]
    );

    // Product 3 has units on sale in the default sale: moving it would sell them twice.
    let moving = servers.flash(&["sale", "--sale", "autumn", "create", "--products", "3"]);
    assert_eq!(moving.status.code(), Some(1), "{}", explain(&moving));
    let stderr = String::from_utf8_lossy(&moving.stderr);
    assert!(
        stderr.contains("product 3 is on sale in the default sale 'cli'"),
        "{stderr}"
    );
    assert_eq!(catalog_rows(&pg).await, expected_catalog);
    // An unknown product is refused as such.
    let unknown = servers.flash(&["sale", "--sale", "autumn", "create", "--products", "99"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", explain(&unknown));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no product 99"),
        "{}",
        explain(&unknown)
    );
    // The same products again, a new title: fine.
    servers.ok(&[
        "sale",
        "--sale",
        "spring",
        "create",
        "--title",
        "Spring",
        "--products",
        "2",
    ]);
    let (sales, _) = catalog_rows(&pg).await;
    assert_eq!(sales, [("spring".to_owned(), "Spring".to_owned())]);
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_with_all_sales_waits_for_a_cataloged_sale_then_consumes_it() {
    let servers = CliServers::start();
    let pg = catalog(&servers).await;
    let engine = servers.engine().await;
    // Product 1 goes to `later` (recorded below), so the default sale must not carry it.
    pg.execute(
        "INSERT INTO sales (name, title) VALUES ('later', 'Later')",
        &[],
    )
    .await
    .unwrap();
    pg.execute(
        "INSERT INTO sale_products (sale, product_id) VALUES ('later', 1)",
        &[],
    )
    .await
    .unwrap();
    servers.ok(&["sale", "create"]);
    servers.ok(&["stock", "sync"]);
    let _worker = Running(
        servers
            .command(&["worker", "--all-sales", "--sales-refresh-ms", "200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    engine.buy(CLI_SALE, "o1", "1", 4, 1).await.unwrap();
    // FLASH.SALE and the stock, after the worker started.
    servers.ok(&["sale", "--sale", "later", "create", "--products", "1"]);
    engine.buy("later", "o1", "1", 1, 2).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for sale in [CLI_SALE, "later"] {
        while engine.cart(sale, "o1").await.unwrap().state != CartState::Settled {
            assert!(Instant::now() < deadline, "{sale}'s order not settled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let orders = servers.ok(&["orders", "--sale", "later"]);
    assert!(
        orders
            .lines()
            .any(|line| line.starts_with("o1") && line.contains("settled")),
        "{orders}"
    );
    assert_eq!(
        reconciled_products(&servers.ok(&["reconcile", "--sale", "later"])),
        [1]
    );
}
