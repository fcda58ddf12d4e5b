//! Holds that run out: the deadline never moves, units come back, the cart says so.

use std::time::Duration;

use flash_client::Backend;
use flash_core::ErrorCode;
use flash_core::model::CartState;

use redis::AsyncCommands;

use crate::common::{Engine, both_backends, eventually};

both_backends!(
    holds_never_extend_and_expire_on_time,
    expire_takes_the_earliest_first,
    a_malformed_cart_does_not_stall_expiry,
);

async fn holds_never_extend_and_expire_on_time(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s HOLD 300").await;
    e.ok("FLASH.LOAD s 14 10 7 10").await;
    let first = e.client.reserve("s", "c1", "u1", 14, 2).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let later = e.client.reserve("s", "c1", "u1", 7, 1).await.unwrap();
    assert_eq!(
        later.deadline_ms, first.deadline_ms,
        "a later reserve must not extend the hold"
    );
    while e.server_now_ms().await < first.deadline_ms {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Past the deadline the cart refuses everything, whether or not expiry ran yet.
    assert_eq!(
        e.refused("FLASH.RESERVE s c1 u1 14").await.0,
        ErrorCode::Expired
    );
    assert_eq!(
        e.refused("FLASH.CHECKOUT s c1 u1").await.0,
        ErrorCode::Expired
    );
    match backend {
        // The module expires by itself, within 100 ms, with no caller.
        Backend::Module => {}
        // The Lua twin needs a caller (the worker).
        Backend::Lua => assert_eq!(e.client.expire("s", 100).await.unwrap(), 1),
    }
    let expired = eventually(Duration::from_millis(250), || async {
        e.client.cart("s", "c1").await.unwrap().state == CartState::Expired
    })
    .await;
    assert!(expired, "the hold was not released in time");
    let ledger = e.ledger("s").await;
    assert!(
        ledger.iter().all(|(_, u)| u.available == 10 && u.held == 0),
        "{ledger:?}"
    );
    assert_eq!(
        e.refused("FLASH.RESERVE s c1 u1 14").await.0,
        ErrorCode::Expired
    );
    assert_eq!(e.client.info("s").await.unwrap().held_carts, 0);
}

async fn expire_takes_the_earliest_first(backend: Backend) {
    let e = Engine::start(backend).await;
    // With the module the timer expires these carts itself, so only the Lua run shows
    // COUNT and the order; core's unit tests cover both for the module's code.
    e.ok("FLASH.SALE s HOLD 200").await;
    e.ok("FLASH.LOAD s 14 100").await;
    for cart in ["a", "b", "c"] {
        e.client.reserve("s", cart, "u1", 14, 1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    e.ok("FLASH.SALE s HOLD 60000").await;
    e.client.reserve("s", "late", "u1", 14, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    if backend == Backend::Lua {
        assert_eq!(e.client.expire("s", 2).await.unwrap(), 2);
        assert_eq!(
            e.client.cart("s", "c").await.unwrap().state,
            CartState::Held
        );
        assert_eq!(e.client.expire("s", 10).await.unwrap(), 1);
    }
    let all_expired = eventually(Duration::from_millis(250), || async {
        e.client.cart("s", "c").await.unwrap().state == CartState::Expired
    })
    .await;
    assert!(all_expired);
    assert_eq!(e.client.expire("s", 10).await.unwrap(), 0);
    assert_eq!(
        e.client.cart("s", "late").await.unwrap().state,
        CartState::Held
    );
    assert_eq!(e.ledger("s").await[0].1.held, 1);
}

async fn a_malformed_cart_does_not_stall_expiry(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s HOLD 100").await;
    e.ok("FLASH.LOAD s 14 10").await;
    let mut conn = e.conn();
    // Written by hand, not by Flash: a string where a cart should be, due long ago.
    let _: () = conn.set("flash:{s}:cart:junk", "not a cart").await.unwrap();
    let _: () = conn
        .rpush("flash:{s}:deadlines:100", "0:junk")
        .await
        .unwrap();
    e.client.reserve("s", "good", "u1", 14, 2).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    if backend == Backend::Lua {
        assert_eq!(e.client.expire("s", 100).await.unwrap(), 1);
    }
    let expired = eventually(Duration::from_millis(300), || async {
        e.client.cart("s", "good").await.unwrap().state == CartState::Expired
    })
    .await;
    assert!(expired, "one bad key stalled the sale's expiry");
    let left: i64 = conn.llen("flash:{s}:deadlines:100").await.unwrap();
    assert_eq!(left, 0, "the stale deadline is dropped");
    let junk: String = conn.get("flash:{s}:cart:junk").await.unwrap();
    assert_eq!(
        junk, "not a cart",
        "a key Flash did not write is left alone"
    );
    assert_eq!(e.ledger("s").await[0].1.available, 10);
}

/// The module's timer finds a sale no command has named since it moved: here SWAPDB puts it
/// in another database (a RESTORE or a slot migration look the same to the timer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_finds_a_sale_that_moved_database() {
    let e = Engine::start(Backend::Module).await;
    e.ok("FLASH.SALE s HOLD 300").await;
    e.ok("FLASH.LOAD s 14 10").await;
    e.client.reserve("s", "c1", "u1", 14, 3).await.unwrap();
    let _: () = redis::cmd("SWAPDB")
        .arg(0)
        .arg(1)
        .query_async(&mut e.conn())
        .await
        .unwrap();
    let db1 = flash_client::FlashClient::connect(&format!("{}1", e.server.url()))
        .await
        .unwrap();
    let expired = eventually(Duration::from_secs(2), || async {
        db1.cart("s", "c1").await.unwrap().state == CartState::Expired
    })
    .await;
    assert!(
        expired,
        "the hold in the sale's new database was never released"
    );
    assert_eq!(db1.info("s").await.unwrap().skus[0].1.available, 10);
}
