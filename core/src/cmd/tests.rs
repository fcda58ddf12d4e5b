//! The rules, checked on the in-memory store.

use super::*;
use crate::args::MAX_LANES;
use crate::mem::MemStore;
use crate::wire::StreamId;

pub(super) const T0: i64 = 1_700_000_000_000;

/// Deadline entries over every list.
fn entries(store: &MemStore) -> usize {
    store.deadlines.values().map(Vec::len).sum()
}

pub(super) fn run(store: &mut MemStore, line: &str) -> Result<Reply> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let args: Vec<&[u8]> = words.map(str::as_bytes).collect();
    store.begin_command();
    Command::parse(name, &args)?.apply(store)
}

pub(super) fn code(result: Result<Reply>) -> ErrorCode {
    match result {
        Ok(reply) => panic!("expected an error, got {reply:?}"),
        Err(e) => e.code,
    }
}

/// A sale `s` with 10 units of SKU 14 and 5 of SKU 7, HOLD 1000 ms.
fn sale() -> MemStore {
    let mut store = MemStore {
        now_ms: T0,
        ..MemStore::default()
    };
    run(&mut store, "FLASH.SALE s HOLD 1000").expect("sale");
    run(&mut store, "FLASH.LOAD s 14 10 7 5").expect("load");
    store
}

fn conserved(store: &mut MemStore) -> bool {
    let skus: Vec<i64> = store
        .all_units()
        .expect("units")
        .iter()
        .filter(|r| r.1 == Counter::Loaded)
        .map(|r| r.0)
        .collect();
    skus.into_iter().all(|sku| {
        let get = |c| store.counters.get(&(c, sku)).copied().unwrap_or(0);
        get(Counter::Loaded)
            == get(Counter::Available)
                + get(Counter::Held)
                + get(Counter::Pending)
                + get(Counter::Sold)
    })
}

#[test]
fn reserve_takes_units_and_sets_the_deadline() {
    let mut s = sale();
    assert_eq!(
        run(&mut s, "FLASH.RESERVE s c1 u1 14 3"),
        Ok(Reply::ints([7, T0 + 1000, 3]))
    );
    assert_eq!(s.units(Counter::Held, 14), Ok(Some(3)));
    assert_eq!(s.user_units("u1"), Ok(3));
    assert_eq!(s.published.last(), Some(&(14, 7)));
    assert!(conserved(&mut s));
}

#[test]
fn later_reserves_never_extend_the_deadline() {
    let mut s = sale();
    run(&mut s, "FLASH.RESERVE s c1 u1 14").expect("first");
    s.now_ms += 900;
    assert_eq!(
        run(&mut s, "FLASH.RESERVE s c1 u1 7 2"),
        Ok(Reply::ints([3, T0 + 1000, 3]))
    );
    s.now_ms += 100;
    assert_eq!(
        code(run(&mut s, "FLASH.RESERVE s c1 u1 7")),
        ErrorCode::Expired
    );
}

#[test]
fn every_refusal_changes_nothing() {
    let mut s = sale();
    run(&mut s, "FLASH.SALE s LIMIT 4").expect("limit");
    run(&mut s, "FLASH.RESERVE s c1 u1 14 2").expect("reserve");
    run(&mut s, "FLASH.LOAD s 7 3").expect("load");
    let before = s.clone();
    let refusals = [
        ("FLASH.RESERVE s c2 u2 7 4", ErrorCode::SoldOut),
        ("FLASH.RESERVE s c1 u1 14 3", ErrorCode::Limit),
        ("FLASH.RESERVE s c1 u2 14", ErrorCode::NotOwner),
        ("FLASH.RESERVE s c2 u2 99", ErrorCode::NoSku),
        ("FLASH.RESERVE s c2 u2 14 0", ErrorCode::Err),
        ("FLASH.RESERVE s c2 u2 14 1 extra", ErrorCode::Err),
        ("FLASH.RESERVE s c{2} u2 14", ErrorCode::Err),
        ("FLASH.RESERVE s c2 u2", ErrorCode::Err),
        ("FLASH.RELEASE s c1 u1 7", ErrorCode::NoSku),
        ("FLASH.RELEASE s c1 u1 14 3", ErrorCode::Err),
        ("FLASH.RELEASE s c9 u1 14", ErrorCode::NoCart),
        ("FLASH.CHECKOUT s c1 u2", ErrorCode::NotOwner),
        ("FLASH.SETTLE s c1 OK", ErrorCode::BadState),
        ("FLASH.SETTLE s c1 MAYBE", ErrorCode::Err),
        ("FLASH.LOAD s 14 -1", ErrorCode::Err),
        ("FLASH.LOAD s 14 5 7", ErrorCode::Err),
        ("FLASH.SALE s START 10 END 5", ErrorCode::Err),
        ("FLASH.SALE s HOLD 0", ErrorCode::Err),
        ("FLASH.EXPIRE s COUNT 0", ErrorCode::Err),
    ];
    for (line, expected) in refusals {
        assert_eq!(
            run(&mut s, line).map_err(|e| e.code),
            Err(expected),
            "{line}"
        );
        assert_eq!(s, before, "{line} changed the store");
    }
}

#[test]
fn commands_on_a_missing_sale_answer_nosale() {
    let mut empty = MemStore::default();
    for line in [
        "FLASH.RESERVE s c u 1",
        "FLASH.LOAD s 1 1",
        "FLASH.INFO s",
        "FLASH.EXPIRE s",
    ] {
        assert_eq!(code(run(&mut empty, line)), ErrorCode::NoSale, "{line}");
    }
    assert_eq!(empty, MemStore::default());
}

#[test]
fn a_key_of_the_wrong_type_is_refused_before_any_write() {
    let mut s = sale();
    s.wrong_type.insert("lane:1000".into());
    let before = s.clone();
    assert_eq!(
        code(run(&mut s, "FLASH.RESERVE s c1 u1 14")),
        ErrorCode::WrongType
    );
    assert_eq!(s, before);
}

#[test]
fn buy_checks_the_checkouts_keys_before_reserving() {
    let mut s = sale();
    s.wrong_type.insert("Orders".into());
    let before = s.clone();
    assert_eq!(
        code(run(&mut s, "FLASH.BUY s o1 u1 14")),
        ErrorCode::WrongType
    );
    assert_eq!(s, before);
}

#[test]
fn the_sale_window_closes_reserve_and_checkout() {
    let mut s = sale();
    run(&mut s, "FLASH.RESERVE s c1 u1 14").expect("reserve");
    run(&mut s, &format!("FLASH.SALE s END {}", T0 + 10)).expect("end");
    s.now_ms = T0 + 10;
    assert_eq!(
        code(run(&mut s, "FLASH.RESERVE s c2 u2 14")),
        ErrorCode::Closed
    );
    assert_eq!(
        code(run(&mut s, "FLASH.CHECKOUT s c1 u1")),
        ErrorCode::Closed
    );
    run(&mut s, &format!("FLASH.SALE s START {} END 0", T0 + 100)).expect("start");
    assert_eq!(
        code(run(&mut s, "FLASH.RESERVE s c2 u2 14")),
        ErrorCode::Closed
    );
    s.now_ms = T0 + 100;
    assert!(run(&mut s, "FLASH.RESERVE s c2 u2 14").is_ok());
}

#[test]
fn checkout_moves_held_to_pending_once() {
    let mut s = sale();
    run(&mut s, "FLASH.RESERVE s c1 u1 14 2").expect("reserve");
    run(&mut s, "FLASH.RESERVE s c1 u1 7 1").expect("reserve");
    let first = run(&mut s, "FLASH.CHECKOUT s c1 u1").expect("checkout");
    assert_eq!(
        first,
        Reply::Array(vec![
            Reply::bulk("c1"),
            Reply::bulk(format!("{T0}-1")),
            Reply::Int(3)
        ])
    );
    assert_eq!(s.orders[0].lines, vec![(7, 1), (14, 2)]);
    assert_eq!(s.orders[0].lines_field(), "7:1,14:2");
    assert_eq!(run(&mut s, "FLASH.CHECKOUT s c1 u1"), Ok(first));
    assert_eq!(s.orders.len(), 1);
    assert_eq!(s.units(Counter::Pending, 14), Ok(Some(2)));
    assert_eq!(s.units(Counter::Held, 14), Ok(Some(0)));
    assert_eq!(s.held_carts, 0);
    assert_eq!(
        entries(&s),
        1,
        "the deadline entry stays until it comes due"
    );
    // Checked out: past the deadline it neither expires nor accepts more units.
    s.now_ms += 5000;
    assert_eq!(run(&mut s, "FLASH.EXPIRE s"), Ok(Reply::Int(0)));
    assert_eq!(entries(&s), 0, "then expiry drops it");
    assert_eq!(
        code(run(&mut s, "FLASH.RESERVE s c1 u1 14")),
        ErrorCode::BadState
    );
    assert!(conserved(&mut s));
}

#[test]
fn checkout_refuses_empty_and_expired_carts() {
    let mut s = sale();
    run(&mut s, "FLASH.RESERVE s c1 u1 14").expect("reserve");
    run(&mut s, "FLASH.RELEASE s c1 u1 14").expect("release");
    assert_eq!(
        code(run(&mut s, "FLASH.CHECKOUT s c1 u1")),
        ErrorCode::Empty
    );
    run(&mut s, "FLASH.RESERVE s c2 u1 14").expect("reserve");
    s.now_ms += 1000;
    assert_eq!(
        code(run(&mut s, "FLASH.CHECKOUT s c2 u1")),
        ErrorCode::Expired
    );
    assert_eq!(
        code(run(&mut s, "FLASH.CHECKOUT s c3 u1")),
        ErrorCode::NoCart
    );
}

#[test]
fn expiry_returns_units_and_marks_the_cart() {
    let mut s = sale();
    run(&mut s, "FLASH.RESERVE s c1 u1 14 4").expect("reserve");
    s.now_ms += 500;
    run(&mut s, "FLASH.RESERVE s c2 u2 14 1").expect("reserve");
    s.now_ms = T0 + 1000;
    assert_eq!(run(&mut s, "FLASH.EXPIRE s"), Ok(Reply::Int(1)));
    assert_eq!(s.units(Counter::Available, 14), Ok(Some(9)));
    assert_eq!(s.carts["c1"].state, CartState::Expired);
    assert_eq!(s.user_units("u1"), Ok(0));
    assert!(
        !s.users.contains_key("u1"),
        "a user with nothing left leaves the hash"
    );
    assert_eq!(
        code(run(&mut s, "FLASH.RESERVE s c1 u1 14")),
        ErrorCode::Expired
    );
    s.now_ms = T0 + 1500;
    assert_eq!(run(&mut s, "FLASH.EXPIRE s COUNT 5"), Ok(Reply::Int(1)));
    assert!(conserved(&mut s));
}

#[test]
fn expiry_stops_when_its_time_budget_is_spent_and_the_caller_loops() {
    let mut s = sale();
    run(&mut s, "FLASH.LOAD s 14 1000").expect("load");
    for cart in 0..300 {
        run(&mut s, &format!("FLASH.RESERVE s c{cart} u{cart} 14")).expect("reserve");
    }
    s.now_ms += 1000;
    // Every read of the work clock takes 100 µs: the budget lasts ten carts.
    s.clock_step_us = 100;
    assert_eq!(
        run(&mut s, "FLASH.EXPIRE s COUNT 10000"),
        Ok(Reply::Int(10))
    );
    assert_eq!(entries(&s), 290);
    let mut calls = 1;
    while run(&mut s, "FLASH.EXPIRE s COUNT 10000") != Ok(Reply::Int(0)) {
        calls += 1;
    }
    assert_eq!(calls, 30);
    assert!(s.deadlines.is_empty());
    assert_eq!(s.units(Counter::Available, 14), Ok(Some(1000)));
    assert!(conserved(&mut s));
}

#[test]
fn expiry_reads_deadlines_a_chunk_at_a_time_up_to_count() {
    let mut s = sale();
    run(&mut s, "FLASH.LOAD s 14 1000").expect("load");
    for cart in 0..150 {
        run(&mut s, &format!("FLASH.RESERVE s c{cart} u{cart} 14")).expect("reserve");
    }
    s.now_ms += 1000;
    // More than one chunk, and COUNT stops mid-chunk.
    assert_eq!(run(&mut s, "FLASH.EXPIRE s COUNT 100"), Ok(Reply::Int(100)));
    assert_eq!(run(&mut s, "FLASH.EXPIRE s"), Ok(Reply::Int(50)));
    assert!(conserved(&mut s));
}

#[test]
fn counters_are_bounded_far_below_two_to_the_53() {
    let mut s = sale();
    // A user (so a cart) holds at most 10^9 units, whatever the sale's LIMIT.
    run(&mut s, "FLASH.LOAD s 14 1000000000").expect("load");
    run(&mut s, "FLASH.LOAD s 7 1000000000").expect("load");
    for _ in 0..1000 {
        run(&mut s, "FLASH.RESERVE s big u1 14 1000000").expect("reserve");
    }
    let before = s.clone();
    assert_eq!(
        code(run(&mut s, "FLASH.RESERVE s big u1 7 1")),
        ErrorCode::Limit
    );
    assert_eq!(
        code(run(&mut s, "FLASH.RESERVE s other u1 7 1")),
        ErrorCode::Limit
    );
    assert_eq!(s, before, "a refused reserve changes nothing");

    // `loaded` counts every unit ever put on sale: at most 10^12.
    let mut s = sale();
    s.counters.insert((Counter::Loaded, 14), 999_999_999_990);
    s.counters.insert((Counter::Sold, 14), 999_999_999_980);
    let before = s.clone();
    assert_eq!(code(run(&mut s, "FLASH.LOAD s 14 21")), ErrorCode::Err);
    // Checked before the first pair is written, a SKU named twice followed through both.
    assert_eq!(
        code(run(&mut s, "FLASH.LOAD s 7 9 14 15 14 21")),
        ErrorCode::Err
    );
    assert_eq!(s, before, "a refused load changes nothing");
    assert_eq!(run(&mut s, "FLASH.LOAD s 14 20"), Ok(Reply::Int(1)));
    assert_eq!(s.units(Counter::Loaded, 14), Ok(Some(1_000_000_000_000)));
}

#[test]
fn a_malformed_cart_does_not_stall_expiry() {
    let mut s = sale();
    run(&mut s, "FLASH.RESERVE s bad u1 14").expect("reserve");
    run(&mut s, "FLASH.RESERVE s good u2 14 2").expect("reserve");
    s.wrong_type.insert("bad".into());
    s.now_ms += 1000;
    assert_eq!(run(&mut s, "FLASH.EXPIRE s"), Ok(Reply::Int(1)));
    assert_eq!(s.carts["good"].state, CartState::Expired);
    assert!(s.deadlines.is_empty(), "the stale deadline is dropped too");
}

#[test]
fn settle_is_idempotent_and_final() {
    let mut s = sale();
    run(&mut s, "FLASH.BUY s o1 u1 14 2").expect("buy");
    run(&mut s, "FLASH.BUY s o2 u2 7 3").expect("buy");
    assert_eq!(
        run(&mut s, "FLASH.SETTLE s o1 OK"),
        Ok(Reply::Status("settled"))
    );
    assert_eq!(
        run(&mut s, "FLASH.SETTLE s o1 ok"),
        Ok(Reply::Status("settled"))
    );
    assert_eq!(
        code(run(&mut s, "FLASH.SETTLE s o1 REJECT")),
        ErrorCode::BadState
    );
    assert_eq!(
        run(&mut s, "FLASH.SETTLE s o2 REJECT"),
        Ok(Reply::Status("rejected"))
    );
    assert_eq!(
        run(&mut s, "FLASH.SETTLE s o2 REJECT"),
        Ok(Reply::Status("rejected"))
    );
    assert_eq!(s.units(Counter::Sold, 14), Ok(Some(2)));
    assert_eq!(s.units(Counter::Available, 7), Ok(Some(5)));
    assert_eq!(s.user_units("u2"), Ok(0));
    assert_eq!(s.user_units("u1"), Ok(2));
    assert!(conserved(&mut s));
}

#[test]
fn finished_carts_are_removed_once_retention_has_passed() {
    let mut s = sale();
    run(&mut s, "FLASH.SALE s RETAIN 5000").expect("retain");
    run(&mut s, "FLASH.RESERVE s held u1 14 1").expect("reserve");
    run(&mut s, "FLASH.RESERVE s late u1 14 1").expect("reserve");
    run(&mut s, "FLASH.BUY s pending u2 14 1").expect("buy");
    run(&mut s, "FLASH.BUY s sold u2 7 1").expect("buy");
    run(&mut s, "FLASH.BUY s refused u3 7 1").expect("buy");
    s.now_ms = T0 + 200;
    run(&mut s, "FLASH.SETTLE s sold OK").expect("settle");
    run(&mut s, "FLASH.SETTLE s refused REJECT").expect("settle");
    s.now_ms = T0 + 300;
    run(&mut s, "FLASH.SETTLE s sold OK").expect("settled again");
    run(&mut s, "FLASH.RELEASE s held u1 14 1").expect("release");
    assert!(
        !s.removals.contains_key("held"),
        "a held cart is never removed"
    );
    s.now_ms = T0 + 1000;
    assert_eq!(run(&mut s, "FLASH.EXPIRE s"), Ok(Reply::Int(2)));
    let removals: Vec<(&str, i64)> = s.removals.iter().map(|(c, t)| (c.as_str(), *t)).collect();
    // Each at the moment it finished plus RETAIN; a repeated verdict does not push it out;
    // the checked-out order is kept until it has a verdict.
    assert_eq!(
        removals,
        [
            ("held", T0 + 6000),
            ("late", T0 + 6000),
            ("refused", T0 + 5200),
            ("sold", T0 + 5200),
        ]
    );

    let mut forever = sale();
    run(&mut forever, "FLASH.SALE s RETAIN 0").expect("retain");
    run(&mut forever, "FLASH.BUY s o1 u1 14 1").expect("buy");
    run(&mut forever, "FLASH.SETTLE s o1 OK").expect("settle");
    run(&mut forever, "FLASH.RESERVE s c1 u1 14 1").expect("reserve");
    forever.now_ms += 1000;
    assert_eq!(run(&mut forever, "FLASH.EXPIRE s"), Ok(Reply::Int(1)));
    assert!(forever.removals.is_empty(), "RETAIN 0 keeps every cart");
}

#[test]
fn expire_trims_the_order_stream_to_what_is_acknowledged_and_old() {
    let mut s = sale();
    run(&mut s, "FLASH.SALE s RETAIN 5000").expect("retain");
    s.now_ms = T0 + 60_000;
    run(&mut s, "FLASH.EXPIRE s").expect("expire");
    assert!(s.trims.is_empty(), "no consumer group: nothing is trimmed");

    // The group still needs an entry from long ago: trim only below it.
    let needed = StreamId {
        ms: T0 as u64,
        seq: 3,
    };
    s.orders_needed_from = Some(needed);
    run(&mut s, "FLASH.EXPIRE s").expect("expire");
    // The group has everything: keep the last RETAIN of entries anyway.
    s.orders_needed_from = Some(StreamId::at_ms(s.now_ms as u64));
    run(&mut s, "FLASH.EXPIRE s").expect("expire");
    assert_eq!(s.trims, [needed, StreamId::at_ms((T0 + 55_000) as u64)]);

    run(&mut s, "FLASH.SALE s RETAIN 0").expect("retain");
    run(&mut s, "FLASH.EXPIRE s").expect("expire");
    assert_eq!(s.trims.len(), 2, "RETAIN 0 keeps the whole stream");
}

#[test]
fn buy_again_returns_the_same_order() {
    let mut s = sale();
    let first = run(&mut s, "FLASH.BUY s o1 u1 14 2").expect("buy");
    assert_eq!(run(&mut s, "FLASH.BUY s o1 u1 14 2"), Ok(first));
    assert_eq!(
        code(run(&mut s, "FLASH.BUY s o1 u2 14 2")),
        ErrorCode::NotOwner
    );
    assert_eq!(s.orders.len(), 1);
    assert_eq!(s.units(Counter::Available, 14), Ok(Some(8)));
}

#[test]
fn limit_counts_held_checked_out_and_sold_units() {
    let mut s = sale();
    run(&mut s, "FLASH.SALE s LIMIT 3").expect("limit");
    run(&mut s, "FLASH.BUY s o1 u1 14 1").expect("buy");
    run(&mut s, "FLASH.SETTLE s o1 OK").expect("settle");
    run(&mut s, "FLASH.BUY s o2 u1 14 1").expect("buy");
    run(&mut s, "FLASH.RESERVE s c3 u1 7 1").expect("reserve");
    assert_eq!(
        code(run(&mut s, "FLASH.RESERVE s c3 u1 7 1")),
        ErrorCode::Limit
    );
    assert!(run(&mut s, "FLASH.RESERVE s c4 u2 7 3").is_ok());
}

#[test]
fn load_moves_loaded_by_the_difference() {
    let mut s = sale();
    run(&mut s, "FLASH.RESERVE s c1 u1 14 4").expect("reserve");
    assert_eq!(run(&mut s, "FLASH.LOAD s 14 20 15 1"), Ok(Reply::Int(2)));
    assert_eq!(s.units(Counter::Loaded, 14), Ok(Some(24)));
    assert_eq!(
        run(&mut s, "FLASH.AVAILABLE s 14 15 16"),
        Ok(Reply::Array(vec![
            Reply::Int(20),
            Reply::Int(1),
            Reply::Nil
        ]))
    );
    assert!(conserved(&mut s));
}

#[test]
fn load_total_counts_held_and_pending_units_once() {
    let mut s = sale();
    run(&mut s, "FLASH.RESERVE s c1 u1 14 3").expect("reserve");
    run(&mut s, "FLASH.BUY s o1 u2 14 2").expect("buy");
    assert_eq!(run(&mut s, "FLASH.LOAD s total 14 9"), Ok(Reply::Int(1)));
    assert_eq!(s.units(Counter::Available, 14), Ok(Some(4)));
    assert!(conserved(&mut s));
    let before = s.clone();
    assert_eq!(
        code(run(&mut s, "FLASH.LOAD s TOTAL 7 1 14 4")),
        ErrorCode::Err
    );
    assert_eq!(s, before, "a total below held + pending changes nothing");
}

#[test]
fn info_and_cart_report_the_ledger() {
    let mut s = sale();
    run(&mut s, "FLASH.RESERVE s c1 u1 14 2").expect("reserve");
    run(&mut s, "FLASH.RESERVE s c1 u1 7 1").expect("reserve");
    let Reply::Array(cart) = run(&mut s, "FLASH.CART s c1").expect("cart") else {
        panic!()
    };
    assert_eq!(cart[1], Reply::bulk("held"));
    assert_eq!(cart[9], Reply::ints([7, 1, 14, 2]));
    assert_eq!(cart[11], Reply::Nil);
    let Reply::Array(info) = run(&mut s, "FLASH.INFO s").expect("info") else {
        panic!()
    };
    assert_eq!(info[8], Reply::bulk("retain_ms"));
    assert_eq!(info[9], Reply::Int(crate::args::DEFAULT_RETAIN_MS));
    assert_eq!(info[13], Reply::Int(1));
    assert_eq!(info[15], Reply::ints([15, 12, 3, 0, 0]));
    assert_eq!(
        info[17],
        Reply::Array(vec![
            Reply::ints([7, 5, 4, 1, 0, 0]),
            Reply::ints([14, 10, 8, 2, 0, 0])
        ])
    );
}

/// A deterministic random walk over every command: the ledger balances after each step and
/// available never goes negative.
#[test]
fn conservation_holds_through_a_random_walk() {
    let mut s = sale();
    run(&mut s, "FLASH.SALE s LIMIT 6").expect("limit");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for _ in 0..5000 {
        let cart = format!("c{}", next(40));
        let user = format!("u{}", next(5));
        let sku = [7, 14][next(2) as usize];
        let qty = 1 + next(3);
        let line = match next(7) {
            0 | 1 => format!("FLASH.RESERVE s {cart} {user} {sku} {qty}"),
            2 => format!("FLASH.RELEASE s {cart} {user} {sku} {qty}"),
            3 => format!("FLASH.CHECKOUT s {cart} {user}"),
            4 => format!(
                "FLASH.SETTLE s {cart} {}",
                ["OK", "REJECT"][next(2) as usize]
            ),
            5 => format!("FLASH.BUY s {cart} {user} {sku} {qty}"),
            _ => {
                s.now_ms += next(300) as i64;
                "FLASH.EXPIRE s".to_owned()
            }
        };
        let before = s.clone();
        if run(&mut s, &line).is_err() {
            assert_eq!(s, before, "{line}");
        }
        assert!(conserved(&mut s), "{line}");
        assert!(s.counters.iter().all(|(_, units)| *units >= 0), "{line}");
    }
}

/// One sample line per command: each parses, and its `to_args` gives it back.
fn sample_lines() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        (
            "FLASH.SALE",
            vec![
                "s",
                "HOLD",
                "500",
                "LIMIT",
                "4",
                "START",
                "1",
                "END",
                "9",
                "RETAIN",
                "0",
                "RATE",
                "50",
                "CAP",
                "200",
                "ADMIT",
                "30000",
                "IDLE",
                "20000",
                "SEED",
                "00112233445566778899aabbccddeeff",
            ],
        ),
        ("FLASH.LOAD", vec!["s", "TOTAL", "14", "100", "7", "25"]),
        ("FLASH.AVAILABLE", vec!["s", "14", "7"]),
        ("FLASH.RESERVE", vec!["s", "c1", "u1", "14", "2"]),
        ("FLASH.RELEASE", vec!["s", "c1", "u1", "14", "1"]),
        ("FLASH.CHECKOUT", vec!["s", "c1", "u1"]),
        ("FLASH.BUY", vec!["s", "o1", "u1", "14", "1"]),
        ("FLASH.SETTLE", vec!["s", "o1", "REJECT"]),
        ("FLASH.EXPIRE", vec!["s", "COUNT", "5"]),
        ("FLASH.CART", vec!["s", "c1"]),
        ("FLASH.INFO", vec!["s"]),
        ("FLASH.JOIN", vec!["s", "u1"]),
        ("FLASH.POSITION", vec!["s", "u1"]),
        ("FLASH.ADMIT", vec!["s", "COUNT", "5"]),
    ]
}

#[test]
fn every_command_becomes_its_arguments_and_back() {
    let lines = sample_lines();
    assert_eq!(lines.len(), crate::cmd::COMMANDS.len());
    for (name, args) in lines {
        let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let command = Command::parse(name, &raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(command.spec().name, name);
        assert_eq!(command.to_args(), args, "{name}");
        let again: Vec<String> = command.to_args();
        let again: Vec<&[u8]> = again.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(Command::parse(name, &again).as_ref(), Ok(&command));
    }
}

/// The table's facts agree with what the parsers accept: arity (Redis's convention, the
/// name counted), the cart argument, the keywords.
#[test]
fn the_command_table_agrees_with_the_parsers() {
    for (name, args) in sample_lines() {
        let spec = crate::CommandSpec::find(name).unwrap_or_else(|| panic!("{name}"));
        let arity = usize::try_from(spec.arity.unsigned_abs()).unwrap_or(0);
        // The shortest line the table allows: the sale and the required arguments.
        let required: Vec<&[u8]> = match name {
            "FLASH.LOAD" => vec![b"s", b"14", b"1"],
            "FLASH.SETTLE" => vec![b"s", b"o1", b"OK"],
            _ => args.iter().take(arity - 1).map(|a| a.as_bytes()).collect(),
        };
        assert_eq!(required.len() + 1, arity, "{name}");
        assert!(
            Command::parse(name, &required).is_ok(),
            "{name} at its arity"
        );
        let short = &required[..required.len() - 1];
        assert_eq!(
            Command::parse(name, short),
            Err(Error::arity(spec.name)),
            "{name} below its arity"
        );
        if spec.arity > 0 {
            let mut long = required.clone();
            long.push(b"extra");
            assert!(
                Command::parse(name, &long).is_err(),
                "{name} above its arity"
            );
        }
        assert_eq!(
            spec.cart_in(&args),
            match name {
                "FLASH.RESERVE" | "FLASH.RELEASE" | "FLASH.CHECKOUT" | "FLASH.CART" => Some("c1"),
                "FLASH.BUY" | "FLASH.SETTLE" => Some("o1"),
                _ => None,
            },
            "{name}"
        );
        for keyword in spec.keywords {
            assert!(
                args.contains(keyword) || name == "FLASH.SETTLE",
                "{name} {keyword}"
            );
        }
    }
    assert!(crate::CommandSpec::find("flash.reserve").is_some());
    assert!(crate::CommandSpec::find("FLASH.NOPE").is_none());
}

#[test]
fn each_hold_has_its_own_deadline_list_so_a_shorter_hold_is_never_late() {
    let mut s = sale();
    run(&mut s, "FLASH.RESERVE s long u1 14").expect("reserve");
    run(&mut s, "FLASH.SALE s HOLD 100").expect("shorter hold");
    assert_eq!(
        s.sale.as_ref().map(|sale| sale.lanes.to_text()),
        Some("100,1000".into())
    );
    run(&mut s, "FLASH.RESERVE s short u2 14").expect("reserve");
    assert_eq!(s.deadlines.keys().copied().collect::<Vec<_>>(), [100, 1000]);
    // The short hold's cart is due first although its entry was made last.
    s.now_ms += 100;
    assert_eq!(run(&mut s, "FLASH.EXPIRE s"), Ok(Reply::Int(1)));
    assert_eq!(s.carts["short"].state, CartState::Expired);
    assert_eq!(s.carts["long"].state, CartState::Held);
    s.now_ms = T0 + 1000;
    assert_eq!(run(&mut s, "FLASH.EXPIRE s"), Ok(Reply::Int(1)));
    assert_eq!(s.held_carts, 0);
    // An empty list is forgotten at the next change of HOLD.
    run(&mut s, "FLASH.SALE s HOLD 200").expect("hold");
    assert_eq!(
        s.sale.as_ref().map(|sale| sale.lanes.to_text()),
        Some("200".into())
    );
    assert!(conserved(&mut s));
}

#[test]
fn a_new_hold_is_refused_while_every_list_has_held_carts() {
    let mut s = sale();
    run(&mut s, "FLASH.LOAD s 14 100").expect("load");
    for hold in 1..MAX_LANES {
        run(&mut s, &format!("FLASH.RESERVE s c{hold} u{hold} 14")).expect("reserve");
        run(&mut s, &format!("FLASH.SALE s HOLD {}", 1000 + hold)).expect("hold");
    }
    run(&mut s, "FLASH.RESERVE s last u0 14").expect("reserve");
    let before = s.clone();
    assert_eq!(code(run(&mut s, "FLASH.SALE s HOLD 5")), ErrorCode::Err);
    assert_eq!(s, before);
    // Other settings still change, and HOLD once the oldest holds ran out.
    run(&mut s, "FLASH.SALE s LIMIT 3").expect("limit");
    s.now_ms += 2000;
    run(&mut s, "FLASH.EXPIRE s").expect("expire");
    run(&mut s, "FLASH.SALE s HOLD 5").expect("hold");
    assert!(conserved(&mut s));
}

#[test]
fn a_stale_entry_of_a_reused_cart_id_is_dropped_without_touching_the_new_cart() {
    let mut s = sale();
    run(&mut s, "FLASH.RESERVE s c1 u1 14").expect("reserve");
    run(&mut s, "FLASH.CHECKOUT s c1 u1").expect("checkout");
    // The order was settled and removed (RETAIN), and a new cart took its id.
    s.carts.remove("c1");
    s.lines.remove("c1");
    s.now_ms += 600;
    run(&mut s, "FLASH.RESERVE s c1 u2 14").expect("reserve");
    s.now_ms = T0 + 1000;
    assert_eq!(run(&mut s, "FLASH.EXPIRE s"), Ok(Reply::Int(0)));
    assert_eq!(s.carts["c1"].state, CartState::Held);
    assert_eq!(entries(&s), 1, "the stale entry went, the live one stays");
    s.now_ms = T0 + 1600;
    assert_eq!(run(&mut s, "FLASH.EXPIRE s"), Ok(Reply::Int(1)));
}

#[test]
fn buy_makes_no_deadline_entry() {
    let mut s = sale();
    run(&mut s, "FLASH.BUY s c1 u1 14").expect("buy");
    assert_eq!((entries(&s), s.held_carts), (0, 0));
    assert!(conserved(&mut s));
}
