//! One client's session: stock frames out (coalesced, merged when several ticks wait),
//! subscribes in, heartbeats, and the closing codes of the protocol.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flash_core::args::MAX_SKU;
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::WsSettings;
use crate::hub::{Hub, ProductStock, StockUpdate};

/// Why a session ended (for logs and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client sent a close frame (answered).
    ClosedByClient,
    /// The connection ended without a close frame.
    Disconnected,
    /// Closed 1008: a message that is not a valid subscribe.
    PolicyViolation,
    /// Closed 1003: a binary message.
    UnsupportedData,
    /// Closed 1009: a message over the size limit.
    MessageTooBig,
    /// A write failed or waited longer than `send_timeout` (a client that stopped reading).
    SendFailed,
    /// Nothing heard from the client for `idle_timeout`.
    Idle,
    /// Closed 1001: the hub shut down.
    ServerShutdown,
    /// The socket failed (a protocol error, an I/O error).
    ReadError(String),
}

/// What a client asks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientRequest {
    subscribe: Vec<i64>,
}

/// The products of a `{"subscribe":[…]}` message, deduplicated and sorted; the close reason
/// otherwise (kept under the 123 bytes a close frame allows).
fn parse_subscribe(text: &str, max_ids: usize) -> Result<Vec<i64>, String> {
    let request: ClientRequest = serde_json::from_str(text)
        .map_err(|_| "expected {\"subscribe\":[product ids]}".to_owned())?;
    let mut products = request.subscribe;
    if products.len() > max_ids {
        return Err(format!("at most {max_ids} product ids per subscribe"));
    }
    if products.iter().any(|&id| !(1..=MAX_SKU).contains(&id)) {
        return Err("product ids are integers from 1 to 2^53-1".to_owned());
    }
    products.sort_unstable();
    products.dedup();
    Ok(products)
}

/// One client's session: pushes stock changes (all, then only the subscribed products'),
/// answers subscribes, and closes as the protocol table in the module docs says. Returns
/// when the session is over; the caller then drops the socket.
///
/// The caller's socket answers pings itself (tungstenite queues the pong and writes it on the
/// next read or flush; the session flushes on every ping so it goes out at once).
pub async fn run_session<S, R>(
    sink: &mut S,
    stream: &mut R,
    hub: &Hub,
    settings: &WsSettings,
) -> SessionEnd
where
    S: Sink<Message> + Unpin,
    S::Error: Display,
    R: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let (mut updates, mut seen_tick) = hub.subscribe_updates();
    let mut shutdown = hub.shutdown_signal();
    if *shutdown.borrow_and_update() {
        close(sink, CloseCode::Away, "server shutting down").await;
        return SessionEnd::ServerShutdown;
    }
    // Made once, not per turn of the loop: each new `changed()` would enlist in (and leave)
    // the hub's shared list of waiters on every wake-up of every session.
    let stopping = async move {
        let _ = shutdown.wait_for(|stopped| *stopped).await;
    };
    tokio::pin!(stopping);
    // `None`: every product, until the first subscribe.
    let mut watched: Option<HashSet<i64>> = None;
    // Ticks up to this one carry nothing newer than what a snapshot already sent.
    let mut covered_through = seen_tick;
    let heartbeat_every = settings.heartbeat.max(Duration::from_millis(10));
    let mut heartbeat = tokio::time::interval_at(Instant::now() + heartbeat_every, heartbeat_every);
    let mut last_heard = Instant::now();

    loop {
        tokio::select! {
            incoming = stream.next() => {
                let message = match incoming {
                    None => return SessionEnd::Disconnected,
                    Some(Ok(message)) => message,
                    Some(Err(WsError::Capacity(_))) => {
                        // tungstenite only reports the oversized message; the close frame
                        // that tells the client why is ours to send.
                        close(sink, CloseCode::Size, "message too big").await;
                        return SessionEnd::MessageTooBig;
                    }
                    Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                        return SessionEnd::Disconnected;
                    }
                    Some(Err(error)) => return SessionEnd::ReadError(error.to_string()),
                };
                last_heard = Instant::now();
                match message {
                    Message::Text(text) => {
                        let products = match parse_subscribe(text.as_str(), settings.max_subscribe_ids) {
                            Ok(products) => products,
                            Err(reason) => {
                                close(sink, CloseCode::Policy, &reason).await;
                                return SessionEnd::PolicyViolation;
                            }
                        };
                        let snapshot = hub.snapshot(&products).await;
                        watched = Some(products.into_iter().collect());
                        covered_through = covered_through.max(snapshot.through_tick);
                        seen_tick = seen_tick.max(snapshot.through_tick);
                        if !send_values(sink, hub, &snapshot.values, settings).await {
                            return SessionEnd::SendFailed;
                        }
                    }
                    Message::Binary(_) => {
                        close(sink, CloseCode::Unsupported, "text frames only").await;
                        return SessionEnd::UnsupportedData;
                    }
                    Message::Ping(_) => {
                        if !flush(sink, settings).await {
                            return SessionEnd::SendFailed;
                        }
                    }
                    Message::Close(_) => {
                        // The socket queued the reply close frame; write it out.
                        let _ = flush(sink, settings).await;
                        return SessionEnd::ClosedByClient;
                    }
                    Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            update = updates.recv() => {
                // Everything waiting goes out in one write: a session that wakes late (the
                // edge is busy) must not pay a write per tick, which is what made it late.
                let ready = drain_ready(update, &mut updates);
                if ready.missed > 0 {
                    // The missed ticks are gone; the latest values replace them (and the
                    // ticks read after the gap, which are no newer).
                    hub.count_lag(ready.missed);
                    let snapshot = hub.changed_since(seen_tick, watched.as_ref());
                    covered_through = snapshot.through_tick;
                    seen_tick = snapshot.through_tick;
                    if !send_values(sink, hub, &snapshot.values, settings).await {
                        return SessionEnd::SendFailed;
                    }
                } else if !ready.ticks.is_empty() {
                    let due: Vec<&StockUpdate> = ready
                        .ticks
                        .iter()
                        .map(AsRef::as_ref)
                        .filter(|update| update.tick > covered_through)
                        .collect();
                    if let Some(last) = due.last() {
                        seen_tick = last.tick;
                    }
                    let frames = merged_frames(&due, watched.as_ref());
                    if !send_frames(sink, hub, frames, settings).await {
                        return SessionEnd::SendFailed;
                    }
                }
                if ready.closed {
                    close(sink, CloseCode::Away, "server shutting down").await;
                    return SessionEnd::ServerShutdown;
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > settings.idle_timeout {
                    return SessionEnd::Idle;
                }
                if !send_frames(sink, hub, vec![Message::Ping(Bytes::new())], settings).await {
                    return SessionEnd::SendFailed;
                }
            }
            () = &mut stopping => {
                close(sink, CloseCode::Away, "server shutting down").await;
                return SessionEnd::ServerShutdown;
            }
        }
    }
}

/// The ticks a session found waiting when it woke.
#[derive(Debug, Default)]
struct Ready {
    /// Oldest first.
    ticks: Vec<Arc<StockUpdate>>,
    /// Ticks the broadcast dropped before this session read them.
    missed: u64,
    /// The hub is gone: after what is here, nothing more comes.
    closed: bool,
}

/// The tick `recv` gave, and every tick already waiting behind it.
fn drain_ready(
    first: Result<Arc<StockUpdate>, RecvError>,
    updates: &mut broadcast::Receiver<Arc<StockUpdate>>,
) -> Ready {
    let mut ready = Ready::default();
    let mut next = first.map_err(|error| match error {
        RecvError::Lagged(missed) => TryRecvError::Lagged(missed),
        RecvError::Closed => TryRecvError::Closed,
    });
    loop {
        match next {
            Ok(update) => ready.ticks.push(update),
            Err(TryRecvError::Lagged(missed)) => ready.missed += missed,
            Err(TryRecvError::Empty) => return ready,
            Err(TryRecvError::Closed) => {
                ready.closed = true;
                return ready;
            }
        }
        next = updates.try_recv();
    }
}

/// The products of one tick this session watches: a lookup per watched product when it
/// watches fewer products than the tick carries, a scan otherwise.
fn entries_for<'a>(
    update: &'a StockUpdate,
    watched: Option<&HashSet<i64>>,
) -> Vec<&'a ProductStock> {
    match watched {
        None => update.entries.iter().collect(),
        Some(watched) if watched.len() < update.entries.len() => watched
            .iter()
            .filter_map(|&product_id| update.get(product_id))
            .collect(),
        Some(watched) => update
            .entries
            .iter()
            .filter(|entry| watched.contains(&entry.product_id))
            .collect(),
    }
}

/// The frames for ticks (oldest first) this session watches: one per product, its value
/// from the newest tick that carries it. The text of each is the hub's, made once per tick
/// for every client.
fn merged_frames(ticks: &[&StockUpdate], watched: Option<&HashSet<i64>>) -> Vec<Message> {
    let frame = |entry: &ProductStock| Message::Text(entry.json.clone());
    match ticks {
        [] => Vec::new(),
        [update] => entries_for(update, watched)
            .into_iter()
            .map(frame)
            .collect(),
        ticks => {
            let mut latest: BTreeMap<i64, &ProductStock> = BTreeMap::new();
            for update in ticks {
                for entry in entries_for(update, watched) {
                    latest.insert(entry.product_id, entry);
                }
            }
            latest.into_values().map(frame).collect()
        }
    }
}

async fn send_values<S>(
    sink: &mut S,
    hub: &Hub,
    values: &[(i64, i64)],
    settings: &WsSettings,
) -> bool
where
    S: Sink<Message> + Unpin,
    S::Error: Display,
{
    let frames = values
        .iter()
        .map(|&(product_id, available)| {
            Message::text(crate::hub::stock_json(product_id, available))
        })
        .collect();
    send_frames(sink, hub, frames, settings).await
}

/// Writes frames and flushes once, within `send_timeout`; false when the client is not
/// taking them (and the session must end).
async fn send_frames<S>(
    sink: &mut S,
    hub: &Hub,
    frames: Vec<Message>,
    settings: &WsSettings,
) -> bool
where
    S: Sink<Message> + Unpin,
    S::Error: Display,
{
    if frames.is_empty() {
        return true;
    }
    let stock_frames = frames.iter().filter(|frame| frame.is_text()).count();
    let write = async {
        for frame in frames {
            sink.feed(frame).await?;
        }
        sink.flush().await
    };
    match tokio::time::timeout(settings.send_timeout, write).await {
        Ok(Ok(())) => {
            hub.count_sent(stock_frames);
            true
        }
        Ok(Err(error)) => {
            tracing::debug!(%error, "ws: write failed");
            false
        }
        Err(_) => {
            tracing::debug!("ws: client not reading; dropped");
            false
        }
    }
}

async fn flush<S>(sink: &mut S, settings: &WsSettings) -> bool
where
    S: Sink<Message> + Unpin,
{
    matches!(
        tokio::time::timeout(settings.send_timeout, sink.flush()).await,
        Ok(Ok(()))
    )
}

/// Sends a close frame, best effort (the session ends either way).
async fn close<S>(sink: &mut S, code: CloseCode, reason: &str)
where
    S: Sink<Message> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        sink.send(Message::Close(Some(frame))),
    )
    .await;
}

#[cfg(test)]
mod tests;
