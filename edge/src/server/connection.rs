//! One accepted connection: HTTP/1.1 (with upgrades) over a bounded read buffer, each
//! request served within the body timeout, and a watchdog that closes the connection when
//! its head or its idle wait runs out of time.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{CONNECTION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::debug;

use super::activity::{Activity, Timeouts};
use super::watched_io::{ConnectionSlots, WatchedIo};
use crate::app::App;
use crate::error::{ApiError, Body};
use crate::routes;

/// hyper refuses a read buffer under this (it panics).
const MIN_READ_BUFFER: usize = 8 * 1024;

/// The limits every connection gets, from the settings.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub timeouts: Timeouts,
    pub body: Duration,
    pub max_header_bytes: usize,
}

/// Serves `stream` until the client closes it, a timeout closes it, it is upgraded to a
/// WebSocket (which then holds `slots` on its own), or the server shuts down (`closing`).
pub async fn serve(
    stream: TcpStream,
    peer: IpAddr,
    slots: ConnectionSlots,
    app: Arc<App>,
    limits: ConnectionLimits,
    mut closing: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(WatchedIo::new(stream, activity.clone(), slots));
    let service = {
        let activity = activity.clone();
        service_fn(move |req| {
            let app = app.clone();
            let activity = activity.clone();
            async move {
                activity.request_started();
                // The handler reads the body: a client that sends half of it stalls the
                // handler, and this is what ends the wait.
                let handled =
                    tokio::time::timeout(limits.body, routes::handle(app.clone(), req, peer)).await;
                let response = handled.unwrap_or_else(|_| request_timeout(&app, limits.body));
                activity.reply_ready();
                Ok::<_, Infallible>(response)
            }
        })
    };
    // The read buffer holds the head being parsed (and bodies pass through it in pieces):
    // hyper's default lets it grow to ~400 KB per connection, 8 GB for 20,000 clients
    // that each send headers without end.
    let connection = http1::Builder::new()
        .keep_alive(true)
        .max_buf_size(limits.max_header_bytes.max(MIN_READ_BUFFER))
        .max_header_size(limits.max_header_bytes)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    loop {
        let deadline = activity.deadline(&limits.timeouts);
        let expired = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    debug!(%peer, %error, "edge: connection ended with an error");
                }
                return;
            }
            () = activity.changed() => {}
            () = expired => {
                // The phase may have changed at the very moment: then look again.
                let now = tokio::time::Instant::now();
                if activity.deadline(&limits.timeouts).is_some_and(|deadline| deadline <= now) {
                    // Dropping the connection closes the socket (and gives its slots back).
                    debug!(%peer, phase = ?activity.phase(), "edge: connection timed out");
                    return;
                }
            }
            // The watch's guard is not Send: drop it before the select's arm runs. A
            // dropped sender means the server is stopping too.
            _ = async { closing.wait_for(|closing| *closing).await.is_ok() } => {
                // Stop taking requests on this keep-alive; finish the one in flight.
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
                return;
            }
        }
    }
}

/// The reply to a request whose body did not come (or whose handling did not end) within
/// the body timeout. The connection closes after it: the rest of the body may still come,
/// and there is no telling where the next request would start.
fn request_timeout(app: &App, after: Duration) -> Response<Body> {
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "REQUEST_TIMEOUT",
        format!(
            "the request was not received and answered within {} ms of its headers; send \
             the body right after them",
            after.as_millis()
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    app.metrics.request(
        "request_timeout",
        StatusCode::REQUEST_TIMEOUT.as_u16(),
        after,
    );
    response
}
