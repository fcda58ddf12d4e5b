//! One edge, many sales, through real HTTP: the seed's paths for the default sale,
//! `/sales/{sale}/…` for every sale of the catalog, on one redis-server and on a three-master
//! Redis Cluster whose sales live on different masters (one edge, its embedded worker settling
//! every sale, live stock of a sale on another node over the WebSocket).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flash_api_client::{ApiError, Buy, EdgeClient, LineChange, Method, OrderStatus};
use flash_client::SaleSettings;
use flash_tests::{
    ClusterOptions, RedisCluster, RedisDeployment, Stack, StackOptions, module_path,
};
use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// A client of one sale's API (`/sales/{sale}`, or the root for the default sale), signed in
/// with `token`.
fn in_sale<R: RedisDeployment>(stack: &Stack<R>, sale: Option<&str>, token: &str) -> EdgeClient {
    let base = match sale {
        Some(sale) => stack.url(&format!("/sales/{sale}")),
        None => stack.url(""),
    };
    EdgeClient::new(&base).unwrap().with_token(token).unwrap()
}

async fn token<R: RedisDeployment>(stack: &Stack<R>, username: &str) -> String {
    EdgeClient::new(&stack.url(""))
        .unwrap()
        .sign_in(username)
        .await
        .unwrap()
        .token
}

fn refusal_code<T: std::fmt::Debug>(result: Result<T, ApiError>) -> (u16, String) {
    match result {
        Err(ApiError::Refused(refusal)) => (refusal.status.as_u16(), refusal.code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn get_json(client: &EdgeClient, path: &str) -> (u16, Value) {
    let reply = client.send(Method::GET, path, None).await.unwrap();
    (reply.status.as_u16(), reply.json().unwrap())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next stock frame: (product, available).
async fn next_frame(socket: &mut Socket) -> (i64, i64) {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a stock frame within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            let value: Value = serde_json::from_str(&text).unwrap();
            return (
                value["product_id"].as_i64().unwrap(),
                value["available"].as_i64().unwrap(),
            );
        }
    }
}

fn cart_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Polls an order of one sale until the worker's verdict.
async fn verdict(client: &EdgeClient, order: &str) -> OrderStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.order(order).await.unwrap().status;
        if status != OrderStatus::Pending {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{order}: still pending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sales_on_one_server_keep_their_products_and_carts_apart() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    stack
        .add_sale(
            "autumn",
            &[(11, "Rain coat", 5900, 4), (12, "Umbrella", 1900, 2)],
            &SaleSettings::default(),
        )
        .await
        .unwrap();
    stack
        .add_sale(
            "winter",
            &[(21, "Scarf", 2500, 3)],
            &SaleSettings::default(),
        )
        .await
        .unwrap();
    let token = token(&stack, "alice").await;
    let root = in_sale(&stack, None, &token);
    let autumn = in_sale(&stack, Some("autumn"), &token);
    let winter = in_sale(&stack, Some("winter"), &token);

    // The list: the default sale first, then the catalog's, each with its title and window.
    let (status, listed) = get_json(&root, "/sales/").await;
    assert_eq!(status, 200, "{listed}");
    let names: Vec<(&str, &str, bool)> = listed["sales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sale| {
            (
                sale["sale"].as_str().unwrap(),
                sale["title"].as_str().unwrap(),
                sale["open"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("test-sale", "test-sale", true),
            ("autumn", "The autumn sale", true),
            ("winter", "The winter sale", true),
        ]
    );

    // Each sale lists its own products; the seed's paths are the default sale's.
    let ids = |page: flash_api_client::ProductsPage| -> Vec<(i64, i64)> {
        page.items.iter().map(|p| (p.id, p.available)).collect()
    };
    assert_eq!(
        ids(root.products(0, 60).await.unwrap()),
        [(1, 5), (2, 3), (3, 1)]
    );
    assert_eq!(
        ids(autumn.products(0, 60).await.unwrap()),
        [(11, 4), (12, 2)]
    );
    assert_eq!(ids(winter.products(0, 60).await.unwrap()), [(21, 3)]);
    assert_eq!(autumn.sale().await.unwrap().sale, "autumn");
    assert_eq!(root.sale().await.unwrap().sale, "test-sale");
    let (status, detail) = get_json(&autumn, "/products/12").await;
    assert_eq!((status, detail["name"].as_str()), (200, Some("Umbrella")));
    assert_eq!(detail["available"], 2);
    let (status, detail) = get_json(&winter, "/products/12").await;
    assert_eq!((status, detail["error"].as_str()), (404, Some("NOSKU")));

    // Live stock of one sale: its products only (product 1 is the default sale's).
    let ws_url = format!("ws://{}/sales/autumn/ws/catalog", stack.address);
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    futures::SinkExt::send(&mut socket, Message::text(r#"{"subscribe":[11,1]}"#))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut socket).await, (11, 4));

    // A cart in each sale, including the default one on the seed's paths.
    let autumn_cart = cart_id();
    let changed = autumn
        .cart_add(&LineChange::one(11, &autumn_cart))
        .await
        .unwrap();
    assert_eq!((changed.available, changed.cart.units), (3, 1));
    assert_eq!(next_frame(&mut socket).await, (11, 3));
    assert_eq!(changed.cart.lines[0].name.as_deref(), Some("Rain coat"));
    let winter_cart = cart_id();
    winter
        .cart_add(&LineChange::one(21, &winter_cart))
        .await
        .unwrap();
    let default_cart = cart_id();
    root.cart_add(&LineChange::one(1, &default_cart))
        .await
        .unwrap();
    assert_eq!(autumn.cart(&autumn_cart).await.unwrap().units, 1);
    // A cart lives in its sale: not found in another.
    assert_eq!(
        refusal_code(winter.cart(&autumn_cart).await),
        (404, "NOCART".into())
    );
    assert_eq!(
        refusal_code(root.cart(&winter_cart).await),
        (404, "NOCART".into())
    );

    // A product of sale autumn is refused in winter (and in the default sale), to a cart
    // and to a single-item buy alike; stock does not move.
    assert_eq!(
        refusal_code(winter.cart_add(&LineChange::one(11, &winter_cart)).await),
        (404, "NOSKU".into())
    );
    assert_eq!(
        refusal_code(root.cart_add(&LineChange::one(12, &default_cart)).await),
        (404, "NOSKU".into())
    );
    let buy = Buy {
        product_id: 12,
        qty: None,
        order_id: None,
    };
    assert_eq!(refusal_code(winter.buy(&buy).await), (404, "NOSKU".into()));
    assert_eq!(
        ids(autumn.products(0, 60).await.unwrap()),
        [(11, 3), (12, 2)]
    );

    // An unknown sale is 404 NOSALE with a JSON body, on every route.
    let nowhere = in_sale(&stack, Some("nowhere"), &token);
    assert_eq!(
        refusal_code(nowhere.products(0, 12).await),
        (404, "NOSALE".into())
    );
    assert_eq!(
        refusal_code(nowhere.cart_add(&LineChange::one(1, &cart_id())).await),
        (404, "NOSALE".into())
    );
    let (status, body) = get_json(&root, "/sales/nowhere/ws/catalog").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("NOSALE")));

    // Checkout in a sale of the catalog: the edge's embedded worker settles it.
    let order = autumn.checkout(&autumn_cart).await.unwrap();
    assert_eq!(
        verdict(&autumn, &order.order_id).await,
        OrderStatus::Confirmed
    );
    let bought = autumn.buy(&buy).await.unwrap();
    assert_eq!(
        verdict(&autumn, &bought.order_id).await,
        OrderStatus::Confirmed
    );
    let pg = stack.database().await.unwrap();
    let stored: Vec<(String, String)> = pg
        .query("SELECT sale, id FROM orders ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut expected = vec![
        ("autumn".to_owned(), order.order_id.clone()),
        ("autumn".to_owned(), bought.order_id.clone()),
    ];
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(stored, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_edge_serves_three_sales_on_three_masters() {
    let cluster = RedisCluster::start(ClusterOptions {
        module: Some(module_path().unwrap()),
        ..ClusterOptions::default()
    })
    .unwrap();
    let sales: Vec<String> = cluster
        .sales_on_masters("spread", 3)
        .await
        .unwrap()
        .into_iter()
        .map(|(sale, _)| sale)
        .collect();
    let stack = Stack::start_on(cluster, StackOptions::default())
        .await
        .unwrap();
    for (n, sale) in (1..).zip(&sales) {
        let id = 100 * n;
        stack
            .add_sale(sale, &[(id, "Lamp", 3000, 5)], &SaleSettings::default())
            .await
            .unwrap();
    }
    let token = token(&stack, "alice").await;
    let (status, listed) = get_json(&in_sale(&stack, None, &token), "/sales/").await;
    assert_eq!(status, 200);
    assert_eq!(listed["sales"].as_array().unwrap().len(), 4, "{listed}");

    // Live stock of the last sale, whose stream and channel live on their own master: the
    // WebSocket at /sales/{sale}/ws/catalog (no subscribe sent: every product's changes).
    let watched = &sales[2];
    let ws_url = format!("ws://{}/sales/{watched}/ws/catalog", stack.address);
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();

    for (n, sale) in (1..).zip(&sales) {
        let id = 100 * n;
        let client = in_sale(&stack, Some(sale), &token);
        let cart = cart_id();
        let changed = client
            .cart_add(&LineChange {
                product_id: id,
                cart_id: &cart,
                qty: Some(2),
            })
            .await
            .unwrap();
        assert_eq!(changed.available, 3, "{sale}");
        // Another sale's product is refused here.
        let other = if n == 1 { 200 } else { 100 };
        assert_eq!(
            refusal_code(client.cart_add(&LineChange::one(other, &cart)).await),
            (404, "NOSKU".into()),
            "{sale}"
        );
        let order = client.checkout(&cart).await.unwrap();
        assert_eq!(
            verdict(&client, &order.order_id).await,
            OrderStatus::Confirmed,
            "{sale}"
        );
    }

    // The watched sale's reserve reached its socket, and only its products did.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen.contains(&(300, 3)) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = tokio::time::timeout(left, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no stock frame for product 300; saw {seen:?}"))
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            let value: Value = serde_json::from_str(&text).unwrap();
            seen.push((
                value["product_id"].as_i64().unwrap(),
                value["available"].as_i64().unwrap(),
            ));
        }
    }
    assert!(seen.iter().all(|(product, _)| *product == 300), "{seen:?}");

    let pg = stack.database().await.unwrap();
    let stored: Vec<String> = pg
        .query("SELECT sale FROM orders ORDER BY sale", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut expected = sales.clone();
    expected.sort();
    assert_eq!(stored, expected, "one order per sale, each in its sale");
}
