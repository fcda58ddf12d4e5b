//! `POST /queue`, `GET /queue` and `GET /ws/queue`: the sale's waiting room (README,
//! "Waiting room").
//!
//! The engine keeps the line and the admissions, keyed by the Flash user, so an admission
//! travels with the shopper's session to whichever edge serves them next: every edge asks
//! the same engine, and RESERVE itself refuses a user without one. The edge only relays:
//! join, read the place (each read is the shopper's sign of life), and push the place over
//! a WebSocket while the waiting page is open.

use flash_client::{ClientError, ErrorCode, Place, PlaceState};
use futures::{SinkExt, StreamExt};
use hyper::{Response, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::error::{ApiError, Body, json_response};
use crate::routes::Call;
use crate::routes::products::now_ms;
use crate::ws::handshake::{Socket, upgrade_with};

/// `POST /queue`: joins the sale's waiting room (or keeps the place held); the place.
pub async fn join(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let user = call.caller()?;
    let place = call
        .app
        .engine
        .join(&call.sale.name, &user.engine_id())
        .await?;
    Ok(json_response(StatusCode::OK, &place_json(&place)))
}

/// `GET /queue`: the caller's place; 404 `NOTQUEUED` when they hold none (join again).
pub async fn show(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let user = call.caller()?;
    let place = call
        .app
        .engine
        .position(&call.sale.name, &user.engine_id())
        .await?;
    Ok(json_response(StatusCode::OK, &place_json(&place)))
}

/// `GET /ws/queue`: the caller's place pushed every `queue_poll` (each push is a
/// FLASH.POSITION, so an open page keeps the place), as `GET /queue`'s JSON. When the
/// shopper is admitted the last message says so and the server closes (1000); a lost place
/// is `{"error":"NOTQUEUED",…}` and a close (1000). Needs the session (the cookie the
/// browser sends with the handshake); counts against the per-address WebSocket cap.
pub async fn watch(call: Call<'_>) -> Result<Response<Body>, ApiError> {
    let user = call.signed_in().ok_or_else(ApiError::unauthenticated)?;
    let app = call.app;
    let hub = app.hubs.hub(&call.sale.name).await?;
    let engine = app.engine.clone();
    let sale = call.sale.name.clone();
    let settings = app.ws.clone();
    let peer = call.peer;
    Ok(upgrade_with(
        call.into_request(),
        peer,
        &hub,
        &app.ws,
        move |socket| async move { push_places(socket, engine, sale, user.engine_id(), settings).await },
    ))
}

/// The waiting page's session: the place now and every `queue_poll`, until admitted, the
/// place is lost, the client closes, or a write times out.
async fn push_places(
    socket: Socket,
    engine: flash_client::FlashClient,
    sale: String,
    user: String,
    settings: crate::ws::WsSettings,
) -> Option<Socket> {
    let (mut sink, mut stream) = socket.split();
    let mut ticks = tokio::time::interval(settings.queue_poll);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let close = loop {
        tokio::select! {
            _ = ticks.tick() => {
                let (message, done) = match engine.position(&sale, &user).await {
                    Ok(place) => (place_json(&place), place.state == PlaceState::Admitted),
                    Err(ClientError::Flash(error))
                        if matches!(error.code, ErrorCode::NotQueued | ErrorCode::NoQueue) =>
                    {
                        let body = json!({ "error": error.code.as_str(), "message": error.message });
                        (body, true)
                    }
                    // The store is unreachable for now: the page keeps its last place.
                    Err(error) => {
                        tracing::debug!(%error, "ws queue: position");
                        continue;
                    }
                };
                let sent = tokio::time::timeout(
                    settings.send_timeout,
                    sink.send(Message::text(message.to_string())),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    return None;
                }
                if done {
                    break Some(CloseFrame { code: CloseCode::Normal, reason: "done".into() });
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Close(_))) => break Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                }),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            },
        }
    };
    let _ = tokio::time::timeout(settings.send_timeout, sink.send(Message::Close(close))).await;
    sink.reunite(stream).ok()
}

/// A place as JSON, with the server's clock so a page can count down to `eta_ms`.
pub fn place_json(place: &Place) -> serde_json::Value {
    json!({
        "state": place.state.as_str(),
        "position": place.position,
        "line": place.line,
        "eta_ms": place.eta_ms,
        "until_ms": place.until_ms,
        "now_ms": now_ms(),
    })
}
