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

use driver::{Chromedriver, Page};
use flash_api_client::{EdgeClient, LineChange, OrderStatus};
use flash_client::SaleSettings;
use flash_core::model::Seed;
use flash_tests::{Stack, StackOptions};

/// The edge on a port chosen up front, so that its WebSocket's allowed origin can be the
/// page's own (`http://127.0.0.1:<port>`). Another process may take the port between the
/// choice and the bind: then the stack is started again on another.
async fn stack_with_own_origin() -> Stack {
    stack_with_own_origin_and(SaleSettings::default()).await
}

/// [`stack_with_own_origin`] with these sale settings; the waiting page's socket pushes the
/// place every 250 ms.
async fn stack_with_own_origin_and(sale: SaleSettings) -> Stack {
    let mut attempt = 1;
    loop {
        let port = flash_tests::free_port().expect("a free port");
        let options = StackOptions {
            edge: Box::new(move |settings| {
                settings.listen = ([127, 0, 0, 1], port).into();
                settings.allowed_origins = vec![format!("http://127.0.0.1:{port}")];
                settings.queue_poll_ms = 250;
            }),
            sale: sale.clone(),
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

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock")
        .as_millis() as i64
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
            "a visitor's header after signing out",
            "!document.getElementById('signin-open').hidden \
             && document.getElementById('user-box').hidden",
        )
        .await;

    for page in [&mut buyer, &mut watcher] {
        page.assert_no_errors().await;
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

/// The product ids of the cards on screen, ascending.
async fn card_ids(page: &Page) -> serde_json::Value {
    page.js(
        "return Array.from(document.querySelectorAll('#grid .card[data-product-id]'))\
         .map((c) => Number(c.dataset.productId)).sort((a, b) => a - b);",
    )
    .await
}

/// The picker's sales in order, each with whether it is the one pressed.
const PICKER: &str = "Array.from(document.querySelectorAll('#sale-picker button[data-sale]'))\
                      .map((b) => [b.dataset.sale, b.getAttribute('aria-pressed')])";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_picks_another_sale_and_buys_in_it() {
    let stack = stack_with_own_origin().await;
    stack
        .add_sale(
            "autumn",
            &[(11, "Rain coat", 5900, 4), (12, "Umbrella", 1900, 2)],
            &SaleSettings::default(),
        )
        .await
        .expect("the autumn sale");
    let driver = Chromedriver::start().await;
    let mut shopper = driver.page("shopper").await;

    // Two sales: the picker shows both, the default sale first and picked, and its products.
    shopper.goto(&stack.url("/display")).await;
    shopper.sign_in("carol").await;
    let picker = shopper
        .wait_for(
            "the sale picker with two sales",
            &format!(
                "!document.getElementById('sale-picker').hidden && {PICKER}.length === 2 && {PICKER}"
            ),
        )
        .await;
    assert_eq!(
        picker,
        serde_json::json!([["test-sale", "true"], ["autumn", "false"]]),
        "the picker: the default sale first, and picked"
    );
    assert_eq!(card_ids(&shopper).await, serde_json::json!([1, 2, 3]));
    assert_eq!(
        shopper
            .text("#sale-picker button[data-sale='autumn'] .sale-option-title")
            .await
            .as_deref(),
        Some("The autumn sale")
    );

    // Picking autumn: its products only, its name in the URL, its live stock.
    shopper
        .click("#sale-picker button[data-sale='autumn']")
        .await;
    shopper
        .wait_for(
            "autumn's products",
            "document.querySelectorAll('#grid .card[data-product-id]').length === 2 \
             && document.getElementById('stock-11')?.textContent === '4 left'",
        )
        .await;
    assert_eq!(card_ids(&shopper).await, serde_json::json!([11, 12]));
    assert_eq!(
        shopper.js("return location.search;").await,
        "?sale=autumn",
        "the pick in the URL"
    );
    assert_eq!(
        shopper.js(&format!("return {PICKER};")).await,
        serde_json::json!([["test-sale", "false"], ["autumn", "true"]])
    );
    shopper
        .wait_for_text("#sale-status", "Autumn sale · Open")
        .await;
    shopper
        .wait_for(
            "the live indicator",
            "document.getElementById('live-status').dataset.state === 'live'",
        )
        .await;

    // Someone else reserves an umbrella through the API: the page hears it on autumn's socket
    // (the default sale's socket never carries autumn's stock), without fetching products.
    let products_fetches = "performance.getEntriesByType('resource')\
                            .filter((e) => e.name.includes('/products')).length";
    let fetches_before = shopper.js(&format!("return {products_fetches};")).await;
    let dave = EdgeClient::new(&stack.url(""))
        .expect("a client")
        .sign_in("dave")
        .await
        .expect("dave signs in")
        .token;
    let dave_autumn = EdgeClient::new(&stack.url("/sales/autumn"))
        .expect("a client")
        .with_token(&dave)
        .expect("the token");
    let dave_cart = uuid::Uuid::new_v4().to_string();
    dave_autumn
        .cart_add(&LineChange::one(12, &dave_cart))
        .await
        .expect("dave's umbrella");
    shopper.wait_for_text("#stock-12", "1 left").await;
    assert_eq!(
        shopper.js(&format!("return {products_fetches};")).await,
        fetches_before,
        "the stock came from a refetch, not the live socket"
    );

    // A reload keeps the pick, and every catalog call goes to autumn's paths.
    shopper.js("location.reload(); return null;").await;
    shopper
        .wait_for(
            "autumn's products after the reload",
            "document.querySelectorAll('#grid .card[data-product-id]').length === 2 \
             && document.getElementById('stock-12')?.textContent === '1 left'",
        )
        .await;
    assert_eq!(card_ids(&shopper).await, serde_json::json!([11, 12]));
    // The API calls the page made (its fetches), less the shop-wide ones: the session, the
    // ways to sign in and the list of sales.
    let fetched = shopper
        .js("return performance.getEntriesByType('resource')\
             .filter((e) => e.initiatorType === 'fetch')\
             .map((e) => new URL(e.name).pathname)\
             .filter((p) => !['/session', '/login', '/sales/'].includes(p));")
        .await;
    let fetched: Vec<String> = serde_json::from_value(fetched).expect("a list of paths");
    assert!(
        fetched.iter().any(|p| p == "/sales/autumn/products/")
            && fetched.iter().all(|p| p.starts_with("/sales/autumn/")),
        "the calls after the reload: {fetched:?}"
    );
    shopper
        .wait_for(
            "autumn still picked after the reload",
            &format!("{PICKER}.length === 2 && {PICKER}[1][1] === 'true'"),
        )
        .await;

    // A raincoat into the cart, and checkout: the order is autumn's.
    shopper
        .click("#grid .card[data-product-id='11'] button.add")
        .await;
    shopper.wait_for_text("#cart-count", "1").await;
    shopper.wait_for_text("#stock-11", "3 left").await;
    shopper.click("#cart-button").await;
    shopper
        .wait_for(
            "the cart drawer to slide in with the raincoat",
            "getComputedStyle(document.getElementById('cart-drawer')).transform === 'none' \
             && document.querySelector('#cart-lines .cart-line[data-product-id=\"11\"]') !== null \
             && !document.getElementById('checkout').disabled",
        )
        .await;
    shopper.click("#checkout").await;
    shopper
        .wait_for(
            "the order to be confirmed",
            "document.querySelector('#order-status-text[data-status=confirmed]') !== null",
        )
        .await;
    let order_text = shopper.text("#order-id").await.unwrap_or_default();
    let order_id = order_text
        .strip_prefix("Order ")
        .unwrap_or_else(|| panic!("the popup names no order: {order_text:?}"))
        .to_owned();
    let screenshot = shopper
        .screenshot(&artifacts_dir().join("browser-sales.png"))
        .await;
    println!("screenshot: {}", screenshot.display());

    // Back to the default sale: its products and stock, untouched; no sale in the URL.
    shopper.click("#order-close").await;
    shopper
        .click("#sale-picker button[data-sale='test-sale']")
        .await;
    shopper
        .wait_for(
            "the default sale's products",
            "document.querySelectorAll('#grid .card[data-product-id]').length === 3 \
             && document.getElementById('stock-1')?.textContent === '5 left'",
        )
        .await;
    assert_eq!(card_ids(&shopper).await, serde_json::json!([1, 2, 3]));
    assert_eq!(shopper.js("return location.search;").await, "");
    shopper.assert_no_errors().await;
    shopper.close().await;
    drop(driver);

    // Through the API: the order is carol's in autumn, unknown to the default sale.
    let carol = EdgeClient::new(&stack.url(""))
        .expect("a client")
        .sign_in("carol")
        .await
        .expect("carol signs in")
        .token;
    let carol_autumn = EdgeClient::new(&stack.url("/sales/autumn"))
        .expect("a client")
        .with_token(&carol)
        .expect("the token");
    let order = carol_autumn.order(&order_id).await.expect("autumn's order");
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(order.units, 1);
    let carol_default = EdgeClient::new(&stack.url(""))
        .expect("a client")
        .with_token(&carol)
        .expect("the token");
    let elsewhere = carol_default.order(&order_id).await;
    assert_eq!(
        elsewhere.as_ref().err().and_then(|e| e.code()),
        Some("NOCART"),
        "the order in the default sale: {elsewhere:?}"
    );
    // And in PostgreSQL: autumn's order, its one line the raincoat.
    let pg = stack.database().await.expect("the database");
    let rows = pg
        .query(
            "SELECT o.sale, o.status, l.product_id, l.qty FROM orders o \
             JOIN users u ON u.id = o.user_id \
             JOIN order_lines l ON l.sale = o.sale AND l.order_id = o.id \
             WHERE u.username = 'carol'",
            &[],
        )
        .await
        .expect("carol's orders");
    let rows: Vec<(String, String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        rows,
        [("autumn".to_owned(), "confirmed".to_owned(), 11, 1)],
        "carol's orders in PostgreSQL"
    );
}

/// A visitor sees the catalog and its live stock without an account; the first add to cart
/// asks for one, and once signed in that add is made, on the page the visitor was on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_browses_live_stock_and_signs_in_at_the_first_add() {
    let stack = stack_with_own_origin().await;
    let driver = Chromedriver::start().await;
    let mut visitor = driver.page("visitor").await;
    visitor.goto(&stack.url("/")).await;
    visitor
        .wait_for(
            "the live indicator, signed out",
            "document.getElementById('live-status').dataset.state === 'live'",
        )
        .await;
    visitor.wait_for_text("#stock-1", "5 left").await;
    let signed_out = visitor
        .js("return [document.getElementById('signin').hidden, \
             document.getElementById('signin-open').hidden, \
             document.getElementById('cart-button').hidden];")
        .await;
    assert_eq!(
        signed_out,
        serde_json::json!([true, false, true]),
        "a visitor sees the shop, a Sign in button, and no cart"
    );

    // Someone else buys: the visitor's page follows live.
    let buyer = EdgeClient::new(&stack.url("")).expect("the stack's URL");
    buyer.sign_in("frank").await.expect("frank signs in");
    buyer
        .cart_add(&LineChange::one(1, "frank-cart"))
        .await
        .expect("frank's add");
    visitor.wait_for_text("#stock-1", "4 left").await;

    // The first add asks for an account, then is made.
    visitor
        .click("#grid .card[data-product-id='2'] button.add")
        .await;
    visitor
        .wait_for(
            "the sign-in panel, opened by the add",
            "!document.getElementById('signin').hidden",
        )
        .await;
    // Past the panel's fade-in, for a picture of it at rest.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let panel_png = visitor
        .screenshot(&artifacts_dir().join("browser-visitor-signin.png"))
        .await;
    println!("screenshot: {}", panel_png.display());
    visitor.sign_in("erin").await;
    visitor.wait_for_text("#cart-count", "1").await;
    visitor.wait_for_text("#stock-2", "2 left").await;
    visitor.assert_no_errors().await;
}

/// A sale with a waiting room that admits one shopper at a time: a shopper's first add sends
/// them in line; the waiting page shows the place fall as the shoppers ahead check out, and
/// the shop opens for them (the add made) when their turn comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_shopper_sees_the_place_fall_and_lands_in_the_shop() {
    let stack = stack_with_own_origin_and(SaleSettings {
        queue_cap: Some(1),
        seed: Seed::parse(b"0123456789abcdef0123456789abcdef"),
        ..SaleSettings::default()
    })
    .await;
    // Two shoppers ahead: the first admitted (the cap's one place), the second waiting.
    let mut ahead = Vec::new();
    for name in ["amy", "ben"] {
        let client = EdgeClient::new(&stack.url("")).expect("the stack's URL");
        client.sign_in(name).await.expect("signed in");
        client.join_queue().await.expect("joins the line");
        ahead.push(client);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(ahead[0].place().await.expect("amy").state, "admitted");
    assert_eq!(ahead[1].place().await.expect("ben").position, 1);

    let driver = Chromedriver::start().await;
    let mut shopper = driver.page("queued").await;
    shopper.goto(&stack.url("/")).await;
    shopper.wait_for_text("#stock-1", "5 left").await;
    shopper.sign_in("cleo").await;
    shopper
        .click("#grid .card[data-product-id='1'] button.add")
        .await;
    shopper
        .wait_for(
            "the waiting page, opened by the refused add",
            "!document.getElementById('waiting').hidden",
        )
        .await;
    shopper.wait_for_text("#waiting-position", "2").await;
    shopper.wait_for_text("#waiting-line", "2").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let png = shopper
        .screenshot(&artifacts_dir().join("browser-waiting-room.png"))
        .await;
    println!("screenshot: {}", png.display());

    // The shoppers ahead buy and go: the place falls, then the shop opens, the add made.
    for (i, client) in ahead.iter().enumerate() {
        let cart = format!("ahead-{i}");
        for _ in 0..100 {
            if client.place().await.expect("the place").state == "admitted" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client
            .cart_add(&LineChange::one(2, &cart))
            .await
            .expect("admitted, adds");
        client.checkout(&cart).await.expect("checks out");
        if i == 0 {
            shopper.wait_for_text("#waiting-position", "1").await;
        }
    }
    shopper
        .wait_for(
            "the shop, once admitted",
            "document.getElementById('waiting').hidden",
        )
        .await;
    shopper.wait_for_text("#cart-count", "1").await;
    shopper.wait_for_text("#stock-1", "4 left").await;
    shopper.assert_no_errors().await;
}

/// Before a sale with a waiting room opens, its banner says how places are given, and an add
/// sends the shopper into the pre-queue (no position yet: the places are drawn at START);
/// at START the shopper is admitted and the add is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_who_comes_before_start_waits_in_the_pre_queue_and_is_let_in_at_start() {
    let far_ms = unix_ms() + 3_600_000;
    let stack = stack_with_own_origin_and(SaleSettings {
        start_ms: Some(far_ms),
        queue_rate: Some(50),
        seed: Seed::parse(b"fedcba9876543210fedcba9876543210"),
        ..SaleSettings::default()
    })
    .await;
    let driver = Chromedriver::start().await;
    let mut shopper = driver.page("early").await;
    shopper.goto(&stack.url("/")).await;
    shopper
        .wait_for(
            "the waiting room's banner",
            "!document.getElementById('queue-banner').hidden \
             && document.getElementById('queue-banner-text').textContent.includes('drawn at random')",
        )
        .await;
    shopper.wait_for_text("#stock-1", "5 left").await;
    shopper.sign_in("dana").await;
    shopper
        .click("#grid .card[data-product-id='1'] button.add")
        .await;
    shopper
        .wait_for(
            "the waiting page, in the pre-queue",
            "!document.getElementById('waiting').hidden \
             && document.getElementById('waiting').dataset.state === 'early'",
        )
        .await;
    shopper.wait_for_text("#waiting-position", "–").await;

    // The sale opens in a moment: the engine admits the pre-queue, the page lets dana in.
    let engine = stack.engine().await.expect("the engine");
    let start_ms = unix_ms() + 1_500;
    engine
        .sale(
            &stack.sale,
            &SaleSettings {
                start_ms: Some(start_ms),
                ..SaleSettings::default()
            },
        )
        .await
        .expect("START moved");
    shopper
        .wait_for(
            "the shop, once admitted at START",
            "document.getElementById('waiting').hidden",
        )
        .await;
    shopper.wait_for_text("#cart-count", "1").await;
    shopper.wait_for_text("#stock-1", "4 left").await;
    shopper.assert_no_errors().await;
}
