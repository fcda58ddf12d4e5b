//! What every engine test needs: a server with the chosen backend, a client, raw command
//! lines, and a full dump of a sale's keys to prove "nothing changed" and "same state".

use std::collections::BTreeMap;
use std::time::Duration;

use flash_client::FlashConnection;
use flash_client::{Backend, ClientError, FlashClient, SkuUnits};
use flash_core::ErrorCode;
use flash_tests::{RedisServer, ServerOptions, module_path};
use redis::Value;
use redis::aio::ConnectionLike;

pub(crate) use flash_tests::both_backends;

pub fn options(backend: Backend) -> ServerOptions {
    ServerOptions {
        module: match backend {
            Backend::Module => Some(module_path().expect("the module is built")),
            Backend::Lua => None,
        },
        ..ServerOptions::default()
    }
}

pub struct Engine {
    pub server: RedisServer,
    pub client: FlashClient,
}

impl Engine {
    pub async fn start(backend: Backend) -> Engine {
        Engine::start_with(backend, options(backend)).await
    }

    pub async fn start_with(backend: Backend, options: ServerOptions) -> Engine {
        let server = RedisServer::start(options).expect("redis-server starts");
        Engine::attach(backend, server).await
    }

    pub async fn attach(backend: Backend, server: RedisServer) -> Engine {
        let client = FlashClient::connect(&server.url()).await.expect("connect");
        assert_eq!(client.backend(), backend, "backend detection");
        Engine { server, client }
    }

    /// A second, independent connection.
    pub async fn client(&self) -> FlashClient {
        FlashClient::connect(&self.server.url())
            .await
            .expect("connect")
    }

    pub fn conn(&self) -> FlashConnection {
        self.client.connection()
    }

    /// Runs a command line such as `FLASH.RESERVE s c1 u1 14 2`.
    pub async fn run(&self, line: &str) -> Result<Value, ClientError> {
        let mut words = line.split_whitespace();
        let command = words.next().unwrap_or_default();
        let args: Vec<String> = words.map(str::to_owned).collect();
        self.client.call(command, &args).await
    }

    pub async fn ok(&self, line: &str) -> Value {
        match self.run(line).await {
            Ok(value) => value,
            Err(error) => panic!("{line}: {error}"),
        }
    }

    /// Runs a line that must fail; returns the error line `CODE message`.
    pub async fn refused(&self, line: &str) -> (ErrorCode, String) {
        match self.run(line).await {
            Ok(value) => panic!("{line}: expected a refusal, got {value:?}"),
            Err(ClientError::Flash(error)) => (error.code, error.to_line()),
            Err(other) => panic!("{line}: expected an engine refusal, got {other}"),
        }
    }

    /// Every key of the sale with its type and full contents, in a stable order.
    pub async fn dump(&self, sale: &str) -> BTreeMap<String, String> {
        dump(&mut self.conn(), sale).await
    }

    pub async fn ledger(&self, sale: &str) -> Vec<(i64, SkuUnits)> {
        let info = self.client.info(sale).await.expect("info");
        for (sku, units) in &info.skus {
            assert!(units.is_conserved(), "sku {sku}: {units:?}");
            assert!(
                units.available >= 0 && units.held >= 0 && units.pending >= 0,
                "{units:?}"
            );
        }
        info.skus
    }

    /// The server's clock (unix ms).
    pub async fn server_now_ms(&self) -> i64 {
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut self.conn())
            .await
            .unwrap();
        secs * 1000 + micros / 1000
    }
}

pub async fn dump(conn: &mut impl ConnectionLike, sale: &str) -> BTreeMap<String, String> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("flash:{{{sale}}}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut out = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(conn)
            .await
            .unwrap();
        let contents = match kind.as_str() {
            "hash" => {
                let map: BTreeMap<String, String> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(conn)
                    .await
                    .unwrap();
                format!("{map:?}")
            }
            "list" => {
                let entries: Vec<String> = redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(conn)
                    .await
                    .unwrap();
                format!("{entries:?}")
            }
            "string" => {
                let value: String = redis::cmd("GET").arg(&key).query_async(conn).await.unwrap();
                format!("{value:?}")
            }
            // Members with their scores, lowest first: the waiting room's sets.
            "zset" => {
                let members: Vec<(String, String)> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(conn)
                    .await
                    .unwrap();
                format!("{members:?}")
            }
            "stream" => {
                let entries: Value = redis::cmd("XRANGE")
                    .arg(&key)
                    .arg("-")
                    .arg("+")
                    .query_async(conn)
                    .await
                    .unwrap();
                format!("{entries:?}")
            }
            other => {
                let value: Value = redis::cmd("DUMP")
                    .arg(&key)
                    .query_async(conn)
                    .await
                    .unwrap();
                format!("{other}: {value:?}")
            }
        };
        out.insert(key, format!("{kind} {contents}"));
    }
    out
}

/// Polls `check` every 10 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
