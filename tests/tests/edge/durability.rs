//! `--durability replica`: a checkout or buy is answered 202 once a replica has the order,
//! and 503 NOTDURABLE (a JSON body; the order stands on the master) when no replica confirms
//! it in time.

use std::time::Duration;

use flash_api_client::{Buy, LineChange};
use flash_core::model::CartState;
use flash_edge::settings::DurabilityMode;
use flash_tests::{RedisServer, ServerOptions, Stack, StackOptions, module_path};

use crate::common::{assert_refused, signed_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_durability_replica_a_202_means_a_replica_has_the_order() {
    let master = RedisServer::start(ServerOptions {
        module: Some(module_path().unwrap()),
        ..ServerOptions::default()
    })
    .unwrap();
    let replica = RedisServer::start(ServerOptions {
        module: Some(module_path().unwrap()),
        replica_of: Some(master.port),
        ..ServerOptions::default()
    })
    .unwrap();
    let mut on_replica = replica
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut on_replica)
            .await
            .unwrap();
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replica never linked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stack = Stack::start_on(
        master,
        StackOptions {
            edge: Box::new(|settings| {
                settings.worker.durability.mode = DurabilityMode::Replica;
                settings.worker.durability.durability_timeout_ms = 300;
                // The orders stay in the stream: this test counts them there.
                settings.no_worker = true;
            }),
            ..StackOptions::default()
        },
    )
    .await
    .unwrap();
    let orders = format!("flash:{{{}}}:orders", stack.sale);
    let buyer = signed_in(&stack, "alice").await;
    buyer.cart_add(&LineChange::one(1, "d1")).await.unwrap();
    buyer.checkout("d1").await.unwrap();
    // Asked right after the 202, with no wait of ours: the replica had it first.
    let on_replica_count: i64 = redis::cmd("XLEN")
        .arg(&orders)
        .query_async(&mut on_replica)
        .await
        .unwrap();
    assert_eq!(on_replica_count, 1);
    buyer
        .buy(&Buy {
            product_id: 2,
            qty: None,
            order_id: Some("b1"),
        })
        .await
        .unwrap();

    drop(replica);
    buyer.cart_add(&LineChange::one(1, "d2")).await.unwrap();
    let refusal = assert_refused(buyer.checkout("d2").await, 503, "NOTDURABLE");
    assert!(refusal.message.contains("order d2"), "{refusal}");
    let engine = stack.engine().await.unwrap();
    let cart = engine.cart(&stack.sale, "d2").await.unwrap();
    assert_eq!(
        cart.state,
        CartState::CheckedOut,
        "the order stands on the master"
    );
}
