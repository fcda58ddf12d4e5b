#![allow(clippy::unwrap_used)]

use super::*;
use crate::hub::tests::{FakeEngine, manual_hub};
use futures::channel::mpsc;
use tokio_tungstenite::tungstenite::error::CapacityError;

/// A session on channels: what the test sends arrives as client frames; what the session
/// writes, the test reads.
struct Client {
    to_server: mpsc::UnboundedSender<Result<Message, WsError>>,
    from_server: mpsc::Receiver<Message>,
    session: tokio::task::JoinHandle<SessionEnd>,
}

fn connect(hub: &Hub, settings: WsSettings, outgoing_capacity: usize) -> Client {
    let (to_server, mut incoming) = mpsc::unbounded();
    let (mut outgoing, from_server) = mpsc::channel(outgoing_capacity);
    let hub = hub.clone();
    let session =
        tokio::spawn(
            async move { run_session(&mut outgoing, &mut incoming, &hub, &settings).await },
        );
    Client {
        to_server,
        from_server,
        session,
    }
}

impl Client {
    fn send(&self, text: &str) {
        self.to_server
            .unbounded_send(Ok(Message::text(text)))
            .unwrap();
    }

    async fn next(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(5), self.from_server.next())
            .await
            .expect("a frame within 5 s")
            .expect("the session is still writing")
    }

    /// The next stock frame as (product, available).
    async fn next_stock(&mut self) -> (i64, i64) {
        let message = self.next().await;
        let text = message.to_text().unwrap();
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        (
            value["product_id"].as_i64().unwrap(),
            value["available"].as_i64().unwrap(),
        )
    }

    async fn next_stocks(&mut self, count: usize) -> Vec<(i64, i64)> {
        let mut frames = Vec::new();
        for _ in 0..count {
            frames.push(self.next_stock().await);
        }
        frames.sort_unstable();
        frames
    }

    fn assert_quiet(&mut self) {
        assert!(
            self.from_server.try_recv().is_err(),
            "no frame expected now"
        );
    }

    async fn close_code(&mut self) -> CloseCode {
        match self.next().await {
            Message::Close(Some(frame)) => frame.code,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    async fn end(self) -> SessionEnd {
        tokio::time::timeout(Duration::from_secs(5), self.session)
            .await
            .expect("the session ends within 5 s")
            .unwrap()
    }
}

/// Lets the session task run until it waits again.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn before_subscribing_a_client_receives_every_products_changes() {
    let hub = manual_hub(None, 16);
    let mut client = connect(&hub, WsSettings::default(), 64);
    settle().await;
    hub.record_event(1, 10);
    hub.record_event(2, 20);
    hub.tick_now();
    assert_eq!(client.next_stocks(2).await, vec![(1, 10), (2, 20)]);
}

#[tokio::test]
async fn subscribe_sends_current_values_then_only_the_watched_products() {
    // 3 is known only to the engine; 99 was never loaded.
    let engine = FakeEngine::new(&[(3, 30)]);
    let hub = manual_hub(Some(engine), 16);
    hub.record_event(1, 10);
    hub.record_event(2, 20);
    hub.tick_now();
    let mut client = connect(&hub, WsSettings::default(), 64);
    settle().await;

    client.send(r#"{"subscribe":[3,1,99,1]}"#);
    assert_eq!(client.next_stocks(2).await, vec![(1, 10), (3, 30)]);
    settle().await;
    client.assert_quiet();

    hub.record_event(1, 9);
    hub.record_event(2, 19);
    hub.tick_now();
    assert_eq!(client.next_stock().await, (1, 9));
    hub.record_event(2, 18);
    hub.record_event(3, 29);
    hub.tick_now();
    assert_eq!(client.next_stock().await, (3, 29));
    settle().await;
    client.assert_quiet();

    // A new subscribe replaces the set.
    client.send(r#"{"subscribe":[2]}"#);
    assert_eq!(client.next_stock().await, (2, 18));
    hub.record_event(1, 8);
    hub.record_event(2, 17);
    hub.tick_now();
    assert_eq!(client.next_stock().await, (2, 17));
    settle().await;
    client.assert_quiet();
}

#[tokio::test]
async fn ticks_older_than_the_subscribe_snapshot_are_not_replayed() {
    let hub = manual_hub(None, 16);
    let mut client = connect(&hub, WsSettings::default(), 64);
    settle().await;
    // A tick the session has not read yet when the subscribe's snapshot is taken.
    hub.record_event(1, 10);
    hub.tick_now();
    hub.record_event(1, 9);
    client.send(r#"{"subscribe":[1]}"#);
    // The tick (1 → 10) may arrive before the subscribe is read; after it, only newer
    // values, ending on 9.
    let mut last = client.next_stock().await;
    if last == (1, 10) {
        last = client.next_stock().await;
    }
    assert_eq!(last, (1, 9));
    hub.tick_now();
    // The pending 9 goes out with the tick (harmless repeat); never 10 again.
    assert_eq!(client.next_stock().await, (1, 9));
    settle().await;
    client.assert_quiet();
}

#[tokio::test]
async fn a_lagging_client_skips_to_the_latest_values() {
    // Room for 2 ticks in the broadcast and 1 frame in the client's pipe: a client that
    // does not read falls behind at once.
    let hub = manual_hub(None, 2);
    let mut client = connect(&hub, WsSettings::default(), 1);
    settle().await;
    client.send(r#"{"subscribe":[1,2]}"#);
    settle().await;
    for available in (50..100).rev() {
        hub.record_event(1, available);
        if available % 10 == 0 {
            hub.record_event(2, available);
        }
        hub.tick_now();
        settle().await;
    }
    hub.record_event(3, 7);
    hub.tick_now();

    // Read everything the session sends; the last value of each product must be the
    // latest, even though most ticks were never delivered.
    let mut last: std::collections::HashMap<i64, i64> = Default::default();
    let mut frames = 0;
    loop {
        let next = tokio::time::timeout(Duration::from_millis(300), client.next_stock()).await;
        let Ok((product, available)) = next else {
            break;
        };
        frames += 1;
        last.insert(product, available);
    }
    assert_eq!(last.get(&1), Some(&50));
    assert_eq!(last.get(&2), Some(&50));
    assert_eq!(last.get(&3), None, "3 is not watched");
    assert!(
        frames < 50,
        "missed ticks are not replayed: {frames} frames"
    );
    assert!(hub.updates_dropped() > 0);
    assert!(hub.lag_resyncs() > 0);
}

/// A socket that records what each flush wrote: one entry per write a real socket makes.
struct RecordingSink {
    pending: Vec<Message>,
    writes: Arc<std::sync::Mutex<Vec<Vec<Message>>>>,
}

impl Sink<Message> for RecordingSink {
    type Error = std::convert::Infallible;

    fn poll_ready(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn start_send(self: std::pin::Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.get_mut().pending.push(item);
        Ok(())
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            let write = std::mem::take(&mut this.pending);
            this.writes.lock().unwrap().push(write);
        }
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }
}

/// A session writing to a [`RecordingSink`]: the sender of client frames, the writes.
type Recorded = (
    mpsc::UnboundedSender<Result<Message, WsError>>,
    Arc<std::sync::Mutex<Vec<Vec<Message>>>>,
);

fn connect_recorded(hub: &Hub) -> Recorded {
    let (to_server, mut incoming) = mpsc::unbounded();
    let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut sink = RecordingSink {
        pending: Vec::new(),
        writes: writes.clone(),
    };
    let hub = hub.clone();
    tokio::spawn(async move {
        run_session(&mut sink, &mut incoming, &hub, &WsSettings::default()).await
    });
    (to_server, writes)
}

/// The writes since the last call, each as its frames' (product, available); every frame
/// must be exactly one `{"product_id":…,"available":…}` object.
fn take_writes(writes: &std::sync::Mutex<Vec<Vec<Message>>>) -> Vec<Vec<(i64, i64)>> {
    std::mem::take(&mut *writes.lock().unwrap())
        .into_iter()
        .map(|write| {
            write
                .iter()
                .map(|frame| {
                    let text = frame.to_text().unwrap();
                    let value: serde_json::Value = serde_json::from_str(text).unwrap();
                    let (product_id, available) = (
                        value["product_id"].as_i64().unwrap(),
                        value["available"].as_i64().unwrap(),
                    );
                    assert_eq!(text, crate::hub::stock_json(product_id, available));
                    (product_id, available)
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn ticks_waiting_together_go_out_in_one_write_with_the_latest_value_per_product() {
    let hub = manual_hub(None, 16);
    let (_to_server, writes) = connect_recorded(&hub);
    settle().await;
    // Three ticks before the session runs again, as when the edge is busy.
    hub.record_event(1, 10);
    hub.record_event(2, 20);
    hub.tick_now();
    hub.record_event(1, 9);
    hub.tick_now();
    hub.record_event(3, 30);
    hub.record_event(1, 8);
    hub.tick_now();
    settle().await;
    assert_eq!(take_writes(&writes), vec![vec![(1, 8), (2, 20), (3, 30)]]);
    assert_eq!(hub.messages_sent(), 3);

    // A session that keeps up writes each tick as it comes.
    hub.record_event(2, 19);
    hub.tick_now();
    settle().await;
    hub.record_event(2, 18);
    hub.tick_now();
    settle().await;
    assert_eq!(take_writes(&writes), vec![vec![(2, 19)], vec![(2, 18)]]);
}

#[tokio::test]
async fn a_subscribed_session_merges_only_its_products_and_skips_what_its_snapshot_sent() {
    let hub = manual_hub(None, 16);
    hub.record_event(1, 10);
    hub.record_event(2, 20);
    hub.tick_now();
    let (to_server, writes) = connect_recorded(&hub);
    settle().await;
    to_server
        .unbounded_send(Ok(Message::text(r#"{"subscribe":[1,3]}"#)))
        .unwrap();
    settle().await;
    assert_eq!(take_writes(&writes), vec![vec![(1, 10)]]);

    hub.record_event(1, 9);
    hub.record_event(2, 19);
    hub.tick_now();
    hub.record_event(2, 18);
    hub.tick_now();
    hub.record_event(3, 30);
    hub.record_event(1, 8);
    hub.tick_now();
    hub.record_event(1, 7);
    hub.tick_now();
    settle().await;
    assert_eq!(take_writes(&writes), vec![vec![(1, 7), (3, 30)]]);
    // Ticks that carry none of its products write nothing.
    hub.record_event(2, 17);
    hub.tick_now();
    settle().await;
    assert!(take_writes(&writes).is_empty());
}

#[test]
fn merging_keeps_one_frame_per_product_with_its_newest_value() {
    let tick = |tick: u64, values: &[(i64, i64)]| StockUpdate {
        tick,
        entries: values
            .iter()
            .map(|&(product_id, available)| ProductStock::new(product_id, available))
            .collect(),
    };
    let first = tick(1, &[(1, 10), (2, 20), (5, 50)]);
    let second = tick(2, &[(2, 19)]);
    let third = tick(3, &[(1, 9), (2, 18)]);
    let texts = |frames: Vec<Message>| -> Vec<String> {
        frames
            .iter()
            .map(|frame| frame.to_text().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        texts(merged_frames(&[&first, &second, &third], None)),
        vec![
            r#"{"product_id":1,"available":9}"#,
            r#"{"product_id":2,"available":18}"#,
            r#"{"product_id":5,"available":50}"#,
        ]
    );
    let watched: HashSet<i64> = [2, 5].into();
    assert_eq!(
        texts(merged_frames(&[&first, &second], Some(&watched))),
        vec![
            r#"{"product_id":2,"available":19}"#,
            r#"{"product_id":5,"available":50}"#,
        ]
    );
    // A single tick: its entries as they are, each a plain object.
    assert_eq!(
        texts(merged_frames(&[&second], None)),
        vec![r#"{"product_id":2,"available":19}"#]
    );
    assert!(merged_frames(&[], None).is_empty());
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_send_timeout() {
    let hub = manual_hub(None, 4);
    let settings = WsSettings {
        send_timeout: Duration::from_millis(100),
        ..WsSettings::default()
    };
    let client = connect(&hub, settings, 1);
    settle().await;
    for available in 0..10 {
        hub.record_event(available, available);
        hub.tick_now();
        settle().await;
    }
    assert_eq!(client.end().await, SessionEnd::SendFailed);
}

#[tokio::test]
async fn garbage_and_oversized_subscribes_close_with_policy_violation() {
    let hub = manual_hub(None, 16);
    for text in [
        "hello",
        r#"{"subscribe":"14"}"#,
        r#"{"subscribe":[1.5]}"#,
        r#"{"subscribe":[0]}"#,
        r#"{"subscribe":[1],"also":2}"#,
    ] {
        let mut client = connect(&hub, WsSettings::default(), 64);
        client.send(text);
        assert_eq!(client.close_code().await, CloseCode::Policy, "{text}");
        assert_eq!(client.end().await, SessionEnd::PolicyViolation);
    }
    let settings = WsSettings {
        max_subscribe_ids: 3,
        ..WsSettings::default()
    };
    let mut client = connect(&hub, settings, 64);
    client.send(r#"{"subscribe":[1,2,3,4]}"#);
    assert_eq!(client.close_code().await, CloseCode::Policy);
}

#[tokio::test]
async fn binary_frames_close_with_unsupported_data() {
    let hub = manual_hub(None, 16);
    let mut client = connect(&hub, WsSettings::default(), 64);
    client
        .to_server
        .unbounded_send(Ok(Message::binary(vec![1, 2, 3])))
        .unwrap();
    assert_eq!(client.close_code().await, CloseCode::Unsupported);
    assert_eq!(client.end().await, SessionEnd::UnsupportedData);
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let hub = manual_hub(None, 16);
    let mut client = connect(&hub, WsSettings::default(), 64);
    let too_long = CapacityError::MessageTooLong {
        size: 5000,
        max_size: 4096,
    };
    client
        .to_server
        .unbounded_send(Err(WsError::Capacity(too_long)))
        .unwrap();
    assert_eq!(client.close_code().await, CloseCode::Size);
    assert_eq!(client.end().await, SessionEnd::MessageTooBig);
}

#[tokio::test]
async fn a_client_close_ends_the_session() {
    let hub = manual_hub(None, 16);
    let client = connect(&hub, WsSettings::default(), 64);
    client
        .to_server
        .unbounded_send(Ok(Message::Close(None)))
        .unwrap();
    assert_eq!(client.end().await, SessionEnd::ClosedByClient);
}

#[tokio::test]
async fn shutdown_closes_sessions_with_going_away() {
    let hub = manual_hub(None, 16);
    let mut client = connect(&hub, WsSettings::default(), 64);
    settle().await;
    hub.shutdown();
    assert_eq!(client.close_code().await, CloseCode::Away);
    assert_eq!(client.end().await, SessionEnd::ServerShutdown);
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_pinged_then_dropped() {
    let hub = manual_hub(None, 16);
    let settings = WsSettings {
        heartbeat: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(75),
        ..WsSettings::default()
    };
    let mut client = connect(&hub, settings, 64);
    // Paused time jumps to the next timer, so no timeouts here: they would fire first.
    assert!(matches!(
        client.from_server.next().await,
        Some(Message::Ping(_))
    ));
    assert!(matches!(
        client.from_server.next().await,
        Some(Message::Ping(_))
    ));
    assert_eq!(client.session.await.unwrap(), SessionEnd::Idle);
}

#[test]
fn subscribe_parsing() {
    assert_eq!(
        parse_subscribe(r#"{"subscribe":[3,1,3]}"#, 200),
        Ok(vec![1, 3])
    );
    assert_eq!(parse_subscribe(r#"{"subscribe":[]}"#, 200), Ok(vec![]));
    assert!(parse_subscribe(r#"{"subscribe":[9007199254740992]}"#, 200).is_err());
    assert!(parse_subscribe(r#"{"subscribe":[-1]}"#, 200).is_err());
    assert!(parse_subscribe("[1,2]", 200).is_err());
    assert!(parse_subscribe(r#"{"subscribe":[1,2,3]}"#, 2).is_err());
}
