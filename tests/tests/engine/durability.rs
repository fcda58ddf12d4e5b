//! Replication and persistence: a replica and an AOF reload end in exactly the master's
//! state, and holds that fell due while a server was down are released once it is back.

use std::time::Duration;

use flash_client::{Backend, ClientError, Durability, DurableWrites, FlashClient};
use flash_core::model::CartState;
use flash_tests::{RedisServer, ServerOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{Engine, both_backends, dump, eventually, options};

both_backends!(
    a_replica_converges_on_the_masters_state,
    a_replica_expires_nothing_until_promoted,
    an_aof_restart_restores_the_exact_state,
    holds_due_while_the_server_was_down_are_released_on_return,
    a_durable_write_answers_once_a_replica_has_it,
);

/// Random traffic over every write command; engine refusals are part of the mix.
async fn workload(client: FlashClient, seed: u64, ops: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..ops {
        let cart = format!("c{seed}-{}", rng.random_range(0..12));
        let user = format!("u{}", rng.random_range(0..4));
        let sku = [7, 14, 21][rng.random_range(0..3)];
        let qty = rng.random_range(1..4);
        let result = match rng.random_range(0..10) {
            0..=3 => client.reserve("s", &cart, &user, sku, qty).await.map(drop),
            4 => client.release("s", &cart, &user, sku, 1).await.map(drop),
            5 => client.checkout("s", &cart, &user).await.map(drop),
            6 => client
                .buy(
                    "s",
                    &format!("o{seed}-{}", rng.random_range(0..1000)),
                    &user,
                    sku,
                    qty,
                )
                .await
                .map(drop),
            7 => {
                let verdict = if rng.random_bool(0.8) {
                    flash_client::Verdict::Ok
                } else {
                    flash_client::Verdict::Reject
                };
                client.settle("s", &cart, verdict).await.map(drop)
            }
            8 => client.expire("s", 50).await.map(drop),
            _ => client
                .load("s", &[(sku, rng.random_range(20..60))])
                .await
                .map(drop),
        };
        // Refusals of the rules are part of the mix; anything else (ERR, WRONGTYPE, a
        // script error) is a bug.
        if let Err(error) = result {
            use flash_core::ErrorCode::*;
            let expected = [
                SoldOut, Limit, Expired, NotOwner, NoCart, Empty, NoSku, BadState,
            ];
            assert!(
                error.code().is_some_and(|code| expected.contains(&code)),
                "{error}"
            );
        }
    }
}

async fn run_workload(e: &Engine, tasks: u64, ops: usize) {
    let mut handles = Vec::new();
    for seed in 0..tasks {
        handles.push(tokio::spawn(workload(e.client().await, seed, ops)));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}

/// A server with AOF on, fsync always: what was acknowledged survives a kill -9.
async fn with_aof(backend: Backend) -> Engine {
    let options = ServerOptions {
        aof: true,
        ..options(backend)
    };
    Engine::start_with(backend, options).await
}

async fn digest(conn: &mut impl redis::aio::ConnectionLike) -> String {
    redis::cmd("DEBUG")
        .arg("DIGEST")
        .query_async(conn)
        .await
        .unwrap()
}

/// A replica of `master`, loading the module or not.
pub async fn start_replica(master: &Engine, module: bool) -> RedisServer {
    let backend = if module {
        Backend::Module
    } else {
        Backend::Lua
    };
    let replica = RedisServer::start(ServerOptions {
        replica_of: Some(master.server.port),
        ..options(backend)
    })
    .unwrap();
    let mut conn = replica
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let linked = eventually(Duration::from_secs(10), || {
        let mut conn = conn.clone();
        async move {
            // A poll that times out (the replica busy loading the master's data on a loaded
            // machine) is one more "not yet".
            let info: Result<String, _> = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await;
            info.is_ok_and(|info| info.contains("master_link_status:up"))
        }
    })
    .await;
    assert!(linked, "replica never linked:\n{}", replica.log());
    let _: () = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    replica
}

/// Waits until the replica has every write the master made.
pub async fn wait_for_replica(master: &Engine) {
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(10_000)
        .query_async(&mut master.conn())
        .await
        .unwrap();
    assert_eq!(acked, 1);
}

async fn a_replica_converges_on_the_masters_state(backend: Backend) {
    let master = Engine::start(backend).await;
    // A plain replica even for the module: effects replication needs nothing of it.
    let replica = start_replica(&master, false).await;
    // Short holds: the module's timer expires carts on the master while traffic runs.
    master.ok("FLASH.SALE s HOLD 80").await;
    master.ok("FLASH.LOAD s 7 40 14 40 21 40").await;
    run_workload(&master, 6, 250).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    master.client.expire("s", 10_000).await.unwrap();
    wait_for_replica(&master).await;
    let mut replica_conn = replica
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let on_master = master.dump("s").await;
    assert!(
        on_master.len() > 20,
        "the workload did too little: {}",
        on_master.len()
    );
    assert_eq!(dump(&mut replica_conn, "s").await, on_master);
    assert_eq!(
        digest(&mut replica_conn).await,
        digest(&mut master.conn()).await
    );
    master.ledger("s").await;
}

async fn a_replica_expires_nothing_until_promoted(backend: Backend) {
    let mut master = Engine::start(backend).await;
    let replica = start_replica(&master, backend == Backend::Module).await;
    master.ok("FLASH.SALE s HOLD 300").await;
    master.ok("FLASH.LOAD s 14 10").await;
    master.client.reserve("s", "c1", "u1", 14, 4).await.unwrap();
    wait_for_replica(&master).await;
    master.server.kill();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let replica = Engine::attach(backend, replica).await;
    let cart = replica.client.cart("s", "c1").await.unwrap();
    assert_eq!(
        cart.state,
        CartState::Held,
        "a replica must not expire holds on its own"
    );
    assert!(replica.server_now_ms().await > cart.deadline_ms);
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut replica.conn())
        .await
        .unwrap();
    if backend == Backend::Lua {
        assert_eq!(replica.client.expire("s", 100).await.unwrap(), 1);
    }
    // The module learns of its promotion on its next timer tick and then scans for sales: a
    // few ticks when the machine is idle, longer on a loaded CI machine.
    let released = eventually(Duration::from_secs(3), || async {
        replica.client.cart("s", "c1").await.unwrap().state == CartState::Expired
    })
    .await;
    assert!(
        released,
        "the promoted replica did not release the overdue hold"
    );
    assert_eq!(replica.ledger("s").await[0].1.available, 10);
}

async fn an_aof_restart_restores_the_exact_state(backend: Backend) {
    let e = with_aof(backend).await;
    // Long holds: nothing falls due across the restart, so the states must be identical.
    e.ok("FLASH.SALE s HOLD 600000").await;
    e.ok("FLASH.LOAD s 7 40 14 40 21 40").await;
    run_workload(&e, 4, 200).await;
    let before = e.dump("s").await;
    let digest_before = digest(&mut e.conn()).await;
    let server = e.server.crash_and_restart(Duration::ZERO).unwrap();
    let e = Engine::attach(backend, server).await;
    assert_eq!(e.dump("s").await, before);
    assert_eq!(digest(&mut e.conn()).await, digest_before);
    e.ledger("s").await;
}

async fn holds_due_while_the_server_was_down_are_released_on_return(backend: Backend) {
    let e = with_aof(backend).await;
    e.ok("FLASH.SALE s HOLD 200").await;
    e.ok("FLASH.LOAD s 14 10").await;
    for cart in ["a", "b", "c"] {
        e.client.reserve("s", cart, "u1", 14, 2).await.unwrap();
    }
    e.client.buy("s", "o1", "u2", 14, 1).await.unwrap();
    let server = e
        .server
        .crash_and_restart(Duration::from_millis(400))
        .unwrap();
    let e = Engine::attach(backend, server).await;
    if backend == Backend::Lua {
        assert_eq!(e.client.expire("s", 100).await.unwrap(), 3);
    }
    let released = eventually(Duration::from_millis(300), || async {
        e.client.info("s").await.unwrap().held_carts == 0
    })
    .await;
    assert!(
        released,
        "overdue holds were not released after the restart"
    );
    let ledger = e.ledger("s").await;
    assert_eq!((ledger[0].1.available, ledger[0].1.pending), (9, 1));
    assert_eq!(
        e.client.cart("s", "o1").await.unwrap().state,
        CartState::CheckedOut
    );
}

/// A master that became a replica and then a master again: the writes replicated to it in
/// between (a hold, here) told its timer nothing, so on promotion it looks at every sale it
/// knew, not only at the ones the scan finds new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_demoted_and_promoted_again_releases_the_holds_replicated_to_it() {
    let first = Engine::start(Backend::Module).await;
    first.ok("FLASH.SALE s HOLD 60000").await;
    first.ok("FLASH.LOAD s 14 10").await;
    // The timer's first look at `s`: nothing held, nothing planned for it.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let second = Engine::start(Backend::Module).await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(second.server.port)
        .query_async(&mut first.conn())
        .await
        .unwrap();
    let linked = eventually(Duration::from_secs(10), || async {
        let info: Result<String, _> = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut first.conn())
            .await;
        info.is_ok_and(|info| info.contains("master_link_status:up"))
    })
    .await;
    assert!(
        linked,
        "the demoted master never linked:\n{}",
        first.server.log()
    );
    second.ok("FLASH.SALE s HOLD 300").await;
    second.ok("FLASH.LOAD s 14 10").await;
    second.client.reserve("s", "c1", "u1", 14, 4).await.unwrap();
    wait_for_replica(&second).await;
    let mut second = second;
    second.server.kill();

    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut first.conn())
        .await
        .unwrap();
    let released = eventually(Duration::from_secs(3), || async {
        first.client.cart("s", "c1").await.unwrap().state == CartState::Expired
    })
    .await;
    assert!(
        released,
        "the promoted server did not release the replicated hold"
    );
    assert_eq!(first.ledger("s").await[0].1.available, 10);
}

/// `DurableWrites` (the edge's `--durability replica`): a checkout or buy answered Ok is on
/// the replica already; with no replica to confirm it, the answer says so (NotDurable), and
/// the order stands on the master all the same.
async fn a_durable_write_answers_once_a_replica_has_it(backend: Backend) {
    let e = Engine::start(backend).await;
    e.ok("FLASH.SALE s HOLD 60000").await;
    e.ok("FLASH.LOAD s 14 10").await;
    let replica = start_replica(&e, backend == Backend::Module).await;
    let url = format!("redis://127.0.0.1:{}", e.server.port);
    let durability = Durability {
        replicas: 1,
        timeout: Duration::from_secs(5),
    };
    let durable = DurableWrites::connect(&url, 2, durability).await.unwrap();
    let mut on_replica = replica
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let orders_on_replica = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        async move {
            let count: i64 = redis::cmd("XLEN")
                .arg("flash:{s}:orders")
                .query_async(&mut conn)
                .await
                .unwrap();
            count
        }
    };

    e.client.reserve("s", "c1", "u1", 14, 2).await.unwrap();
    let order = durable.checkout("s", "c1", "u1").await.unwrap();
    assert_eq!(order.units, 2);
    // Asked right after the answer, with no wait of ours: the replica had it first.
    assert_eq!(orders_on_replica(&mut on_replica).await, 1);
    durable.buy("s", "b1", "u2", 14, 1).await.unwrap();
    assert_eq!(orders_on_replica(&mut on_replica).await, 2);

    drop(replica);
    e.client.reserve("s", "c2", "u3", 14, 1).await.unwrap();
    let impatient = Durability {
        replicas: 1,
        timeout: Duration::from_millis(300),
    };
    let durable = DurableWrites::connect(&url, 1, impatient).await.unwrap();
    match durable.checkout("s", "c2", "u3").await {
        Err(ClientError::NotDurable {
            order,
            acked,
            wanted,
        }) => {
            assert_eq!((order.order.as_str(), acked, wanted), ("c2", 0, 1));
        }
        other => panic!("expected NotDurable, got {other:?}"),
    }
    let cart = e.client.cart("s", "c2").await.unwrap();
    assert_eq!(
        cart.state,
        CartState::CheckedOut,
        "the order stands on the master"
    );
}
