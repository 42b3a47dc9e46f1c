//! One connection per API server, shared by every concurrent request.
//!
//! hyper's client learns that a server speaks HTTP/2 only from the TLS
//! handshake (ALPN). Until the first connection has finished it, every
//! request of a concurrent batch starts a connection of its own, and all but
//! one are thrown away once HTTP/2 is known: a `status` run made 13 TCP and
//! TLS handshakes (each signing with the client key) where one serves. This
//! connector lets one connection at a time be established while the
//! protocol is unknown, and holds every other connect back while an HTTP/2
//! connection is alive: the requests waiting on it are handed that
//! connection by hyper's pool as soon as it is ready. When a server answers
//! with HTTP/1.1 (one request per connection), connections are opened side
//! by side from then on, as before. A held-back connect that hyper no longer
//! needs waits in the background until the connection it would replace
//! closes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::sync::{Semaphore, watch};
use tower::{BoxError, Service};

/// Wraps a connector so that its client keeps one HTTP/2 connection.
#[derive(Clone)]
pub struct OneConnection<C> {
    inner: C,
    state: Arc<State>,
}

struct State {
    /// One connect at a time while the server's protocol is unknown.
    establishing: Semaphore,
    /// How many HTTP/2 connections are open.
    live_http2: watch::Sender<usize>,
    /// The server answered with HTTP/1.1: connect freely.
    http1: AtomicBool,
}

impl<C> OneConnection<C> {
    pub fn new(inner: C) -> OneConnection<C> {
        OneConnection {
            inner,
            state: Arc::new(State {
                establishing: Semaphore::new(1),
                live_http2: watch::Sender::new(0),
                http1: AtomicBool::new(false),
            }),
        }
    }
}

impl<C> Service<Uri> for OneConnection<C>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Response: Connection + Read + Write + Unpin + Send,
    C::Future: Send,
    C::Error: Into<BoxError>,
{
    type Response = Tracked<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // The clone that was made ready does the work (tower's rule).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let state = self.state.clone();
        Box::pin(async move {
            if state.http1.load(Ordering::Relaxed) {
                let io = inner.call(uri).await.map_err(Into::into)?;
                return Ok(Tracked { io, state: None });
            }
            loop {
                let mut live = state.live_http2.subscribe();
                live.wait_for(|open| *open == 0)
                    .await
                    .map_err(|_| io::Error::other("connection state closed"))?;
                let _permit = state
                    .establishing
                    .acquire()
                    .await
                    .map_err(|_| io::Error::other("connection state closed"))?;
                if *state.live_http2.borrow() > 0 {
                    // Another connect finished while this one waited.
                    continue;
                }
                let io = inner.call(uri).await.map_err(Into::into)?;
                if !io.connected().is_negotiated_h2() {
                    state.http1.store(true, Ordering::Relaxed);
                    return Ok(Tracked { io, state: None });
                }
                state.live_http2.send_modify(|open| *open += 1);
                return Ok(Tracked {
                    io,
                    state: Some(state.clone()),
                });
            }
        })
    }
}

/// A connection, counted among the live HTTP/2 connections while open.
pub struct Tracked<T> {
    io: T,
    state: Option<Arc<State>>,
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        if let Some(state) = &self.state {
            state.live_http2.send_modify(|open| *open -= 1);
        }
    }
}

impl<T: Connection> Connection for Tracked<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: Read + Unpin> Read for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
