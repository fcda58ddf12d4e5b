//! The storefront in a real browser: headless Chromium, driven through chromedriver, against
//! the whole stack (redis-server with the module, PostgreSQL, the edge and its worker).
//!
//! - [`driver`]: the chromedriver guard, one [`driver::Page`] per browser session, the waits.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`cargo xtask deps` installs them) or
//! `$CHROMIUM` and `$CHROMEDRIVER`, and `$FLASH_MODULE` like every suite that runs the engine.
//! Screenshots land in `target/test-artifacts/`.

mod driver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use driver::Chromedriver;
use flash_tests::{Stack, StackOptions};

/// The edge on a port chosen up front, so that its WebSocket's allowed origin can be the
/// page's own (`http://127.0.0.1:<port>`). Another process may take the port between the
/// choice and the bind: then the stack is started again on another.
async fn stack_with_own_origin() -> Stack {
    let mut attempt = 1;
    loop {
        let port = flash_tests::free_port().expect("a free port");
        let options = StackOptions {
            edge: Box::new(move |settings| {
                settings.listen = ([127, 0, 0, 1], port).into();
                settings.allowed_origins = vec![format!("http://127.0.0.1:{port}")];
            }),
            ..StackOptions::default()
        };
        match Stack::start(options).await {
            Ok(stack) => return stack,
            Err(e) if attempt < 3 => {
                eprintln!("the stack did not start on port {port} ({e:#}); trying another port");
                attempt += 1;
            }
            Err(e) => panic!("the stack did not start: {e:#}"),
        }
    }
}

/// `target/test-artifacts/`, created.
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || flash_tests::workspace_root().join("target"),
        PathBuf::from,
    );
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Seconds of a `m:ss` countdown.
fn countdown_secs(page: &str, text: &str) -> u64 {
    let parsed = text.split_once(':').and_then(|(m, s)| {
        (s.len() == 2)
            .then(|| Some(m.parse::<u64>().ok()? * 60 + s.parse::<u64>().ok()?))
            .flatten()
    });
    parsed.unwrap_or_else(|| panic!("{page}: the countdown reads {text:?}, not m:ss"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_checks_out_in_the_browser_while_a_watcher_sees_stock_fall_live() {
    let started = Instant::now();
    let stack = stack_with_own_origin().await;
    let display = stack.url("/display");
    let driver = Chromedriver::start().await;
    let (mut buyer, mut watcher) = tokio::join!(driver.page("buyer"), driver.page("watcher"));

    // The watcher signs in first and waits for the live socket and the catalog's stock.
    watcher.goto(&display).await;
    watcher.sign_in("bob").await;
    watcher
        .wait_for(
            "the live indicator",
            "document.getElementById('live-status').dataset.state === 'live'",
        )
        .await;
    watcher.wait_for_text("#stock-1", "5 left").await;
    watcher.wait_for_text("#stock-2", "3 left").await;
    // Both survive only if the page is never reloaded; the count of catalog fetches shows
    // the stock that follows came over the WebSocket, not from the API.
    let catalog_fetches = "performance.getEntriesByType('resource')\
                           .filter((e) => e.name.includes('/products')).length";
    watcher
        .js("window.__flashNoReload = true; return null;")
        .await;
    let fetches_before = watcher.js(&format!("return {catalog_fetches};")).await;

    // The buyer fills a cart with two products.
    buyer.goto(&display).await;
    buyer.sign_in("alice").await;
    buyer.wait_for_text("#stock-1", "5 left").await;
    buyer.wait_for_text("#stock-2", "3 left").await;
    buyer
        .click("#grid .card[data-product-id='1'] button.add")
        .await;
    buyer.wait_for_text("#stock-1", "4 left").await;
    buyer
        .click("#grid .card[data-product-id='2'] button.add")
        .await;
    buyer.wait_for_text("#cart-count", "2").await;
    buyer.wait_for_text("#stock-2", "2 left").await;

    // The watcher sees both falls without reloading.
    watcher.wait_for_text("#stock-1", "4 left").await;
    watcher.wait_for_text("#stock-2", "2 left").await;
    assert_eq!(
        watcher.js("return window.__flashNoReload === true;").await,
        true,
        "the watcher's page was reloaded"
    );
    assert_eq!(
        watcher.js(&format!("return {catalog_fetches};")).await,
        fetches_before,
        "the watcher fetched the catalog again instead of hearing the stock live"
    );

    // The drawer: two lines and the server's 40 s hold counting down.
    buyer.click("#cart-button").await;
    buyer
        .wait_for(
            "the cart drawer to slide in",
            "document.getElementById('cart-drawer').classList.contains('open') \
             && getComputedStyle(document.getElementById('cart-drawer')).transform === 'none'",
        )
        .await;
    buyer
        .wait_for(
            "two cart lines",
            "document.querySelectorAll('#cart-lines .cart-line[data-product-id]').length === 2",
        )
        .await;
    let lines = buyer
        .js(
            "return Array.from(document.querySelectorAll('#cart-lines .cart-line'))\
             .map((l) => Number(l.dataset.productId)).sort();",
        )
        .await;
    assert_eq!(lines, serde_json::json!([1, 2]), "the cart's lines");
    let first = buyer.text("#countdown").await.unwrap_or_default();
    let first_secs = countdown_secs("buyer", &first);
    assert!(
        first_secs > 30 && first_secs <= 40,
        "the countdown reads {first}; a fresh 40 s hold should read 0:31 to 0:40"
    );
    let first_json = serde_json::json!(first);
    let later = buyer
        .wait_for(
            "the countdown to tick",
            &format!(
                "document.getElementById('countdown').textContent !== {first_json} \
                 && document.getElementById('countdown').textContent"
            ),
        )
        .await;
    let later = later.as_str().unwrap_or_default().to_owned();
    assert!(
        countdown_secs("buyer", &later) < first_secs,
        "the countdown went from {first} to {later}"
    );

    // Checkout, and the order confirmed by the worker.
    buyer
        .wait_for(
            "the checkout button to be enabled",
            "!document.getElementById('checkout').disabled",
        )
        .await;
    buyer.click("#checkout").await;
    buyer
        .wait_for(
            "the order to be confirmed",
            "document.querySelector('#order-status-text[data-status=confirmed]') !== null",
        )
        .await;
    let order_text = buyer.text("#order-id").await.unwrap_or_default();
    let order_id = order_text
        .strip_prefix("Order ")
        .unwrap_or_else(|| panic!("the popup names no order: {order_text:?}"))
        .to_owned();

    let artifacts = artifacts_dir();
    let checkout_png = buyer
        .screenshot(&artifacts.join("browser-checkout.png"))
        .await;
    let watcher_png = watcher
        .screenshot(&artifacts.join("browser-watcher.png"))
        .await;
    println!("screenshot: {}", checkout_png.display());
    println!("screenshot: {}", watcher_png.display());

    // Signing out from the page: the browser's own DELETE passes the edge's cross-site
    // checks (a refusal would leave the user signed in, with a toast). The order popup may
    // cover the header, so the button is clicked from script.
    buyer
        .js("document.getElementById('signout').click(); return null;")
        .await;
    buyer
        .wait_for(
            "the sign-in form after signing out",
            "!document.getElementById('signin').hidden",
        )
        .await;

    for page in [&mut buyer, &mut watcher] {
        let errors = page.errors().await;
        assert!(
            errors.is_empty(),
            "{}: errors in the browser console:\n{}",
            page.name,
            errors.join("\n")
        );
    }
    buyer.close().await;
    watcher.close().await;
    drop(driver);

    // PostgreSQL has alice's order, confirmed, with its two lines.
    let pg = stack.database().await.expect("the database");
    let orders = pg
        .query(
            "SELECT o.id, o.status, \
                    array_agg(l.product_id ORDER BY l.product_id), \
                    array_agg(l.qty ORDER BY l.product_id) \
             FROM orders o JOIN users u ON u.id = o.user_id \
             JOIN order_lines l ON l.sale = o.sale AND l.order_id = o.id \
             WHERE u.username = 'alice' AND o.sale = $1 \
             GROUP BY o.id, o.status",
            &[&stack.sale],
        )
        .await
        .expect("alice's orders");
    let orders: Vec<(String, String, Vec<i64>, Vec<i64>)> = orders
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        orders,
        [(order_id, "confirmed".to_owned(), vec![1, 2], vec![1, 1])],
        "alice's orders in PostgreSQL"
    );

    // The engine's ledger agrees with the database once the worker has settled the order
    // (the commit comes first, the settle a moment later).
    let engine = stack.engine().await.expect("the engine");
    let reconciled = Instant::now();
    loop {
        let rows = flash_worker::stock::reconcile(&pg, &engine, &stack.sale)
            .await
            .expect("reconcile");
        if rows.iter().all(|r| r.matches()) {
            break;
        }
        assert!(
            reconciled.elapsed() < Duration::from_secs(10),
            "the engine and the database disagree:\n{}",
            flash_worker::stock::table(&rows)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("the browser journey took {:?}", started.elapsed());
}
