//! Every command's success path and every error word, on both backends.

use flash_client::{Backend, Verdict};
use flash_core::ErrorCode;
use flash_core::model::CartState;
use flash_tests::ShardSubscriber;
use redis::{AsyncCommands, Value};

use crate::common::{Engine, both_backends};

both_backends!(
    sale_load_available_and_info,
    reserve_replies_units_left_deadline_and_cart_units,
    every_error_word_changes_nothing,
    wrong_type_keys_are_refused_before_any_write,
    release_returns_units_and_keeps_the_deadline,
    checkout_appends_one_order_however_often_repeated,
    settle_is_idempotent_and_reject_returns_units,
    buy_is_reserve_and_checkout_in_one,
    limit_counts_held_checked_out_and_sold_units,
    the_sale_window_closes_reserve_and_checkout,
    stock_changes_are_published,
    commands_declare_the_sale_as_their_key,
    a_change_and_its_cart_view_stay_in_order_after_a_script_flush,
);

async fn sale_load_available_and_info(backend: Backend) {
    let e = Engine::start(backend).await;
    assert_eq!(
        e.ok("FLASH.SALE s HOLD 5000 LIMIT 9 START 1 END 9007199254740991")
            .await,
        Value::Okay
    );
    assert_eq!(e.ok("FLASH.LOAD s 14 10 7 5").await, Value::Int(2));
    assert_eq!(
        e.client.available("s", &[7, 14, 99]).await.unwrap(),
        vec![Some(5), Some(10), None]
    );
    // Settings not named keep their value.
    e.ok("flash.sale s limit 0").await;
    let info = e.client.info("s").await.unwrap();
    assert_eq!(
        (info.hold_ms, info.limit, info.start_ms, info.end_ms),
        (5000, 0, 1, 9007199254740991)
    );
    assert!(info.open);
    assert_eq!(info.total.loaded, 15);
    assert_eq!(
        info.skus.iter().map(|(sku, _)| *sku).collect::<Vec<_>>(),
        vec![7, 14]
    );
    // Reloading moves `loaded` by the difference: the ledger still balances.
    e.client.reserve("s", "c1", "u1", 14, 4).await.unwrap();
    e.client.load("s", &[(14, 20)]).await.unwrap();
    let ledger = e.ledger("s").await;
    assert_eq!(ledger[1].1.loaded, 24);
    assert_eq!(ledger[1].1.held, 4);
    // The raw INFO reply, as documented.
    let raw = e.ok("FLASH.INFO s").await;
    let Value::Array(fields) = raw else {
        panic!("{raw:?}")
    };
    assert_eq!(fields[8], Value::BulkString(b"retain_ms".to_vec()));
    assert_eq!(fields[9], Value::Int(86_400_000));
    assert_eq!(fields[14], Value::BulkString(b"total".to_vec()));
    assert_eq!(
        fields[17],
        Value::Array(vec![
            Value::Array([7, 5, 5, 0, 0, 0].map(Value::Int).to_vec()),
            Value::Array([14, 24, 20, 4, 0, 0].map(Value::Int).to_vec()),
        ])
    );
}

async fn reserve_replies_units_left_deadline_and_cart_units(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s HOLD 40000").await;
    e.ok("FLASH.LOAD s 14 10 7 5").await;
    let before = e.server_now_ms().await;
    let first = e.client.reserve("s", "c1", "u1", 14, 3).await.unwrap();
    let after = e.server_now_ms().await;
    assert_eq!((first.available, first.cart_units), (7, 3));
    assert!(
        (before + 40000..=after + 40000).contains(&first.deadline_ms),
        "{first:?}"
    );
    let second = e.ok("FLASH.RESERVE s c1 u1 7").await;
    assert_eq!(
        second,
        Value::Array(vec![
            Value::Int(4),
            Value::Int(first.deadline_ms),
            Value::Int(4)
        ])
    );
    let cart = e.client.cart("s", "c1").await.unwrap();
    assert_eq!(cart.state, CartState::Held);
    assert_eq!(cart.lines, vec![(7, 1), (14, 3)]);
    assert_eq!(cart.entry, None);
    assert_eq!(e.client.info("s").await.unwrap().held_carts, 1);
    // The one deadline entry, in the list of carts held for 40000 ms.
    let entries: Vec<String> = e
        .conn()
        .lrange("flash:{s}:deadlines:40000", 0, -1)
        .await
        .unwrap();
    assert_eq!(entries, [format!("{}:c1", first.deadline_ms)]);
}

async fn every_error_word_changes_nothing(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s HOLD 60000 LIMIT 5").await;
    e.ok("FLASH.LOAD s 14 10 7 2").await;
    e.ok("FLASH.RESERVE s held u1 14 2").await;
    e.ok("FLASH.RESERVE s emptied u1 7").await;
    e.ok("FLASH.RELEASE s emptied u1 7").await;
    e.ok("FLASH.BUY s bought u2 14").await;
    e.ok("FLASH.SALE s2 START 9007199254740990").await;
    e.ok("FLASH.LOAD s2 1 1").await;
    let before = e.dump("s").await;
    let before_closed = e.dump("s2").await;

    let cases: &[(&str, ErrorCode, &str)] = &[
        (
            "FLASH.RESERVE s c9 u3 7 3",
            ErrorCode::SoldOut,
            "SOLDOUT sku 7 has 2 units left",
        ),
        (
            "FLASH.RESERVE s held u1 14 4",
            ErrorCode::Limit,
            "LIMIT at most 5 units per user in this sale; user 'u1' has 2",
        ),
        (
            "FLASH.RESERVE s2 c1 u1 1",
            ErrorCode::Closed,
            "CLOSED sale 's2' is not open",
        ),
        (
            "FLASH.CHECKOUT s held u9",
            ErrorCode::NotOwner,
            "NOTOWNER cart 'held' belongs to another user",
        ),
        (
            "FLASH.RELEASE s nope u1 14",
            ErrorCode::NoCart,
            "NOCART cart 'nope' does not exist",
        ),
        (
            "FLASH.CART s nope",
            ErrorCode::NoCart,
            "NOCART cart 'nope' does not exist",
        ),
        (
            "FLASH.SETTLE s nope OK",
            ErrorCode::NoCart,
            "NOCART cart 'nope' does not exist",
        ),
        (
            "FLASH.CHECKOUT s emptied u1",
            ErrorCode::Empty,
            "EMPTY cart 'emptied' holds no units",
        ),
        (
            "FLASH.RESERVE nosuch c1 u1 14",
            ErrorCode::NoSale,
            "NOSALE sale 'nosuch' does not exist; create it with FLASH.SALE",
        ),
        (
            "FLASH.INFO nosuch",
            ErrorCode::NoSale,
            "NOSALE sale 'nosuch' does not exist; create it with FLASH.SALE",
        ),
        (
            "FLASH.RESERVE s c1 u1 99",
            ErrorCode::NoSku,
            "NOSKU sku 99 is not loaded in sale 's'",
        ),
        (
            "FLASH.RELEASE s held u1 7",
            ErrorCode::NoSku,
            "NOSKU cart 'held' holds no units of sku 7",
        ),
        (
            "FLASH.RESERVE s bought u2 14",
            ErrorCode::BadState,
            "BADSTATE cart 'bought' is checked_out",
        ),
        (
            "FLASH.SETTLE s held OK",
            ErrorCode::BadState,
            "BADSTATE cart 'held' is held",
        ),
        (
            "FLASH.RELEASE s held u1 14 3",
            ErrorCode::Err,
            "ERR cart 'held' holds only 2 units of sku 14",
        ),
        (
            "FLASH.RESERVE s c1 u1 14 0",
            ErrorCode::Err,
            "ERR qty must be an integer from 1 to 1000000",
        ),
        (
            "FLASH.RESERVE s c1 u1 14 1000001",
            ErrorCode::Err,
            "ERR qty must be an integer from 1 to 1000000",
        ),
        (
            "FLASH.RESERVE s c1 u1 14 1e3",
            ErrorCode::Err,
            "ERR qty must be an integer from 1 to 1000000",
        ),
        (
            "FLASH.RESERVE s c1 u1 x14",
            ErrorCode::Err,
            "ERR sku must be an integer from 1 to 9007199254740991",
        ),
        (
            "FLASH.RESERVE s c{1} u1 14",
            ErrorCode::Err,
            "ERR cart must be 1 to 64 characters from A-Z a-z 0-9 - _ . : @",
        ),
        (
            "FLASH.RESERVE s c1 u1",
            ErrorCode::Err,
            "ERR wrong number of arguments for 'FLASH.RESERVE' command",
        ),
        (
            "FLASH.RESERVE s c1 u1 14 1 extra",
            ErrorCode::Err,
            "ERR syntax error near 'extra'",
        ),
        (
            "FLASH.LOAD s 14 -1",
            ErrorCode::Err,
            "ERR units must be an integer from 0 to 1000000000",
        ),
        (
            "FLASH.LOAD s 14 5 7",
            ErrorCode::Err,
            "ERR wrong number of arguments for 'FLASH.LOAD' command",
        ),
        (
            "FLASH.SALE s HOLD 0",
            ErrorCode::Err,
            "ERR HOLD must be an integer from 1 to 86400000",
        ),
        (
            "FLASH.SALE s RETAIN -1",
            ErrorCode::Err,
            "ERR RETAIN must be an integer from 0 to 2592000000",
        ),
        (
            "FLASH.SALE s START 10 END 5",
            ErrorCode::Err,
            "ERR END must be after START",
        ),
        (
            "FLASH.SALE s COLOR red",
            ErrorCode::Err,
            "ERR unknown option 'COLOR'; expected HOLD, LIMIT, START, END, RETAIN, RATE, CAP, \
             ADMIT, IDLE or SEED",
        ),
        (
            "FLASH.SETTLE s bought MAYBE",
            ErrorCode::Err,
            "ERR verdict must be OK or REJECT",
        ),
        (
            "FLASH.EXPIRE s COUNT 0",
            ErrorCode::Err,
            "ERR COUNT must be an integer from 1 to 10000",
        ),
        (
            "FLASH.AVAILABLE s",
            ErrorCode::Err,
            "ERR wrong number of arguments for 'FLASH.AVAILABLE' command",
        ),
    ];
    for (line, code, text) in cases {
        let (got_code, got_text) = e.refused(line).await;
        assert_eq!((got_code, got_text.as_str()), (*code, *text), "{line}");
        assert_eq!(e.dump("s").await, before, "{line} changed sale s");
        assert_eq!(e.dump("s2").await, before_closed, "{line} changed sale s2");
    }
    assert!(e.dump("nosuch").await.is_empty());
}

async fn wrong_type_keys_are_refused_before_any_write(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s").await;
    e.ok("FLASH.LOAD s 14 10").await;
    e.ok("FLASH.RESERVE s c1 u1 14").await;
    let mut conn = e.conn();
    // Each key a command writes late, replaced by a string.
    for (key, line) in [
        ("flash:{s}:deadlines:40000", "FLASH.RESERVE s c2 u1 14"),
        ("flash:{s}:stock", "FLASH.RESERVE s c2 u1 14"),
        ("flash:{s}:users", "FLASH.RESERVE s c2 u1 14"),
        ("flash:{s}:orders", "FLASH.CHECKOUT s c1 u1"),
        ("flash:{s}:orders", "FLASH.BUY s o9 u1 14"),
        ("flash:{s}:cart:c1", "FLASH.CHECKOUT s c1 u1"),
    ] {
        let saved: Vec<u8> = redis::cmd("DUMP")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let _: () = conn.del(key).await.unwrap();
        let _: () = conn.set(key, "not a hash").await.unwrap();
        let before = e.dump("s").await;
        assert_eq!(e.refused(line).await.0, ErrorCode::WrongType, "{key}");
        assert_eq!(e.dump("s").await, before, "{line} with {key} a string");
        let _: () = conn.del(key).await.unwrap();
        if !saved.is_empty() {
            let _: () = redis::cmd("RESTORE")
                .arg(key)
                .arg(0)
                .arg(saved)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    e.ok("FLASH.CHECKOUT s c1 u1").await;
    e.ledger("s").await;
}

async fn release_returns_units_and_keeps_the_deadline(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s").await;
    e.ok("FLASH.LOAD s 14 10").await;
    let r = e.client.reserve("s", "c1", "u1", 14, 3).await.unwrap();
    let back = e.client.release("s", "c1", "u1", 14, 2).await.unwrap();
    assert_eq!(
        (back.available, back.deadline_ms, back.cart_units),
        (9, r.deadline_ms, 1)
    );
    let back = e.client.release("s", "c1", "u1", 14, 1).await.unwrap();
    assert_eq!(back.cart_units, 0);
    let cart = e.client.cart("s", "c1").await.unwrap();
    assert_eq!(
        (cart.state, cart.units, cart.lines.len()),
        (CartState::Held, 0, 0)
    );
    let ledger = e.ledger("s").await;
    assert_eq!((ledger[0].1.available, ledger[0].1.held), (10, 0));
}

async fn checkout_appends_one_order_however_often_repeated(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s").await;
    e.ok("FLASH.LOAD s 14 10 7 5").await;
    e.ok("FLASH.RESERVE s c1 u1 14 2").await;
    e.ok("FLASH.RESERVE s c1 u1 7").await;
    let first = e.client.checkout("s", "c1", "u1").await.unwrap();
    assert_eq!((first.order.as_str(), first.units), ("c1", 3));
    for _ in 0..3 {
        assert_eq!(e.client.checkout("s", "c1", "u1").await.unwrap(), first);
    }
    let entries: Value = redis::cmd("XRANGE")
        .arg("flash:{s}:orders")
        .arg("-")
        .arg("+")
        .query_async(&mut e.conn())
        .await
        .unwrap();
    let fields = [
        "order", "c1", "user", "u1", "lines", "7:1,14:2", "units", "3",
    ]
    .map(|f| Value::BulkString(f.as_bytes().to_vec()))
    .to_vec();
    assert_eq!(
        entries,
        Value::Array(vec![Value::Array(vec![
            Value::BulkString(first.entry.clone().into_bytes()),
            Value::Array(fields)
        ])])
    );
    let cart = e.client.cart("s", "c1").await.unwrap();
    assert_eq!(
        (cart.state, cart.entry),
        (CartState::CheckedOut, Some(first.entry))
    );
    let ledger = e.ledger("s").await;
    assert_eq!(
        ledger
            .iter()
            .map(|(_, u)| (u.held, u.pending))
            .collect::<Vec<_>>(),
        vec![(0, 1), (0, 2)]
    );
    let held = e.client.info("s").await.unwrap().held_carts;
    assert_eq!(held, 0, "a checked-out cart can never expire");
}

async fn settle_is_idempotent_and_reject_returns_units(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s").await;
    e.ok("FLASH.LOAD s 14 10").await;
    e.client.buy("s", "o1", "u1", 14, 2).await.unwrap();
    e.client.buy("s", "o2", "u2", 14, 3).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            e.client.settle("s", "o1", Verdict::Ok).await.unwrap(),
            CartState::Settled
        );
        assert_eq!(
            e.client.settle("s", "o2", Verdict::Reject).await.unwrap(),
            CartState::Rejected
        );
    }
    assert_eq!(
        e.refused("FLASH.SETTLE s o1 REJECT").await.1,
        "BADSTATE cart 'o1' is settled"
    );
    assert_eq!(
        e.ok("FLASH.SETTLE s o1 ok").await,
        Value::SimpleString("settled".into())
    );
    let ledger = e.ledger("s").await;
    assert_eq!(
        (ledger[0].1.available, ledger[0].1.pending, ledger[0].1.sold),
        (8, 0, 2)
    );
    // A settled order is still an order: checking it out again answers with it.
    assert_eq!(e.client.checkout("s", "o1", "u1").await.unwrap().units, 2);
}

async fn buy_is_reserve_and_checkout_in_one(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s").await;
    e.ok("FLASH.LOAD s 14 3").await;
    let order = e.client.buy("s", "o1", "u1", 14, 2).await.unwrap();
    assert_eq!(e.client.buy("s", "o1", "u1", 14, 2).await.unwrap(), order);
    assert_eq!(
        e.refused("FLASH.BUY s o1 u2 14 2").await.0,
        ErrorCode::NotOwner
    );
    assert_eq!(
        e.refused("FLASH.BUY s o2 u2 14 2").await.0,
        ErrorCode::SoldOut
    );
    assert_eq!(
        e.refused("FLASH.CART s o2").await.0,
        ErrorCode::NoCart,
        "a refused buy leaves no cart"
    );
    let len: i64 = e.conn().xlen("flash:{s}:orders").await.unwrap();
    assert_eq!(len, 1);
    assert_eq!(e.ledger("s").await[0].1.pending, 2);
}

async fn limit_counts_held_checked_out_and_sold_units(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s LIMIT 3").await;
    e.ok("FLASH.LOAD s 14 100").await;
    e.client.buy("s", "o1", "u1", 14, 1).await.unwrap();
    e.client.settle("s", "o1", Verdict::Ok).await.unwrap();
    e.client.buy("s", "o2", "u1", 14, 1).await.unwrap();
    e.client.reserve("s", "c3", "u1", 14, 1).await.unwrap();
    assert_eq!(
        e.refused("FLASH.RESERVE s c4 u1 14").await.0,
        ErrorCode::Limit
    );
    // A rejected order gives its units back to the user's allowance.
    e.client.settle("s", "o2", Verdict::Reject).await.unwrap();
    e.client.reserve("s", "c4", "u1", 14, 1).await.unwrap();
    assert_eq!(e.refused("FLASH.BUY s o5 u1 14").await.0, ErrorCode::Limit);
    e.client.reserve("s", "c5", "u2", 14, 3).await.unwrap();
}

async fn the_sale_window_closes_reserve_and_checkout(backend: Backend) {
    let e = Engine::start(backend).await;
    let now = e.server_now_ms().await;
    e.ok(&format!("FLASH.SALE s START {}", now + 60_000)).await;
    e.ok("FLASH.LOAD s 14 10").await;
    assert_eq!(
        e.refused("FLASH.RESERVE s c1 u1 14").await.0,
        ErrorCode::Closed
    );
    assert_eq!(e.refused("FLASH.BUY s o1 u1 14").await.0, ErrorCode::Closed);
    e.ok(&format!(
        "FLASH.SALE s START {} END {}",
        now - 1000,
        now + 60_000
    ))
    .await;
    e.ok("FLASH.RESERVE s c1 u1 14").await;
    e.ok(&format!("FLASH.SALE s END {}", now)).await;
    assert_eq!(
        e.refused("FLASH.CHECKOUT s c1 u1").await.0,
        ErrorCode::Closed
    );
    assert_eq!(
        e.refused("FLASH.RESERVE s c1 u1 14").await.0,
        ErrorCode::Closed
    );
    assert!(!e.client.info("s").await.unwrap().open);
    // Giving units back stays possible after the end.
    e.ok("FLASH.RELEASE s c1 u1 14").await;
    assert_eq!(e.ledger("s").await[0].1.available, 10);
}

/// Every message announced until the channel has been quiet for 300 ms.
/// The stock messages until none came for 300 ms.
async fn until_quiet(subscriber: &mut ShardSubscriber) -> Vec<String> {
    subscriber
        .until_quiet(std::time::Duration::from_millis(300))
        .await
}

async fn stock_changes_are_published(backend: Backend) {
    let e = Engine::start(backend).await;
    let mut messages = ShardSubscriber::start(&e.server.client(), "flash:{s}:events")
        .await
        .unwrap();
    e.ok("FLASH.SALE s HOLD 60000").await;
    e.ok("FLASH.LOAD s 14 10").await;
    e.ok("FLASH.RESERVE s c1 u1 14 3").await;
    e.ok("FLASH.RELEASE s c1 u1 14 1").await;
    e.ok("FLASH.BUY s o1 u2 14 2").await;
    e.ok("FLASH.SETTLE s o1 REJECT").await;
    let expected = [10, 7, 8, 6, 8].map(|n| format!("{{\"sku\":14,\"available\":{n}}}"));
    let got = until_quiet(&mut messages).await;
    match backend {
        // The Lua twin announces every change.
        Backend::Lua => assert_eq!(got, expected),
        // The module the latest value per SKU within PUBLISH_AFTER_MS (10 ms): steps in
        // between may be skipped, never the last one, and none is announced twice.
        Backend::Module => {
            assert_eq!(got.last(), expected.last(), "{got:?}");
            let mut rest = expected.iter();
            assert!(
                got.iter().all(|message| rest.any(|step| step == message)),
                "not the changes in order: {got:?}"
            );
        }
    }
}

/// The module coalesces stock messages per sale, SKU and database (the Lua twin publishes
/// every change as it happens, from scripts the client runs: nothing to coalesce).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_named_sales_in_two_databases_each_announce_their_stock() {
    let e = Engine::start(Backend::Module).await;
    let mut messages = ShardSubscriber::start(&e.server.client(), "flash:{s}:events")
        .await
        .unwrap();
    e.ok("FLASH.SALE s").await;
    // Database 1 through its own connection (SELECT must not touch the shared one).
    let mut db1 = e
        .server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SELECT")
        .arg(1)
        .query_async(&mut db1)
        .await
        .unwrap();
    let _: () = redis::cmd("FLASH.SALE")
        .arg("s")
        .query_async(&mut db1)
        .await
        .unwrap();
    let _: () = redis::pipe()
        .cmd("FLASH.LOAD")
        .arg("s")
        .arg(14)
        .arg(10)
        .ignore()
        .cmd("SELECT")
        .arg(0)
        .ignore()
        .cmd("FLASH.LOAD")
        .arg("s")
        .arg(14)
        .arg(50)
        .ignore()
        .query_async(&mut db1)
        .await
        .unwrap();
    let mut got = until_quiet(&mut messages).await;
    got.sort();
    assert_eq!(
        got,
        [
            r#"{"sku":14,"available":10}"#,
            r#"{"sku":14,"available":50}"#
        ]
    );
}

async fn commands_declare_the_sale_as_their_key(backend: Backend) {
    let e = Engine::start(backend).await;
    let mut conn = e.conn();
    match backend {
        // Cluster clients route by the declared key: the sale, whose hash tag every key of
        // the sale carries.
        Backend::Module => {
            for line in [
                "FLASH.RESERVE spring c1 u1 14 2",
                "FLASH.INFO spring",
                "FLASH.EXPIRE spring COUNT 5",
            ] {
                let keys: Vec<String> = redis::cmd("COMMAND")
                    .arg("GETKEYS")
                    .arg(line.split_whitespace().collect::<Vec<_>>())
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(keys, vec!["spring".to_owned()], "{line}");
            }
        }
        // The scripts are sent with EVALSHA and loaded again after SCRIPT FLUSH (NOSCRIPT).
        Backend::Lua => {
            e.ok("FLASH.SALE spring").await;
            let _: () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut conn)
                .await
                .unwrap();
            e.ok("FLASH.LOAD spring 14 3").await;
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(info.contains("cmdstat_evalsha"), "{info}");
            assert_eq!(
                e.client.available("spring", &[14]).await.unwrap(),
                vec![Some(3)]
            );
        }
    }
}

/// Add-to-cart is the change and the cart view in one pipeline. When the change's script
/// was missing (SCRIPT FLUSH, a restarted server), the view ran before the change did; the
/// client must read it again after the retry, or a shop shows a cart without the add.
async fn a_change_and_its_cart_view_stay_in_order_after_a_script_flush(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE spring").await;
    e.ok("FLASH.LOAD spring 14 5 7 5").await;
    e.client
        .change_and_view(false, "spring", "c1", "u1", 14, 1)
        .await
        .unwrap();
    for (release, sku, expected) in [(false, 7, vec![(14, 1), (7, 1)]), (true, 14, vec![(7, 1)])] {
        // Only the view's script survives: the change's must be reloaded and retried.
        let mut conn = e.conn();
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .unwrap();
        if backend == Backend::Lua {
            flash_client::lua::script("FLASH.CART")
                .unwrap()
                .load_async(&mut conn)
                .await
                .unwrap();
        }
        let (_, view) = e
            .client
            .change_and_view(release, "spring", "c1", "u1", sku, 1)
            .await
            .unwrap();
        let mut lines = view.lines.clone();
        let mut expected = expected.clone();
        lines.sort_unstable();
        expected.sort_unstable();
        assert_eq!(lines, expected, "release {release}, sku {sku}");
    }
}
