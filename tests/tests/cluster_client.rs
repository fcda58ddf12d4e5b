//! `FlashClient` on a real Redis Cluster (three masters, three replicas), given by the one
//! setting (`redis+cluster://host:port,…`), on both backends: the module on every node, or
//! plain nodes and the Lua twin. Typed commands per sale on every master, pipelines over
//! sales on different nodes, a script cache flushed on one node, a killed master.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flash_client::{Backend, FlashClient, SaleSettings, SkuUnits, Verdict};
use flash_core::ErrorCode;
use flash_core::keys::SaleKeys;
use flash_core::model::CartState;
use flash_tests::{ClusterOptions, RedisCluster};
use redis::Value;

use flash_tests::both_backends;

both_backends!(
    typed_commands_run_whole_per_sale_on_every_master,
    a_pipeline_over_sales_on_different_nodes_answers_in_order,
    the_client_follows_a_killed_masters_promoted_replica,
);

/// A cluster for `backend`, and a client connected by the cluster setting; the backend
/// detected must be the one the nodes run.
async fn start(backend: Backend) -> (RedisCluster, FlashClient) {
    let cluster = RedisCluster::start(ClusterOptions::for_backend(backend).unwrap()).unwrap();
    let client = FlashClient::connect(&cluster.redis_url()).await.unwrap();
    assert_eq!(client.backend(), backend, "backend detection on a cluster");
    (cluster, client)
}

/// Sale names whose slots fall on every master: `count` of them.
fn sales(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{prefix}{n}")).collect()
}

/// A command on one node, by its port.
async fn on_node<T: redis::FromRedisValue>(cluster: &RedisCluster, port: u16, words: &[&str]) -> T {
    cluster
        .query(port, words)
        .await
        .unwrap_or_else(|error| panic!("{words:?} on {port}: {error}"))
}

async fn master_of(cluster: &RedisCluster, sale: &str) -> u16 {
    cluster
        .master_of(&SaleKeys::new(sale).sale())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no master serves sale {sale}"))
}

fn units(loaded: i64, available: i64, held: i64, pending: i64, sold: i64) -> SkuUnits {
    SkuUnits {
        loaded,
        available,
        held,
        pending,
        sold,
    }
}

async fn typed_commands_run_whole_per_sale_on_every_master(backend: Backend) {
    let (cluster, client) = start(backend).await;
    let sales = sales("typed", 9);
    let mut masters = std::collections::BTreeSet::new();
    for sale in &sales {
        masters.insert(master_of(&cluster, sale).await);
        let long = SaleSettings {
            hold_ms: Some(60_000),
            limit: Some(0),
            ..SaleSettings::default()
        };
        client.sale(sale, &long).await.unwrap();
        assert_eq!(client.load(sale, &[(14, 10), (7, 5)]).await.unwrap(), 2);
        let held = client.reserve(sale, "c1", "u1", 14, 3).await.unwrap();
        assert_eq!((held.available, held.cart_units), (7, 3));
        let order = client.checkout(sale, "c1", "u1").await.unwrap();
        assert_eq!((order.order.as_str(), order.units), ("c1", 3));
        let bought = client.buy(sale, "o2", "u2", 7, 2).await.unwrap();
        assert_eq!(bought.units, 2);
        assert_eq!(
            client.settle(sale, "c1", Verdict::Ok).await.unwrap(),
            CartState::Settled
        );
        assert_eq!(
            client.settle(sale, "o2", Verdict::Reject).await.unwrap(),
            CartState::Rejected
        );
        // A refusal comes back typed from whichever node holds the sale.
        let refused = client.reserve(sale, "c9", "u9", 7, 6).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::SoldOut), "{refused}");

        // A short hold, run out and expired by FLASH.EXPIRE: the Lua twin reads the due
        // carts from the sale's deadlines on its master; the module's timer may be first.
        let short = SaleSettings {
            hold_ms: Some(100),
            ..SaleSettings::default()
        };
        client.sale(sale, &short).await.unwrap();
        client.reserve(sale, "c3", "u3", 14, 1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        let expired = client.expire(sale, 100).await.unwrap();
        match backend {
            Backend::Lua => assert_eq!(expired, 1, "sale {sale}"),
            Backend::Module => assert!(expired <= 1, "sale {sale}: {expired}"),
        }
        assert_eq!(
            client.cart(sale, "c3").await.unwrap().state,
            CartState::Expired
        );

        let info = client.info(sale).await.unwrap();
        // SKU 14: 3 sold to c1, the expired hold back; SKU 7: o2's 2 rejected, back.
        assert_eq!(info.total, units(15, 12, 0, 0, 3), "sale {sale}");
        assert_eq!(info.held_carts, 0);
        for (sku, row) in &info.skus {
            assert_eq!(
                row.loaded,
                row.available + row.held + row.pending + row.sold,
                "sale {sale} SKU {sku}: {row:?}"
            );
        }
    }
    assert_eq!(masters.len(), 3, "sales on masters {masters:?} only");
}

async fn a_pipeline_over_sales_on_different_nodes_answers_in_order(backend: Backend) {
    let (cluster, client) = start(backend).await;
    let sales = sales("pipe", 9);
    let mut masters = std::collections::BTreeSet::new();
    for (n, sale) in sales.iter().enumerate() {
        masters.insert(master_of(&cluster, sale).await);
        client.sale(sale, &SaleSettings::default()).await.unwrap();
        // Each sale's own stock, so a reply in the wrong place shows.
        client.load(sale, &[(14, n as i64 + 1)]).await.unwrap();
    }
    assert!(masters.len() > 1, "sales on masters {masters:?} only");

    let calls: Vec<Vec<String>> = sales.iter().map(|s| vec![s.clone(), "14".into()]).collect();
    let replies = client.call_many("FLASH.AVAILABLE", &calls).await.unwrap();
    let available: Vec<Value> = replies.into_iter().map(Result::unwrap).collect();
    let expected: Vec<Value> = (1..=sales.len() as i64)
        .map(|n| Value::Array(vec![Value::Int(n)]))
        .collect();
    assert_eq!(available, expected);

    // Writes and reads interleaved over the sales: each cart view is read after its own
    // sale's reserve (same slot, same pipeline, in order), and a refusal stays in place.
    let lines: Vec<[Vec<String>; 2]> = sales
        .iter()
        .enumerate()
        .map(|(n, sale)| {
            // Sale 0 has 1 unit: asking 2 is refused.
            let qty = if n == 0 { "2" } else { "1" };
            [
                vec![
                    sale.clone(),
                    "c".into(),
                    "u".into(),
                    "14".into(),
                    qty.into(),
                ],
                vec![sale.clone(), "c".into()],
            ]
        })
        .collect();
    let calls: Vec<(&str, &[String])> = lines
        .iter()
        .flat_map(|[reserve, view]| [("FLASH.RESERVE", &reserve[..]), ("FLASH.CART", &view[..])])
        .collect();
    let replies = client.call_each(&calls).await.unwrap();
    assert_eq!(replies.len(), calls.len());
    for (n, pair) in replies.chunks(2).enumerate() {
        let (reserve, view) = (&pair[0], &pair[1]);
        if n == 0 {
            let refused = reserve.as_ref().unwrap_err();
            assert_eq!(refused.code(), Some(ErrorCode::SoldOut), "{refused}");
            // No cart was made.
            assert!(
                view.is_err() || view.as_ref().unwrap() == &Value::Nil,
                "{view:?}"
            );
            continue;
        }
        let Value::Array(reserved) = reserve.as_ref().unwrap() else {
            panic!("{reserve:?}");
        };
        assert_eq!(reserved[0], Value::Int(n as i64), "sale {n}'s available");
        let view = format!("{:?}", view.as_ref().unwrap());
        assert!(
            view.contains("held"),
            "sale {n}'s cart read before its reserve: {view}"
        );
    }

    // Settles of one sale's orders in one call, and of orders on several sales.
    let sale = &sales[8];
    for order in ["o1", "o2", "o3"] {
        client.buy(sale, order, order, 14, 1).await.unwrap();
    }
    let states = client
        .settle_many(
            sale,
            &[
                ("o1", Verdict::Ok),
                ("o2", Verdict::Reject),
                ("o3", Verdict::Ok),
            ],
        )
        .await
        .unwrap();
    let states: Vec<CartState> = states.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        states,
        vec![CartState::Settled, CartState::Rejected, CartState::Settled]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_cache_flushed_on_one_node_is_reloaded_there() {
    let (cluster, client) = start(Backend::Lua).await;
    let sale = "flushed";
    client.sale(sale, &SaleSettings::default()).await.unwrap();
    client.load(sale, &[(14, 10)]).await.unwrap();
    client.reserve(sale, "c1", "u1", 14, 1).await.unwrap();
    let master = master_of(&cluster, sale).await;
    let sha = flash_client::lua::script("FLASH.RESERVE")
        .unwrap()
        .get_hash()
        .to_owned();
    let exists: Vec<i64> = on_node(&cluster, master, &["SCRIPT", "EXISTS", &sha]).await;
    assert_eq!(exists, vec![1]);

    // Only the sale's master forgets its scripts: its next EVALSHA answers NOSCRIPT.
    let _: String = on_node(&cluster, master, &["SCRIPT", "FLUSH"]).await;
    let held = client.reserve(sale, "c1", "u1", 14, 1).await.unwrap();
    assert_eq!((held.available, held.cart_units), (8, 2));
    let exists: Vec<i64> = on_node(&cluster, master, &["SCRIPT", "EXISTS", &sha]).await;
    assert_eq!(
        exists,
        vec![1],
        "the reserve script was not loaded on {master}"
    );

    // A pipeline whose write meets NOSCRIPT: the write runs once, the view after it.
    let _: String = on_node(&cluster, master, &["SCRIPT", "FLUSH"]).await;
    let (changed, view) = client
        .change_and_view(false, sale, "c1", "u1", 14, 1)
        .await
        .unwrap();
    assert_eq!((changed.available, changed.cart_units), (7, 3));
    assert_eq!(view.units, 3);
    let info = client.info(sale).await.unwrap();
    assert_eq!(info.total, units(10, 7, 3, 0, 0));
}

async fn the_client_follows_a_killed_masters_promoted_replica(backend: Backend) {
    let (mut cluster, client) = start(backend).await;
    let sale = "failover";
    client.sale(sale, &SaleSettings::default()).await.unwrap();
    client.load(sale, &[(14, 10)]).await.unwrap();
    client.reserve(sale, "held", "u1", 14, 3).await.unwrap();
    client.buy(sale, "order", "u2", 14, 2).await.unwrap();
    let owner = master_of(&cluster, sale).await;
    cluster.wait_replicated(owner).await.unwrap();
    cluster.kill_node(owner);

    // Calls fail while the cluster elects the replica, then succeed on it (for the Lua
    // twin after loading the scripts there: a replica never got SCRIPT LOAD). A read is
    // what is retried: a write whose reply was lost might have run.
    let started = Instant::now();
    let available = loop {
        match client.available(sale, &[14]).await {
            Ok(available) => break available,
            Err(error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "no answer for sale {sale} 20 s after its master died: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(available, vec![Some(5)]);
    let held = client.reserve(sale, "held", "u1", 14, 1).await.unwrap();
    assert_eq!((held.available, held.cart_units), (4, 4));
    let new_owner = master_of(&cluster, sale).await;
    assert_ne!(new_owner, owner);
    let info = client.info(sale).await.unwrap();
    assert_eq!(info.total, units(10, 4, 4, 2, 0));
    assert_eq!(
        client.settle(sale, "order", Verdict::Ok).await.unwrap(),
        CartState::Settled
    );
}
