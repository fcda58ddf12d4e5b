//! The waits after the crowd, and their timing: every accepted order drained into
//! PostgreSQL, every abandoned hold run out, and the [`Monitor`] that reads the engine's
//! totals throughout so both are timed when they happen.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use flash_client::{ClientError, FlashClient, SaleInfo};
use tokio::task::JoinHandle;

/// One reading of the engine's totals.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When FLASH.INFO was sent: the state it read is from after this moment.
    pub sent: Instant,
    /// When its reply arrived: the state was reached by then.
    pub received: Instant,
    pub pending: i64,
    pub held: i64,
    pub held_carts: i64,
}

/// Reads the engine's totals every 10 ms, during the crowd and after it, so the drain and
/// the release of holds are timed when they happen, not when the crowd is over (the last
/// checkout is often long before the last buyer leaves).
pub struct Monitor {
    stop: Arc<AtomicBool>,
    task: Option<JoinHandle<Vec<Sample>>>,
}

/// How often the monitor reads: the resolution of the drain and release times. FLASH.INFO
/// is one command over the sale's SKUs, so 100 a second is noise to Redis.
pub const MONITOR_EVERY: Duration = Duration::from_millis(10);

impl Monitor {
    pub fn start(engine: FlashClient, sale: String) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                let sent = Instant::now();
                // A failed read is a gap in the samples, not a failed run: the waits and the
                // checks read the engine themselves and report errors.
                if let Ok(info) = engine.info(&sale).await {
                    samples.push(Sample {
                        sent,
                        received: Instant::now(),
                        pending: info.total.pending,
                        held: info.total.held,
                        held_carts: info.held_carts,
                    });
                }
                tokio::time::sleep(MONITOR_EVERY).await;
            }
            samples
        });
        Monitor {
            stop,
            task: Some(task),
        }
    }

    pub async fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        match self.task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

impl Drop for Monitor {
    /// A run that fails half-way must not leave the monitor polling for the life of the
    /// process (a test binary, a library caller).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The first moment after `since` at which `reached` held: the reply time of the first
/// reading sent after `since` that shows it.
pub fn reached_after(
    samples: &[Sample],
    since: Instant,
    reached: impl Fn(&Sample) -> bool,
) -> Option<Instant> {
    samples
        .iter()
        .filter(|sample| sample.sent >= since && reached(sample))
        .map(|sample| sample.received)
        .min()
}

/// Waits until no unit is pending in the engine (every checked-out order written to
/// PostgreSQL and settled). Returns when that was seen, or None at the timeout.
pub async fn wait_drained(
    engine: &FlashClient,
    sale: &str,
    timeout: Duration,
    on_poll: impl Fn(&SaleInfo),
) -> Result<Option<Instant>> {
    let give_up = Instant::now() + timeout;
    loop {
        let Some(info) = read(engine, sale, give_up).await? else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let now = Instant::now();
        if info.total.pending == 0 {
            return Ok(Some(now));
        }
        on_poll(&info);
        if now >= give_up {
            return Ok(None);
        }
        // Fine enough for a drain measured in tens of milliseconds, and FLASH.INFO is cheap.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The sale as the engine has it, or `None` while the engine cannot be reached and the wait
/// has not given up: a failover (a cluster down until a replica is promoted, a server
/// restarting) is ridden out, not a failed run. An engine refusal (NOSALE) fails at once, and
/// so does trouble that outlasts the wait.
async fn read(engine: &FlashClient, sale: &str, give_up: Instant) -> Result<Option<SaleInfo>> {
    match engine.info(sale).await {
        Ok(info) => Ok(Some(info)),
        Err(ClientError::Redis(_)) if Instant::now() < give_up => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Waits until `deadline` has passed and no cart is held in the sale; None at `give_up`.
pub async fn wait_released(
    engine: &FlashClient,
    sale: &str,
    deadline: Instant,
    give_up: Instant,
    on_poll: impl Fn(&SaleInfo),
) -> Result<Option<Instant>> {
    loop {
        let Some(info) = read(engine, sale, give_up).await? else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let now = Instant::now();
        if now >= deadline && info.held_carts == 0 && info.total.held == 0 {
            return Ok(Some(now));
        }
        on_poll(&info);
        if now >= give_up {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
