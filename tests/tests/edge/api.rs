//! The JSON API: sessions, the catalog, carts, orders, errors, limits, health and metrics.

use std::time::Duration;

use flash_client::SaleSettings;
use flash_tests::{Stack, StackOptions};
use serde_json::{Value, json};

use crate::common::{Buyer, assert_error};

async fn stack() -> Stack {
    Stack::start(StackOptions::default())
        .await
        .expect("the stack starts")
}

/// Polls an order until it leaves `pending` (the embedded worker's verdict).
async fn settled(buyer: &Buyer, order: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = buyer.get(&format!("/orders/{order}")).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] != "pending" {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_signed_and_read_from_the_cookie_or_the_bearer_token() {
    let stack = stack().await;
    let anonymous = Buyer::new(&stack);
    assert_error(&anonymous.get("/session").await, 401, "UNAUTHENTICATED");
    let (status, body) = anonymous
        .post("/session", json!({ "username": "alice" }))
        .await;
    assert_eq!(status, 200);
    let token = body["token"].as_str().expect("a token").to_owned();
    let id = body["user"]["id"].as_i64().expect("a user id");
    // The cookie jar now carries the session.
    assert_eq!(
        anonymous.get("/session").await.1["user"]["username"],
        "alice"
    );
    // An API client uses the token from the body.
    let api = reqwest::Client::new();
    let me: Value = api
        .get(stack.url("/session"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["id"], id);
    // Signing in again is the same user; a forged token is nobody.
    let again = Buyer::signed_in(&stack, "alice").await;
    assert_eq!(again.get("/session").await.1["user"]["id"], id);
    let forged = api
        .get(stack.url("/session"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_error(
        &anonymous
            .post("/session", json!({ "username": "no spaces" }))
            .await,
        422,
        "INVALID",
    );
    let pg = stack.database().await.unwrap();
    let users: i64 = pg
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_pages_carry_live_stock() {
    let stack = stack().await;
    let buyer = Buyer::new(&stack);
    let (status, page) = buyer.get("/products/?skip=0&limit=2").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 3);
    assert_eq!(page["pages"], 2);
    assert_eq!(page["page"], 1);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0],
        json!({"id": 1, "name": "Mechanical keyboard", "price_cents": 8900, "available": 5, "on_sale": true})
    );
    // A reserve shows on the next page read at once: available comes from the engine.
    let engine = stack.engine().await.unwrap();
    engine.reserve(&stack.sale, "c1", "9", 1, 2).await.unwrap();
    let (_, page) = buyer.get("/products/?skip=0&limit=2").await;
    assert_eq!(page["items"][0]["available"], 3);
    let (_, last) = buyer.get("/products/?skip=2&limit=2").await;
    assert_eq!(last["page"], 2);
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    // The page size is capped; bad numbers are named.
    let (_, capped) = buyer.get("/products/?limit=100000").await;
    assert_eq!(capped["limit"], 60);
    let bad = buyer.get("/products/?skip=-1").await;
    assert_error(&bad, 422, "INVALID");
    assert!(bad.1["message"].as_str().unwrap().contains("skip"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_is_filled_emptied_checked_out_and_confirmed() {
    let stack = stack().await;
    let buyer = Buyer::signed_in(&stack, "alice").await;
    let cart = "0b6f3c3e-1111-4a4a-9999-000000000001";
    let (status, added) = buyer
        .post("/cart/add", json!({ "product_id": 1, "cart_id": cart }))
        .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["available"], 4);
    assert_eq!(added["product_id"], 1);
    let (_, added) = buyer
        .post(
            "/cart/add",
            json!({ "product_id": 2, "cart_id": cart, "qty": 2 }),
        )
        .await;
    let view = &added["cart"];
    assert_eq!(view["state"], "held");
    assert_eq!(view["units"], 3);
    assert_eq!(
        view["lines"],
        json!([
            {"product_id": 1, "name": "Mechanical keyboard", "price_cents": 8900, "qty": 1},
            {"product_id": 2, "name": "Wireless mouse", "price_cents": 2900, "qty": 2}
        ])
    );
    let remaining = view["deadline_ms"].as_i64().unwrap() - view["now_ms"].as_i64().unwrap();
    assert!(
        (35_000..=40_000).contains(&remaining),
        "the server's 40 s hold: {remaining}"
    );
    let (_, removed) = buyer
        .post("/cart/remove", json!({ "product_id": 2, "cart_id": cart }))
        .await;
    assert_eq!(removed["available"], 2);
    assert_eq!(removed["cart"]["units"], 2);
    let (status, shown) = buyer.get(&format!("/cart/{cart}")).await;
    assert_eq!(status, 200);
    assert_eq!(shown["units"], 2);

    let (status, order) = buyer
        .post("/cart/checkout", json!({ "cart_id": cart }))
        .await;
    assert_eq!(status, 202, "{order}");
    assert_eq!(
        order,
        json!({"order_id": cart, "status": "pending", "units": 2})
    );
    let done = settled(&buyer, cart).await;
    assert_eq!(done["status"], "confirmed");
    assert_eq!(done["units"], 2);

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
    let buyer = Buyer::signed_in(&stack, "bob").await;
    let (status, order) = buyer.post("/orders/", json!({ "product_id": 3 })).await;
    assert_eq!(status, 202, "{order}");
    let id = order["order_id"].as_str().unwrap().to_owned();
    assert_eq!(settled(&buyer, &id).await["status"], "confirmed");
    // The last unit is gone: the next buyer hears SOLDOUT, as a 409 with the engine's word.
    let other = Buyer::signed_in(&stack, "carol").await;
    assert_error(
        &other.post("/orders/", json!({ "product_id": 3 })).await,
        409,
        "SOLDOUT",
    );
    // Retrying with the same order id is the same order, not a second purchase.
    let keyed = json!({ "product_id": 1, "order_id": "retry-me-1" });
    let first = buyer.post("/orders/", keyed.clone()).await;
    let second = buyer.post("/orders/", keyed).await;
    assert_eq!(first.0, 202);
    assert_eq!(first.1, second.1);
    let (_, page) = buyer.get("/products/?limit=1").await;
    assert_eq!(page["items"][0]["available"], 4);
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
    let alice = Buyer::signed_in(&stack, "alice").await;
    let anonymous = Buyer::new(&stack);
    let cart = "cart-a";
    let add = |qty: i64| json!({ "product_id": 1, "cart_id": cart, "qty": qty });

    assert_error(
        &anonymous.post("/cart/add", add(1)).await,
        401,
        "UNAUTHENTICATED",
    );
    assert_error(&alice.post("/cart/add", add(3)).await, 409, "LIMIT");
    assert_eq!(alice.post("/cart/add", add(2)).await.0, 200);
    // Someone else's cart: forbidden to touch, invisible to read.
    let bob = Buyer::signed_in(&stack, "bob").await;
    assert_error(&bob.post("/cart/add", add(1)).await, 403, "NOTOWNER");
    assert_error(&bob.get(&format!("/cart/{cart}")).await, 404, "NOT_FOUND");
    assert_error(&bob.get(&format!("/orders/{cart}")).await, 404, "NOT_FOUND");
    // A body naming another user is refused, not obeyed.
    let alice_id = alice.get("/session").await.1["user"]["id"]
        .as_i64()
        .unwrap();
    let mut as_alice = json!({ "product_id": 2, "cart_id": "cart-b" });
    as_alice["user_id"] = json!(alice_id);
    let refused = bob.post("/cart/add", as_alice).await;
    assert_error(&refused, 403, "FORBIDDEN");
    // Bodies: malformed, a missing field, a wrong type, too large.
    assert_error(
        &alice.post_raw("/cart/add", b"{not json".to_vec()).await,
        422,
        "INVALID",
    );
    let missing = alice.post("/cart/add", json!({ "product_id": 1 })).await;
    assert_error(&missing, 422, "INVALID");
    assert!(missing.1["message"].as_str().unwrap().contains("cart_id"));
    let wrong = alice
        .post("/cart/add", json!({ "product_id": "one", "cart_id": "c" }))
        .await;
    assert_error(&wrong, 422, "INVALID");
    assert!(wrong.1["message"].as_str().unwrap().contains("product_id"));
    let huge = format!(
        r#"{{"product_id": 1, "cart_id": "c", "pad": "{}"}}"#,
        "x".repeat(17 * 1024)
    );
    assert_error(
        &alice.post_raw("/cart/add", huge.into_bytes()).await,
        413,
        "TOO_LARGE",
    );
    // Engine words: unknown product, bad quantity, checkout of an unknown cart.
    assert_error(
        &alice
            .post("/cart/add", json!({ "product_id": 99, "cart_id": "c9" }))
            .await,
        404,
        "NOSKU",
    );
    assert_error(
        &alice
            .post(
                "/cart/add",
                json!({ "product_id": 1, "cart_id": "c9", "qty": 0 }),
            )
            .await,
        422,
        "ERR",
    );
    assert_error(
        &alice
            .post("/cart/checkout", json!({ "cart_id": "nope" }))
            .await,
        404,
        "NOCART",
    );
    assert_error(&alice.get("/no/such/route").await, 404, "NOT_FOUND");
    let wrong_method = alice.http.put(stack.url("/cart/add")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);

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
    let buyer = Buyer::signed_in(&stack, "alice").await;
    // A burst of 4 for the user, then refusals.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = buyer
            .http
            .get(stack.url("/cart/none-such"))
            .send()
            .await
            .unwrap();
        statuses.push((
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        ));
    }
    assert_eq!(
        statuses[..4],
        [(404, None), (404, None), (404, None), (404, None)]
    );
    assert_eq!(statuses[4], (429, Some("1".to_owned())));
    // The per-IP limit covers everyone from one address, signed in or not.
    let anonymous = Buyer::new(&stack);
    let mut limited = 0;
    for _ in 0..150 {
        if anonymous.get("/products/").await.0 == 429 {
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
    let buyer = Buyer::signed_in(&stack, "alice").await;
    let (status, health) = buyer.get("/healthz").await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")));
    buyer
        .post("/cart/add", json!({ "product_id": 3, "cart_id": "m1" }))
        .await;
    buyer
        .post("/cart/add", json!({ "product_id": 3, "cart_id": "m1" }))
        .await;
    buyer
        .post("/cart/checkout", json!({ "cart_id": "m1" }))
        .await;
    settled(&buyer, "m1").await;
    let metrics = buyer
        .http
        .get(stack.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    // Redis gone: the edge says so instead of pretending.
    stack.redis.kill();
    let (status, health) = buyer.get("/healthz").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["postgres"], "ok");
    assert_ne!(health["redis"], "ok");
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
    let buyer = Buyer::signed_in(&stack, "alice").await;
    let (status, added) = buyer
        .post(
            "/cart/add",
            json!({ "product_id": 2, "cart_id": "lua-1", "qty": 3 }),
        )
        .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["available"], 0);
    assert_error(
        &buyer
            .post("/cart/add", json!({ "product_id": 2, "cart_id": "lua-1" }))
            .await,
        409,
        "SOLDOUT",
    );
    assert_eq!(
        buyer
            .post("/cart/checkout", json!({ "cart_id": "lua-1" }))
            .await
            .0,
        202
    );
    assert_eq!(settled(&buyer, "lua-1").await["status"], "confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_is_served_from_the_binary() {
    let stack = stack().await;
    let buyer = Buyer::new(&stack);
    for (path, kind) in [
        ("/", "text/html"),
        ("/display", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/style.css", "text/css"),
    ] {
        let response = buyer.http.get(stack.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        assert!(!response.text().await.unwrap().is_empty());
    }
    assert_error(&buyer.get("/static/nope.js").await, 404, "NOT_FOUND");
}
