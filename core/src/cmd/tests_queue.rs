//! The waiting room's rules, checked on the in-memory store.

use super::tests::{T0, code, run};
use super::*;
use crate::keys::SaleKey;
use crate::mem::MemStore;
use crate::queue::{TICKET_BASE, commitment, draw_score};

const SEED: &str = "00112233445566778899aabbccddeeff";

/// A sale `s` opening at T0 + 10 s with 100 units of SKU 14 and a waiting room.
fn queued(options: &str) -> MemStore {
    let mut store = MemStore {
        now_ms: T0,
        ..MemStore::default()
    };
    run(
        &mut store,
        &format!(
            "FLASH.SALE s HOLD 1000 START {} SEED {SEED} {options}",
            T0 + 10_000
        ),
    )
    .expect("sale");
    run(&mut store, "FLASH.LOAD s 14 100").expect("load");
    store
}

/// A field of a field/value reply.
fn field(reply: &Reply, label: &str) -> Reply {
    let Reply::Array(items) = reply else {
        panic!("not an array: {reply:?}");
    };
    items
        .chunks(2)
        .find(|pair| pair[0] == Reply::bulk(label))
        .map(|pair| pair[1].clone())
        .unwrap_or_else(|| panic!("no {label} in {reply:?}"))
}

fn admit(store: &mut MemStore) -> [i64; 4] {
    match run(store, "FLASH.ADMIT s") {
        Ok(Reply::Array(items)) => {
            let ints: Vec<i64> = items
                .into_iter()
                .map(|item| match item {
                    Reply::Int(n) => n,
                    other => panic!("{other:?}"),
                })
                .collect();
            ints.try_into().expect("four counts")
        }
        other => panic!("{other:?}"),
    }
}

fn admitted(store: &MemStore) -> Vec<String> {
    let mut users: Vec<(String, i64)> = store
        .zsets
        .get(&SaleKey::Admitted)
        .map(|m| m.iter().map(|(u, s)| (u.clone(), *s)).collect())
        .unwrap_or_default();
    users.sort();
    users.into_iter().map(|(u, _)| u).collect()
}

#[test]
fn a_waiting_room_needs_a_seed_that_stays_put_while_anyone_waits() {
    let mut s = MemStore {
        now_ms: T0,
        ..MemStore::default()
    };
    assert_eq!(code(run(&mut s, "FLASH.SALE s RATE 10")), ErrorCode::Err);
    assert_eq!(s.sale, None, "a refused FLASH.SALE writes nothing");
    assert_eq!(
        code(run(&mut s, "FLASH.SALE s RATE 10 SEED abc")),
        ErrorCode::Err
    );
    assert_eq!(
        code(run(&mut s, &format!("FLASH.SALE s RATE 10 SEED {SEED}z"))),
        ErrorCode::Err
    );
    run(
        &mut s,
        &format!("FLASH.SALE s RATE 10 SEED {}", SEED.to_uppercase()),
    )
    .expect("upper-case hex is read lower-case");
    assert_eq!(
        s.sale.as_ref().map(|sale| sale.queue.seed.as_str()),
        Some(SEED)
    );
    run(&mut s, "FLASH.JOIN s u1").expect("join");
    let other = "ffeeddccbbaa99887766554433221100";
    assert_eq!(
        code(run(&mut s, &format!("FLASH.SALE s SEED {other}"))),
        ErrorCode::Err
    );
    run(&mut s, &format!("FLASH.SALE s SEED {SEED}")).expect("the same seed again");
    run(&mut s, "FLASH.SALE s RATE 0 CAP 0").expect("the room turned off");
    assert_eq!(code(run(&mut s, "FLASH.JOIN s u2")), ErrorCode::NoQueue);
    assert_eq!(code(run(&mut s, "FLASH.POSITION s u1")), ErrorCode::NoQueue);
}

#[test]
fn the_pre_queue_is_admitted_in_the_order_drawn_from_the_seed_then_first_come_first_served() {
    let mut s = queued("RATE 1000");
    let early: Vec<String> = (0..40).map(|i| format!("early{i}")).collect();
    for user in &early {
        let reply = run(&mut s, &format!("FLASH.JOIN s {user}")).expect("join");
        assert_eq!(field(&reply, "state"), Reply::bulk("early"));
        assert_eq!(
            field(&reply, "position"),
            Reply::Int(0),
            "secret until START"
        );
    }
    assert_eq!(admit(&mut s)[0], 0, "nobody is admitted before START");
    s.now_ms = T0 + 10_000;
    for i in 0..10 {
        run(&mut s, &format!("FLASH.JOIN s late{i}")).expect("join");
    }
    // The draw: anyone with the seed recomputes the pre-queue's order.
    let mut drawn = early.clone();
    drawn.sort_by_key(|user| (draw_score(SEED, user), user.clone()));
    let expected: Vec<String> = drawn
        .into_iter()
        .chain((0..10).map(|i| format!("late{i}")))
        .collect();
    let mut order = Vec::new();
    for _ in 0..50 {
        s.now_ms += 1;
        let before = admitted(&s);
        admit(&mut s);
        order.extend(admitted(&s).into_iter().filter(|u| !before.contains(u)));
    }
    assert_eq!(order, expected);
    assert_eq!(s.queue_counters.get("admitted"), Some(&50));
    assert!(
        s.zsets[&SaleKey::Line].is_empty() && s.zsets[&SaleKey::Seen].is_empty(),
        "admitted shoppers leave the line"
    );
}

#[test]
fn positions_and_estimates_follow_the_line() {
    let mut s = queued("RATE 2");
    s.now_ms = T0 + 10_000;
    for user in ["a", "b", "c"] {
        run(&mut s, &format!("FLASH.JOIN s {user}")).expect("join");
    }
    let c = run(&mut s, "FLASH.POSITION s c").expect("position");
    assert_eq!(field(&c, "state"), Reply::bulk("waiting"));
    assert_eq!(field(&c, "position"), Reply::Int(3));
    assert_eq!(field(&c, "line"), Reply::Int(3));
    assert_eq!(field(&c, "eta_ms"), Reply::Int(s.now_ms + 1500));
    assert_eq!(
        s.zsets[&SaleKey::Line]["c"],
        TICKET_BASE + 2,
        "the third ticket"
    );
    s.now_ms += 500;
    assert_eq!(admit(&mut s), [1, 0, 0, 2], "half a second at 2/s");
    let a = run(&mut s, "FLASH.POSITION s a").expect("admitted");
    assert_eq!(field(&a, "state"), Reply::bulk("admitted"));
    assert_eq!(field(&a, "until_ms"), Reply::Int(s.now_ms + 60_000));
    let c = run(&mut s, "FLASH.JOIN s c").expect("joining again keeps the place");
    assert_eq!(field(&c, "position"), Reply::Int(2));
    assert_eq!(
        code(run(&mut s, "FLASH.POSITION s nobody")),
        ErrorCode::NotQueued
    );
}

#[test]
fn the_rate_holds_over_time_with_no_admission_lost_to_rounding() {
    let mut s = queued("RATE 7");
    s.now_ms = T0 + 10_000;
    for i in 0..200 {
        run(&mut s, &format!("FLASH.JOIN s u{i}")).expect("join");
    }
    // Ticks every 50 ms for 10 s: 7 admissions a second is 0.35 a tick.
    let mut total = 0;
    for _ in 0..200 {
        s.now_ms += 50;
        for i in 0..200 {
            // Everyone still waiting keeps asking.
            let _ = run(&mut s, &format!("FLASH.POSITION s u{i}"));
        }
        total += admit(&mut s)[0];
    }
    assert_eq!(total, 70);
}

#[test]
fn the_cap_bounds_live_admissions_and_a_checkout_frees_a_place() {
    let mut s = queued("CAP 2");
    s.now_ms = T0 + 10_000;
    for user in ["a", "b", "c"] {
        run(&mut s, &format!("FLASH.JOIN s {user}")).expect("join");
    }
    assert_eq!(admit(&mut s), [2, 0, 0, 1]);
    assert_eq!(admit(&mut s), [0, 0, 0, 1], "the cap is full");
    run(&mut s, "FLASH.RESERVE s ca a 14").expect("admitted reserve");
    run(&mut s, "FLASH.CHECKOUT s ca a").expect("checkout");
    assert_eq!(admitted(&s), ["b"], "the checkout used the admission up");
    assert_eq!(admit(&mut s), [1, 0, 0, 0]);
    assert_eq!(admitted(&s), ["b", "c"]);
    assert_eq!(
        code(run(&mut s, "FLASH.RESERVE s ca2 a 14")),
        ErrorCode::NotAdmitted
    );
}

#[test]
fn reserve_and_buy_need_a_live_admission_and_a_refusal_changes_nothing() {
    let mut s = queued("RATE 100 ADMIT 5000");
    s.now_ms = T0 + 10_000;
    let before = s.clone();
    assert_eq!(
        code(run(&mut s, "FLASH.RESERVE s c1 u1 14")),
        ErrorCode::NotAdmitted
    );
    assert_eq!(
        code(run(&mut s, "FLASH.BUY s o1 u1 14")),
        ErrorCode::NotAdmitted
    );
    assert_eq!(s, before);
    run(&mut s, "FLASH.JOIN s u1").expect("join");
    run(&mut s, "FLASH.JOIN s u2").expect("join");
    s.now_ms += 100;
    assert_eq!(admit(&mut s)[0], 2);
    let admitted_at = s.now_ms;
    // A reserve carries the admission to the cart's deadline (HOLD 1000 < ADMIT 5000: kept).
    run(&mut s, "FLASH.RESERVE s c1 u1 14").expect("reserve");
    assert_eq!(s.zsets[&SaleKey::Admitted]["u1"], admitted_at + 5000);
    run(&mut s, "FLASH.BUY s o2 u2 14").expect("buy");
    assert_eq!(
        admitted(&s),
        ["u1"],
        "a buy is a checkout: the admission is used"
    );
    // Unused, an admission runs out.
    s.now_ms = admitted_at + 5000;
    assert_eq!(
        code(run(&mut s, "FLASH.RESERVE s c1 u1 14")),
        ErrorCode::NotAdmitted
    );
    assert_eq!(admit(&mut s), [0, 1, 0, 0]);
    assert_eq!(s.queue_counters.get("lapsed"), Some(&1));
    assert_eq!(
        code(run(&mut s, "FLASH.POSITION s u1")),
        ErrorCode::NotQueued
    );
    // Giving back needs no admission.
    let cart = s.carts.get("c1").cloned().expect("cart");
    assert!(cart.deadline_ms < s.now_ms, "c1 ran out too");
}

#[test]
fn a_new_cart_carries_the_admission_to_its_deadline() {
    let mut s = queued("RATE 100 ADMIT 300");
    s.now_ms = T0 + 10_000;
    run(&mut s, "FLASH.JOIN s u1").expect("join");
    s.now_ms += 100;
    admit(&mut s);
    run(&mut s, "FLASH.RESERVE s c1 u1 14").expect("reserve");
    assert_eq!(s.zsets[&SaleKey::Admitted]["u1"], s.now_ms + 1000);
    s.now_ms += 500;
    run(&mut s, "FLASH.RESERVE s c1 u1 14").expect("still admitted: the cart's hold");
}

#[test]
fn a_shopper_who_stops_asking_loses_the_place() {
    let mut s = queued("RATE 1 IDLE 2000");
    for user in ["gone", "here"] {
        run(&mut s, &format!("FLASH.JOIN s {user}")).expect("join");
    }
    s.now_ms += 2000;
    run(&mut s, "FLASH.POSITION s here").expect("here asks");
    assert_eq!(admit(&mut s), [0, 0, 0, 2], "idle for exactly IDLE: kept");
    s.now_ms += 1;
    assert_eq!(admit(&mut s), [0, 0, 1, 1]);
    assert_eq!(
        code(run(&mut s, "FLASH.POSITION s gone")),
        ErrorCode::NotQueued
    );
    let again = run(&mut s, "FLASH.JOIN s gone").expect("join again");
    assert_eq!(field(&again, "state"), Reply::bulk("early"));
    assert_eq!(s.queue_counters.get("abandoned"), Some(&1));
}

#[test]
fn info_publishes_the_commitment_and_reveals_the_seed_at_start() {
    let mut s = queued("RATE 5 CAP 9");
    let info = run(&mut s, "FLASH.INFO s").expect("info");
    let queue = field(&info, "queue");
    assert_eq!(field(&queue, "seed_sha1"), Reply::Bulk(commitment(SEED)));
    assert_eq!(field(&queue, "seed"), Reply::Nil);
    assert_eq!(field(&queue, "queue_rate"), Reply::Int(5));
    assert_eq!(field(&queue, "queue_cap"), Reply::Int(9));
    s.now_ms = T0 + 10_000;
    let info = run(&mut s, "FLASH.INFO s").expect("info");
    assert_eq!(field(&field(&info, "queue"), "seed"), Reply::bulk(SEED));
    run(&mut s, "FLASH.SALE s RATE 0 CAP 0").expect("off");
    let info = run(&mut s, "FLASH.INFO s").expect("info");
    assert_eq!(field(&info, "queue"), Reply::Nil);
}

#[test]
fn joining_an_ended_sale_is_refused() {
    let mut s = queued(&format!("RATE 5 END {}", T0 + 20_000));
    s.now_ms = T0 + 20_000;
    assert_eq!(code(run(&mut s, "FLASH.JOIN s u1")), ErrorCode::Closed);
}
