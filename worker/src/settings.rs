//! The worker's own settings (batch size, claim delay), as flags with their environment
//! variables, and the one place a [`Config`] is assembled from them: `flash worker` and
//! `flash edge` (whose embedded worker takes the same flags) both flatten [`WorkerSettings`]
//! and call [`WorkerSettings::config`].
//!
//! The consumer name is not among them: it must be unique per process, so each command
//! declares its own `--consumer` (`flash worker` also reads `FLASH_CONSUMER`, set per
//! container; `flash edge` does not, so a `.env` shared with a worker cannot put both under
//! one name) and passes it in.

use std::time::Duration;

use flash_client::Durability;

use crate::consumer::{Config, default_consumer_name};

/// Entries per database transaction, unless told otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 256;
/// How long another consumer's entries stay pending before they are taken over.
pub const DEFAULT_CLAIM_IDLE_MS: u64 = 30_000;

#[derive(Clone, Debug, clap::Args)]
pub struct WorkerSettings {
    /// Entries per database transaction.
    #[arg(long, env = "FLASH_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Take over entries pending this long in a consumer presumed dead.
    #[arg(long, default_value_t = DEFAULT_CLAIM_IDLE_MS)]
    pub claim_idle_ms: u64,
    /// When an order counts: on the master only, or on a replica too.
    #[command(flatten)]
    pub durability: DurabilitySettings,
}

/// When the engine has an order: on the master only, or on a replica too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityMode {
    /// Once the master has it (a failover before its replica got it loses it).
    #[default]
    None,
    /// Once a replica has it too (WAIT): the edge answers 202 only then (else 503
    /// NOTDURABLE), and a worker writes to PostgreSQL only orders a replica has.
    Replica,
}

/// `--durability`: what a 202 to a checkout or buy promises, and which orders a worker may
/// write to the database (README, "Redis Cluster"). One setting for both, because each half
/// alone leaves a failover a way to break the books.
#[derive(Clone, Debug, clap::Args)]
pub struct DurabilitySettings {
    /// When an order counts: what a checkout's 202 promises, and which orders a worker
    /// writes to the database.
    #[arg(
        long = "durability",
        env = "FLASH_DURABILITY",
        value_enum,
        default_value_t
    )]
    pub mode: DurabilityMode,
    /// With `replica`: how long a checkout, or a worker's batch, waits for the replica, in
    /// milliseconds.
    #[arg(long, env = "FLASH_DURABILITY_TIMEOUT_MS", default_value_t = DEFAULT_DURABILITY_TIMEOUT_MS)]
    pub durability_timeout_ms: u64,
}

/// How long a durable write waits for its replica, unless told otherwise.
pub const DEFAULT_DURABILITY_TIMEOUT_MS: u64 = 500;

impl Default for DurabilitySettings {
    /// The flags' defaults: acknowledged by the master.
    fn default() -> DurabilitySettings {
        DurabilitySettings {
            mode: DurabilityMode::None,
            durability_timeout_ms: DEFAULT_DURABILITY_TIMEOUT_MS,
        }
    }
}

impl DurabilitySettings {
    /// What to WAIT for, or `None` with `--durability none`.
    pub fn durability(&self) -> Option<Durability> {
        match self.mode {
            DurabilityMode::None => None,
            DurabilityMode::Replica => Some(Durability {
                replicas: 1,
                timeout: Duration::from_millis(self.durability_timeout_ms),
            }),
        }
    }
}

/// The flags' defaults, for callers that build settings without a command line.
impl Default for WorkerSettings {
    fn default() -> WorkerSettings {
        WorkerSettings {
            batch_size: DEFAULT_BATCH_SIZE,
            claim_idle_ms: DEFAULT_CLAIM_IDLE_MS,
            durability: DurabilitySettings::default(),
        }
    }
}

impl WorkerSettings {
    /// The worker's [`Config`] for `sale`, as `consumer` in the group. Without one the name
    /// is `<name_prefix><host>-<pid>` (the edge passes `edge-`, so its embedded worker is
    /// told apart from standalone ones in the group).
    pub fn config(
        &self,
        redis_url: &str,
        database_url: &str,
        sale: &str,
        consumer: Option<&str>,
        name_prefix: &str,
    ) -> Config {
        let consumer = consumer
            .map(str::to_owned)
            .unwrap_or_else(|| default_consumer_name(name_prefix));
        let mut config = Config::new(redis_url, database_url, sale, &consumer);
        // Zero would read nothing and spin.
        config.batch_size = self.batch_size.max(1);
        config.claim_idle = Duration::from_millis(self.claim_idle_ms);
        config.durability = self.durability.durability();
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        worker: WorkerSettings,
    }

    #[test]
    fn the_default_matches_the_flags_defaults() {
        let parsed = Cli::try_parse_from(["worker"])
            .expect("no flags parse")
            .worker;
        let default = WorkerSettings::default();
        // The environment may set FLASH_BATCH_SIZE; compare what it cannot.
        assert_eq!(parsed.claim_idle_ms, default.claim_idle_ms);
        if std::env::var_os("FLASH_BATCH_SIZE").is_none() {
            assert_eq!(parsed.batch_size, default.batch_size);
        }
    }

    #[test]
    fn config_takes_the_flags_and_names_the_consumer() {
        let settings = WorkerSettings {
            batch_size: 0,
            claim_idle_ms: 1_500,
            durability: DurabilitySettings {
                mode: DurabilityMode::Replica,
                durability_timeout_ms: 200,
            },
        };
        let config = settings.config("redis://r/", "postgres://p/", "spring", None, "edge-");
        assert_eq!(config.batch_size, 1, "a batch of zero reads one");
        assert_eq!(config.claim_idle, Duration::from_millis(1_500));
        assert_eq!(config.sale, "spring");
        assert_eq!(
            config.durability,
            Some(Durability {
                replicas: 1,
                timeout: Duration::from_millis(200)
            })
        );
        assert!(config.consumer.starts_with("edge-"), "{}", config.consumer);
        assert!(
            config
                .consumer
                .ends_with(&format!("-{}", std::process::id()))
        );
        let named = WorkerSettings::default().config("r", "p", "s", Some("w1"), "edge-");
        assert_eq!(named.consumer, "w1");
        assert_eq!(named.durability, None, "no waits unless asked");
    }
}
