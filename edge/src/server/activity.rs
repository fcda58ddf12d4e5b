//! What one connection is doing, and until when it may keep doing it: the phase of its
//! request cycle, written by the socket (bytes arrived) and by the service (a request
//! started, its reply is ready), read by the connection's watchdog.
//!
//! hyper's own `header_read_timeout` starts whenever hyper waits for a request head, which
//! includes the wait between keep-alive requests: it cannot tell a slow head from an idle
//! connection, so it would cut keep-alive at the header timeout. This tells them apart.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Where a connection is in its request cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Opened, its first request not yet whole: the header timeout runs from the opening,
    /// whether bytes came or not.
    First,
    /// A reply was made and nothing has come since: the idle timeout runs.
    Idle,
    /// Bytes of a next request came: the header timeout runs from the first of them.
    Head,
    /// A request is being served (its body read, its reply made): the service's own
    /// timeout bounds it, not the watchdog.
    Request,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            0 => Phase::First,
            1 => Phase::Idle,
            2 => Phase::Head,
            _ => Phase::Request,
        }
    }
}

/// The timeouts the watchdog applies.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
}

/// One connection's phase and when it began. Shared (in an `Arc`) by the socket wrapper,
/// the service and the watchdog; updates are single atomic stores, so a read of every
/// incoming chunk costs next to nothing.
pub struct Activity {
    opened: Instant,
    phase: AtomicU8,
    /// Milliseconds from `opened` to the start of the phase.
    phase_since_ms: AtomicU64,
    /// Wakes the watchdog when the phase changes (its deadline may have come closer).
    changed: Notify,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            phase: AtomicU8::new(Phase::First as u8),
            phase_since_ms: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Milliseconds since the opening, rounded up: a deadline is never before its moment.
    fn now_ms(&self) -> u64 {
        let millis = self.opened.elapsed().as_nanos().div_ceil(1_000_000);
        u64::try_from(millis).unwrap_or(u64::MAX)
    }

    fn enter(&self, phase: Phase) {
        self.phase_since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Release);
        self.changed.notify_one();
    }

    /// Bytes arrived from the client.
    pub fn received(&self) {
        // Only the first bytes after a reply start a head: the rest change nothing, and
        // this is called for every read.
        if self.phase() == Phase::Idle {
            let _ = self.phase.compare_exchange(
                Phase::Idle as u8,
                Phase::Head as u8,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            self.phase_since_ms.store(self.now_ms(), Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    /// A whole request head arrived and its service started.
    pub fn request_started(&self) {
        self.enter(Phase::Request);
    }

    /// The service made its reply: the connection waits for the next request.
    pub fn reply_ready(&self) {
        self.enter(Phase::Idle);
    }

    /// When the connection must be closed if its phase has not changed by then; `None`
    /// while a request is being served.
    pub fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        let phase = self.phase();
        let since =
            self.opened + Duration::from_millis(self.phase_since_ms.load(Ordering::Relaxed));
        match phase {
            Phase::First => Some(self.opened + timeouts.header),
            Phase::Head => Some(since + timeouts.header),
            Phase::Idle => Some(since + timeouts.idle),
            Phase::Request => None,
        }
    }

    /// Resolves at the next phase change (or at once if one happened since the last call).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn the_first_request_has_the_header_timeout_from_the_opening() {
        let activity = Activity::new();
        let opened = Instant::now();
        assert_eq!(activity.deadline(&TIMEOUTS), Some(opened + TIMEOUTS.header));
        // Bytes of the first request do not move it: a dribbled head is cut all the same.
        tokio::time::advance(Duration::from_secs(3)).await;
        activity.received();
        assert_eq!(activity.phase(), Phase::First);
        assert_eq!(activity.deadline(&TIMEOUTS), Some(opened + TIMEOUTS.header));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_reply_the_idle_timeout_runs_until_bytes_of_a_next_head_come() {
        let activity = Activity::new();
        activity.request_started();
        assert_eq!(activity.deadline(&TIMEOUTS), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        activity.reply_ready();
        let replied = Instant::now();
        assert_eq!(activity.deadline(&TIMEOUTS), Some(replied + TIMEOUTS.idle));
        tokio::time::advance(Duration::from_secs(5)).await;
        activity.received();
        let head = Instant::now();
        assert_eq!(activity.phase(), Phase::Head);
        assert_eq!(activity.deadline(&TIMEOUTS), Some(head + TIMEOUTS.header));
        // More bytes of the same head do not extend it.
        tokio::time::advance(Duration::from_secs(5)).await;
        activity.received();
        assert_eq!(activity.deadline(&TIMEOUTS), Some(head + TIMEOUTS.header));
    }
}
