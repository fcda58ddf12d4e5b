//! Many buyers at once: exactly the units there are, never one more.

use flash_client::{Backend, ErrorCode};

use crate::common::{Engine, both_backends};

both_backends!(sixty_four_connections_race_for_a_thousand_units);

async fn sixty_four_connections_race_for_a_thousand_units(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s HOLD 60000").await;
    e.ok("FLASH.LOAD s 14 1000").await;
    let mut tasks = Vec::new();
    for buyer in 0..64 {
        // One connection per buyer: the server sees 64 clients interleaving.
        let client = e.client().await;
        tasks.push(tokio::spawn(async move {
            let mut reserved = 0i64;
            let mut round = 0;
            loop {
                // Every buyer fills carts of up to 5 units, checking every other one out.
                let cart = format!("b{buyer}-{}", round / 5);
                match client
                    .reserve("s", &cart, &format!("u{buyer}"), 14, 1)
                    .await
                {
                    Ok(r) => {
                        assert!(r.available >= 0);
                        reserved += 1;
                    }
                    Err(error) if error.code() == Some(ErrorCode::SoldOut) => return reserved,
                    Err(error) => panic!("{error}"),
                }
                if round % 10 == 4 {
                    client
                        .checkout("s", &cart, &format!("u{buyer}"))
                        .await
                        .unwrap();
                }
                round += 1;
            }
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 1000);
    let ledger = e.ledger("s").await;
    let units = ledger[0].1;
    assert_eq!((units.loaded, units.available), (1000, 0));
    assert_eq!(units.held + units.pending, 1000);
    let users: Vec<i64> = redis::cmd("HVALS")
        .arg("flash:{s}:users")
        .query_async(&mut e.conn())
        .await
        .unwrap();
    assert_eq!(users.iter().sum::<i64>(), 1000);
}
