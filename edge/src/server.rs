//! The accept loop: HTTP/1.1 with upgrades (for the WebSocket), a cap on open connections,
//! and a graceful shutdown that lets requests in flight finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::app::App;
use crate::routes;
use crate::settings::EdgeSettings;

/// How long shutdown waits for open connections (WebSockets included) before giving up.
const DRAIN: Duration = Duration::from_secs(5);

/// Starts everything (the app, the embedded worker unless turned off) and serves until
/// `shutdown` resolves. `ready` learns the bound address (the port may have been 0).
pub async fn run(
    settings: EdgeSettings,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let app = App::start(settings).await?;
    let address = listener.local_addr()?;
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    let worker = app.worker.clone().map(|counters| {
        let settings = &app.settings;
        let config = settings.worker.config(
            &settings.redis_url,
            &settings.database_url,
            &settings.sale,
            settings.consumer.as_deref(),
            "edge-",
        );
        info!(consumer = %config.consumer, "edge: running the order worker in this process");
        let mut stopped = worker_stopped.clone();
        tokio::spawn(flash_worker::consumer::run(config, counters, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    });
    let housekeeping = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(10));
            loop {
                every.tick().await;
                app.limits.forget_idle();
            }
        })
    };
    info!(%address, sale = %app.settings.sale, "edge: serving http://{address}/");
    ready(address);
    serve(listener, app.clone(), shutdown).await;
    housekeeping.abort();
    let _ = stop_worker.send(true);
    if let Some(worker) = worker {
        // The worker finishes the batch in hand: committed, settled, acknowledged.
        let _ = worker.await;
    }
    info!("edge: stopped");
    Ok(())
}

async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let max = app.settings.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    // Every connection watches this; on shutdown each stops taking new requests on its
    // keep-alive and closes after the one in flight.
    let (closing, closing_seen) = tokio::sync::watch::channel(false);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, usually: wait a little instead of spinning.
                    warn!(%error, "edge: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Over the cap, new connections wait in the kernel's backlog, not in our memory.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(routes::handle(app, req, peer.ip()).await) }
        });
        let mut closing = closing_seen.clone();
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                // The watch's guard is not Send: drop it before the select's arm runs.
                _ = async { closing.wait_for(|closing| *closing).await.is_ok() } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // WebSocket sessions live outside the HTTP connections they came from: close them (1001).
    app.hub.shutdown();
    let drained = tokio::time::timeout(DRAIN, async {
        while slots.available_permits() < max {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if drained.is_err() {
        warn!("edge: connections still open after {DRAIN:?}; closing them");
    }
}
