//! Whether Redis and PostgreSQL answer, as `GET /healthz` reports it.
//!
//! A probe is a PING and a `SELECT 1` through the pools the shoppers use. Probing per request
//! let anyone who can reach `/healthz` (it has no rate limit: load balancers poll it) turn
//! their request rate into database traffic. So one task probes both, once a second, and
//! `/healthz` reads its latest finding: whatever the request rate, the backends see one probe
//! a second per edge.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use flash_client::FlashClient;
use tokio::task::AbortHandle;

/// How often the backends are probed, and how long each may take to answer.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// A finding older than this means the probing task is stuck: unhealthy, whatever it said.
const STALE_AFTER: Duration = Duration::from_secs(5);

/// One probe's finding: `ok` or what failed, per backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub redis: String,
    pub postgres: String,
    pub at: Instant,
}

impl Finding {
    pub fn healthy(&self) -> bool {
        self.redis == "ok" && self.postgres == "ok" && self.at.elapsed() < STALE_AFTER
    }
}

pub struct Health {
    latest: Arc<RwLock<Finding>>,
    prober: AbortHandle,
}

impl Drop for Health {
    fn drop(&mut self) {
        self.prober.abort();
    }
}

impl Health {
    /// Probes once (so the first `/healthz` tells the truth), then every [`PROBE_EVERY`].
    pub async fn start(engine: FlashClient, pool: Pool) -> Health {
        let latest = Arc::new(RwLock::new(probe(&engine, &pool).await));
        let prober = {
            let latest = latest.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(PROBE_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                every.tick().await;
                loop {
                    every.tick().await;
                    let finding = probe(&engine, &pool).await;
                    *latest.write().unwrap_or_else(|p| p.into_inner()) = finding;
                }
            })
        };
        Health {
            latest,
            prober: prober.abort_handle(),
        }
    }

    /// The latest finding: a copy, no I/O.
    pub fn latest(&self) -> Finding {
        self.latest
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

async fn probe(engine: &FlashClient, pool: &Pool) -> Finding {
    let redis = async { engine.ping().await.map_err(|e| e.to_string()) };
    let postgres = async {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let (redis, postgres) = tokio::join!(
        tokio::time::timeout(PROBE_EVERY, redis),
        tokio::time::timeout(PROBE_EVERY, postgres)
    );
    let word = |r: Result<Result<(), String>, _>| match r {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => error,
        Err(_) => format!("no answer within {PROBE_EVERY:?}"),
    };
    Finding {
        redis: word(redis),
        postgres: word(postgres),
        at: Instant::now(),
    }
}
