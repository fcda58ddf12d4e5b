//! The JSON API: sessions, the catalog, carts, orders, errors, limits, health and metrics.

use std::time::Duration;

use flash_api_client::{Buy, EdgeClient, Line, LineChange, Method, Order, OrderStatus, StatusCode};
use flash_client::SaleSettings;
use flash_core::model::CartState;
use flash_tests::{Stack, StackOptions};
use serde_json::{Value, json};

use crate::common::{
    assert_error, assert_refused, browser, get, post_json, post_raw, signed_in, user_count,
};

async fn stack() -> Stack {
    Stack::start(StackOptions::default())
        .await
        .expect("the stack starts")
}

/// Polls an order until it leaves `pending` (the embedded worker's verdict).
async fn settled(buyer: &EdgeClient, order: &str) -> Order {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let order = buyer.order(order).await.expect("the order");
        if order.status != OrderStatus::Pending {
            return order;
        }
        assert!(tokio::time::Instant::now() < deadline, "still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_signed_and_read_from_the_cookie_or_the_bearer_token() {
    let stack = stack().await;
    let anonymous = browser(&stack);
    assert_refused(anonymous.whoami().await, 401, "UNAUTHENTICATED");
    let signed = anonymous.sign_in("alice").await.unwrap();
    let (token, id) = (signed.token, signed.user.id);
    // The cookie jar now carries the session.
    assert_eq!(anonymous.whoami().await.unwrap().username, "alice");
    // An API client uses the token from the body.
    let api = EdgeClient::new(&stack.url(""))
        .unwrap()
        .with_token(&token)
        .unwrap();
    assert_eq!(api.whoami().await.unwrap().id, id);
    // Signing in again is the same user; a forged token is nobody.
    let again = signed_in(&stack, "alice").await;
    assert_eq!(again.whoami().await.unwrap().id, id);
    let forged = EdgeClient::new(&stack.url(""))
        .unwrap()
        .with_token(&format!("{token}x"))
        .unwrap();
    assert_refused(forged.whoami().await, 401, "UNAUTHENTICATED");
    assert_refused(anonymous.sign_in("no spaces").await, 422, "INVALID");
    // Signing out clears the cookie.
    again.sign_out().await.unwrap();
    assert_refused(again.whoami().await, 401, "UNAUTHENTICATED");
    assert_eq!(user_count(&stack).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_pages_carry_live_stock() {
    let stack = stack().await;
    let buyer = browser(&stack);
    let page = buyer.products(0, 2).await.unwrap();
    assert_eq!((page.total, page.pages, page.page), (3, 2, 1));
    assert_eq!(page.items.len(), 2);
    // The wire shape, field for field.
    let raw: Value = get(&buyer, "/products/?skip=0&limit=2")
        .await
        .json()
        .unwrap();
    assert_eq!(
        raw["items"][0],
        json!({"id": 1, "name": "Mechanical keyboard", "price_cents": 8900, "available": 5, "on_sale": true})
    );
    // A reserve shows on the next page read at once: available comes from the engine.
    let engine = stack.engine().await.unwrap();
    engine.reserve(&stack.sale, "c1", "9", 1, 2).await.unwrap();
    let page = buyer.products(0, 2).await.unwrap();
    assert_eq!(page.items[0].available, 3);
    let last = buyer.products(2, 2).await.unwrap();
    assert_eq!(last.page, 2);
    assert_eq!(last.items.len(), 1);
    // The page size is capped; bad numbers are named.
    assert_eq!(buyer.products(0, 100_000).await.unwrap().limit, 60);
    let bad = assert_error(&get(&buyer, "/products/?skip=-1").await, 422, "INVALID");
    assert!(bad.message.contains("skip"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_is_filled_emptied_checked_out_and_confirmed() {
    let stack = stack().await;
    let buyer = signed_in(&stack, "alice").await;
    let cart = "0b6f3c3e-1111-4a4a-9999-000000000001";
    let added = buyer.cart_add(&LineChange::one(1, cart)).await.unwrap();
    assert_eq!((added.product_id, added.available), (1, 4));
    let two = LineChange {
        product_id: 2,
        cart_id: cart,
        qty: Some(2),
    };
    let added = buyer.cart_add(&two).await.unwrap();
    let view = &added.cart;
    assert_eq!(
        (view.state, view.status),
        (CartState::Held, OrderStatus::Held)
    );
    assert_eq!(view.units, 3);
    let line = |product_id, name: &str, price_cents, qty| Line {
        product_id,
        name: Some(name.to_owned()),
        price_cents: Some(price_cents),
        qty,
    };
    assert_eq!(
        view.lines,
        [
            line(1, "Mechanical keyboard", 8900, 1),
            line(2, "Wireless mouse", 2900, 2)
        ]
    );
    let remaining = view.deadline_ms - view.now_ms;
    assert!(
        (35_000..=40_000).contains(&remaining),
        "the server's 40 s hold: {remaining}"
    );
    // The wire shape of a cart, field for field.
    let shown: Value = get(&buyer, &format!("/cart/{cart}")).await.json().unwrap();
    assert_eq!(
        shown["lines"],
        json!([
            {"product_id": 1, "name": "Mechanical keyboard", "price_cents": 8900, "qty": 1},
            {"product_id": 2, "name": "Wireless mouse", "price_cents": 2900, "qty": 2}
        ])
    );
    assert_eq!(
        (&shown["cart_id"], &shown["state"]),
        (&json!(cart), &json!("held"))
    );
    let removed = buyer.cart_remove(&LineChange::one(2, cart)).await.unwrap();
    assert_eq!(removed.available, 2);
    assert_eq!(removed.cart.units, 2);
    assert_eq!(buyer.cart(cart).await.unwrap().units, 2);

    // The 202's body exactly, as a browser reads it (the typed reply would skip a member
    // added by mistake).
    let order = post_json(&buyer, "/cart/checkout", json!({ "cart_id": cart })).await;
    assert_eq!(order.status, StatusCode::ACCEPTED, "{}", order.text());
    assert_eq!(
        order.json::<Value>().unwrap(),
        json!({"order_id": cart, "status": "pending", "units": 2})
    );
    let done = settled(&buyer, cart).await;
    assert_eq!(done.status, OrderStatus::Confirmed);
    assert_eq!(done.units, 2);

    // PostgreSQL has it, stock taken; the engine's ledger and the database agree.
    let pg = stack.database().await.unwrap();
    let stock: Vec<(i64, i64)> = pg
        .query("SELECT id, stock FROM products ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(stock, [(1, 4), (2, 2), (3, 1)]);
    let engine = stack.engine().await.unwrap();
    let rows = flash_worker::stock::reconcile(&pg, &engine, &stack.sale)
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.matches()), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_item_order_is_idempotent_by_its_order_id() {
    let stack = stack().await;
    let buyer = signed_in(&stack, "bob").await;
    let three = Buy {
        product_id: 3,
        qty: None,
        order_id: None,
    };
    let order = buyer.buy(&three).await.unwrap();
    assert_eq!(order.status, OrderStatus::Pending);
    assert_eq!(
        settled(&buyer, &order.order_id).await.status,
        OrderStatus::Confirmed
    );
    // The last unit is gone: the next buyer hears SOLDOUT, as a 409 with the engine's word.
    let other = signed_in(&stack, "carol").await;
    assert_refused(other.buy(&three).await, 409, "SOLDOUT");
    // Retrying with the same order id is the same order, not a second purchase.
    let keyed = Buy {
        product_id: 1,
        qty: None,
        order_id: Some("retry-me-1"),
    };
    let first = buyer.buy(&keyed).await.unwrap();
    let second = buyer.buy(&keyed).await.unwrap();
    assert_eq!(first.order_id, "retry-me-1");
    assert_eq!(first, second);
    assert_eq!(buyer.products(0, 1).await.unwrap().items[0].available, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_json_with_stable_codes_and_change_nothing() {
    let stack = Stack::start(StackOptions {
        sale: SaleSettings {
            limit: Some(2),
            ..SaleSettings::default()
        },
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let alice = signed_in(&stack, "alice").await;
    let anonymous = browser(&stack);
    let cart = "cart-a";
    let add = |qty: i64| LineChange {
        product_id: 1,
        cart_id: cart,
        qty: Some(qty),
    };

    assert_refused(anonymous.cart_add(&add(1)).await, 401, "UNAUTHENTICATED");
    assert_refused(alice.cart_add(&add(3)).await, 409, "LIMIT");
    alice.cart_add(&add(2)).await.unwrap();
    // Someone else's cart: as unknown as a missing one, to touch or to read.
    let bob = signed_in(&stack, "bob").await;
    assert_refused(bob.cart_add(&add(1)).await, 404, "NOCART");
    assert_refused(bob.cart(cart).await, 404, "NOCART");
    assert_refused(bob.order(cart).await, 404, "NOCART");
    // A body naming another user is refused, not obeyed.
    let alice_id = alice.whoami().await.unwrap().id;
    let as_alice = json!({ "product_id": 2, "cart_id": "cart-b", "user_id": alice_id });
    assert_error(
        &post_json(&bob, "/cart/add", as_alice).await,
        403,
        "FORBIDDEN",
    );
    // Bodies: malformed, a missing field, a wrong type, too large.
    assert_error(
        &post_raw(&alice, "/cart/add", b"{not json".to_vec()).await,
        422,
        "INVALID",
    );
    let missing = post_json(&alice, "/cart/add", json!({ "product_id": 1 })).await;
    let missing = assert_error(&missing, 422, "INVALID");
    assert!(missing.message.contains("cart_id"), "{missing}");
    let wrong = json!({ "product_id": "one", "cart_id": "c" });
    let wrong = assert_error(&post_json(&alice, "/cart/add", wrong).await, 422, "INVALID");
    assert!(wrong.message.contains("product_id"), "{wrong}");
    let huge = format!(
        r#"{{"product_id": 1, "cart_id": "c", "pad": "{}"}}"#,
        "x".repeat(17 * 1024)
    );
    assert_error(
        &post_raw(&alice, "/cart/add", huge.into_bytes()).await,
        413,
        "TOO_LARGE",
    );
    // Engine words: unknown product, bad quantity, checkout of an unknown cart.
    assert_refused(
        alice.cart_add(&LineChange::one(99, "c9")).await,
        404,
        "NOSKU",
    );
    let none = LineChange {
        product_id: 1,
        cart_id: "c9",
        qty: Some(0),
    };
    assert_refused(alice.cart_add(&none).await, 422, "ERR");
    assert_refused(alice.checkout("nope").await, 404, "NOCART");
    assert_error(&get(&alice, "/no/such/route").await, 404, "NOT_FOUND");
    let wrong_method = alice.send(Method::PUT, "/cart/add", None).await.unwrap();
    assert_error(&wrong_method, 405, "METHOD_NOT_ALLOWED");

    // Nothing above moved a unit: 5 loaded, 2 in alice's cart.
    let engine = stack.engine().await.unwrap();
    let info = engine.info(&stack.sale).await.unwrap();
    let keyboard = info.skus.iter().find(|(sku, _)| *sku == 1).unwrap().1;
    assert_eq!((keyboard.available, keyboard.held), (3, 2));
    assert!(info.skus.iter().all(|(_, units)| units.is_conserved()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let stack = Stack::start(StackOptions {
        edge: Box::new(|settings| {
            settings.rate_per_user = 2;
            settings.rate_per_ip = 50;
        }),
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let buyer = signed_in(&stack, "alice").await;
    // A burst of 4 for the user, then refusals.
    let mut refusals = Vec::new();
    for _ in 0..6 {
        let refused = buyer.cart("none-such").await.unwrap_err();
        let refusal = refused.refusal().expect("a refusal");
        refusals.push((refusal.status.as_u16(), refusal.retry_after));
    }
    assert_eq!(
        refusals[..4],
        [(404, None), (404, None), (404, None), (404, None)]
    );
    assert_eq!(refusals[4], (429, Some(1)));
    // The per-IP limit covers everyone from one address, signed in or not.
    let anonymous = browser(&stack);
    let mut limited = 0;
    for _ in 0..150 {
        if let Err(error) = anonymous.products(0, 12).await {
            assert_eq!(error.code(), Some("RATE_LIMITED"), "{error}");
            limited += 1;
        }
    }
    assert!(
        limited > 0,
        "150 requests at once pass a 50/s limit with burst 100"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_tell_the_operator_what_happens() {
    let mut stack = stack().await;
    let buyer = signed_in(&stack, "alice").await;
    let (status, health) = buyer.health().await.unwrap();
    assert_eq!((status.as_u16(), health.is_ok()), (200, true), "{health:?}");
    buyer.cart_add(&LineChange::one(3, "m1")).await.unwrap();
    assert_refused(
        buyer.cart_add(&LineChange::one(3, "m1")).await,
        409,
        "SOLDOUT",
    );
    buyer.checkout("m1").await.unwrap();
    settled(&buyer, "m1").await;
    let metrics = buyer.metrics().await.unwrap();
    for expected in [
        "flash_http_requests_total{route=\"/cart/add\",status=\"200\"} 1",
        "flash_http_requests_total{route=\"/cart/add\",status=\"409\"} 1",
        "flash_reserve_outcomes_total{outcome=\"OK\"} 1",
        "flash_reserve_outcomes_total{outcome=\"SOLDOUT\"} 1",
        "flash_http_request_duration_seconds_bucket{route=\"/cart/add\"",
        "flash_worker_orders_total{outcome=\"confirmed\"} 1",
        "flash_ws_clients",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing in:\n{metrics}"
        );
    }
    // Redis gone: the edge says so instead of pretending, from its next probe (once a
    // second).
    stack.redis.kill();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (status, health) = loop {
        let (status, health) = buyer.health().await.unwrap();
        if status.as_u16() != 200 || tokio::time::Instant::now() > deadline {
            break (status, health);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.as_u16(), 503, "{health:?}");
    assert_eq!(health.status, "unavailable");
    assert_eq!(health.postgres, "ok");
    assert_ne!(health.redis, "ok");
    let _ = stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lua_twin_serves_the_same_api() {
    let stack = Stack::start(StackOptions {
        module: false,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let buyer = signed_in(&stack, "alice").await;
    let three = LineChange {
        product_id: 2,
        cart_id: "lua-1",
        qty: Some(3),
    };
    assert_eq!(buyer.cart_add(&three).await.unwrap().available, 0);
    assert_refused(
        buyer.cart_add(&LineChange::one(2, "lua-1")).await,
        409,
        "SOLDOUT",
    );
    assert_eq!(buyer.checkout("lua-1").await.unwrap().units, 3);
    assert_eq!(
        settled(&buyer, "lua-1").await.status,
        OrderStatus::Confirmed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_is_served_from_the_binary() {
    let stack = stack().await;
    let buyer = browser(&stack);
    for (path, kind) in [
        ("/", "text/html"),
        ("/display", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/style.css", "text/css"),
    ] {
        let reply = get(&buyer, path).await;
        assert_eq!(reply.status.as_u16(), 200, "{path}");
        let content_type = reply.header("content-type");
        assert!(
            content_type.is_some_and(|t| t.starts_with(kind)),
            "{path}: {content_type:?}"
        );
        assert!(!reply.body.is_empty());
    }
    assert_error(&get(&buyer, "/static/nope.js").await, 404, "NOT_FOUND");
}
