//! The open-file limit: raised to the hard limit at start, and `--max-connections` kept
//! under it.
//!
//! Every connection is a descriptor. With the usual soft limit (1,024, or whatever the
//! service manager set), a crowd makes `accept` fail with EMFILE long before the connection
//! cap; past the limit, even the edge's own Redis and PostgreSQL connections fail.

use tracing::{info, warn};

/// Descriptors kept for everything but clients: Redis and PostgreSQL connections (the pool,
/// the hub's subscription, the embedded worker's), the runtime, the log, the listener.
pub const RESERVED: u64 = 256;

/// Raises this process's soft limit on open files to the hard limit and logs what it is
/// now; the limit in force, or `None` if it cannot be read.
pub fn raise_limit() -> Option<u64> {
    let (soft, hard) = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok(limits) => limits,
        Err(error) => {
            warn!(%error, "edge: cannot read the open-file limit");
            return None;
        }
    };
    match rlimit::increase_nofile_limit(hard) {
        Ok(now) if now > soft => {
            info!("edge: open-file limit raised from {soft} to {now} (the hard limit)");
            Some(now)
        }
        Ok(now) => {
            info!("edge: open-file limit {now} (the hard limit is {hard})");
            Some(now)
        }
        Err(error) => {
            warn!(%error, "edge: cannot raise the open-file limit from {soft} to {hard}");
            Some(soft)
        }
    }
}

/// The connections the process can hold: `max_connections`, or fewer when the open-file
/// limit would run out first (less [`RESERVED`] for the rest).
pub fn connection_cap(max_connections: usize, file_limit: Option<u64>) -> usize {
    let Some(limit) = file_limit else {
        return max_connections;
    };
    let room = usize::try_from(limit.saturating_sub(RESERVED)).unwrap_or(usize::MAX);
    if max_connections > room {
        warn!(
            "edge: --max-connections {max_connections} does not fit the open-file limit \
             {limit} less {RESERVED} kept for Redis, PostgreSQL and the rest: serving at most \
             {room} connections (raise the hard limit, `ulimit -Hn`, for more)"
        );
        room.max(1)
    } else {
        max_connections
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_under_the_file_limit() {
        assert_eq!(connection_cap(20_000, Some(20_000)), 20_000 - 256);
        assert_eq!(connection_cap(1_000, Some(20_000)), 1_000);
        assert_eq!(connection_cap(1_000, None), 1_000);
        assert_eq!(connection_cap(1_000, Some(10)), 1);
    }
}
