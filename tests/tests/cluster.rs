//! Flash on a real Redis Cluster (three masters, three replicas, the module on every node):
//! the harness's cluster, and the module's commands routed by their sale's hash tag. The
//! client, the edge and the worker on a cluster come with issue 11's next steps.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flash_core::keys::SaleKeys;
use flash_tests::{ClusterOptions, RedisCluster, module_path};
use redis::Value;
use redis::cluster_async::ClusterConnection;

fn cluster() -> RedisCluster {
    RedisCluster::start(ClusterOptions {
        module: Some(module_path().unwrap()),
        ..ClusterOptions::default()
    })
    .unwrap()
}

async fn run(conn: &mut ClusterConnection, words: &[&str]) -> Value {
    let mut command = redis::cmd(words[0]);
    for word in &words[1..] {
        command.arg(*word);
    }
    command.query_async(conn).await.unwrap()
}

/// A command on one node, by its port.
async fn on_node<T: redis::FromRedisValue>(cluster: &RedisCluster, port: u16, words: &[&str]) -> T {
    cluster
        .query(port, words)
        .await
        .unwrap_or_else(|error| panic!("{words:?} on {port}: {error}"))
}

/// The ports of the nodes that are masters now.
async fn masters(cluster: &RedisCluster) -> Vec<u16> {
    let mut masters = Vec::new();
    for node in &cluster.nodes {
        // A killed node is no master.
        let info: redis::RedisResult<String> =
            cluster.query(node.port, &["INFO", "replication"]).await;
        if info.is_ok_and(|info| info.contains("role:master")) {
            masters.push(node.port);
        }
    }
    masters
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sales_land_on_every_shard_and_each_runs_whole_on_its_own() {
    let cluster = cluster();
    let mut conn = cluster.client().get_async_connection().await.unwrap();
    let sales: Vec<String> = (0..30).map(|n| format!("s{n}")).collect();
    for sale in &sales {
        run(&mut conn, &["FLASH.SALE", sale, "HOLD", "60000"]).await;
        run(&mut conn, &["FLASH.LOAD", sale, "14", "10"]).await;
        run(&mut conn, &["FLASH.RESERVE", sale, "c1", "u1", "14", "3"]).await;
        run(&mut conn, &["FLASH.CHECKOUT", sale, "c1", "u1"]).await;
        run(&mut conn, &["FLASH.RESERVE", sale, "c2", "u2", "14", "2"]).await;
    }

    // Every key of a sale is in its hash tag's slot, so on one master; the sales spread
    // over all three.
    let masters = masters(&cluster).await;
    assert_eq!(masters.len(), 3);
    let mut holders = BTreeSet::new();
    for sale in &sales {
        let keys = SaleKeys::new(sale);
        let mut slots = BTreeSet::new();
        for key in [keys.sale(), keys.stock(), keys.orders(), keys.cart("c1")] {
            let slot: i64 = on_node(&cluster, masters[0], &["CLUSTER", "KEYSLOT", &key]).await;
            slots.insert(slot);
        }
        assert_eq!(slots.len(), 1, "sale {sale}'s keys in slots {slots:?}");
        let slot = slots.first().unwrap().to_string();
        let mut owners = BTreeSet::new();
        for port in &masters {
            let count: i64 = on_node(&cluster, *port, &["CLUSTER", "COUNTKEYSINSLOT", &slot]).await;
            if count > 0 {
                owners.insert(*port);
            }
        }
        assert_eq!(
            owners.len(),
            1,
            "sale {sale}'s slot {slot} has keys on {owners:?}"
        );
        holders.extend(owners);
    }
    assert_eq!(holders.len(), 3, "30 sales on masters {holders:?} only");

    // Each sale's books, read through the cluster.
    for sale in &sales {
        let info = run(&mut conn, &["FLASH.INFO", sale]).await;
        let text = format!("{info:?}");
        let Value::Array(items) = info else {
            panic!("{text}");
        };
        let total = items
            .iter()
            .position(|item| matches!(item, Value::BulkString(b) if b == b"total"))
            .and_then(|at| items.get(at + 1))
            .unwrap();
        // loaded, available, held, pending, sold
        let Value::Array(row) = total else {
            panic!("{total:?}");
        };
        let numbers: Vec<i64> = row
            .iter()
            .map(|v| match v {
                Value::Int(n) => *n,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(numbers, vec![10, 5, 2, 3, 0], "sale {sale}");
    }

    // Each master's replica holds what its master holds once it has caught up.
    for port in &masters {
        cluster.wait_replicated(*port).await.unwrap();
        let master_keys: i64 = on_node(&cluster, *port, &["DBSIZE"]).await;
        let info: String = on_node(&cluster, *port, &["INFO", "replication"]).await;
        let replica_port: u16 = info
            .lines()
            .find_map(|line| {
                let rest = line.strip_prefix("slave0:")?;
                rest.split(',')
                    .find_map(|part| part.strip_prefix("port="))?
                    .parse()
                    .ok()
            })
            .unwrap();
        let replica_keys: i64 = on_node(&cluster, replica_port, &["DBSIZE"]).await;
        assert_eq!(
            replica_keys, master_keys,
            "master {port}, replica {replica_port}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_run_out_on_every_shard_by_the_module_timer() {
    let cluster = cluster();
    let mut conn = cluster.client().get_async_connection().await.unwrap();
    let sales: Vec<String> = (0..12).map(|n| format!("t{n}")).collect();
    for sale in &sales {
        run(&mut conn, &["FLASH.SALE", sale, "HOLD", "200"]).await;
        run(&mut conn, &["FLASH.LOAD", sale, "14", "10"]).await;
        run(&mut conn, &["FLASH.RESERVE", sale, "c", "u", "14", "4"]).await;
    }
    let started = Instant::now();
    for sale in &sales {
        loop {
            let available: Value = run(&mut conn, &["FLASH.AVAILABLE", sale, "14"]).await;
            if available == Value::Array(vec![Value::Int(10)]) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "sale {sale}'s hold was not released: {available:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The master serving `sale`'s slot now.
async fn owner_of(cluster: &RedisCluster, sale: &str) -> u16 {
    cluster
        .master_of(&SaleKeys::new(sale).sale())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no master serves sale {sale}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_masters_replica_takes_over_its_sales_and_their_holds() {
    let mut cluster = cluster();
    let mut conn = cluster.client().get_async_connection().await.unwrap();
    run(&mut conn, &["FLASH.SALE", "f", "HOLD", "2000"]).await;
    run(&mut conn, &["FLASH.LOAD", "f", "14", "10"]).await;
    run(&mut conn, &["FLASH.RESERVE", "f", "held", "u1", "14", "3"]).await;
    run(&mut conn, &["FLASH.BUY", "f", "order", "u2", "14", "2"]).await;
    let owner = owner_of(&cluster, "f").await;
    cluster.wait_replicated(owner).await.unwrap();
    cluster.kill_node(owner);

    // The replica is promoted after cluster-node-timeout; the client follows it.
    let started = Instant::now();
    let available = loop {
        let mut command = redis::cmd("FLASH.AVAILABLE");
        command.arg("f").arg("14");
        match command.query_async::<Value>(&mut conn).await {
            Ok(value) => break value,
            Err(error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "no new master for sale f after 20 s: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // The order survived; the hold either still runs or has run out on the new master.
    assert!(
        available == Value::Array(vec![Value::Int(5)])
            || available == Value::Array(vec![Value::Int(8)]),
        "{available:?}"
    );
    assert_ne!(owner_of(&cluster, "f").await, owner);
    // The module on the promoted node finds the sale and releases the hold.
    let released = loop {
        let value = run(&mut conn, &["FLASH.AVAILABLE", "f", "14"]).await;
        if value == Value::Array(vec![Value::Int(8)]) {
            break true;
        }
        if started.elapsed() > Duration::from_secs(25) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(released, "the promoted replica did not release the hold");
    let order = run(&mut conn, &["FLASH.CART", "f", "order"]).await;
    assert!(format!("{order:?}").contains("checked_out"), "{order:?}");
}

/// Moving a slot that holds a live sale is refused at its first step (the source's `CLUSTER
/// SETSLOT … MIGRATING`, what `redis-cli --cluster reshard` sends before it moves a key), with
/// the sale named and nothing changed; once the sale has ended with nothing held or pending,
/// the slot moves, and the sale with it, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_sale_refuses_to_start_moving_its_slot_and_moves_once_it_is_over() {
    let cluster = cluster();
    let mut conn = cluster.client().get_async_connection().await.unwrap();
    let sale = "mover";
    run(&mut conn, &["FLASH.SALE", sale, "HOLD", "1500"]).await;
    run(&mut conn, &["FLASH.LOAD", sale, "14", "10"]).await;
    run(&mut conn, &["FLASH.RESERVE", sale, "c1", "u1", "14", "2"]).await;
    run(&mut conn, &["FLASH.CHECKOUT", sale, "c1", "u1"]).await;
    run(&mut conn, &["FLASH.RESERVE", sale, "c2", "u2", "14", "1"]).await;

    // The slot core says is the one Redis hashes the sale's keys to.
    let slot = flash_core::keys::slot_of_sale(sale);
    let source = owner_of(&cluster, sale).await;
    let keyslot: u16 = on_node(
        &cluster,
        source,
        &["CLUSTER", "KEYSLOT", &SaleKeys::new(sale).sale()],
    )
    .await;
    assert_eq!(keyslot, slot);
    let target = *masters(&cluster)
        .await
        .iter()
        .find(|&&port| port != source)
        .unwrap();
    let source_id: String = on_node(&cluster, source, &["CLUSTER", "MYID"]).await;
    let target_id: String = on_node(&cluster, target, &["CLUSTER", "MYID"]).await;
    let slot_text = slot.to_string();
    let migrating = ["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &target_id];

    let refused: redis::RedisResult<String> = cluster.query(source, &migrating).await;
    let error = refused.unwrap_err().to_string();
    assert!(error.contains("LIVESALE"), "{error}");
    assert!(
        error.contains("'mover' (not ended; 1 carts held, 2 units pending)"),
        "{error}"
    );
    let nodes: String = on_node(&cluster, source, &["CLUSTER", "NODES"]).await;
    assert!(
        !nodes.contains(&format!("[{slot}->-")),
        "the slot started migrating:\n{nodes}"
    );
    run(&mut conn, &["FLASH.RESERVE", sale, "c3", "u3", "14", "1"]).await;

    // Over: ended, the order settled, the holds run out (the module's timer).
    let ended_at = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 1)
    .to_string();
    run(&mut conn, &["FLASH.SALE", sale, "END", &ended_at]).await;
    run(&mut conn, &["FLASH.SETTLE", sale, "c1", "OK"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = run(&mut conn, &["FLASH.INFO", sale]).await;
        if info_field(&info, "held_carts") == Some(Value::Int(0)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the holds did not run out: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The slot moves as redis-cli moves it: importing, migrating, every key, then the owner.
    let importing = ["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &source_id];
    let _: String = on_node(&cluster, target, &importing).await;
    let _: String = on_node(&cluster, source, &migrating).await;
    loop {
        let keys: Vec<String> = on_node(
            &cluster,
            source,
            &["CLUSTER", "GETKEYSINSLOT", &slot_text, "100"],
        )
        .await;
        if keys.is_empty() {
            break;
        }
        let target_port = target.to_string();
        let mut words = vec![
            "MIGRATE",
            "127.0.0.1",
            &target_port,
            "",
            "0",
            "5000",
            "KEYS",
        ];
        words.extend(keys.iter().map(String::as_str));
        let _: String = on_node(&cluster, source, &words).await;
    }
    for port in [target, source] {
        let _: String = on_node(
            &cluster,
            port,
            &["CLUSTER", "SETSLOT", &slot_text, "NODE", &target_id],
        )
        .await;
    }
    assert_eq!(owner_of(&cluster, sale).await, target);

    // The sale, whole, on its new master: 2 sold, nothing held, the rest available.
    let mut conn = cluster.client().get_async_connection().await.unwrap();
    let info = run(&mut conn, &["FLASH.INFO", sale]).await;
    let total = Value::Array([10, 8, 0, 0, 2].map(Value::Int).to_vec());
    assert_eq!(info_field(&info, "total"), Some(total), "{info:?}");
}

/// A field of FLASH.INFO's field/value reply.
fn info_field(info: &Value, name: &str) -> Option<Value> {
    let Value::Array(items) = info else {
        return None;
    };
    items
        .chunks(2)
        .find(|pair| pair[0] == Value::BulkString(name.as_bytes().to_vec()))
        .and_then(|pair| pair.get(1).cloned())
}
