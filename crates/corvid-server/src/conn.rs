//! Every listener's accept loop (the API port, over TLS or not, and `--metrics-port`),
//! built so that idle or byte-at-a-time clients cannot starve real ones:
//!
//! - at most `max_connections` connections are open per listener. Beyond that, corvid
//!   stops calling `accept`: new connections wait in the kernel's listen backlog (no
//!   file descriptor, no memory in corvid) until an open one closes — gunicorn's
//!   `--worker-connections`, Tomcat's `maxConnections`. Nothing is refused for it; a
//!   request refused because the engine is full is a 503 (`--max-waiting-requests`).
//! - a connection must deliver a complete request head within `header_timeout` of being
//!   opened or of its previous response: hyper's `header_read_timeout`, which closes idle
//!   keep-alive connections and slow headers alike (`--timeout-keep-alive`). A TLS
//!   handshake has as long again before that.
//! - the request body has its own deadline ([`crate::body_timeout`]).
//!
//! Connections speak HTTP/1.1, as vLLM's uvicorn does. On shutdown the loop stops
//! accepting, idle connections close at once and busy ones after their response.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// How many connections a listener holds and how long a client may take to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections per listener; beyond it new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Length of the listen backlog (uvicorn's `--backlog`).
    pub backlog: u32,
    /// Time allowed for a complete request head, from the connection's opening or the
    /// end of its previous response; a TLS handshake gets as long again.
    pub header_timeout: Duration,
    /// Time allowed for a request body, from the end of its head.
    pub body_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// Production defaults: vLLM's 5 s keep-alive, nginx's 60 s body timeout, uvicorn's
    /// backlog of 2,048, and room for 4,096 clients per listener (each costs one file
    /// descriptor and a few KiB).
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            backlog: 2048,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// Binds `addr` (`host:port`) with a listen backlog of `backlog` connections (the
/// kernel caps it at `net.core.somaxconn`): the queue where connections beyond
/// `max_connections`, or arriving faster than they are accepted, wait. Tokio's own
/// `bind` keeps 128, which a burst of clients overflows (the kernel then drops SYNs and
/// clients retry a second later).
pub async fn bind(addr: &str, backlog: u32) -> io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(backlog)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address")))
}

/// Pause after a failed `accept` (out of file descriptors, mostly), so the loop does not
/// spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` (over TLS when `tls` is given) until `stop` completes, then
/// waits for the open connections to finish their responses and close.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => s.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let conn = Connection {
            http: http.clone(),
            app: app.clone(),
            watcher: graceful.watcher(),
        };
        let tls = tls.clone();
        let handshake_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            match tls {
                None => conn.serve(stream).await,
                Some(tls) => {
                    match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => conn.serve(stream).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// What one accepted connection needs to be served.
struct Connection {
    http: http1::Builder,
    app: Router,
    watcher: Watcher,
}

impl Connection {
    /// Serves HTTP/1.1 on `io` until the client or a timeout closes it.
    async fn serve(self, io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static) {
        let conn = self
            .http
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(self.app));
        if let Err(e) = self.watcher.watch(conn).await {
            tracing::debug!(error = %e, "connection closed with an error");
        }
    }
}
