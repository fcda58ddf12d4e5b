//! Signed-out tokens: refused until their own expiry, by every edge.
//!
//! Tokens are stateless, so signing out has to leave a mark somewhere every edge sees: an
//! entry (`token` = the token's id, `expires` = its expiry) in the Redis stream
//! [`REVOKED_KEY`]. Checking Redis on every authenticated request would add a round trip to
//! each cart call, so each edge keeps the revoked ids in memory (a hash lookup per request)
//! and follows the stream: it reads it whole before serving, then waits on `XREAD BLOCK`
//! on a connection of its own and applies new entries as they are added. A stream (not
//! pub/sub) keeps what was written while an edge was away: after a dropped connection
//! the follower goes on from the last id it saw, so nothing is missed.
//!
//! On a Redis Cluster the stream lives on the node serving its slot: the follower's
//! connection is a cluster connection too (its own, since a blocked XREAD holds up its
//! node's link), which routes the XREAD there and follows a failover to the promoted
//! replica, going on from the last id seen (the replica has what the master acknowledged
//! to it; a revocation the master took but did not pass on before dying is lost with it).
//!
//! The edge that signs a token out marks it in memory at once, so its own next request
//! is refused; another edge refuses it once its follower has read the entry (about a
//! round trip later), or, when its link to Redis is down, once the link is back.
//!
//! The stream is trimmed on every revocation to the entries younger than the session
//! lifetime: older ones name tokens that have expired by themselves. (Edges sharing a
//! secret are expected to share `FLASH_SESSION_TTL` too.)

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use flash_client::{ClientError, FlashConnection};
use redis::RedisError;
use redis::streams::StreamReadReply;
use tokio::task::AbortHandle;
use tracing::warn;

use super::{Session, now_secs};

/// The stream of revocations, shared by every edge on this Redis (sessions are not per sale).
pub const REVOKED_KEY: &str = "flash:sessions:revoked";

/// How long one `XREAD BLOCK` waits for news before asking again.
const BLOCK: Duration = Duration::from_secs(5);

/// How often expired ids are dropped from memory (a pass over all of them).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Entries read per call, while catching up.
const BATCH: usize = 1000;

/// The revoked ids this edge knows, each with its token's expiry (unix s).
type Revoked = RwLock<HashMap<String, u64>>;

pub struct Revocations {
    revoked: Arc<Revoked>,
    conn: FlashConnection,
    ttl_secs: u64,
    follower: AbortHandle,
}

impl Drop for Revocations {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl Revocations {
    /// Reads every revocation there is (so a token signed out before this edge started is
    /// refused from its first request), then follows the stream in the background.
    pub async fn start(
        redis_url: &str,
        conn: FlashConnection,
        ttl_secs: u64,
    ) -> Result<Revocations, RedisError> {
        let revoked = Arc::new(Revoked::default());
        let mut reader = conn.clone();
        let mut last_id = "0-0".to_owned();
        while read_after(&mut reader, &mut last_id, None, &revoked).await? == BATCH {}
        let follower = tokio::spawn(follow(redis_url.to_owned(), last_id, revoked.clone()));
        Ok(Revocations {
            revoked,
            conn,
            ttl_secs,
            follower: follower.abort_handle(),
        })
    }

    /// Whether this token was signed out: one hash lookup.
    pub fn is_revoked(&self, token_id: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains_key(token_id)
    }

    /// Signs `session`'s token out everywhere. Refused only if Redis does not take the
    /// entry: then the token is not revoked, and the caller must say so.
    pub async fn revoke(&self, session: &Session) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        let horizon_ms = now_secs().saturating_sub(self.ttl_secs) * 1000;
        let _: String = redis::cmd("XADD")
            .arg(REVOKED_KEY)
            .arg("MINID")
            .arg("~")
            .arg(horizon_ms)
            .arg("*")
            .arg("token")
            .arg(&session.token_id)
            .arg("expires")
            .arg(session.expires_secs)
            .query_async(&mut conn)
            .await?;
        remember(
            &self.revoked,
            session.token_id.clone(),
            session.expires_secs,
        );
        Ok(())
    }
}

fn remember(revoked: &Revoked, token_id: String, expires_secs: u64) {
    let mut revoked = revoked
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    revoked.insert(token_id, expires_secs);
}

/// Forgets the ids of tokens that have expired by themselves: memory stays bounded by the
/// sign-outs of one session lifetime.
fn forget_expired(revoked: &Revoked) {
    let now = now_secs();
    revoked
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .retain(|_, expires| *expires > now);
}

/// One `XREAD` after `last_id` (waiting up to `block` for news, if given): the entries go
/// into `revoked`, `last_id` moves past them. Returns how many were read.
async fn read_after(
    conn: &mut impl redis::aio::ConnectionLike,
    last_id: &mut String,
    block: Option<Duration>,
    revoked: &Revoked,
) -> Result<usize, RedisError> {
    let mut command = redis::cmd("XREAD");
    command.arg("COUNT").arg(BATCH);
    if let Some(block) = block {
        command.arg("BLOCK").arg(block.as_millis() as u64);
    }
    command.arg("STREAMS").arg(REVOKED_KEY).arg(&*last_id);
    let reply: Option<StreamReadReply> = command.query_async(conn).await?;
    let entries = reply
        .into_iter()
        .flat_map(|reply| reply.keys)
        .flat_map(|key| key.ids);
    let mut read = 0;
    for entry in entries {
        read += 1;
        // An entry someone wrote by hand without these fields revokes nothing.
        if let (Some(token), Some(expires)) =
            (entry.get::<String>("token"), entry.get::<u64>("expires"))
        {
            remember(revoked, token, expires);
        }
        *last_id = entry.id;
    }
    Ok(read)
}

/// Follows the stream from `last_id` for as long as the edge runs, on a connection of its
/// own (a blocked XREAD would hold up every command pipelined behind it on the shared
/// one), to one server or to the cluster as `redis_url` says. A failure waits and
/// reconnects, then goes on from the last id seen.
async fn follow(redis_url: String, mut last_id: String, revoked: Arc<Revoked>) {
    let mut conn: Option<FlashConnection> = None;
    let mut retry_in = Duration::from_millis(100);
    let mut pruned = Instant::now();
    loop {
        let result = async {
            let conn = match &mut conn {
                Some(conn) => conn,
                None => conn.insert(
                    FlashConnection::connect_waiting(&redis_url, BLOCK + Duration::from_secs(5))
                        .await?,
                ),
            };
            read_after(conn, &mut last_id, Some(BLOCK), &revoked)
                .await
                .map_err(ClientError::from)
        }
        .await;
        match result {
            Ok(_) => {
                retry_in = Duration::from_millis(100);
                if pruned.elapsed() >= PRUNE_EVERY {
                    forget_expired(&revoked);
                    pruned = Instant::now();
                }
            }
            Err(error) => {
                warn!(%error, "edge: cannot follow the revoked sessions; retrying in {retry_in:?}");
                conn = None;
                tokio::time::sleep(retry_in).await;
                retry_in = (retry_in * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_revocations_are_forgotten() {
        let revoked = Revoked::default();
        remember(&revoked, "old".into(), now_secs() - 1);
        remember(&revoked, "live".into(), now_secs() + 60);
        forget_expired(&revoked);
        let ids: Vec<String> = revoked
            .read()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(ids, ["live"]);
    }
}
