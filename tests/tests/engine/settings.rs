//! A sale's settings as every command sees them: the module keeps them parsed between
//! commands, so each way the settings hash can change behind FLASH.SALE's back must be seen
//! by the very next command (the Lua twin reads them every time: the same assertions hold).

use std::time::Duration;

use flash_client::Backend;
use flash_core::ErrorCode;
use flash_core::keys::SaleKeys;
use redis::AsyncCommands;

use crate::common::{Engine, both_backends, eventually};

both_backends!(
    writes_to_the_settings_by_any_command_are_seen_at_once,
    a_dataset_swapped_or_flushed_is_seen_at_once,
    a_replica_reads_the_settings_the_master_wrote,
);

async fn limit(e: &Engine, sale: &str) -> i64 {
    e.client.info(sale).await.unwrap().limit
}

async fn writes_to_the_settings_by_any_command_are_seen_at_once(backend: Backend) {
    let e = Engine::start(backend).await;
    let settings = SaleKeys::new("s").sale();
    let mut conn = e.conn();
    e.ok("FLASH.SALE s LIMIT 5").await;
    e.ok("FLASH.LOAD s 14 100").await;
    e.client.reserve("s", "c1", "u1", 14, 1).await.unwrap();
    assert_eq!(limit(&e, "s").await, 5);

    // By hand: the next reserve obeys the new LIMIT.
    let _: () = conn.hset(&settings, "limit", 1).await.unwrap();
    let (code, _) = e.refused("FLASH.RESERVE s c1 u1 14 1").await;
    assert_eq!(code, ErrorCode::Limit);
    assert_eq!(limit(&e, "s").await, 1);

    // Renamed over by another hash.
    let _: () = conn
        .hset_multiple("elsewhere", &[("limit", 7), ("hold_ms", 1000)])
        .await
        .unwrap();
    let _: () = conn.rename("elsewhere", &settings).await.unwrap();
    assert_eq!(limit(&e, "s").await, 7);

    // Replaced by another type, then deleted.
    let _: () = conn.del(&settings).await.unwrap();
    let _: () = conn.set(&settings, "not a hash").await.unwrap();
    let (code, _) = e.refused("FLASH.INFO s").await;
    assert_eq!(code, ErrorCode::WrongType);
    let _: () = conn.del(&settings).await.unwrap();
    let (code, _) = e.refused("FLASH.AVAILABLE s 14").await;
    assert_eq!(code, ErrorCode::NoSale);

    // Expiring by itself: the very first command after the moment sees no sale (settings
    // with a time to live are never kept, so no command answers from memory).
    e.ok("FLASH.SALE s LIMIT 3").await;
    let _: () = conn.pexpire(&settings, 100).await.unwrap();
    assert_eq!(limit(&e, "s").await, 3);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (code, _) = e.refused("FLASH.RESERVE s c2 u2 14 1").await;
    assert_eq!(code, ErrorCode::NoSale);
}

async fn a_dataset_swapped_or_flushed_is_seen_at_once(backend: Backend) {
    let e = Engine::start(backend).await;
    let mut conn = e.conn();
    e.ok("FLASH.SALE s LIMIT 5").await;
    assert_eq!(limit(&e, "s").await, 5);
    // Database 1 holds a sale of the same name with other settings.
    let _: () = redis::cmd("SELECT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = conn
        .hset(SaleKeys::new("s").sale(), "limit", 9)
        .await
        .unwrap();
    let _: () = redis::cmd("SELECT")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SWAPDB")
        .arg(0)
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(limit(&e, "s").await, 9);

    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let (code, _) = e.refused("FLASH.INFO s").await;
    assert_eq!(code, ErrorCode::NoSale);
    e.ok("FLASH.SALE s").await;
    assert_eq!(
        limit(&e, "s").await,
        0,
        "a new sale starts from the defaults"
    );
}

async fn a_replica_reads_the_settings_the_master_wrote(backend: Backend) {
    let master = Engine::start(backend).await;
    let replica = crate::durability::start_replica(&master, backend == Backend::Module).await;
    let replica = Engine::attach(backend, replica).await;
    master.ok("FLASH.SALE s LIMIT 5").await;
    let seen = |n: i64| {
        let replica = &replica;
        async move {
            eventually(Duration::from_secs(3), || async {
                replica
                    .client
                    .info("s")
                    .await
                    .is_ok_and(|info| info.limit == n)
            })
            .await
        }
    };
    assert!(seen(5).await);
    master.ok("FLASH.SALE s LIMIT 6").await;
    assert!(
        seen(6).await,
        "the replica kept the settings it read before"
    );
}
