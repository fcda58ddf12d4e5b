//! The waiting room (FLASH.JOIN, FLASH.POSITION, FLASH.ADMIT and what it changes in
//! FLASH.SALE, RESERVE, BUY, CHECKOUT and INFO), on both backends.
//!
//! The module admits by itself on a master every 50 ms; the Lua twin only when called. So the
//! tests call FLASH.ADMIT themselves (on both) and assert what holds whoever ran it: an order
//! is read from who is admitted while the CAP lets one shopper in at a time, a rate from
//! bounds on the count over the server's clock, and nothing is admitted before START.

use std::time::Duration;

use flash_client::{Admission, Backend, PlaceState};
use flash_core::ErrorCode;
use flash_tests::ServerOptions;
use redis::{AsyncCommands, Value};

use crate::common::{Engine, both_backends, dump, eventually, options};
use crate::durability::{start_replica, wait_for_replica};

both_backends!(
    the_pre_queue_is_drawn_from_the_seed_then_first_come_first_served,
    after_start_the_line_moves_first_come_first_served_at_the_rate,
    the_cap_bounds_live_admissions_and_a_checkout_frees_a_place,
    an_unused_admission_runs_out_and_a_new_cart_carries_it,
    a_shopper_who_stops_asking_loses_the_place,
    reserve_and_buy_need_an_admission_and_a_refusal_changes_nothing,
    queue_errors_and_seed_rules,
    an_aof_restart_keeps_the_waiting_room,
    a_replica_holds_the_masters_waiting_room,
);

/// The seed most tests use, as given (upper case: the engine keeps it lower-case).
const SEED: &str = "00112233445566778899AABBCCDDEEFF";

/// The seed as the engine keeps and reveals it.
fn seed() -> String {
    SEED.to_ascii_lowercase()
}

/// 2^52: the first ticket after START.
const TICKET_BASE: i64 = 1 << 52;

/// The pre-queue's score of `user`, recomputed here from the documented rule (not from
/// core's code): the first 13 hex digits of sha1(seed ":" user).
fn draw(seed: &str, user: &str) -> i64 {
    let hex = sha1_hex(&format!("{seed}:{user}"));
    i64::from_str_radix(&hex[..13], 16).unwrap()
}

fn sha1_hex(text: &str) -> String {
    sha1_smol::Sha1::from(text).digest().to_string()
}

const LINE: &str = "flash:{s}:line";
const ADMITTED: &str = "flash:{s}:admitted";

/// A field of a field/value reply.
fn field(reply: &Value, label: &str) -> Value {
    let Value::Array(items) = reply else {
        panic!("not an array: {reply:?}");
    };
    items
        .chunks(2)
        .find(|pair| pair[0] == Value::BulkString(label.as_bytes().to_vec()))
        .map(|pair| pair[1].clone())
        .unwrap_or_else(|| panic!("no {label} in {reply:?}"))
}

fn bulk(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

/// A member's score in a sorted set, which must be an integer.
async fn score(e: &Engine, key: &str, member: &str) -> Option<i64> {
    let score: Option<f64> = e.conn().zscore(key, member).await.unwrap();
    score.map(|score| {
        assert_eq!(score.fract(), 0.0, "{key} {member}: {score}");
        score as i64
    })
}

/// A sorted set's members, lowest score first.
async fn members(e: &Engine, key: &str) -> Vec<String> {
    e.conn().zrange(key, 0, -1).await.unwrap()
}

/// JOIN (or POSITION) for each user in one pipeline; the raw replies in order.
async fn pipelined(e: &Engine, command: &str, sale: &str, users: &[String]) -> Vec<Value> {
    let calls: Vec<Vec<String>> = users
        .iter()
        .map(|user| vec![sale.to_owned(), user.clone()])
        .collect();
    e.client
        .call_many(command, &calls)
        .await
        .unwrap()
        .into_iter()
        .zip(users)
        .map(|(reply, user)| reply.unwrap_or_else(|error| panic!("{command} {user}: {error}")))
        .collect()
}

async fn admit(e: &Engine) -> Admission {
    e.client.admit("s", 1000).await.unwrap()
}

/// Waits (on the server's clock) until `at_ms` has passed.
async fn wait_until(e: &Engine, at_ms: i64) {
    while e.server_now_ms().await <= at_ms {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn the_pre_queue_is_drawn_from_the_seed_then_first_come_first_served(backend: Backend) {
    let e = Engine::start(backend).await;
    let start = e.server_now_ms().await + 1500;
    // CAP 1: one shopper admitted at a time, so the order of admissions can be watched
    // whoever runs FLASH.ADMIT (the module's timer too).
    e.ok(&format!(
        "FLASH.SALE s START {start} CAP 1 ADMIT 600000 IDLE 600000 SEED {SEED}"
    ))
    .await;
    e.ok("FLASH.LOAD s 14 1000").await;
    let queue = e.client.info("s").await.unwrap().queue.expect("a room");
    assert_eq!((queue.rate, queue.cap), (0, 1));
    assert_eq!(queue.seed_sha1, sha1_hex(&seed()), "the commitment");
    assert_eq!(queue.seed, None, "the seed stays secret until START");

    let early: Vec<String> = (0..60).map(|i| format!("early{i:02}")).collect();
    for (i, reply) in pipelined(&e, "FLASH.JOIN", "s", &early)
        .await
        .iter()
        .enumerate()
    {
        assert_eq!(field(reply, "state"), bulk("early"), "{reply:?}");
        assert_eq!(
            field(reply, "position"),
            Value::Int(0),
            "secret until START"
        );
        assert_eq!(field(reply, "line"), Value::Int(i as i64 + 1));
        assert_eq!(
            field(reply, "eta_ms"),
            Value::Int(0),
            "no RATE, no estimate"
        );
        assert_eq!(field(reply, "until_ms"), Value::Int(0));
    }
    assert!(
        e.server_now_ms().await < start,
        "the early joins took until START: the machine is too slow for this test"
    );
    // Each early place is the draw from the seed.
    for user in &early {
        assert_eq!(
            score(&e, LINE, user).await,
            Some(draw(&seed(), user)),
            "{user}"
        );
    }
    let place = e.client.position("s", "early07").await.unwrap();
    assert_eq!(
        (place.state, place.position, place.line),
        (PlaceState::Early, 0, 60)
    );
    assert_eq!(
        admit(&e).await,
        Admission {
            admitted: 0,
            lapsed: 0,
            abandoned: 0,
            waiting: 60
        },
        "nobody is admitted before START"
    );
    assert!(members(&e, ADMITTED).await.is_empty());

    wait_until(&e, start).await;
    let late: Vec<String> = (0..10).map(|i| format!("late{i}")).collect();
    for (ticket, user) in late.iter().enumerate() {
        let place = e.client.join("s", user).await.unwrap();
        assert_eq!(place.state, PlaceState::Waiting, "{user}");
        assert_eq!(place.position, place.line, "{user} joins at the end");
        assert_eq!(
            score(&e, LINE, user).await,
            Some(TICKET_BASE + ticket as i64),
            "{user}: the next ticket, exact above 2^52"
        );
    }
    let queue = e.client.info("s").await.unwrap().queue.expect("a room");
    assert_eq!(queue.seed, Some(seed()), "revealed at START");
    assert_eq!(queue.seed_sha1, sha1_hex(&seed()));

    // Anyone with the revealed seed recomputes the order: the draw (ties by name), then the
    // tickets.
    let mut expected = early.clone();
    expected.sort_by_key(|user| (draw(&seed(), user), user.clone()));
    expected.extend(late.iter().cloned());

    admit(&e).await;
    assert_eq!(members(&e, ADMITTED).await, [expected[0].clone()]);
    let waiting = &expected[1..];
    for (i, reply) in pipelined(&e, "FLASH.POSITION", "s", waiting)
        .await
        .iter()
        .enumerate()
    {
        assert_eq!(field(reply, "state"), bulk("waiting"), "{}", waiting[i]);
        assert_eq!(
            field(reply, "position"),
            Value::Int(i as i64 + 1),
            "{}",
            waiting[i]
        );
        assert_eq!(field(reply, "line"), Value::Int(69));
    }
    let first = e.client.position("s", &expected[0]).await.unwrap();
    assert_eq!(first.state, PlaceState::Admitted);
    assert!(first.until_ms > e.server_now_ms().await + 500_000);

    // Each admitted shopper buys (a checkout: the admission is used up) and the next one in
    // the order is admitted.
    for (i, user) in expected.iter().enumerate() {
        assert_eq!(
            members(&e, ADMITTED).await,
            std::slice::from_ref(user),
            "admission {i}"
        );
        e.client
            .buy("s", &format!("o{i}"), user, 14, 1)
            .await
            .unwrap();
        admit(&e).await;
    }
    assert!(members(&e, ADMITTED).await.is_empty());
    let queue = e.client.info("s").await.unwrap().queue.expect("a room");
    assert_eq!((queue.line, queue.admitted_now, queue.admitted), (0, 0, 70));
    assert_eq!((queue.lapsed, queue.abandoned), (0, 0));
    assert_eq!(e.ledger("s").await[0].1.pending, 70);
}

async fn after_start_the_line_moves_first_come_first_served_at_the_rate(backend: Backend) {
    const RATE: i64 = 20;
    let e = Engine::start(backend).await;
    e.ok(&format!(
        "FLASH.SALE s RATE {RATE} ADMIT 600000 IDLE 600000 SEED {SEED}"
    ))
    .await;
    let users: Vec<String> = (0..100).map(|i| format!("u{i:03}")).collect();
    let joined_from = e.server_now_ms().await;
    for (i, reply) in pipelined(&e, "FLASH.JOIN", "s", &users)
        .await
        .iter()
        .enumerate()
    {
        assert_eq!(field(reply, "state"), bulk("waiting"), "{reply:?}");
        let Value::Int(position) = field(reply, "position") else {
            panic!("{reply:?}");
        };
        assert!((1..=i as i64 + 1).contains(&position), "{reply:?}");
    }
    // The estimate: position / RATE seconds from now.
    let before = e.server_now_ms().await;
    let last = e.client.position("s", "u099").await.unwrap();
    let after = e.server_now_ms().await;
    assert_eq!(last.state, PlaceState::Waiting);
    let wait = last.position * 1000 / RATE;
    assert!(
        (before + wait..=after + wait).contains(&last.eta_ms),
        "{last:?}, asked between {before} and {after}"
    );

    // About a second of FLASH.ADMIT every 50 ms.
    admit(&e).await;
    let first_done = e.server_now_ms().await;
    let mut last_call = first_done;
    while last_call < first_done + 1000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        last_call = e.server_now_ms().await;
        let ran = admit(&e).await;
        assert!(ran.admitted <= RATE, "{ran:?}: more than a bucket at once");
    }
    let queue = e.client.info("s").await.unwrap().queue.expect("a room");
    let read_at = e.server_now_ms().await;
    let admitted = queue.admitted;
    assert_eq!(queue.admitted_now, admitted, "nothing lapsed");
    assert_eq!(queue.line, 100 - admitted);
    // A full bucket (one second's worth) at the first run, then RATE a second.
    let most = RATE + (read_at - joined_from) * RATE / 1000 + 1;
    let least = RATE + (last_call - first_done) * RATE / 1000 / 2;
    assert!(
        (least..=most).contains(&admitted),
        "{admitted} admitted, expected {least}..={most}"
    );
    // First come, first served (the module's timer may have let more in since).
    let mut in_room = members(&e, ADMITTED).await;
    in_room.sort();
    assert!(in_room.len() as i64 >= admitted);
    assert_eq!(in_room, users[..in_room.len()]);
    let next = e.client.position("s", &users[in_room.len()]).await.unwrap();
    assert!(
        next.state == PlaceState::Admitted || next.position == 1,
        "{next:?}: the module's timer may have let it in meanwhile"
    );
}

async fn the_cap_bounds_live_admissions_and_a_checkout_frees_a_place(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok(&format!(
        "FLASH.SALE s CAP 2 ADMIT 600000 IDLE 600000 SEED {SEED}"
    ))
    .await;
    e.ok("FLASH.LOAD s 14 10").await;
    for user in ["a", "b", "c"] {
        let place = e.client.join("s", user).await.unwrap();
        assert_eq!(place.state, PlaceState::Waiting);
    }
    for _ in 0..5 {
        admit(&e).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(members(&e, ADMITTED).await, ["a", "b"]);
    let c = e.client.position("s", "c").await.unwrap();
    assert_eq!((c.state, c.position, c.line), (PlaceState::Waiting, 1, 1));
    assert_eq!(c.eta_ms, 0, "no RATE: no estimate");
    let queue = e.client.info("s").await.unwrap().queue.expect("a room");
    assert_eq!((queue.admitted_now, queue.admitted, queue.line), (2, 2, 1));

    e.client.reserve("s", "ca", "a", 14, 1).await.unwrap();
    e.client.checkout("s", "ca", "a").await.unwrap();
    assert_eq!(
        score(&e, ADMITTED, "a").await,
        None,
        "the checkout used it up"
    );
    admit(&e).await;
    assert_eq!(members(&e, ADMITTED).await, ["b", "c"]);
    let (code, line) = e.refused("FLASH.RESERVE s ca2 a 14").await;
    assert_eq!(code, ErrorCode::NotAdmitted, "{line}");
    let queue = e.client.info("s").await.unwrap().queue.expect("a room");
    assert_eq!((queue.admitted_now, queue.admitted, queue.line), (2, 3, 0));
    // A shopper whose admission was used may join again, at the end.
    let again = e.client.join("s", "a").await.unwrap();
    assert_eq!((again.state, again.position), (PlaceState::Waiting, 1));
    assert_eq!(score(&e, LINE, "a").await, Some(TICKET_BASE + 3));
}

async fn an_unused_admission_runs_out_and_a_new_cart_carries_it(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok(&format!(
        "FLASH.SALE s RATE 100 ADMIT 600 HOLD 2000 IDLE 600000 SEED {SEED}"
    ))
    .await;
    e.ok("FLASH.LOAD s 14 10").await;
    e.client.join("s", "u1").await.unwrap();
    e.client.join("s", "u2").await.unwrap();
    let both = eventually(Duration::from_secs(2), || async {
        admit(&e).await;
        members(&e, ADMITTED).await.len() == 2
    })
    .await;
    assert!(both, "not admitted");
    let u1 = e.client.position("s", "u1").await.unwrap();
    assert_eq!(u1.state, PlaceState::Admitted);
    assert_eq!(score(&e, ADMITTED, "u1").await, Some(u1.until_ms));
    // u2's new cart holds for 2000 ms: the admission lasts as long.
    let cart = e.client.reserve("s", "c2", "u2", 14, 1).await.unwrap();
    assert_eq!(score(&e, ADMITTED, "u2").await, Some(cart.deadline_ms));
    assert!(cart.deadline_ms > u1.until_ms);

    wait_until(&e, u1.until_ms).await;
    let (code, line) = e.refused("FLASH.RESERVE s c1 u1 14").await;
    assert_eq!(
        (code, line.as_str()),
        (
            ErrorCode::NotAdmitted,
            "NOTADMITTED user 'u1' has no admission to sale 's'; join its waiting room"
        )
    );
    // u2 fills the cart past the admission's first end.
    let more = e.client.reserve("s", "c2", "u2", 14, 1).await.unwrap();
    assert_eq!(more.cart_units, 2);
    let lapsed = eventually(Duration::from_secs(2), || async {
        admit(&e).await;
        score(&e, ADMITTED, "u1").await.is_none()
    })
    .await;
    assert!(lapsed, "the admission was never ended");
    assert_eq!(score(&e, ADMITTED, "u2").await, Some(cart.deadline_ms));
    let queue = e.client.info("s").await.unwrap().queue.expect("a room");
    assert_eq!(
        (queue.admitted, queue.lapsed, queue.admitted_now),
        (2, 1, 1)
    );
    let (code, line) = e.refused("FLASH.POSITION s u1").await;
    assert_eq!(code, ErrorCode::NotQueued, "{line}");
}

async fn a_shopper_who_stops_asking_loses_the_place(backend: Backend) {
    let e = Engine::start(backend).await;
    // START far ahead: nobody is admitted, only the idle are dropped.
    let start = e.server_now_ms().await + 600_000;
    e.ok(&format!(
        "FLASH.SALE s START {start} RATE 10 IDLE 1000 SEED {SEED}"
    ))
    .await;
    e.client.join("s", "gone").await.unwrap();
    e.client.join("s", "here").await.unwrap();
    let joined_at = e.server_now_ms().await;
    while e.server_now_ms().await < joined_at + 1300 {
        e.client.position("s", "here").await.unwrap();
        admit(&e).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dropped = eventually(Duration::from_secs(2), || async {
        admit(&e).await;
        score(&e, LINE, "gone").await.is_none()
    })
    .await;
    assert!(dropped, "the idle shopper kept the place");
    let (code, line) = e.refused("FLASH.POSITION s gone").await;
    assert_eq!(
        (code, line.as_str()),
        (
            ErrorCode::NotQueued,
            "NOTQUEUED user 'gone' is not in the waiting room of sale 's'; join it again"
        )
    );
    let here = e.client.position("s", "here").await.unwrap();
    assert_eq!((here.state, here.line), (PlaceState::Early, 1));
    let queue = e.client.info("s").await.unwrap().queue.expect("a room");
    assert_eq!((queue.abandoned, queue.line, queue.admitted), (1, 1, 0));
    let back = e.client.join("s", "gone").await.unwrap();
    assert_eq!((back.state, back.line), (PlaceState::Early, 2));
    assert_eq!(score(&e, LINE, "gone").await, Some(draw(&seed(), "gone")));
}

async fn reserve_and_buy_need_an_admission_and_a_refusal_changes_nothing(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok(&format!(
        "FLASH.SALE s RATE 100 ADMIT 600000 IDLE 600000 SEED {SEED}"
    ))
    .await;
    e.ok("FLASH.LOAD s 14 10").await;
    let before = e.dump("s").await;
    let info = e.client.info("s").await.unwrap();
    let refusal = "NOTADMITTED user 'u1' has no admission to sale 's'; join its waiting room";
    for line in ["FLASH.RESERVE s c1 u1 14", "FLASH.BUY s o1 u1 14 2"] {
        let (code, text) = e.refused(line).await;
        assert_eq!(
            (code, text.as_str()),
            (ErrorCode::NotAdmitted, refusal),
            "{line}"
        );
        assert_eq!(e.dump("s").await, before, "{line} changed the sale");
    }
    let after = e.client.info("s").await.unwrap();
    assert_eq!(
        (after.total, after.held_carts),
        (info.total, info.held_carts)
    );
    // NOSKU comes after the admission: a shopper not admitted learns nothing of the stock.
    assert_eq!(
        e.refused("FLASH.RESERVE s c1 u1 99").await.0,
        ErrorCode::NotAdmitted
    );

    e.client.join("s", "u1").await.unwrap();
    let admitted = eventually(Duration::from_secs(2), || async {
        admit(&e).await;
        score(&e, ADMITTED, "u1").await.is_some()
    })
    .await;
    assert!(admitted);
    let order = e.client.buy("s", "o1", "u1", 14, 2).await.unwrap();
    assert_eq!(order.units, 2);
    assert_eq!(score(&e, ADMITTED, "u1").await, None, "a buy is a checkout");
    // The order made is answered again, with no admission needed.
    let again = e.client.buy("s", "o1", "u1", 14, 2).await.unwrap();
    assert_eq!(again, order);
    let (code, text) = e.refused("FLASH.BUY s o2 u1 14").await;
    assert_eq!((code, text.as_str()), (ErrorCode::NotAdmitted, refusal));
    let ledger = e.ledger("s").await;
    assert_eq!((ledger[0].1.available, ledger[0].1.pending), (8, 2));
}

async fn queue_errors_and_seed_rules(backend: Backend) {
    let e = Engine::start(backend).await;
    let other = "ffeeddccbbaa99887766554433221100";
    e.ok("FLASH.SALE s").await;
    // A sale without a waiting room writes every setting, the seed empty.
    let settings: std::collections::BTreeMap<String, String> =
        e.conn().hgetall("flash:{s}:sale").await.unwrap();
    for (name, value) in [
        ("queue_rate", "0"),
        ("queue_cap", "0"),
        ("admit_ms", "60000"),
        ("idle_ms", "30000"),
        ("queue_seed", ""),
    ] {
        assert_eq!(
            settings.get(name).map(String::as_str),
            Some(value),
            "{name}"
        );
    }
    assert_eq!(e.client.info("s").await.unwrap().queue, None);
    let before = e.dump("s").await;
    let cases: &[(&str, ErrorCode, &str)] = &[
        (
            "FLASH.JOIN s u1",
            ErrorCode::NoQueue,
            "NOQUEUE sale 's' has no waiting room",
        ),
        (
            "FLASH.POSITION s u1",
            ErrorCode::NoQueue,
            "NOQUEUE sale 's' has no waiting room",
        ),
        (
            "FLASH.JOIN nosuch u1",
            ErrorCode::NoSale,
            "NOSALE sale 'nosuch' does not exist; create it with FLASH.SALE",
        ),
        (
            "FLASH.ADMIT nosuch",
            ErrorCode::NoSale,
            "NOSALE sale 'nosuch' does not exist; create it with FLASH.SALE",
        ),
        (
            "FLASH.SALE s RATE 10",
            ErrorCode::Err,
            "ERR a waiting room needs SEED (32 to 48 hex digits), committed before START",
        ),
        (
            "FLASH.SALE s CAP 3",
            ErrorCode::Err,
            "ERR a waiting room needs SEED (32 to 48 hex digits), committed before START",
        ),
        (
            "FLASH.SALE s RATE 10 SEED abc",
            ErrorCode::Err,
            "ERR SEED must be 32 to 48 hex digits",
        ),
        (
            "FLASH.SALE s RATE 10 SEED 00112233445566778899aabbccddeefg",
            ErrorCode::Err,
            "ERR SEED must be 32 to 48 hex digits",
        ),
        (
            "FLASH.SALE s RATE 10 SEED 00112233445566778899aabbccddeeff00112233445566778",
            ErrorCode::Err,
            "ERR SEED must be 32 to 48 hex digits",
        ),
        (
            "FLASH.SALE s RATE 10 SEED",
            ErrorCode::Err,
            "ERR wrong number of arguments for 'FLASH.SALE' command",
        ),
        (
            "FLASH.SALE s RATE 1000001",
            ErrorCode::Err,
            "ERR RATE must be an integer from 0 to 1000000",
        ),
        (
            "FLASH.SALE s CAP -1",
            ErrorCode::Err,
            "ERR CAP must be an integer from 0 to 1000000000",
        ),
        (
            "FLASH.SALE s ADMIT 0",
            ErrorCode::Err,
            "ERR ADMIT must be an integer from 1 to 86400000",
        ),
        (
            "FLASH.SALE s IDLE 86400001",
            ErrorCode::Err,
            "ERR IDLE must be an integer from 1 to 86400000",
        ),
        (
            "FLASH.SALE s COLOR red",
            ErrorCode::Err,
            "ERR unknown option 'COLOR'; expected HOLD, LIMIT, START, END, RETAIN, RATE, CAP, \
             ADMIT, IDLE or SEED",
        ),
        (
            "FLASH.ADMIT s COUNT 0",
            ErrorCode::Err,
            "ERR COUNT must be an integer from 1 to 10000",
        ),
        (
            "FLASH.ADMIT s SOON",
            ErrorCode::Err,
            "ERR unknown option 'SOON'; expected COUNT",
        ),
        (
            "FLASH.JOIN s",
            ErrorCode::Err,
            "ERR wrong number of arguments for 'FLASH.JOIN' command",
        ),
        (
            "FLASH.POSITION s u1 u2",
            ErrorCode::Err,
            "ERR syntax error near 'u2'",
        ),
        (
            "FLASH.JOIN s u{1}",
            ErrorCode::Err,
            "ERR user must be 1 to 64 characters from A-Z a-z 0-9 - _ . : @",
        ),
    ];
    for (line, code, text) in cases {
        let (got_code, got_text) = e.refused(line).await;
        assert_eq!((got_code, got_text.as_str()), (*code, *text), "{line}");
        assert_eq!(e.dump("s").await, before, "{line} changed the sale");
    }
    assert!(e.dump("nosuch").await.is_empty());
    assert_eq!(e.client.admit("s", 10).await.unwrap(), Admission::default());

    // A room: the seed is kept lower-case, and stays put while anyone waits.
    let start = e.server_now_ms().await + 600_000;
    e.ok(&format!("FLASH.SALE s START {start} RATE 10 SEED {SEED}"))
        .await;
    let stored: String = e.conn().hget("flash:{s}:sale", "queue_seed").await.unwrap();
    assert_eq!(stored, seed());
    e.client.join("s", "u1").await.unwrap();
    let before = e.dump("s").await;
    let (code, text) = e.refused(&format!("FLASH.SALE s SEED {other}")).await;
    assert_eq!(
        (code, text.as_str()),
        (
            ErrorCode::Err,
            "ERR SEED cannot change while shoppers wait in the line"
        )
    );
    assert_eq!(e.dump("s").await, before);
    e.ok(&format!("FLASH.SALE s SEED {}", seed())).await;
    let (code, text) = e.refused("FLASH.POSITION s nobody").await;
    assert_eq!(
        (code, text.as_str()),
        (
            ErrorCode::NotQueued,
            "NOTQUEUED user 'nobody' is not in the waiting room of sale 's'; join it again"
        )
    );
    // A key of another type is refused before any write.
    let _: () = e.conn().set("flash:{s}:seen", "not a zset").await.unwrap();
    let before = e.dump("s").await;
    for line in ["FLASH.JOIN s u2", "FLASH.POSITION s u1", "FLASH.ADMIT s"] {
        assert_eq!(e.refused(line).await.0, ErrorCode::WrongType, "{line}");
        assert_eq!(e.dump("s").await, before, "{line}");
    }
    let _: () = e.conn().del("flash:{s}:seen").await.unwrap();
    // Turned off: the line is kept, but nobody may join or ask.
    e.ok("FLASH.SALE s RATE 0 CAP 0").await;
    assert_eq!(e.client.info("s").await.unwrap().queue, None);
    assert_eq!(e.refused("FLASH.JOIN s u2").await.0, ErrorCode::NoQueue);
    e.ok("FLASH.SALE s RATE 1").await;
    let u1 = e.client.position("s", "u1").await.unwrap();
    assert_eq!((u1.state, u1.line), (PlaceState::Early, 1));
    // An ended sale takes nobody in.
    e.ok(&format!("FLASH.SALE s2 START 1 END 2 CAP 5 SEED {other}"))
        .await;
    assert_eq!(
        e.refused("FLASH.JOIN s2 u1").await,
        (ErrorCode::Closed, "CLOSED sale 's2' is not open".to_owned())
    );
    // A seed written by hand that is no seed reads as none: the room needs one again.
    let _: () = e
        .conn()
        .hset("flash:{s2}:sale", "queue_seed", "xyz")
        .await
        .unwrap();
    let queue = e.client.info("s2").await.unwrap().queue.expect("a room");
    assert_eq!(queue.seed, Some(String::new()));
    assert_eq!(queue.seed_sha1, sha1_hex(""));
    assert_eq!(e.refused("FLASH.SALE s2 CAP 6").await.0, ErrorCode::Err);
}

/// The same script of waiting-room commands on both backends gives the same replies and
/// error lines (clock-derived values masked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_and_lua_twin_run_the_waiting_room_alike() {
    const SCRIPT: &[&str] = &[
        "FLASH.SALE q START 4102444800000 RATE 5 SEED 00112233445566778899AABBCCDDEEFF",
        "FLASH.JOIN q alice",
        "FLASH.JOIN q bob",
        "FLASH.JOIN q alice",
        "FLASH.POSITION q bob",
        "FLASH.POSITION q carol",
        "FLASH.ADMIT q",
        "FLASH.ADMIT q COUNT 5",
        "FLASH.ADMIT q COUNT 0",
        "FLASH.ADMIT q SOON",
        "FLASH.INFO q",
        "FLASH.LOAD q 14 5",
        "FLASH.RESERVE q c1 alice 14",
        "FLASH.SALE q SEED ffeeddccbbaa99887766554433221100",
        "FLASH.SALE q SEED 00112233445566778899aabbccddeeff",
        "FLASH.SALE q RATE x",
        "FLASH.SALE q CAP -1",
        "FLASH.SALE q ADMIT 0",
        "FLASH.SALE q IDLE 86400001",
        "FLASH.SALE q SEED 0011",
        "FLASH.SALE q SEED",
        "FLASH.SALE q COLOR red",
        "FLASH.SALE r RATE 1",
        "FLASH.SALE r",
        "FLASH.JOIN r alice",
        "FLASH.POSITION r alice",
        "FLASH.ADMIT r",
        "FLASH.INFO r",
        "FLASH.SALE r CAP 1 ADMIT 5000 IDLE 7000 SEED 0123456789abcdef0123456789ABCDEF0123456789abcdef",
        "FLASH.INFO r",
        "FLASH.LOAD r 14 5",
        "FLASH.RESERVE r c1 alice 14",
        "FLASH.BUY r o1 alice 14",
        "FLASH.JOIN nope alice",
        "FLASH.JOIN r",
        "FLASH.JOIN r a b",
        "FLASH.SALE r RATE 0 CAP 0",
        "FLASH.INFO r",
    ];
    // Estimates and deadlines depend on each server's clock.
    fn mask(value: Value) -> Value {
        match value {
            Value::Int(n) if n > 1_000_000_000_000 => Value::Int(0),
            Value::Array(items) => Value::Array(items.into_iter().map(mask).collect()),
            other => other,
        }
    }
    let mut runs = Vec::new();
    for backend in [Backend::Module, Backend::Lua] {
        let e = Engine::start(backend).await;
        let mut out = Vec::new();
        for line in SCRIPT {
            let reply = match e.run(line).await {
                Ok(value) => format!("{:?}", mask(value)),
                Err(error) => format!("error {error}"),
            };
            out.push(format!("{line} => {reply}"));
        }
        runs.push(out);
    }
    for (module, lua) in runs[0].iter().zip(&runs[1]) {
        assert_eq!(module, lua);
    }
    assert!(
        runs[0]
            .iter()
            .any(|line| line.contains("error NOTADMITTED"))
    );
    assert!(runs[0].iter().any(|line| line.contains("error NOQUEUE")));
    assert!(runs[0].iter().any(|line| line.contains("error NOTQUEUED")));
}

/// A room in each state a restart must keep: places in the line (drawn and ticketed),
/// admissions, a lapse and an abandonment counted. Settles in a state no timer changes
/// (CAP full, START ahead, lines empty), so the module's timer may run at any time.
async fn fill_rooms(e: &Engine) {
    let now = e.server_now_ms().await;
    e.ok(&format!(
        "FLASH.SALE s CAP 2 ADMIT 600000 IDLE 600000 SEED {SEED}"
    ))
    .await;
    e.ok("FLASH.LOAD s 14 10").await;
    for i in 0..6 {
        e.client.join("s", &format!("u{i}")).await.unwrap();
    }
    admit(e).await;
    e.client.reserve("s", "c0", "u0", 14, 1).await.unwrap();
    e.client.checkout("s", "c0", "u0").await.unwrap();
    admit(e).await;
    assert_eq!(members(e, ADMITTED).await, ["u1", "u2"]);

    e.ok(&format!(
        "FLASH.SALE t START {} RATE 5 IDLE 600000 SEED {SEED}",
        now + 600_000
    ))
    .await;
    for i in 0..10 {
        e.client.join("t", &format!("e{i}")).await.unwrap();
    }

    e.ok(&format!("FLASH.SALE l RATE 10 ADMIT 100 SEED {SEED}"))
        .await;
    e.client.join("l", "x").await.unwrap();
    let lapsed = eventually(Duration::from_secs(3), || async {
        e.client.admit("l", 100).await.unwrap();
        e.client.info("l").await.unwrap().queue.unwrap().lapsed == 1
    })
    .await;
    assert!(lapsed);

    e.ok(&format!(
        "FLASH.SALE a START {} IDLE 100 RATE 1 SEED {SEED}",
        now + 600_000
    ))
    .await;
    e.client.join("a", "y").await.unwrap();
    let abandoned = eventually(Duration::from_secs(3), || async {
        e.client.admit("a", 100).await.unwrap();
        e.client.info("a").await.unwrap().queue.unwrap().abandoned == 1
    })
    .await;
    assert!(abandoned);
}

const ROOMS: [&str; 4] = ["s", "t", "l", "a"];

async fn an_aof_restart_keeps_the_waiting_room(backend: Backend) {
    let e = Engine::start_with(
        backend,
        ServerOptions {
            aof: true,
            ..options(backend)
        },
    )
    .await;
    fill_rooms(&e).await;
    let waiting = ["u3", "u4", "u5"].map(String::from);
    let places_before = pipelined(&e, "FLASH.POSITION", "s", &waiting).await;
    let mut before = Vec::new();
    for sale in ROOMS {
        let queue = e.client.info(sale).await.unwrap().queue;
        before.push((e.dump(sale).await, queue));
    }
    let server = e.server.crash_and_restart(Duration::ZERO).unwrap();
    let e = Engine::attach(backend, server).await;
    for (sale, (dump, queue)) in ROOMS.into_iter().zip(&before) {
        assert_eq!(&e.dump(sale).await, dump, "sale {sale}");
        assert_eq!(
            &e.client.info(sale).await.unwrap().queue,
            queue,
            "sale {sale}"
        );
    }
    assert!(before[0].0.contains_key(LINE) && before[0].0.contains_key(ADMITTED));
    let places_after = pipelined(&e, "FLASH.POSITION", "s", &waiting).await;
    for (was, is) in places_before.iter().zip(&places_after) {
        for label in ["state", "position", "line"] {
            assert_eq!(field(was, label), field(is, label), "{label}");
        }
    }
    assert_eq!(field(&places_after[2], "position"), Value::Int(3));
    let drawn = e.client.position("t", "e3").await.unwrap();
    assert_eq!((drawn.state, drawn.line), (PlaceState::Early, 10));
    assert_eq!(
        score(&e, "flash:{t}:line", "e3").await,
        Some(draw(&seed(), "e3"))
    );
    // The room goes on: the next ticket is the seventh.
    e.client.join("s", "u6").await.unwrap();
    assert_eq!(score(&e, LINE, "u6").await, Some(TICKET_BASE + 6));
}

async fn a_replica_holds_the_masters_waiting_room(backend: Backend) {
    let master = Engine::start(backend).await;
    let replica = start_replica(&master, false).await;
    fill_rooms(&master).await;
    // And a line that moves at a RATE while every other shopper stops asking: the early ones
    // who stop are dropped before START, the late ones admitted or dropped.
    let start = master.server_now_ms().await + 1000;
    master
        .ok(&format!(
            "FLASH.SALE m START {start} RATE 40 IDLE 400 ADMIT 600000 SEED {SEED}"
        ))
        .await;
    let early: Vec<String> = (0..20).map(|i| format!("e{i}")).collect();
    let late: Vec<String> = (0..10).map(|i| format!("l{i}")).collect();
    let keep_asking: Vec<String> = early.iter().chain(&late).step_by(2).cloned().collect();
    // Those admitted answer so, those dropped NOTQUEUED: both are fine here.
    let ask = || async {
        let calls: Vec<Vec<String>> = keep_asking
            .iter()
            .map(|user| vec!["m".to_owned(), user.clone()])
            .collect();
        master
            .client
            .call_many("FLASH.POSITION", &calls)
            .await
            .unwrap();
        master.client.admit("m", 1000).await.unwrap();
    };
    pipelined(&master, "FLASH.JOIN", "m", &early).await;
    while master.server_now_ms().await <= start {
        ask().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pipelined(&master, "FLASH.JOIN", "m", &late).await;
    let emptied = eventually(Duration::from_secs(5), || async {
        ask().await;
        master.client.info("m").await.unwrap().queue.unwrap().line == 0
    })
    .await;
    assert!(emptied, "the line never emptied");
    let queue = master.client.info("m").await.unwrap().queue.unwrap();
    assert_eq!(queue.admitted + queue.abandoned, 30, "{queue:?}");
    assert!(queue.abandoned >= 10 && queue.admitted >= 15, "{queue:?}");

    wait_for_replica(&master).await;
    let mut on_replica = replica
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for sale in ROOMS.into_iter().chain(["m"]) {
        for key in ["line", "seen", "admitted"] {
            let key = format!("flash:{{{sale}}}:{key}");
            let zrange = |key: String| {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .clone()
            };
            let on_master: Vec<(String, String)> = zrange(key.clone())
                .query_async(&mut master.conn())
                .await
                .unwrap();
            let copied: Vec<(String, String)> = zrange(key.clone())
                .query_async(&mut on_replica)
                .await
                .unwrap();
            assert_eq!(copied, on_master, "{key}");
        }
        let key = format!("flash:{{{sale}}}:queue");
        let on_master: std::collections::BTreeMap<String, String> =
            master.conn().hgetall(&key).await.unwrap();
        let copied: std::collections::BTreeMap<String, String> =
            on_replica.hgetall(&key).await.unwrap();
        assert_eq!(copied, on_master, "{key}");
        assert_eq!(
            dump(&mut on_replica, sale).await,
            master.dump(sale).await,
            "{sale}"
        );
    }
    let on_master: Vec<(String, String)> = redis::cmd("ZRANGE")
        .arg("flash:{m}:admitted")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut master.conn())
        .await
        .unwrap();
    assert_eq!(on_master.len() as i64, queue.admitted_now);
}
