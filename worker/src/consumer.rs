//! The consumer: the sale's order stream, read through a consumer group in batches, applied
//! to PostgreSQL, settled in the engine, acknowledged.
//!
//! Order of effects for a batch: database commit, then FLASH.SETTLE for each order, then
//! XACK. A crash anywhere in between leaves the entries pending for this consumer (or, if it
//! never comes back, for whoever claims them); processing them again finds the orders in the
//! database with their verdicts (a replay changes nothing), settles again (idempotent) and
//! acknowledges. No order is lost, written twice or settled twice.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flash_client::{ClientError, FlashClient, Verdict};
use flash_core::keys::SaleKeys;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
use tokio_postgres::NoTls;
use tracing::{info, warn};

use crate::apply::{Outcome, apply_batch};
use crate::stream;

/// A worker's settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub redis_url: String,
    pub database_url: String,
    pub sale: String,
    /// The consumer group every worker of the sale shares.
    pub group: String,
    /// This worker's name in the group: unique per process.
    pub consumer: String,
    pub batch_size: usize,
    /// How long one XREADGROUP waits for new entries.
    pub block: Duration,
    /// Entries pending this long in another consumer are taken over (it is presumed dead).
    pub claim_idle: Duration,
    /// An entry delivered this often without being acknowledged goes to the dead letters.
    pub max_deliveries: usize,
    /// How often to run FLASH.EXPIRE when the engine is the Lua twin (the module expires by
    /// itself).
    pub expire_every: Duration,
}

impl Config {
    pub fn new(redis_url: &str, database_url: &str, sale: &str, consumer: &str) -> Config {
        Config {
            redis_url: redis_url.to_owned(),
            database_url: database_url.to_owned(),
            sale: sale.to_owned(),
            group: "flash-workers".to_owned(),
            consumer: consumer.to_owned(),
            batch_size: 256,
            block: Duration::from_millis(500),
            claim_idle: Duration::from_secs(30),
            max_deliveries: 5,
            expire_every: Duration::from_millis(100),
        }
    }
}

/// What the worker did, for logs and the edge's metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub confirmed: AtomicU64,
    pub rejected: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub batches: AtomicU64,
    /// Sum of batch latencies (read to acknowledged), in microseconds.
    pub batch_micros: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("engine: {0}")]
    Engine(#[from] ClientError),
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// Runs until `shutdown` resolves. Transient Redis or database errors are logged and
/// retried with backoff; the worker never exits on them.
pub async fn run(config: Config, counters: Arc<Counters>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = Session::connect(&config, counters.clone());
        let result = tokio::select! {
            _ = &mut shutdown => return,
            result = async {
                let mut session = session.await?;
                session.serve().await
            } => result,
        };
        if let Err(error) = result {
            warn!(%error, retry_in_ms = backoff.as_millis() as u64, "worker: retrying");
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

struct Session {
    config: Config,
    counters: Arc<Counters>,
    keys: SaleKeys,
    engine: FlashClient,
    redis: MultiplexedConnection,
    db: tokio_postgres::Client,
    last_expire: Instant,
}

impl Session {
    async fn connect(config: &Config, counters: Arc<Counters>) -> Result<Session, WorkerError> {
        let engine = FlashClient::connect(&config.redis_url).await?;
        let redis = engine.connection();
        let (db, connection) = tokio_postgres::connect(&config.database_url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                warn!(%error, "worker: database connection closed");
            }
        });
        Ok(Session {
            config: config.clone(),
            counters,
            keys: SaleKeys::new(&config.sale),
            engine,
            redis,
            db,
            last_expire: Instant::now(),
        })
    }

    async fn serve(&mut self) -> Result<(), WorkerError> {
        self.ensure_group().await?;
        // First what this consumer was given before a crash: it was read, maybe applied,
        // maybe settled, but not acknowledged.
        loop {
            let pending = self.read("0", None).await?;
            if pending.is_empty() {
                break;
            }
            self.process(pending, true).await?;
        }
        info!(sale = %self.config.sale, consumer = %self.config.consumer, "worker: consuming");
        loop {
            let claimed = self.claim().await?;
            if !claimed.is_empty() {
                self.process(claimed, true).await?;
            }
            let fresh = self.read(">", Some(self.config.block)).await?;
            if !fresh.is_empty() {
                self.process(fresh, false).await?;
            }
            if self.engine.backend() == flash_client::Backend::Lua
                && self.last_expire.elapsed() >= self.config.expire_every
            {
                self.engine.expire(&self.config.sale, 1000).await?;
                self.last_expire = Instant::now();
            }
        }
    }

    async fn ensure_group(&mut self) -> Result<(), WorkerError> {
        let created: redis::RedisResult<()> = self
            .redis
            .xgroup_create_mkstream(self.keys.orders(), &self.config.group, "0")
            .await;
        match created {
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    async fn read(
        &mut self,
        from: &str,
        block: Option<Duration>,
    ) -> Result<Vec<StreamId>, WorkerError> {
        let mut options = StreamReadOptions::default()
            .group(&self.config.group, &self.config.consumer)
            .count(self.config.batch_size);
        if let Some(block) = block {
            options = options.block(block.as_millis() as usize);
        }
        let reply: Option<StreamReadReply> = self
            .redis
            .xread_options(&[self.keys.orders()], &[from], &options)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .collect())
    }

    /// Takes over entries idle too long in other (dead) consumers.
    async fn claim(&mut self) -> Result<Vec<StreamId>, WorkerError> {
        let reply: redis::streams::StreamAutoClaimReply = self
            .redis
            .xautoclaim_options(
                self.keys.orders(),
                &self.config.group,
                &self.config.consumer,
                self.config.claim_idle.as_millis() as usize,
                "0-0",
                StreamAutoClaimOptions::default().count(self.config.batch_size),
            )
            .await?;
        Ok(reply.claimed)
    }

    /// Delivery counts of entries read again (own pending, or claimed).
    /// Delivery counts of entries read again (own pending, or just claimed: both are this
    /// consumer's now), in one XPENDING over their id range.
    async fn deliveries(&mut self, ids: &[&str]) -> Result<HashMap<String, usize>, WorkerError> {
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            return Ok(HashMap::new());
        };
        let reply: redis::streams::StreamPendingCountReply = self
            .redis
            .xpending_consumer_count(
                self.keys.orders(),
                &self.config.group,
                *first,
                *last,
                ids.len(),
                &self.config.consumer,
            )
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|pending| (pending.id, pending.times_delivered))
            .collect())
    }

    async fn process(
        &mut self,
        entries: Vec<StreamId>,
        redelivered: bool,
    ) -> Result<(), WorkerError> {
        let started = Instant::now();
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let deliveries = if redelivered {
            self.deliveries(&ids).await?
        } else {
            HashMap::new()
        };
        let mut valid = Vec::new();
        let mut dead: Vec<(usize, String)> = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let fields = stream::fields(&entry.map);
            if deliveries
                .get(&entry.id)
                .is_some_and(|n| *n > self.config.max_deliveries)
            {
                dead.push((
                    index,
                    format!("delivered more than {} times", self.config.max_deliveries),
                ));
                continue;
            }
            match stream::parse(&entry.id, &fields) {
                Ok(order) => valid.push((index, order)),
                Err(reason) => dead.push((index, reason)),
            }
        }
        let orders: Vec<_> = valid.iter().map(|(_, order)| order.clone()).collect();
        let outcomes = apply_batch(&mut self.db, &self.config.sale, &orders).await?;
        let mut verdicts = Vec::with_capacity(valid.len());
        for ((index, order), outcome) in valid.iter().zip(outcomes) {
            match outcome {
                Outcome::Confirmed => verdicts.push((*index, order, Verdict::Ok)),
                Outcome::Rejected => verdicts.push((*index, order, Verdict::Reject)),
                Outcome::Invalid(reason) => dead.push((*index, reason)),
            }
        }
        // All verdicts in one pipeline: one round trip for the batch.
        let pairs: Vec<(&str, Verdict)> = verdicts
            .iter()
            .map(|(_, order, verdict)| (order.order.as_str(), *verdict))
            .collect();
        let settled = self.engine.settle_many(&self.config.sale, &pairs).await?;
        for ((index, _, verdict), result) in verdicts.iter().zip(settled) {
            match result {
                Ok(_) => {
                    let counter = match verdict {
                        Verdict::Ok => &self.counters.confirmed,
                        Verdict::Reject => &self.counters.rejected,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                // The engine refused the verdict (the cart is gone, or was settled otherwise
                // by hand): nothing to retry, so it goes where an operator will see it.
                Err(ClientError::Flash(error)) => dead.push((*index, format!("settle: {error}"))),
                Err(other) => return Err(other.into()),
            }
        }
        for (index, reason) in &dead {
            self.dead_letter(&entries[*index], reason).await?;
        }
        let _: i64 = self
            .redis
            .xack(self.keys.orders(), &self.config.group, &ids)
            .await?;
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters
            .batch_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn dead_letter(&mut self, entry: &StreamId, reason: &str) -> Result<(), WorkerError> {
        warn!(id = %entry.id, %reason, "worker: dead-lettered");
        let mut fields: Vec<(String, String)> = stream::fields(&entry.map).into_iter().collect();
        fields.sort();
        fields.push(("source_id".to_owned(), entry.id.clone()));
        fields.push(("reason".to_owned(), reason.to_owned()));
        let _: String = self
            .redis
            .xadd(self.keys.dead_letters(), "*", &fields)
            .await?;
        self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
