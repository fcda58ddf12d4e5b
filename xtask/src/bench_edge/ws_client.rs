//! One WebSocket client of the fan-out: connect, subscribe, then read every stock frame
//! and tell which change it carries and how late.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::ws::{Schedule, WS_BASE, WsShared};

/// What one client saw.
#[derive(Default)]
pub(super) struct ClientStats {
    /// Delivery latency of each change received, in microseconds.
    pub latency_us: Vec<u32>,
    /// Distinct changes received.
    pub received: u64,
    /// Frames carrying a change already received (or older than one received).
    pub stale: u64,
    /// Frames that were not a stock frame this run sent.
    pub unexpected: u64,
    /// The last value of each product.
    pub last: Vec<i64>,
    pub ended_early: Option<String>,
}

/// One WebSocket client: connect (a handshake permit at a time), subscribe, wait for the
/// starting values, then record every change until told to stop. `None` if it never
/// connected.
pub(super) async fn ws_client(
    address: SocketAddr,
    schedule: Schedule,
    shared: Arc<WsShared>,
    handshakes: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> Option<ClientStats> {
    let products = schedule.products as usize;
    let mut stats = ClientStats {
        last: vec![0; products],
        latency_us: Vec::with_capacity(schedule.changes as usize / products + 8),
        ..ClientStats::default()
    };
    let finals = schedule.finals();
    let mut socket = {
        let _permit = handshakes.acquire().await.ok()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match ws_connect(address, products).await {
                Ok(socket) => break socket,
                Err(_) if attempt < 3 => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(_) => {
                    shared.failed.fetch_add(1, Ordering::AcqRel);
                    return None;
                }
            }
        }
    };
    let mut ready = false;
    let mut complete = false;
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            _ = stop.changed() => break,
        };
        let received_at = Instant::now();
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(frame))) => {
                stats.ended_early = Some(format!("closed by the edge: {frame:?}"));
                break;
            }
            Some(Ok(Message::Binary(_))) => {
                stats.unexpected += 1;
                continue;
            }
            Some(Err(error)) => {
                stats.ended_early = Some(format!("read failed: {error}"));
                break;
            }
            None => {
                stats.ended_early = Some("the connection ended".to_owned());
                break;
            }
        };
        let Some((product, available)) = parse_stock_frame(text.as_str()) else {
            stats.unexpected += 1;
            continue;
        };
        let Some(index) = usize::try_from(product - 1).ok().filter(|&i| i < products) else {
            stats.unexpected += 1;
            continue;
        };
        let seq = available - WS_BASE;
        if seq >= 1 && seq as u64 <= schedule.changes {
            if available <= stats.last[index] {
                stats.stale += 1;
            } else {
                stats.received += 1;
                let sent = shared.sent_at[seq as usize].load(Ordering::Acquire);
                let now = received_at.duration_since(shared.base).as_nanos() as u64 + 1;
                let micros = now.saturating_sub(sent) / 1000;
                stats
                    .latency_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                shared.delivered[seq as usize].fetch_add(1, Ordering::Relaxed);
                shared.latency_sum_us[seq as usize].fetch_add(micros, Ordering::Relaxed);
            }
        } else if available != WS_BASE {
            stats.unexpected += 1;
            continue;
        }
        stats.last[index] = stats.last[index].max(available);
        if !ready && stats.last.iter().all(|&value| value >= WS_BASE) {
            ready = true;
            shared.ready.fetch_add(1, Ordering::AcqRel);
        }
        if !complete
            && stats
                .last
                .iter()
                .zip(&finals)
                .all(|(&last, &seq)| last == WS_BASE + seq as i64)
        {
            complete = true;
            shared.complete.fetch_add(1, Ordering::AcqRel);
        }
    }
    if !ready {
        // Counted, so the wait for subscriptions ends.
        shared.failed.fetch_add(1, Ordering::AcqRel);
    }
    let _ = socket.close(None).await;
    Some(stats)
}

type WsSocket = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn ws_connect(address: SocketAddr, products: usize) -> Result<WsSocket> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let request = format!("ws://{address}/ws/catalog").into_client_request()?;
    // Small buffers: the default read buffer is 128 KiB, allocated per connection.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096);
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    let ids: Vec<String> = (1..=products).map(|id| id.to_string()).collect();
    socket
        .send(Message::text(format!(
            "{{\"subscribe\":[{}]}}",
            ids.join(",")
        )))
        .await?;
    Ok(socket)
}

/// `{"product_id":14,"available":7}` → (14, 7), by a scan: the clients read 200,000 frames a
/// second between them, on the cores the edge needs.
fn parse_stock_frame(text: &str) -> Option<(i64, i64)> {
    let field = |name: &str| -> Option<i64> {
        let start = text.find(name)? + name.len();
        let rest = &text[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    Some((field("\"product_id\":")?, field("\"available\":")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_frames_are_read_by_scanning() {
        assert_eq!(
            parse_stock_frame(r#"{"product_id":14,"available":1000007}"#),
            Some((14, 1_000_007))
        );
        assert_eq!(parse_stock_frame(r#"{"product_id":14}"#), None);
    }
}
