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
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flash_client::{
    ClientError, Delivery, Durability, FlashClient, FlashConnection, OrderStream, Verdict,
};
use flash_core::ErrorCode;
use flash_core::args::DEFAULT_ADMIT_COUNT;
use tokio_postgres::NoTls;
use tracing::{info, warn};

use crate::apply::{BatchOrder, BatchWriter, Outcome};

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
    /// How often to run FLASH.ADMIT (the sale's waiting room) when the engine is the Lua twin
    /// (the module admits by itself, on a timer of the same period).
    pub admit_every: Duration,
    /// With `--durability replica`: a batch is written to the database only once this many
    /// replicas have its entries (WAIT). Without it, a failover can take back an order the
    /// database already has: the promoted master never heard of it and sells its units again.
    pub durability: Option<Durability>,
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
            admit_every: Duration::from_millis(50),
            durability: None,
        }
    }
}

/// A consumer name unique to this process: `<prefix><host>-<pid>`. A restarted process gets
/// a new name; its old entries are claimed after `claim_idle` (or pass `--consumer` to
/// restart under the old name and finish them at once).
pub fn default_consumer_name(prefix: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{prefix}{}-{}", host.trim(), std::process::id())
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
    #[error("engine: {0}")]
    Engine(#[from] ClientError),
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Apply(#[from] crate::apply::ApplyError),
    /// `--durability replica` and no replica confirmed the batch's entries in time, while one
    /// could be promoted: they stay pending and are read again (a failover now could take
    /// them back).
    #[error("{acked} of {wanted} replicas have the batch's entries; waiting for them")]
    NotReplicated { acked: i64, wanted: u32 },
}

/// Runs until `shutdown` resolves. Transient Redis or database errors are logged and
/// retried with backoff; the worker never exits on them. On shutdown a batch being applied
/// is finished (committed, settled, acknowledged) before returning; a wait for new entries
/// is simply abandoned.
pub async fn run(config: Config, counters: Arc<Counters>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = async {
            let mut session = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                session = Session::connect(&config, counters.clone()) => session?,
            };
            session.serve(shutdown.as_mut()).await
        }
        .await;
        let Err(error) = result else {
            return;
        };
        warn!(%error, retry_in_ms = backoff.as_millis() as u64, "worker: retrying");
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connected life of a worker: it ends on the first Redis or database error, and
/// [`run`] starts another.
///
/// Batches flow through two stages that overlap: while batch N+1 is applied to PostgreSQL
/// (the [`BatchWriter`]), batch N is settled and acknowledged in Redis (the [`Finisher`]).
/// Each batch still goes commit, then settle, then XACK, so a crash anywhere leaves the
/// same replayable state as without the overlap.
struct Session {
    stream: StreamReader,
    writer: BatchWriter,
    finisher: Finisher,
    last_expire: Instant,
    last_claim: Option<Instant>,
    /// The Lua twin's waiting room, run apart from the batches ([`admit_loop`]); stopped
    /// when the session ends.
    _admission: Option<AbortOnDrop>,
}

/// A spawned task, aborted when this is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the sale's stream through the consumer group.
struct StreamReader {
    config: Config,
    stream: OrderStream,
    /// How many replicas could take over from the stream's master, and when that was read
    /// (with `--durability replica`).
    promotable: Option<(usize, Instant)>,
}

/// How long a count of the replicas that could take over is believed.
const PROMOTABLE_RECHECK: Duration = Duration::from_secs(1);

/// A batch applied to the database, waiting to be settled and acknowledged.
struct Applied {
    entries: Vec<Delivery>,
    /// Entry index, order, verdict.
    verdicts: Vec<(usize, String, Verdict)>,
    /// Entry index, reason.
    dead: Vec<(usize, String)>,
    started: Instant,
}

/// Settles applied batches in the engine, dead-letters what cannot be processed, acknowledges.
struct Finisher {
    sale: String,
    engine: FlashClient,
    stream: OrderStream,
    counters: Arc<Counters>,
}

impl Session {
    async fn connect(config: &Config, counters: Arc<Counters>) -> Result<Session, WorkerError> {
        // With durability, the stream is read and WAITed on over a connection whose calls are
        // never retried: a WAIT that the cluster client sent again after the master died
        // would run on the promoted node, which never had the entries, and could let them
        // through. A failed call ends the session instead; the next reads the new master.
        let engine = match config.durability {
            None => FlashClient::connect(&config.redis_url).await?,
            Some(_) => {
                let conn = FlashConnection::connect_unretried(&config.redis_url).await?;
                FlashClient::with_connection(conn).await?
            }
        };
        let (db, connection) = tokio_postgres::connect(&config.database_url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                warn!(%error, "worker: database connection closed");
            }
        });
        let stream = OrderStream::new(&engine, &config.sale, &config.group, &config.consumer);
        // The module admits by itself; the Lua twin needs a caller, as often as the module's
        // timer would. Its own task: the batches' loop waits up to `block` for new entries,
        // and the waiting room must move meanwhile.
        let admission = (engine.backend() == flash_client::Backend::Lua).then(|| {
            let task = tokio::spawn(admit_loop(
                engine.clone(),
                config.sale.clone(),
                config.admit_every,
            ));
            AbortOnDrop(task.abort_handle())
        });
        Ok(Session {
            stream: StreamReader {
                config: config.clone(),
                stream: stream.clone(),
                promotable: None,
            },
            writer: BatchWriter::new(db).await?,
            finisher: Finisher {
                sale: config.sale.clone(),
                engine,
                stream,
                counters,
            },
            last_expire: Instant::now(),
            last_claim: None,
            _admission: admission,
        })
    }

    /// Consumes until `shutdown` resolves (then `Ok`) or the first error.
    async fn serve(
        &mut self,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), WorkerError> {
        self.stream.stream.create_group().await?;
        // First what this consumer was given before a crash: it was read, maybe applied,
        // maybe settled, but not acknowledged.
        loop {
            let pending = tokio::select! {
                biased;
                _ = &mut shutdown => return Ok(()),
                pending = self.stream.stream.read_own_pending(self.stream.config.batch_size) => pending?,
            };
            if pending.is_empty() {
                break;
            }
            self.stream.wait_replicated(&pending, true).await?;
            let applied = self.stream.apply(&mut self.writer, pending, true).await?;
            self.finisher.finish(applied).await?;
        }
        let config = self.stream.config.clone();
        info!(sale = %config.sale, consumer = %config.consumer, "worker: consuming");
        let mut in_flight: Option<Applied> = None;
        loop {
            // Entries a dropped read had already been given stay pending for this consumer:
            // its next start (or a claim) picks them up.
            let next = tokio::select! {
                biased;
                _ = &mut shutdown => None,
                next = self.next_batch(in_flight.is_some()) => Some(next?),
            };
            let Some((entries, redelivered)) = next else {
                if let Some(applied) = in_flight.take() {
                    self.finisher.finish(applied).await?;
                }
                return Ok(());
            };
            if entries.is_empty() {
                if let Some(applied) = in_flight.take() {
                    self.finisher.finish(applied).await?;
                }
            } else {
                self.stream.wait_replicated(&entries, false).await?;
                let previous = in_flight.take();
                let (applied, ()) = tokio::try_join!(
                    self.stream.apply(&mut self.writer, entries, redelivered),
                    async {
                        match previous {
                            Some(previous) => self.finisher.finish(previous).await,
                            None => Ok(()),
                        }
                    },
                )?;
                in_flight = Some(applied);
            }
            if self.finisher.engine.backend() == flash_client::Backend::Lua
                && self.last_expire.elapsed() >= config.expire_every
            {
                // Each call stops after about a millisecond of work: a backlog takes several
                // calls, for at most half the period, so the stream keeps moving.
                let round = Instant::now();
                loop {
                    let released = match self.finisher.engine.expire(&config.sale, 1000).await {
                        Ok(released) => released,
                        // Not made yet (a worker may start before FLASH.SALE), or deleted:
                        // nothing can be held in it, so nothing to release.
                        Err(ClientError::Flash(error)) if error.code == ErrorCode::NoSale => 0,
                        Err(error) => return Err(error.into()),
                    };
                    if released == 0 || round.elapsed() >= config.expire_every / 2 {
                        break;
                    }
                }
                self.last_expire = Instant::now();
            }
        }
    }

    /// The next batch and whether it was delivered before (claimed from a dead consumer).
    /// With a batch still to settle (`settling`), it does not wait for new entries.
    async fn next_batch(&mut self, settling: bool) -> Result<(Vec<Delivery>, bool), WorkerError> {
        let config = &self.stream.config;
        if self.last_claim.is_none_or(|at| at.elapsed() >= CLAIM_EVERY) {
            self.last_claim = Some(Instant::now());
            let claimed = self
                .stream
                .stream
                .claim_idle(config.claim_idle, config.batch_size)
                .await?;
            if !claimed.is_empty() {
                return Ok((claimed, true));
            }
        }
        let block = (!settling).then_some(config.block);
        let fresh = self
            .stream
            .stream
            .read_new(config.batch_size, block)
            .await?;
        Ok((fresh, false))
    }
}

/// Runs FLASH.ADMIT on `sale` every `every`, until aborted, for the Lua twin (the worker's
/// sessions, and `flash simulate --queue` on a server without the module). A sale without
/// a waiting room answers at once with nothing to do. A failure (Redis unreachable, a key of
/// another type) is logged when it starts and when it ends, and the loop goes on: the
/// session's own calls notice a lost connection. A sale not made yet (NOSALE) is no failure.
pub async fn admit_loop(engine: FlashClient, sale: String, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        match engine.admit(&sale, DEFAULT_ADMIT_COUNT).await {
            Ok(_) => {
                if failing {
                    info!(%sale, "worker: FLASH.ADMIT works again");
                }
                failing = false;
            }
            Err(ClientError::Flash(error)) if error.code == ErrorCode::NoSale => failing = false,
            Err(error) => {
                if !failing {
                    warn!(%sale, %error, "worker: FLASH.ADMIT failed; trying again");
                }
                failing = true;
            }
        }
    }
}

/// How often a worker looks for entries stuck in dead consumers.
const CLAIM_EVERY: Duration = Duration::from_secs(1);

impl StreamReader {
    /// With `--durability replica`, returns once the replicas that could take over from the
    /// master have `entries` (or fails with [`WorkerError::NotReplicated`]): an entry a
    /// failover can take back must not reach the database. WAIT counts the connection's own
    /// writes: reading new entries or claiming them is one (the group's change is replicated
    /// after the entries), re-reading this consumer's own pending ones is not, so those are
    /// first claimed again by this consumer (`reread`: an XCLAIM that changes nothing but is
    /// replicated).
    ///
    /// A master with no replica that could be promoted (a master just promoted whose old
    /// master is dead, a single server) has nobody to lose the entries to: they are written
    /// without a WAIT, which would only block for its timeout. That count is read at most
    /// every [`PROMOTABLE_RECHECK`], and again at once when a WAIT falls short.
    async fn wait_replicated(
        &mut self,
        entries: &[Delivery],
        reread: bool,
    ) -> Result<(), WorkerError> {
        let Some(durability) = self.config.durability else {
            return Ok(());
        };
        let promotable = match self.promotable {
            Some((count, read_at)) if read_at.elapsed() < PROMOTABLE_RECHECK => count,
            _ => self.read_promotable().await?,
        };
        if promotable == 0 {
            return Ok(());
        }
        if reread {
            let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
            self.stream.reclaim(&ids).await?;
        }
        let acked = self.stream.wait_replicated(durability).await?;
        if acked >= i64::from(durability.replicas) || self.read_promotable().await? == 0 {
            return Ok(());
        }
        Err(WorkerError::NotReplicated {
            acked,
            wanted: durability.replicas,
        })
    }

    async fn read_promotable(&mut self) -> Result<usize, WorkerError> {
        let count = self.stream.promotable_replicas().await?;
        self.promotable = Some((count, Instant::now()));
        Ok(count)
    }

    /// Parses a batch and applies its valid orders in one transaction.
    async fn apply(
        &mut self,
        writer: &mut BatchWriter,
        entries: Vec<Delivery>,
        redelivered: bool,
    ) -> Result<Applied, WorkerError> {
        let started = Instant::now();
        let deliveries = if redelivered {
            let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
            self.stream.deliveries(&ids).await?
        } else {
            HashMap::new()
        };
        let mut valid = Vec::new();
        let mut dead: Vec<(usize, String)> = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
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
            let order = match &entry.entry {
                Ok(order) => BatchOrder::new(&entry.id, order.clone()),
                Err(error) => Err(error.to_string()),
            };
            match order {
                Ok(order) => valid.push((index, order)),
                Err(reason) => dead.push((index, reason)),
            }
        }
        let orders: Vec<BatchOrder> = valid.iter().map(|(_, order)| order.clone()).collect();
        let outcomes = writer.apply(&self.config.sale, &orders).await?;
        let mut verdicts = Vec::with_capacity(valid.len());
        for ((index, order), outcome) in valid.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Confirmed => verdicts.push((index, order.entry.order, Verdict::Ok)),
                Outcome::Rejected => verdicts.push((index, order.entry.order, Verdict::Reject)),
                Outcome::Invalid(reason) => dead.push((index, reason)),
            }
        }
        Ok(Applied {
            entries,
            verdicts,
            dead,
            started,
        })
    }
}

impl Finisher {
    /// Settles every verdict of the batch (one pipeline), dead-letters, acknowledges.
    async fn finish(&mut self, applied: Applied) -> Result<(), WorkerError> {
        let Applied {
            entries,
            verdicts,
            mut dead,
            started,
        } = applied;
        let pairs: Vec<(&str, Verdict)> = verdicts
            .iter()
            .map(|(_, order, verdict)| (order.as_str(), *verdict))
            .collect();
        let settled = self.engine.settle_many(&self.sale, &pairs).await?;

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
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        self.stream.ack(&ids).await?;

        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters
            .batch_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn dead_letter(&mut self, entry: &Delivery, reason: &str) -> Result<(), WorkerError> {
        warn!(id = %entry.id, %reason, "worker: dead-lettered");
        self.stream.dead_letter(entry, reason).await?;
        self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
