//! The module and the Lua twin answer one script of commands with the same replies, step by
//! step: values, shapes and error lines. Only clock-derived values (deadlines, stream ids)
//! are masked, since the two servers read different clocks.

use flash_client::{Backend, ClientError, FlashClient};
use flash_tests::{ClusterOptions, RedisCluster, module_path};
use redis::Value;

use crate::common::Engine;

const SCRIPT: &[&str] = &[
    "FLASH.SALE p HOLD 60000 LIMIT 6",
    "FLASH.SALE p HOLD x",
    "FLASH.LOAD p 1 5 2 3 3 0",
    "FLASH.AVAILABLE p 1 2 3 4",
    "FLASH.RESERVE p c1 alice 1 2",
    "FLASH.RESERVE p c1 alice 2",
    "FLASH.RESERVE p c1 bob 2",
    "FLASH.RESERVE p c2 bob 3",
    "FLASH.RESERVE p c2 bob 1 4",
    "FLASH.RESERVE p c2 alice 1 5",
    "FLASH.RELEASE p c1 alice 2",
    "FLASH.RELEASE p c1 alice 2",
    "FLASH.CART p c1",
    "FLASH.CHECKOUT p c1 alice",
    "FLASH.CHECKOUT p c1 alice",
    "FLASH.CHECKOUT p c3 alice",
    "FLASH.BUY p o1 bob 2 2",
    "FLASH.BUY p o1 bob 2 2",
    "FLASH.SETTLE p c1 OK",
    "FLASH.SETTLE p o1 REJECT",
    "FLASH.SETTLE p o1 OK",
    "FLASH.CART p o1",
    "FLASH.LOAD p TOTAL 1 9",
    "FLASH.LOAD p total 2 0",
    "FLASH.EXPIRE p",
    "FLASH.EXPIRE p COUNT",
    "FLASH.INFO p",
    "FLASH.INFO nope",
    "FLASH.RESERVE p c9 carol 1 1 1",
    "FLASH.LOAD p 1 -5",
];

/// Deadlines and stream ids depend on each server's clock.
fn mask(value: Value) -> Value {
    match value {
        Value::Int(n) if n > 1_000_000_000_000 => Value::Int(0),
        Value::BulkString(b)
            if b.contains(&b'-') && b.iter().all(|c| c.is_ascii_digit() || *c == b'-') =>
        {
            Value::BulkString(b"<id>".to_vec())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(mask).collect()),
        other => other,
    }
}

async fn replies(backend: Backend) -> Vec<String> {
    let e = Engine::start(backend).await;
    replies_of(&e.client).await
}

/// The script's replies from `client`, masked, one line each.
async fn replies_of(client: &FlashClient) -> Vec<String> {
    let mut out = Vec::new();
    for line in SCRIPT {
        let mut words = line.split_whitespace();
        let command = words.next().unwrap_or_default();
        let args: Vec<String> = words.map(str::to_owned).collect();
        let reply: Result<Value, ClientError> = client.call(command, &args).await;
        let reply = match reply {
            Ok(value) => format!("{:?}", mask(value)),
            Err(error) => format!("error {error}"),
        };
        out.push(format!("{line} => {reply}"));
    }
    out
}

/// The engine's core cases on a 3-master Redis Cluster, through the cluster client, answer
/// as on one server: the module on every node, and the Lua twin on plain nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_replies_as_one_server_on_both_backends() {
    let single = replies(Backend::Module).await;
    for backend in [Backend::Module, Backend::Lua] {
        let cluster = RedisCluster::start(ClusterOptions {
            replicas_per_master: 0,
            module: (backend == Backend::Module).then(|| module_path().unwrap()),
            ..ClusterOptions::default()
        })
        .unwrap();
        let client = FlashClient::connect(&cluster.redis_url()).await.unwrap();
        assert_eq!(client.backend(), backend);
        let on_cluster = replies_of(&client).await;
        for (one, many) in single.iter().zip(&on_cluster) {
            assert_eq!(one, many, "{backend:?} on a cluster");
        }
        assert_eq!(single.len(), on_cluster.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_and_lua_twin_reply_alike() {
    let module = replies(Backend::Module).await;
    let lua = replies(Backend::Lua).await;
    for (m, l) in module.iter().zip(&lua) {
        assert_eq!(m, l);
    }
    assert!(module.iter().any(|line| line.contains("error SOLDOUT")));
}
