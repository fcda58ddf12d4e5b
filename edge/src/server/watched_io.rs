//! The accepted socket as the HTTP connection sees it: it tells the connection's
//! [`Activity`] when bytes arrive, and it owns the connection's places (in
//! `--max-connections` and in its address's cap).
//!
//! Owning the places here, rather than in the task that serves the HTTP connection, is what
//! makes an upgraded WebSocket count: hyper hands this very socket to the WebSocket session
//! inside `Upgraded`, so the places are given back when the socket closes, whoever holds it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::activity::Activity;
use crate::limits::ClientSlot;

/// A connection's places, given back when it drops.
#[expect(
    dead_code,
    reason = "held, never read: dropping them gives the places back"
)]
pub struct ConnectionSlots {
    /// Its place in `--max-connections`.
    pub process: OwnedSemaphorePermit,
    /// Its place in its address's cap (`None` when the cap is off).
    pub address: Option<ClientSlot>,
}

pub struct WatchedIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    _slots: ConnectionSlots,
}

impl WatchedIo {
    pub fn new(stream: TcpStream, activity: Arc<Activity>, slots: ConnectionSlots) -> WatchedIo {
        WatchedIo {
            stream,
            activity,
            _slots: slots,
        }
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.received();
        }
        polled
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
