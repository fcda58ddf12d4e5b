//! What `flash up` runs, watched and stopped: the servers and the edge started so far
//! ([`Stack`]), the wait for a stop signal or a part's end ([`supervise`]), and the
//! stop in reverse order ([`Stack::stop`]).

use std::time::Duration;

use anyhow::Result;
use flash_servers::{Server, Stopped};
use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};

use super::data::DataDir;
use crate::common::Signals;

/// The edge: its connections drain for 5 s, then the worker finishes its batch.
const EDGE_STOP: Duration = Duration::from_secs(20);
const REDIS_STOP: Duration = Duration::from_secs(15);
/// A fast shutdown writes a checkpoint first.
const POSTGRES_STOP: Duration = Duration::from_secs(30);

/// Everything started so far; [`Stack::stop`] stops it in reverse order.
#[derive(Default)]
pub struct Stack {
    /// One redis-server, or every node of `--shards`' cluster.
    pub redis: Vec<Server>,
    pub postgres: Option<Server>,
    pub edge: Option<Edge>,
    /// Locked until `flash up` ends, after its servers have stopped.
    pub data: Option<DataDir>,
}

pub struct Edge {
    pub stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<()>>,
}

#[derive(Clone, Copy)]
pub enum Part {
    /// Which of [`Stack::redis`].
    Redis(usize),
    Postgres,
}

pub enum Event {
    Signal(&'static str),
    Exited(Part, Result<std::process::ExitStatus>),
    EdgeEnded(Result<Result<()>, JoinError>),
}

/// Waits for a stop signal, or for a part to end by itself.
pub async fn supervise(stack: &mut Stack, signals: &mut Signals) -> Event {
    let Stack {
        redis,
        postgres,
        edge,
        ..
    } = stack;
    tokio::select! {
        name = signals.recv() => Event::Signal(name),
        (node, status) = any_exited(redis) => Event::Exited(Part::Redis(node), status),
        status = exited(postgres) => Event::Exited(Part::Postgres, status),
        outcome = edge_ended(edge) => Event::EdgeEnded(outcome),
    }
}

async fn exited(server: &mut Option<Server>) -> Result<std::process::ExitStatus> {
    match server {
        Some(server) => server.exited().await,
        None => std::future::pending().await,
    }
}

/// The first of `servers` to exit, and how.
async fn any_exited(servers: &mut [Server]) -> (usize, Result<std::process::ExitStatus>) {
    if servers.is_empty() {
        return std::future::pending().await;
    }
    let waits = servers.iter_mut().map(|server| Box::pin(server.exited()));
    let (status, node, _) = futures::future::select_all(waits).await;
    (node, status)
}

async fn edge_ended(edge: &mut Option<Edge>) -> Result<Result<()>, JoinError> {
    match edge {
        Some(edge) => (&mut edge.task).await,
        None => std::future::pending().await,
    }
}

impl Stack {
    pub fn is_running(&self) -> bool {
        !self.redis.is_empty() || self.postgres.is_some() || self.edge.is_some()
    }

    /// Stops what runs, newest first, saying what stopped; returns whether every part
    /// stopped cleanly.
    pub async fn stop(&mut self) -> bool {
        let mut clean = true;
        if let Some(mut edge) = self.edge.take() {
            if let Some(stop) = edge.stop.take() {
                let _ = stop.send(());
            }
            match tokio::time::timeout(EDGE_STOP, &mut edge.task).await {
                Ok(Ok(Ok(()))) => {
                    println!("  edge          stopped; its worker finished the batch in hand")
                }
                Ok(Ok(Err(error))) => {
                    clean = false;
                    println!("  edge          stopped with an error: {error:#}");
                }
                Ok(Err(error)) => {
                    clean = false;
                    println!("  edge          crashed: {error}");
                }
                Err(_) => {
                    clean = false;
                    edge.task.abort();
                    println!("  edge          still stopping after {EDGE_STOP:?}; abandoned");
                }
            }
        }
        // The cluster's nodes newest first, then PostgreSQL.
        let mut servers: Vec<(Option<Server>, Duration, &str)> = std::mem::take(&mut self.redis)
            .into_iter()
            .rev()
            .map(|server| {
                (
                    Some(server),
                    REDIS_STOP,
                    "; its append-only file is on disk",
                )
            })
            .collect();
        servers.push((self.postgres.take(), POSTGRES_STOP, ""));
        for (server, timeout, note) in servers {
            let Some(mut server) = server else {
                continue;
            };
            let label = format!("{:<13}", server.name);
            match server.stop(timeout).await {
                Ok(Stopped::Exited(status)) if status.success() => {
                    println!("  {label} stopped (pid {}, exit 0){note}", server.pid);
                }
                Ok(Stopped::Exited(status)) => {
                    clean = false;
                    println!("  {label} ended with {status} (pid {})", server.pid);
                }
                Ok(Stopped::Killed) => {
                    clean = false;
                    println!(
                        "  {label} did not stop within {timeout:?}: killed (pid {})",
                        server.pid
                    );
                }
                Err(error) => {
                    clean = false;
                    println!(
                        "  {label} cannot be stopped (pid {}): {error:#}",
                        server.pid
                    );
                }
            }
        }
        clean
    }
}
