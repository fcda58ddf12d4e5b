//! Live stock on a real Redis Cluster (three masters, three replicas; the module on every
//! node, or plain nodes and the Lua twin): `StockEvents` given the cluster setting hears the
//! sales of every master on the master serving each sale's slot (not on its replica),
//! follows a killed master's promoted replica and a slot moved to another master (Lost,
//! then Restored); an edge on the
//! cluster ends on the latest value after a failover; the edge's revocation follower goes
//! on after its stream's master dies.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flash_client::{
    Backend, FlashClient, SaleSettings, StockEvent, StockEvents, SubscriptionEvent,
    SubscriptionSettings,
};
use flash_core::keys::SaleKeys;
use flash_edge::session::revoked::{REVOKED_KEY, Revocations};
use flash_edge::session::{Session, User};
use flash_tests::{ClusterOptions, RedisCluster, Stack, StackOptions, both_backends, module_path};
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;

both_backends!(
    a_subscriber_hears_the_stock_of_sales_on_every_master,
    after_its_master_is_killed_the_subscriber_is_restored_on_the_promoted_replica,
);

async fn start(backend: Backend) -> (RedisCluster, FlashClient) {
    let cluster = RedisCluster::start(ClusterOptions::for_backend(backend).unwrap()).unwrap();
    let client = FlashClient::connect(&cluster.redis_url()).await.unwrap();
    assert_eq!(client.backend(), backend);
    (cluster, client)
}

/// Short waits: a drop is noticed and retried within a fraction of a second.
fn quick() -> SubscriptionSettings {
    SubscriptionSettings {
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(200),
        liveness_interval: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(500),
    }
}

/// How long a test waits for the subscription's next item.
const WITHIN: Duration = Duration::from_secs(15);

async fn next(events: &mut StockEvents) -> SubscriptionEvent {
    flash_tests::stock_events::next_event(events, WITHIN).await
}

/// The next item that is not `Retrying`.
async fn next_settled(events: &mut StockEvents) -> SubscriptionEvent {
    flash_tests::stock_events::next_settled(events, WITHIN).await
}

async fn subscribed(cluster: &RedisCluster, sale: &str) -> StockEvents {
    let mut events = StockEvents::subscribe(&cluster.redis_url(), sale, quick())
        .await
        .unwrap();
    assert_eq!(next(&mut events).await, SubscriptionEvent::Subscribed);
    events
}

fn stock(sku: i64, available: i64) -> SubscriptionEvent {
    SubscriptionEvent::Stock(StockEvent { sku, available })
}

async fn master_of(cluster: &RedisCluster, key: &str) -> u16 {
    cluster
        .master_of(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no master serves {key}"))
}

/// How many shard subscribers `channel` has on the node on `port`.
async fn shard_subscribers(cluster: &RedisCluster, port: u16, channel: &str) -> i64 {
    let (_, count): (String, i64) = cluster
        .query(port, &["PUBSUB", "SHARDNUMSUB", channel])
        .await
        .unwrap();
    count
}

/// Runs `call` until it succeeds (a failover makes calls fail for a few seconds).
async fn until_ok<T, F: Future<Output = Result<T, flash_client::ClientError>>>(
    what: &str,
    mut call: impl FnMut() -> F,
) -> T {
    let started = Instant::now();
    loop {
        match call().await {
            Ok(value) => return value,
            Err(error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "{what}: still failing 30 s on: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The master serving `sale` once the nodes agree it is no longer `dead`.
async fn promoted_master(cluster: &RedisCluster, sale: &str, dead: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // None while the dead master is marked failed and its replica not yet promoted.
        let now = cluster
            .master_of(&SaleKeys::new(sale).sale())
            .await
            .unwrap();
        if let Some(port) = now
            && port != dead
        {
            return port;
        }
        assert!(Instant::now() < deadline, "{dead} still serves {sale}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills the master serving `key` once its replica has everything it wrote; its port.
async fn kill_master_of(cluster: &mut RedisCluster, key: &str) -> u16 {
    let owner = master_of(cluster, key).await;
    cluster.wait_replicated(owner).await.unwrap();
    cluster.kill_node(owner);
    owner
}

async fn a_subscriber_hears_the_stock_of_sales_on_every_master(backend: Backend) {
    let (cluster, client) = start(backend).await;
    // Sales until every master serves one.
    let mut sales: Vec<(String, u16)> = Vec::new();
    for n in 0.. {
        let sale = format!("s{n}");
        let owner = master_of(&cluster, &SaleKeys::new(&sale).sale()).await;
        if sales.iter().all(|(_, port)| *port != owner) {
            sales.push((sale, owner));
        }
        if sales.len() == 3 {
            break;
        }
    }
    for (units, (sale, owner)) in (10..).zip(&sales) {
        client.sale(sale, &SaleSettings::default()).await.unwrap();
        let mut events = subscribed(&cluster, sale).await;
        let channel = SaleKeys::new(sale).channel();
        // Listening where the sale's messages are published: on its master, nowhere else.
        for port in sales.iter().map(|(_, port)| *port) {
            let expected = i64::from(port == *owner);
            assert_eq!(
                shard_subscribers(&cluster, port, &channel).await,
                expected,
                "sale {sale} (on {owner}): subscribers on {port}"
            );
        }
        client.load(sale, &[(14, units)]).await.unwrap();
        assert_eq!(next(&mut events).await, stock(14, units), "sale {sale}");
        client.reserve(sale, "c1", "alice", 14, 3).await.unwrap();
        assert_eq!(next(&mut events).await, stock(14, units - 3), "sale {sale}");
    }
}

async fn after_its_master_is_killed_the_subscriber_is_restored_on_the_promoted_replica(
    backend: Backend,
) {
    let (mut cluster, client) = start(backend).await;
    let sale = "failover";
    client.sale(sale, &SaleSettings::default()).await.unwrap();
    client.load(sale, &[(14, 10)]).await.unwrap();
    let mut events = subscribed(&cluster, sale).await;
    client.reserve(sale, "c1", "alice", 14, 3).await.unwrap();
    assert_eq!(next(&mut events).await, stock(14, 7));

    let owner = kill_master_of(&mut cluster, &SaleKeys::new(sale).sale()).await;
    assert!(matches!(
        next_settled(&mut events).await,
        SubscriptionEvent::Lost(_)
    ));
    assert_eq!(next_settled(&mut events).await, SubscriptionEvent::Restored);
    // Listening on the promoted replica, now the sale's master (not on a replica that
    // would be left behind by a later failover).
    let promoted = promoted_master(&cluster, sale, owner).await;
    let channel = SaleKeys::new(sale).channel();
    assert_eq!(shard_subscribers(&cluster, promoted, &channel).await, 1);

    // A change after the failover reaches the subscriber (LOAD sets the units: retrying it
    // is harmless). A retried call that had run, or the subscription restored before the
    // promoted node took writes, may announce 42 twice or nothing in between: read up to it.
    until_ok("load after the failover", || client.load(sale, &[(14, 42)])).await;
    loop {
        match next(&mut events).await {
            item if item == stock(14, 42) => break,
            SubscriptionEvent::Stock(_) => {}
            other => panic!("expected the load's stock event, got {other:?}"),
        }
    }
    let reserved = client.reserve(sale, "c2", "bob", 14, 2).await.unwrap();
    assert_eq!(reserved.available, 40);
    assert_eq!(next(&mut events).await, stock(14, 40));
}

/// A slot given to another master (resharding, here of an empty slot by hand): the old owner
/// unsubscribes its shard subscribers, the subscription finds the new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_to_another_master_takes_the_subscriber_with_it() {
    let cluster = RedisCluster::start(ClusterOptions::default()).unwrap();
    let sale = "moving";
    let keys = SaleKeys::new(sale);
    let channel = keys.channel();
    let mut events = subscribed(&cluster, sale).await;
    let owner = master_of(&cluster, &keys.sale()).await;
    let mut masters = Vec::new();
    for n in 0.. {
        let port = master_of(&cluster, &format!("probe{n}")).await;
        if !masters.contains(&port) {
            masters.push(port);
        }
        if masters.len() == 3 {
            break;
        }
    }
    let target = *masters.iter().find(|port| **port != owner).unwrap();
    let slot: i64 = cluster
        .query(owner, &["CLUSTER", "KEYSLOT", &channel])
        .await
        .unwrap();
    let target_id: String = cluster.query(target, &["CLUSTER", "MYID"]).await.unwrap();
    // The target takes the slot first, then the owner gives it up, then the third master
    // learns it (the replicas follow by gossip).
    let third = masters
        .iter()
        .filter(|port| ![target, owner].contains(port));
    for port in [target, owner].into_iter().chain(third.copied()) {
        let _: String = cluster
            .query(
                port,
                &["CLUSTER", "SETSLOT", &slot.to_string(), "NODE", &target_id],
            )
            .await
            .unwrap();
    }

    match next_settled(&mut events).await {
        SubscriptionEvent::Lost(why) => assert!(why.contains("no longer serves"), "{why}"),
        other => panic!("expected Lost, got {other:?}"),
    }
    assert_eq!(next_settled(&mut events).await, SubscriptionEvent::Restored);
    assert_eq!(shard_subscribers(&cluster, target, &channel).await, 1);
    assert_eq!(shard_subscribers(&cluster, owner, &channel).await, 0);
    let _: i64 = cluster
        .query(target, &["SPUBLISH", &channel, "after the move"])
        .await
        .unwrap();
    assert_eq!(
        next(&mut events).await,
        SubscriptionEvent::Malformed(b"after the move".to_vec())
    );
}

/// A replica of the sale's master would take the SSUBSCRIBE itself; the subscription moves
/// to the master, so that a failover is noticed (and values read back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_seeded_with_a_replica_listens_on_its_master() {
    let cluster = RedisCluster::start(ClusterOptions::default()).unwrap();
    let sale = "replicated";
    let keys = SaleKeys::new(sale);
    let owner = master_of(&cluster, &keys.sale()).await;
    let mut replica = None;
    for node in &cluster.nodes {
        let role: Vec<redis::Value> = cluster.query(node.port, &["ROLE"]).await.unwrap();
        if role.get(2) == Some(&redis::Value::Int(i64::from(owner))) {
            replica = Some(node.port);
        }
    }
    let replica = replica.expect("the master has a replica");
    let url = format!("redis+cluster://127.0.0.1:{replica}");
    let mut events = StockEvents::subscribe(&url, sale, quick()).await.unwrap();
    assert_eq!(next(&mut events).await, SubscriptionEvent::Subscribed);
    assert_eq!(shard_subscribers(&cluster, owner, &keys.channel()).await, 1);
    assert_eq!(
        shard_subscribers(&cluster, replica, &keys.channel()).await,
        0
    );
}

/// The next stock frame of the WebSocket, as (product, available).
async fn next_frame(
    socket: &mut (
             impl futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin
         ),
) -> (i64, i64) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a frame within 30 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = message {
            let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            return (
                value["product_id"].as_i64().unwrap(),
                value["available"].as_i64().unwrap(),
            );
        }
    }
}

/// The whole edge with `REDIS_URL` a cluster's: carts work, and a WebSocket client watching
/// a product ends on its latest value after the sale's master is killed and the value
/// changes on the promoted replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_on_a_cluster_ends_on_the_latest_value_after_a_failover() {
    let cluster = RedisCluster::start(ClusterOptions {
        module: Some(module_path().unwrap()),
        ..ClusterOptions::default()
    })
    .unwrap();
    let mut stack = Stack::start_on(cluster, StackOptions::default())
        .await
        .unwrap();
    let buyer = flash_api_client::EdgeClient::new(&stack.url("")).unwrap();
    buyer.sign_in("alice").await.unwrap();
    let added = buyer
        .cart_add(&flash_api_client::LineChange {
            product_id: 1,
            cart_id: "cart-1",
            qty: Some(1),
        })
        .await
        .unwrap();
    assert_eq!(added.available, 4);

    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/catalog", stack.address))
            .await
            .unwrap();
    futures::SinkExt::send(&mut socket, Message::text(r#"{"subscribe":[1]}"#))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut socket).await, (1, 4));

    let engine = stack.engine().await.unwrap();
    let sale = stack.sale.clone();
    kill_master_of(&mut stack.redis, &SaleKeys::new(&sale).sale()).await;
    until_ok("load after the failover", || engine.load(&sale, &[(1, 42)])).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no frame with 42 within 30 s");
        if next_frame(&mut socket).await == (1, 42) {
            break;
        }
    }
    stack.stop().await.unwrap();
}

fn session(token_id: &str) -> Session {
    Session {
        user: User {
            id: 1,
            username: "alice".to_owned(),
        },
        token_id: token_id.to_owned(),
        expires_secs: u64::MAX / 2,
    }
}

/// Two edges' revocation lists on a cluster: a sign-out on one reaches the other by its
/// follower (XREAD BLOCK routed to the stream's master), before and after that master dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_another_edge_on_a_cluster_across_a_failover() {
    let mut cluster = RedisCluster::start(ClusterOptions::default()).unwrap();
    let url = cluster.redis_url();
    let conn = |url: String| async move { flash_client::FlashConnection::connect(&url).await };
    let signing = Revocations::start(&url, conn(url.clone()).await.unwrap(), 3600)
        .await
        .unwrap();
    let following = Revocations::start(&url, conn(url.clone()).await.unwrap(), 3600)
        .await
        .unwrap();
    let seen = |token: &'static str| {
        let following = &following;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !following.is_revoked(token) {
                assert!(Instant::now() < deadline, "{token} not seen within 30 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    signing.revoke(&session("before")).await.unwrap();
    seen("before").await;

    kill_master_of(&mut cluster, REVOKED_KEY).await;
    let started = Instant::now();
    while let Err(error) = signing.revoke(&session("after")).await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no sign-out 30 s after the failover: {error}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen("after").await;
    assert!(following.is_revoked("before"));
}
