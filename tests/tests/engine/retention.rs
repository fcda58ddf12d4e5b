//! Memory that returns: finished carts go once the sale's RETAIN has passed, and the order
//! stream is trimmed to what every consumer group has acknowledged and is older than RETAIN.
//! Never a held cart, a checked-out order without a verdict, or an entry a group still needs.

use std::time::Duration;

use flash_client::{Backend, Verdict};
use flash_core::keys::SaleKeys;
use flash_core::model::CartState;
use redis::AsyncCommands;

use crate::common::{Engine, both_backends, eventually};

both_backends!(
    finished_carts_go_once_retention_has_passed,
    the_order_stream_keeps_what_a_group_still_needs,
    an_order_stream_of_another_type_refuses_expire_before_any_write,
);

async fn an_order_stream_of_another_type_refuses_expire_before_any_write(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s HOLD 1").await;
    e.ok("FLASH.LOAD s 14 5").await;
    e.client.reserve("s", "c1", "u1", 14, 2).await.unwrap();
    let _: () = e
        .conn()
        .set(SaleKeys::new("s").orders(), "not a stream")
        .await
        .unwrap();
    // The module's timer may release the hold by itself meanwhile (it does not trim there);
    // what is checked is that the command itself refuses and writes nothing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = e.dump("s").await;
    let (code, _) = e.refused("FLASH.EXPIRE s").await;
    assert_eq!(code, flash_core::ErrorCode::WrongType);
    assert_eq!(e.dump("s").await, before);
}

/// The key's remaining time to live in ms: -1 without expiry, -2 when gone.
async fn pttl(e: &Engine, key: &str) -> i64 {
    e.conn().pttl(key).await.unwrap()
}

async fn xlen(e: &Engine, stream: &str) -> i64 {
    e.conn().xlen(stream).await.unwrap()
}

async fn finished_carts_go_once_retention_has_passed(backend: Backend) {
    let e = Engine::start(backend).await;
    let keys = SaleKeys::new("s");
    e.ok("FLASH.SALE s HOLD 1500 RETAIN 400").await;
    e.ok("FLASH.LOAD s 14 20").await;
    e.client.reserve("s", "held", "u1", 14, 2).await.unwrap();
    for order in ["pending", "sold", "refused"] {
        e.client.buy("s", order, "u2", 14, 1).await.unwrap();
    }
    e.client.settle("s", "sold", Verdict::Ok).await.unwrap();
    e.client
        .settle("s", "refused", Verdict::Reject)
        .await
        .unwrap();

    for finished in ["sold", "refused"] {
        let ttl = pttl(&e, &keys.cart(finished)).await;
        assert!((1..=400).contains(&ttl), "{finished}: pttl {ttl}");
    }
    for unfinished in ["held", "pending"] {
        assert_eq!(pttl(&e, &keys.cart(unfinished)).await, -1, "{unfinished}");
    }
    // Within the window a retried verdict still gets its idempotent reply.
    assert_eq!(
        e.client.settle("s", "sold", Verdict::Ok).await.unwrap(),
        CartState::Settled
    );

    let removed = eventually(Duration::from_secs(3), || async {
        pttl(&e, &keys.cart("sold")).await == -2 && pttl(&e, &keys.cart("refused")).await == -2
    })
    .await;
    assert!(removed, "settled and rejected carts outlived RETAIN");
    assert_eq!(pttl(&e, &keys.cart("pending")).await, -1);
    assert_eq!(
        e.client.cart("s", "held").await.unwrap().state,
        CartState::Held
    );

    // The hold runs out: the cart expires, and is removed RETAIN later.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    if backend == Backend::Lua {
        assert_eq!(e.client.expire("s", 100).await.unwrap(), 1);
    }
    let expired = eventually(Duration::from_secs(2), || async {
        e.client.cart("s", "held").await.map(|c| c.state).ok() == Some(CartState::Expired)
    })
    .await;
    assert!(expired, "the hold was not released");
    let removed = eventually(Duration::from_secs(3), || async {
        pttl(&e, &keys.cart("held")).await == -2
    })
    .await;
    assert!(removed, "the expired cart outlived RETAIN");

    // What remains balances, and the users' counts (what LIMIT caps) are untouched by it.
    let ledger = e.ledger("s").await;
    assert_eq!(
        (ledger[0].1.available, ledger[0].1.pending, ledger[0].1.sold),
        (18, 1, 1)
    );
    let user_units: i64 = e.conn().hget(keys.users(), "u2").await.unwrap();
    assert_eq!(user_units, 2, "sold + pending");
    let held_nothing: bool = e.conn().hexists(keys.users(), "u1").await.unwrap();
    assert!(
        !held_nothing,
        "a user with nothing left leaves the users hash"
    );
}

async fn the_order_stream_keeps_what_a_group_still_needs(backend: Backend) {
    let e = Engine::start(backend).await;
    let orders = SaleKeys::new("s").orders();
    // RETAIN 1: any acknowledged entry is old enough; what is kept is what a group needs.
    e.ok("FLASH.SALE s RETAIN 1").await;
    e.ok("FLASH.LOAD s 14 20").await;
    e.client.buy("s", "o1", "u1", 14, 1).await.unwrap();
    let mut conn = e.conn();
    let trim = || async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        e.client.expire("s", 100).await.unwrap();
    };

    // No consumer group yet: nobody has read anything, nothing goes.
    trim().await;
    assert_eq!(xlen(&e, &orders).await, 1);

    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&orders)
        .arg("g")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    for order in ["o2", "o3"] {
        e.client.buy("s", order, "u1", 14, 1).await.unwrap();
    }
    // The group takes two entries and acknowledges the first.
    let mut read = redis::cmd("XREADGROUP");
    read.arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg(&orders)
        .arg(">");
    let delivered: redis::streams::StreamReadReply = read.query_async(&mut conn).await.unwrap();
    let ids: Vec<String> = delivered.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 2);
    let _: i64 = conn.xack(&orders, "g", &[&ids[0]]).await.unwrap();
    trim().await;
    // The acknowledged entry went; the pending one and the undelivered one stayed.
    let left: redis::streams::StreamRangeReply = conn.xrange_all(&orders).await.unwrap();
    let left: Vec<String> = left.ids.into_iter().map(|e| e.id).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left[0], ids[1]);

    // A second group that has read nothing holds everything in place.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&orders)
        .arg("late")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = conn.xack(&orders, "g", &[&ids[1]]).await.unwrap();
    trim().await;
    assert_eq!(xlen(&e, &orders).await, 2);

    // The late group gone and `g` having acknowledged everything, only the entry last
    // delivered stays.
    let _: () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&orders)
        .arg("late")
        .query_async(&mut conn)
        .await
        .unwrap();
    let last: redis::streams::StreamReadReply = read.query_async(&mut conn).await.unwrap();
    let last: Vec<String> = last.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    assert_eq!(last.len(), 1);
    let _: i64 = conn.xack(&orders, "g", &last).await.unwrap();
    trim().await;
    assert_eq!(xlen(&e, &orders).await, 1);
    // Checkout's idempotent answer does not need the stream: it is in the cart.
    assert_eq!(
        e.client.cart("s", "o1").await.unwrap().state,
        CartState::CheckedOut
    );
}
