//! The waiting room over real HTTP: a sale with a CAP of one admission at a time. Adding to
//! a cart needs an admission (403 `NOTADMITTED`); the line is joined and read over the API;
//! the engine admits by itself; a checkout uses the admission up and lets the next shopper
//! in; `GET /sale` publishes the seed's commitment.

use std::time::Duration;

use flash_api_client::{EdgeClient, LineChange, Place};
use flash_client::SaleSettings;
use flash_core::model::Seed;
use flash_core::queue::commitment;
use flash_tests::{Stack, StackOptions};

use crate::common::{assert_refused, browser, signed_in};

const SEED: &str = "5eed5eed5eed5eed5eed5eed5eed5eed";

async fn queued_stack() -> Stack {
    Stack::start(StackOptions {
        sale: SaleSettings {
            queue_cap: Some(1),
            seed: Seed::parse(SEED.as_bytes()),
            ..SaleSettings::default()
        },
        ..StackOptions::default()
    })
    .await
    .expect("the stack starts")
}

/// The client's place once it is `state` (the engine admits on its own timer, every 50 ms).
async fn place_once(client: &EdgeClient, state: &str) -> Place {
    let mut last = None;
    for _ in 0..100 {
        let place = client.place().await.expect("the place");
        if place.state == state {
            return place;
        }
        last = Some(place);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never {state}: last {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_wait_their_turn_and_a_checkout_lets_the_next_one_in() {
    let stack = queued_stack().await;
    let sale = browser(&stack).sale().await.expect("GET /sale");
    let queue = sale.queue.expect("the sale has a waiting room");
    assert_eq!((queue.cap, queue.rate), (1, 0));
    assert_eq!(queue.seed_sha1, commitment(SEED));
    assert_eq!(
        queue.seed.as_deref(),
        Some(SEED),
        "no START: the seed is revealed"
    );

    let alice = signed_in(&stack, "alice").await;
    let bob = signed_in(&stack, "bob").await;
    assert_refused(
        alice.cart_add(&LineChange::one(1, "alice-cart")).await,
        403,
        "NOTADMITTED",
    );
    assert_refused(alice.place().await, 404, "NOTQUEUED");
    assert_refused(browser(&stack).join_queue().await, 401, "UNAUTHENTICATED");

    let joined = alice.join_queue().await.expect("alice joins");
    assert!(
        joined.state == "waiting" || joined.state == "admitted",
        "{joined:?}"
    );
    let admitted = place_once(&alice, "admitted").await;
    assert!(admitted.until_ms > admitted.now_ms);

    let bob_place = bob.join_queue().await.expect("bob joins");
    assert_eq!(
        (bob_place.state.as_str(), bob_place.position),
        ("waiting", 1)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        bob.place().await.expect("bob's place").state,
        "waiting",
        "the cap holds one admission at a time"
    );
    assert_refused(
        bob.cart_add(&LineChange::one(1, "bob-cart")).await,
        403,
        "NOTADMITTED",
    );

    alice
        .cart_add(&LineChange::one(1, "alice-cart"))
        .await
        .expect("alice, admitted, adds");
    alice
        .checkout("alice-cart")
        .await
        .expect("alice checks out");
    place_once(&bob, "admitted").await;
    bob.cart_add(&LineChange::one(2, "bob-cart"))
        .await
        .expect("bob's turn");
    assert_refused(alice.place().await, 404, "NOTQUEUED");
}
