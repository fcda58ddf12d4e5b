//! Gives memory freed after a crowd of connections back to the system.
//!
//! Measured (the connection suite's storm: 2,000 connections from one address, each holding
//! a 16 KiB read buffer): the edge's resident memory went 17 → 70 MB and stayed at 70 MB
//! after every client had closed. The memory was free, but inside glibc's per-thread
//! arenas (two 24 MB mappings, one per runtime thread): glibc gives back only the free space
//! at the top of an arena, and a few long-lived allocations above the connections' buffers
//! pin the rest. `malloc_trim(0)` returns every free page of every arena (RSS back to 17 MB
//! in that test). It walks the arenas under their locks, so it runs only after a crowd has
//! gone, on a blocking thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::info;

/// How often the open connections are counted.
const EVERY: Duration = Duration::from_secs(1);
/// A crowd worth trimming after: this many connections gone since the peak...
const GONE_AT_LEAST: usize = 256;

/// Watches the open connections (`max` less the free `slots`) and trims the allocator when
/// a crowd has gone: at least [`GONE_AT_LEAST`] connections, and half the peak, closed since
/// the peak. Runs until aborted.
pub async fn trim_after_crowds(slots: Arc<Semaphore>, max: usize) {
    let mut peak = 0;
    let mut every = tokio::time::interval(EVERY);
    loop {
        every.tick().await;
        let open = max.saturating_sub(slots.available_permits());
        peak = peak.max(open);
        if !crowd_gone(peak, open) {
            continue;
        }
        let started = Instant::now();
        let trimmed = tokio::task::spawn_blocking(release_free_memory)
            .await
            .unwrap_or(false);
        info!(
            peak,
            open,
            trimmed,
            "edge: connections fell from {peak} to {open}: free memory given back to the \
             system in {:?}",
            started.elapsed()
        );
        peak = open;
    }
}

fn crowd_gone(peak: usize, open: usize) -> bool {
    let gone = peak.saturating_sub(open);
    gone >= GONE_AT_LEAST && gone >= peak / 2
}

/// Whether glibc gave memory back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes no pointer; it only walks glibc's own arenas, under their
    // locks, and may be called from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators give memory back by themselves (or cannot be asked).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_crowd_that_has_mostly_gone_is_worth_a_trim() {
        assert!(!crowd_gone(0, 0));
        assert!(!crowd_gone(200, 0), "too few to matter");
        assert!(!crowd_gone(10_000, 9_000), "most still open");
        assert!(crowd_gone(10_000, 5_000));
        assert!(crowd_gone(2_000, 3));
    }

    #[test]
    fn trimming_is_harmless_at_any_time() {
        let kept = vec![1u8; 1 << 20];
        release_free_memory();
        assert_eq!(kept.iter().map(|&b| usize::from(b)).sum::<usize>(), 1 << 20);
    }
}
