//! The HTTP server loop: axum's router on hyper's HTTP/1.1 connections, with the limits a
//! public server needs that `axum::serve` does not set: a deadline for a request's headers (a
//! client trickling bytes cannot hold a connection forever), a cap on header bytes and on open
//! connections, and a graceful stop that waits for the requests in flight. (The body deadline
//! is applied where bodies are read, in `extract::ApiJson`.)

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt as _;

/// Limits of the HTTP layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's headers must arrive within this (also bounds an idle keep-alive wait).
    pub header_read_timeout: Duration,
    /// A JSON request body must arrive within this, once its headers have (else 408).
    pub body_read_timeout: Duration,
    /// Most bytes buffered for a request's head; more is answered 431.
    pub max_header_bytes: usize,
    /// Most connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
        }
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Dropping the sender tells every connection to finish its request and close.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut accept_errors = 0u64;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or the like: wait instead of spinning, and say
                    // so once a second rather than at every retry.
                    if accept_errors % 20 == 0 {
                        tracing::warn!(error = %e, repeats = accept_errors, "accept failed");
                    }
                    accept_errors += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; closing a new connection");
            continue; // `stream` drops: closed
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(router.clone().map_request(
            move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            },
        ));
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes)
                .serve_connection(TokioIo::new(stream), svc)
                // Upgrades (WebSocket signaling) come next; the connection type is ready.
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = stop_rx.changed() => {
                    conn.as_mut().graceful_shutdown();
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    drop(stop_tx);
    // Every connection holds a slot until it ends: all slots back means all done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}
