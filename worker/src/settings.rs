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
}

/// The flags' defaults, for callers that build settings without a command line.
impl Default for WorkerSettings {
    fn default() -> WorkerSettings {
        WorkerSettings {
            batch_size: DEFAULT_BATCH_SIZE,
            claim_idle_ms: DEFAULT_CLAIM_IDLE_MS,
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
        };
        let config = settings.config("redis://r/", "postgres://p/", "spring", None, "edge-");
        assert_eq!(config.batch_size, 1, "a batch of zero reads one");
        assert_eq!(config.claim_idle, Duration::from_millis(1_500));
        assert_eq!(config.sale, "spring");
        assert!(config.consumer.starts_with("edge-"), "{}", config.consumer);
        assert!(
            config
                .consumer
                .ends_with(&format!("-{}", std::process::id()))
        );
        let named = WorkerSettings::default().config("r", "p", "s", Some("w1"), "edge-");
        assert_eq!(named.consumer, "w1");
    }
}
