//! `flash_client::StockEvents` against a real redis-server: the engine's messages (sharded:
//! SPUBLISH, from the module and from the Lua twin) arrive typed, foreign ones as
//! `Malformed`, and the subscription notices a killed connection, a server that stops
//! answering and a server that is gone, and comes back by itself. On a cluster:
//! `cluster_events.rs`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flash_client::{
    Backend, FlashClient, SaleSettings, StockEvent, StockEvents, SubscriptionEvent,
    SubscriptionSettings,
};
use flash_core::keys::SaleKeys;
use flash_tests::{RedisServer, ServerOptions, both_backends, module_path};

both_backends!(the_engines_changes_arrive_as_typed_stock_events_and_foreign_messages_as_malformed,);

const SALE: &str = "spring";

async fn engine(redis: &RedisServer) -> FlashClient {
    let engine = FlashClient::connect(&redis.url()).await.unwrap();
    engine.sale(SALE, &SaleSettings::default()).await.unwrap();
    engine
}

fn server() -> RedisServer {
    server_for(Backend::Module)
}

/// A server with the module, or a plain one for the Lua twin.
fn server_for(backend: Backend) -> RedisServer {
    RedisServer::start(ServerOptions {
        module: match backend {
            Backend::Module => Some(module_path().expect("the module is built")),
            Backend::Lua => None,
        },
        ..ServerOptions::default()
    })
    .expect("redis-server starts")
}

/// Short waits, so a test sees a drop and a return within a second or two.
fn quick() -> SubscriptionSettings {
    SubscriptionSettings {
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(200),
        liveness_interval: Duration::from_millis(100),
        connect_timeout: Duration::from_millis(300),
    }
}

/// How long a test waits for the subscription's next item.
const WITHIN: Duration = Duration::from_secs(10);

async fn next(events: &mut StockEvents) -> SubscriptionEvent {
    flash_tests::stock_events::next_event(events, WITHIN).await
}

/// The next item that is not `Retrying`.
async fn next_settled(events: &mut StockEvents) -> SubscriptionEvent {
    flash_tests::stock_events::next_settled(events, WITHIN).await
}

/// A quick subscription to the sale's events, past its first item (`Subscribed`, checked).
async fn subscribed(url: &str) -> StockEvents {
    let mut events = StockEvents::subscribe(url, SALE, quick()).await.unwrap();
    assert_eq!(next(&mut events).await, SubscriptionEvent::Subscribed);
    events
}

fn stock(sku: i64, available: i64) -> SubscriptionEvent {
    SubscriptionEvent::Stock(StockEvent { sku, available })
}

async fn the_engines_changes_arrive_as_typed_stock_events_and_foreign_messages_as_malformed(
    backend: Backend,
) {
    let redis = server_for(backend);
    let engine = engine(&redis).await;
    assert_eq!(engine.backend(), backend);
    let mut events = subscribed(&redis.url()).await;

    engine.load(SALE, &[(14, 10)]).await.unwrap();
    assert_eq!(next(&mut events).await, stock(14, 10));
    engine.reserve(SALE, "c1", "alice", 14, 3).await.unwrap();
    assert_eq!(next(&mut events).await, stock(14, 7));

    // A classic PUBLISH on the channel's name is another channel: not heard.
    let mut conn = engine.connection();
    let channel = SaleKeys::new(SALE).channel();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg("classic")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Someone else publishing on the shard channel: passed on as received, for the consumer
    // to count.
    let _: i64 = redis::cmd("SPUBLISH")
        .arg(&channel)
        .arg("not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        next(&mut events).await,
        SubscriptionEvent::Malformed(b"not json".to_vec())
    );
    // Another sale's channel is not ours.
    engine
        .sale("autumn", &SaleSettings::default())
        .await
        .unwrap();
    engine.load("autumn", &[(14, 99)]).await.unwrap();
    engine.release(SALE, "c1", "alice", 14, 1).await.unwrap();
    assert_eq!(next(&mut events).await, stock(14, 8));
}

#[tokio::test]
async fn a_killed_connection_is_reported_lost_then_restored_and_messages_flow_again() {
    let redis = server();
    let engine = engine(&redis).await;
    let mut events = subscribed(&redis.url()).await;

    let mut conn = engine.connection();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    assert!(matches!(
        next(&mut events).await,
        SubscriptionEvent::Lost(_)
    ));
    assert_eq!(next_settled(&mut events).await, SubscriptionEvent::Restored);

    engine.load(SALE, &[(7, 5)]).await.unwrap();
    assert_eq!(next(&mut events).await, stock(7, 5));
}

#[tokio::test]
async fn a_server_that_stops_answering_is_noticed_by_the_liveness_ping() {
    let redis = server();
    let engine = engine(&redis).await;
    let mut events = subscribed(&redis.url()).await;

    // Every client's commands wait for 1.5 s: the connection stays open, PING goes
    // unanswered (300 ms allowed), and so do the first attempts to subscribe again.
    let mut conn = engine.connection();
    let _: String = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .query_async(&mut conn)
        .await
        .unwrap();
    match next(&mut events).await {
        SubscriptionEvent::Lost(why) => assert!(why.contains("PING"), "{why}"),
        other => panic!("expected Lost, got {other:?}"),
    }
    assert_eq!(next_settled(&mut events).await, SubscriptionEvent::Restored);

    engine.load(SALE, &[(3, 1)]).await.unwrap();
    assert_eq!(next(&mut events).await, stock(3, 1));
}

#[tokio::test]
async fn a_server_that_is_gone_is_retried_with_backoff_and_a_first_subscribe_fails() {
    let mut redis = server();
    let url = redis.url();
    let mut events = subscribed(&url).await;

    redis.kill();
    assert!(matches!(
        next(&mut events).await,
        SubscriptionEvent::Lost(_)
    ));
    // Waits double from 50 ms and stop at 200 ms.
    let mut waits = Vec::new();
    while waits.len() < 4 {
        match next(&mut events).await {
            SubscriptionEvent::Retrying { retry_in, .. } => waits.push(retry_in),
            other => panic!("expected Retrying, got {other:?}"),
        }
    }
    assert_eq!(
        waits,
        [50, 100, 200, 200].map(Duration::from_millis).to_vec()
    );

    assert!(StockEvents::subscribe(&url, SALE, quick()).await.is_err());
}

#[tokio::test]
async fn dropping_the_stream_ends_the_subscription() {
    let redis = server();
    let engine = engine(&redis).await;
    let events = StockEvents::subscribe(&redis.url(), SALE, quick())
        .await
        .unwrap();
    let channel = SaleKeys::new(SALE).channel();
    let mut conn = engine.connection();
    let subscribers = || {
        let mut conn = conn.clone();
        let channel = channel.clone();
        async move {
            let reply: (String, i64) = redis::cmd("PUBSUB")
                .arg("SHARDNUMSUB")
                .arg(&channel)
                .query_async(&mut conn)
                .await
                .unwrap();
            reply.1
        }
    };
    assert_eq!(subscribers().await, 1);

    drop(events);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while subscribers().await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "still subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
}
