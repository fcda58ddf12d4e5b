//! What the accept loop does when `accept` fails, and with connections over an address's
//! cap.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The first wait after a failed `accept`, doubled on every failure in a row up to
/// [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(5);
/// Long enough that a loop failing on every call costs nothing, short enough that the
/// backlog moves again soon after descriptors are free.
const MAX_WAIT: Duration = Duration::from_millis(250);

/// Backoff for failed accepts. Out of descriptors (EMFILE), the pending connection stays in
/// the backlog and `accept` fails again at once: retrying without a wait spins a core and
/// floods the log. Logs the first failure of a run and the recovery, not each one.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    failures: u64,
    wait: Duration,
}

impl AcceptBackoff {
    /// How long to wait after this failure.
    pub fn failed(&mut self, error: &io::Error) -> Duration {
        self.wait = if self.failures == 0 {
            warn!(%error, "edge: accept failed; backing off until it works again");
            FIRST_WAIT
        } else {
            debug!(%error, "edge: accept failed again");
            (self.wait * 2).min(MAX_WAIT)
        };
        self.failures += 1;
        self.wait
    }

    /// An accept worked.
    pub fn succeeded(&mut self) {
        if self.failures > 0 {
            info!(
                failures = self.failures,
                "edge: accepting again after {} failed accepts", self.failures
            );
            *self = AcceptBackoff::default();
        }
    }
}

/// Refuses connections over their address's cap: a short 429 (in the JSON shape of every
/// refusal) written if the socket takes it at once, then the close. Counted, and logged at
/// most every [`LOG_EVERY`], since a storm is thousands of them.
pub struct Refuser {
    reply: Vec<u8>,
    refused: u64,
    logged_at: Option<Instant>,
}

const LOG_EVERY: Duration = Duration::from_secs(10);

impl Refuser {
    pub fn new(per_address: usize) -> Refuser {
        let body = serde_json::json!({
            "error": "RATE_LIMITED",
            "message": format!(
                "at most {per_address} open connections per address; close one first"
            ),
        })
        .to_string();
        let reply = format!(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
             retry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        Refuser {
            reply: reply.into_bytes(),
            refused: 0,
            logged_at: None,
        }
    }

    pub fn refuse(&mut self, stream: TcpStream, peer: std::net::IpAddr) {
        // Never waits: a full socket buffer just means the client gets the close alone.
        let _ = stream.try_write(&self.reply);
        drop(stream);
        self.refused += 1;
        if self
            .logged_at
            .is_none_or(|logged| logged.elapsed() >= LOG_EVERY)
        {
            warn!(
                %peer,
                "edge: refused {} connections over the per-address cap since the last report",
                self.refused
            );
            self.logged_at = Some(Instant::now());
            self.refused = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_the_maximum_and_resets_on_success() {
        let mut backoff = AcceptBackoff::default();
        let error = io::Error::from_raw_os_error(24);
        let waits: Vec<_> = (0..10).map(|_| backoff.failed(&error)).collect();
        assert_eq!(waits[0], FIRST_WAIT);
        assert_eq!(waits[1], FIRST_WAIT * 2);
        assert!(waits.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(waits[9], MAX_WAIT);
        backoff.succeeded();
        assert_eq!(backoff.failed(&error), FIRST_WAIT);
    }

    #[test]
    fn the_refusal_is_a_whole_http_reply() {
        let refuser = Refuser::new(7);
        let reply = String::from_utf8(refuser.reply.clone()).unwrap_or_default();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.starts_with("HTTP/1.1 429 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(body["error"], "RATE_LIMITED");
        assert!(body["message"].as_str().unwrap_or_default().contains("7"));
    }
}
