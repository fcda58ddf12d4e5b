//! [`ShardSubscriber`]: a bare SSUBSCRIBE, for tests that check the engine's stock messages
//! byte for byte (flash-client's `StockEvents` parses them). redis-rs's `aio::PubSub` has no
//! SSUBSCRIBE, so this is a RESP3 connection whose pushes come through a channel.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc;

pub struct ShardSubscriber {
    // Held: dropping it closes the connection.
    _conn: MultiplexedConnection,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
}

impl ShardSubscriber {
    /// Subscribes to the shard channel `channel` on the server `client` points at.
    pub async fn start(client: &redis::Client, channel: &str) -> redis::RedisResult<Self> {
        let info = client.get_connection_info().clone();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3))?;
        let (sender, pushes) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new().set_push_sender(sender);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let _: Value = redis::cmd("SSUBSCRIBE")
            .arg(channel)
            .query_async(&mut conn)
            .await?;
        Ok(ShardSubscriber {
            _conn: conn,
            pushes,
        })
    }

    /// The next message's payload, if one comes within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let push = tokio::time::timeout_at(deadline, self.pushes.recv())
                .await
                .ok()??;
            if push.kind != PushKind::SMessage {
                continue;
            }
            if let Some(Value::BulkString(payload)) = push.data.into_iter().nth(1) {
                return Some(String::from_utf8_lossy(&payload).into_owned());
            }
        }
    }

    /// Every message until none came for `quiet`.
    pub async fn until_quiet(&mut self, quiet: Duration) -> Vec<String> {
        let mut got = Vec::new();
        while let Some(message) = self.next(quiet).await {
            got.push(message);
        }
        got
    }
}
