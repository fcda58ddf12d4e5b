//! The accept loop: HTTP/1.1 with upgrades (for the WebSocket), caps on open connections
//! (per process and per address), and a graceful shutdown that lets requests in flight
//! finish.
//!
//! - `connection.rs`: one connection: hyper with a bounded header buffer, the body timeout,
//!   the watchdog of the header and idle timeouts.
//! - `activity.rs`: a connection's phase and deadline, shared by its socket, service and
//!   watchdog.
//! - `watched_io.rs`: the socket wrapper that reports bytes and holds the connection's
//!   slots (an upgraded WebSocket keeps them).
//! - `accept.rs`: backoff for failed accepts, the refusal of connections over an address's
//!   cap.
//! - `open_files.rs`: the open-file limit raised at start, the connection cap kept under it.
//! - `free_memory.rs`: the allocator's free memory given back once a crowd has gone.

mod accept;
mod activity;
mod connection;
mod free_memory;
mod open_files;
mod watched_io;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::app::App;
use crate::limits::Connections;
use crate::settings::EdgeSettings;
use accept::{AcceptBackoff, Refuser};
use activity::Timeouts;
use connection::ConnectionLimits;
use watched_io::ConnectionSlots;

/// How long shutdown waits for open connections (WebSockets included) before giving up.
const DRAIN: Duration = Duration::from_secs(5);

/// The kernel's queue of connections not accepted yet. tokio's `TcpListener::bind` asks
/// for 128, which a crowd overflows at once: a connection arriving at a full queue waits a
/// second for its SYN to be sent again, or is reset (the connection suite's 300 slow
/// clients were, now and then, on a busy machine). The kernel caps it at
/// `net.core.somaxconn` (4096 by default since Linux 5.4).
const BACKLOG: u32 = 4096;

fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As tokio's bind does: a restarted edge need not wait for the old one's TIME_WAITs.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// Starts everything (the app, the embedded worker unless turned off) and serves until
/// `shutdown` resolves. `ready` learns the bound address (the port may have been 0).
pub async fn run(
    settings: EdgeSettings,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let file_limit = open_files::raise_limit();
    let max_connections = open_files::connection_cap(settings.max_connections, file_limit);
    let listener =
        listen(settings.listen).with_context(|| format!("cannot listen on {}", settings.listen))?;
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
        // Every sale this edge serves: the default one and each of the catalog's, the
        // catalog read again as the worker runs, so a sale recorded later is settled too.
        let sales = flash_worker::SaleSet::all(
            &settings.sale,
            flash_worker::sale_set::DEFAULT_CATALOG_REFRESH,
        );
        tokio::spawn(flash_worker::run_sales(
            config,
            sales,
            counters,
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            },
        ))
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
    serve(listener, app.clone(), max_connections, shutdown).await;
    housekeeping.abort();
    let _ = stop_worker.send(true);
    if let Some(worker) = worker {
        // The worker finishes the batch in hand: committed, settled, acknowledged.
        let _ = worker.await;
    }
    info!("edge: stopped");
    Ok(())
}

async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    max: usize,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(max));
    let settings = &app.settings.connections;
    let per_address = Connections::default();
    let max_per_address = settings.connections_per_ip;
    let limits = ConnectionLimits {
        timeouts: Timeouts {
            header: settings.header_timeout(),
            idle: settings.idle_timeout(),
        },
        body: settings.body_timeout(),
        max_header_bytes: settings.max_header_bytes,
    };
    let mut backoff = AcceptBackoff::default();
    let mut refuser = Refuser::new(max_per_address);
    // Every connection watches this; on shutdown each stops taking new requests on its
    // keep-alive and closes after the one in flight.
    let (closing, closing_seen) = tokio::sync::watch::channel(false);
    let trimmer = tokio::spawn(free_memory::trim_after_crowds(slots.clone(), max));
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.succeeded();
                    accepted
                }
                Err(error) => {
                    tokio::time::sleep(backoff.failed(&error)).await;
                    continue;
                }
            },
        };
        // Checked before the process-wide cap, so that one address's crowd is turned away
        // at once instead of queueing in front of everyone else.
        // A trusted proxy carries many clients over its connections: not capped per address.
        let address = if max_per_address == 0 || app.proxies.trusts(peer.ip()) {
            None
        } else {
            match per_address.admit(peer.ip(), max_per_address) {
                Some(slot) => Some(slot),
                None => {
                    refuser.refuse(stream, peer.ip());
                    continue;
                }
            }
        };
        // Over the cap, new connections wait in the kernel's backlog, not in our memory.
        let Ok(process) = slots.clone().acquire_owned().await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection::serve(
            stream,
            peer.ip(),
            ConnectionSlots { process, address },
            app.clone(),
            limits,
            closing_seen.clone(),
        ));
    }
    drop(listener);
    trimmer.abort();
    let _ = closing.send(true);
    // WebSocket sessions live outside the HTTP connections they came from: close them (1001).
    app.hubs.shutdown().await;
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
