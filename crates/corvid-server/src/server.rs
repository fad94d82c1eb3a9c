//! The router, the listeners, model loading and the graceful drain.
//!
//! Start-up: bind (so /health answers 503 at once), load the model on a blocking
//! thread, then /health turns 200. Shutdown (SIGTERM/SIGINT or the caller's future):
//! /health turns 503, new generation requests get 503, in-flight requests run to
//! their end for at most `shutdown_timeout`; then the listeners close and `run`
//! returns `Ok` — the process exits 0. If the engine thread dies instead, every request
//! ends with an error, /health turns 503 and `run` returns an error within seconds —
//! the process exits non-zero for its orchestrator to restart it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use axum::Router;
use corvid_engine::{EngineError, EngineHandle, StatsSink};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinError;

use crate::body_timeout::limit_body_time;
use crate::config::ServerConfig;
use crate::conn;
use crate::handlers::{chat, completions, dashboard, info, tokenize};
use crate::kv_events::KvEventPublisher;
use crate::metrics::{self, Metrics};
use crate::middleware::{request_id, require_api_key};
use crate::state::AppState;
use crate::tls;

/// Builds the API router over `state` (HTTP metrics only when metrics are on), with the
/// body size and time limits of `config`. `/metrics` is always there; the dashboard only
/// when `dashboard` is true (no `--metrics-port`: with one, the dashboard lives on that
/// listener alone).
pub fn router(state: Arc<AppState>, config: &ServerConfig, dashboard: bool) -> Router {
    let protected = Router::new()
        .route("/v1/completions", post(completions::completions))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/models", get(info::models))
        .route("/tokenize", post(tokenize::tokenize))
        .route("/detokenize", post(tokenize::detokenize))
        .route_layer(from_fn_with_state(Arc::clone(&state), require_api_key));
    let mut app = Router::new()
        .route("/health", get(info::health))
        .route("/version", get(info::version))
        .route("/metrics", get(info::metrics))
        .merge(protected);
    if dashboard {
        app = app.merge(dashboard_routes());
    }
    let app = app
        .fallback(info::not_found)
        .layer(DefaultBodyLimit::max(config.max_body_bytes));
    let app = match &state.metrics {
        Some(m) => app.layer(from_fn_with_state(Arc::clone(m), metrics::http::track)),
        None => app,
    };
    app.layer(from_fn(request_id))
        .layer(from_fn_with_state(
            config.connections.body_timeout,
            limit_body_time,
        ))
        .with_state(state)
}

/// The dashboard: its page, assets and JSON.
fn dashboard_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/", get(dashboard::slash))
        .route("/dashboard/assets/:file", get(dashboard::asset))
        .route("/dashboard/api/series", get(dashboard::series))
}

/// The router of the separate `--metrics-port` listener: `/metrics` and `/dashboard`.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    dashboard_routes()
        .route("/metrics", get(info::metrics))
        .fallback(info::not_found)
        .with_state(state)
}

/// A bound, not yet running server. [`Server::run`] loads the model and serves.
pub struct Server {
    config: ServerConfig,
    state: Arc<AppState>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    kv_events: Option<Arc<KvEventPublisher>>,
}

/// Every sink the engine reports to (the metrics and the KV-cache event publisher), as one.
struct Sinks(Vec<Arc<dyn StatsSink>>);

impl StatsSink for Sinks {
    fn on_step(&self, s: &corvid_engine::IterationStats) {
        self.0.iter().for_each(|sink| sink.on_step(s));
    }

    fn on_request_finished(&self, r: &corvid_engine::RequestStats) {
        self.0.iter().for_each(|sink| sink.on_request_finished(r));
    }

    fn on_kv_events(&self, events: &[corvid_engine::kv::KvCacheEvent]) {
        self.0.iter().for_each(|sink| sink.on_kv_events(events));
    }
}

impl Server {
    /// Binds the API port (and the metrics port, if any). Port 0 picks a free port.
    pub async fn bind(config: ServerConfig) -> anyhow::Result<Server> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let served = config.engine.served_name();
        let metrics = match &config.metrics {
            Some(opts) => Some(Arc::new(Metrics::new(&served, opts)?)),
            None => None,
        };
        let root = config.engine.model.display().to_string();
        let state = Arc::new(AppState::new(
            metrics,
            served,
            root,
            config.api_key.clone(),
            config.template_worker.clone(),
        ));
        let addr = format!("{}:{}", config.host, config.port);
        let backlog = config.connections.backlog;
        let listener = conn::bind(&addr, backlog)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let metrics_listener = match config.metrics_port {
            Some(p) => {
                let addr = format!("{}:{p}", config.host);
                Some(
                    conn::bind(&addr, backlog)
                        .await
                        .with_context(|| format!("cannot listen on {addr}"))?,
                )
            }
            None => None,
        };
        let kv_events = match &config.kv_events {
            Some(options) => Some(KvEventPublisher::start(options).await?),
            None => None,
        };
        Ok(Server {
            config,
            state,
            listener,
            metrics_listener,
            tls,
            kv_events,
        })
    }

    /// The API address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The separate metrics address, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("bound listener has an address"))
    }

    /// Where the engine's statistics go: this server's metrics and KV-cache event
    /// publisher (`None` when both are off). An engine built by the caller for
    /// [`Server::run_with_engine`] should report here.
    pub fn stats_sink(&self) -> Option<Arc<dyn StatsSink>> {
        let metrics = self
            .state
            .metrics
            .as_ref()
            .map(|m| Arc::clone(m) as Arc<dyn StatsSink>);
        let events = self
            .kv_events
            .as_ref()
            .map(|k| Arc::clone(k) as Arc<dyn StatsSink>);
        let mut sinks: Vec<_> = metrics.into_iter().chain(events).collect();
        match sinks.len() {
            0 | 1 => sinks.pop(),
            _ => Some(Arc::new(Sinks(sinks))),
        }
    }

    /// Serves until `shutdown` completes, then drains (see the module docs).
    /// Returns an error if the model cannot be loaded or the engine thread dies.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut args = self.config.engine.clone();
        args.enable_kv_cache_events |= self.kv_events.is_some();
        let sink = self.stats_sink();
        let load = tokio::task::spawn_blocking(move || EngineHandle::start(args, sink));
        self.serve(load, shutdown).await
    }

    /// [`Server::run`] over an engine the caller started (tests use a small one; give it
    /// [`Server::stats_sink`] so the metrics see its steps).
    pub async fn run_with_engine(
        self,
        engine: EngineHandle,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.serve(async { Ok(Ok(engine)) }, shutdown).await
    }

    /// Listens, waits for `engine` (a model load) unless `shutdown` comes first, serves,
    /// and drains.
    async fn serve(
        self,
        engine: impl Future<Output = Result<Result<EngineHandle, EngineError>, JoinError>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Server {
            config,
            state,
            listener,
            metrics_listener,
            tls,
            kv_events: _,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let app = router(Arc::clone(&state), &config, metrics_listener.is_none());
        tracing::info!(addr = %listener.local_addr()?, model = %state.served_model_name, tls = tls.is_some(), "listening");
        let limits = config.connections;
        let api = tokio::spawn(conn::serve(
            listener,
            app,
            tls,
            limits,
            stopped(stop_rx.clone()),
        ));
        let metrics_srv = metrics_listener.map(|l| {
            tracing::info!(addr = ?l.local_addr().ok(), "metrics listener");
            let app = metrics_router(Arc::clone(&state));
            tokio::spawn(conn::serve(l, app, None, limits, stopped(stop_rx.clone())))
        });

        // The dashboard's history samples for as long as this function runs.
        let _sampler = AbortOnDrop(tokio::spawn(dashboard::sample_history(Arc::clone(&state))));

        tokio::pin!(shutdown);
        let loaded_at = Instant::now();
        let engine = tokio::select! {
            r = engine => match r.context("model loading panicked")? {
                Ok(e) => Some(e),
                Err(e) => {
                    let _ = stop_tx.send(true);
                    return Err(anyhow::Error::new(e).context(format!("cannot load model {}", config.engine.model.display())));
                }
            },
            () = &mut shutdown => None,
        };
        if let Some(engine) = engine {
            tracing::info!(
                secs = loaded_at.elapsed().as_secs_f64(),
                max_model_len = engine.config().max_model_len,
                "model loaded, ready"
            );
            if let Err(e) = state.set_engine(engine.clone()) {
                let _ = stop_tx.send(true);
                return Err(anyhow::Error::new(e).context("cannot start the chat-template worker"));
            }
            tokio::select! {
                () = &mut shutdown => {}
                () = engine.died() => return fail_fast(&state, stop_tx, &config).await,
            }
        }

        // ---- drain ----
        tracing::info!(timeout = ?config.shutdown_timeout, "shutdown signal: draining");
        state.start_draining();
        let deadline = Instant::now() + config.shutdown_timeout;
        if let Some(e) = state.engine_opt() {
            e.shutdown();
        }
        let busy = |s: &AppState| s.inflight() + s.engine_opt().map_or(0, |e| e.num_unfinished());
        while busy(&state) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = busy(&state);
        if left > 0 {
            tracing::warn!(
                requests = state.inflight(),
                "shutdown timeout: cutting off in-flight requests"
            );
            if let Some(m) = &state.metrics {
                m.inc_timeouts(state.inflight().max(1));
            }
        }
        let _ = stop_tx.send(true);
        let grace = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(500));
        let mut servers = vec![api];
        servers.extend(metrics_srv);
        for s in servers {
            let abort = s.abort_handle();
            match tokio::time::timeout(grace, s).await {
                Ok(r) => r.context("server task panicked")?,
                Err(_) => abort.abort(),
            }
        }
        tracing::info!("shut down");
        Ok(())
    }
}

/// After the engine thread died: /health is already 503 and every request it held has
/// ended with an error; give their responses a moment to reach the clients, close the
/// listeners and return an error, so the process exits non-zero and its orchestrator
/// restarts it. Nothing is retried in a process whose engine state may be corrupt.
async fn fail_fast(
    state: &AppState,
    stop_tx: watch::Sender<bool>,
    config: &ServerConfig,
) -> anyhow::Result<()> {
    tracing::error!("engine failed: closing the listeners and exiting");
    state.start_draining();
    let deadline = Instant::now() + config.shutdown_timeout.min(FAILED_FLUSH_TIME);
    while state.inflight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    anyhow::bail!("the inference engine failed (see the panic above); exiting for a restart")
}

/// Longest a failed server waits for the error responses of its in-flight requests.
const FAILED_FLUSH_TIME: Duration = Duration::from_secs(2);

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is
/// called, not when the future is first polled.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut t), Ok(mut i)) => {
                    tokio::select! {
                        _ = t.recv() => tracing::info!("SIGTERM"),
                        _ = i.recv() => tracing::info!("SIGINT"),
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the server until SIGTERM/SIGINT, then drains and returns `Ok` (exit 0).
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let server = Server::bind(config).await?;
    // Install the handlers before loading the model so an early signal still drains.
    let signal = shutdown_signal();
    server.run(signal).await
}
