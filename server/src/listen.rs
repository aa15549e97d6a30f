//! Serving the router over TCP with the limits an address strangers reach
//! needs: a deadline for a request's headers (which is also how long an
//! idle connection is kept), a deadline for its body, and a cap on open
//! connections. `axum::serve` has none of them (it runs hyper without a
//! timer, so even hyper's own header timeout is off): one connection that
//! sends half a request line would be kept forever, and enough of them
//! would exhaust the process's file descriptors.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use sluice_engine::Shutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use crate::settings::ApiConfig;

/// The limits of the connections of one server.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most time from a connection's start, or the end of its last
    /// answer, to the end of a request's headers.
    pub header_timeout: Duration,
    /// Most connections open at once; more are closed as they arrive.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The limits `api` configures.
    pub fn of(api: &ApiConfig) -> Self {
        Self {
            header_timeout: Duration::from_secs(api.header_timeout_secs.max(1)),
            max_connections: api.max_connections.max(1),
        }
    }
}

/// Serve `app` on `listener` within `limits` until `stop` is triggered;
/// then stop accepting and let the open connections finish their request.
pub async fn serve_on(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: Shutdown,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut refused_since_warning = 0u64;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: it passes.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.triggered() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Full: closed at once, so a flood costs no more than this.
            drop(stream);
            refused_since_warning += 1;
            if refused_since_warning == 1 || refused_since_warning.is_multiple_of(1000) {
                tracing::warn!(
                    limit = limits.max_connections,
                    refused = refused_since_warning,
                    "connections refused: the server has its most open"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(app.clone(), request.map(Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away is no error of the server's.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Middleware giving a request's body a deadline (`api.body_timeout_secs`
/// from when its headers arrived): reading it after that fails, so its
/// handler answers 4xx and the connection is closed.
pub async fn body_deadline(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let request = request.map(|body| {
        Body::new(Deadline {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(limit)),
        })
    });
    next.run(request).await
}

/// A body that fails once its deadline has passed.
struct Deadline {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

/// A body that took longer than its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body took too long to arrive")]
pub struct BodyTimeout;

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
