//! State shared by every handler: the engine (set once loaded), metrics, flags.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use corvid_engine::EngineHandle;
use corvid_model::chat_template::is_builtin;
use corvid_model::chat_template::isolated::{IsolatedTemplate, WorkerCommand};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// Shared server state.
pub struct AppState {
    engine: OnceLock<EngineHandle>,
    /// The Prometheus metrics (`None` with `--disable-metrics`).
    pub metrics: Option<Arc<Metrics>>,
    /// The name the model is served under.
    pub served_model_name: String,
    /// The model path (shown as `root` by /v1/models).
    pub model_root: String,
    /// Unix seconds at start.
    pub created: u64,
    /// Required bearer key.
    pub api_key: Option<String>,
    template_worker: Option<WorkerCommand>,
    isolated_template: OnceLock<Arc<IsolatedTemplate>>,
    draining: AtomicBool,
    inflight: AtomicUsize,
}

impl AppState {
    /// New state, engine not loaded yet; `template_worker` as in
    /// [`crate::ServerConfig::template_worker`].
    pub fn new(
        metrics: Option<Arc<Metrics>>,
        served_model_name: String,
        model_root: String,
        api_key: Option<String>,
        template_worker: Option<WorkerCommand>,
    ) -> Self {
        AppState {
            engine: OnceLock::new(),
            metrics,
            served_model_name,
            model_root,
            created: unix_now(),
            api_key,
            template_worker,
            isolated_template: OnceLock::new(),
            draining: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
        }
    }

    /// Installs the loaded engine and publishes its configuration; starts the
    /// chat-template worker first if the model's template needs one (an error if it
    /// cannot start: the template never renders unconfined instead).
    pub fn set_engine(&self, engine: EngineHandle) -> corvid_model::Result<()> {
        let template = engine.tokenizer().chat_template();
        if let (Some(command), Some(t)) = (&self.template_worker, template) {
            if !is_builtin(&t.spec().source) {
                let isolated = IsolatedTemplate::start(command.clone(), t)?;
                tracing::info!("the chat template renders in memory-limited worker processes");
                let _ = self.isolated_template.set(Arc::new(isolated));
            }
        }
        if let Some(m) = &self.metrics {
            m.set_engine_info(engine.config());
            m.set_engine_gauges(&engine.snapshot());
        }
        let _ = self.engine.set(engine);
        Ok(())
    }

    /// The worker-rendered chat template, when the model's template is rendered outside
    /// this process.
    pub fn isolated_template(&self) -> Option<&Arc<IsolatedTemplate>> {
        self.isolated_template.get()
    }

    /// The engine, if loaded.
    pub fn engine_opt(&self) -> Option<&EngineHandle> {
        self.engine.get()
    }

    /// The engine, or 503 while loading (still answered while draining: for endpoints
    /// that start no generation).
    pub fn loaded_engine(&self) -> Result<&EngineHandle, ApiError> {
        self.engine
            .get()
            .ok_or_else(|| ApiError::unavailable("The model is still loading."))
    }

    /// The engine, or 503 while loading / draining (for endpoints that generate).
    pub fn engine(&self) -> Result<&EngineHandle, ApiError> {
        let engine = self.loaded_engine()?;
        if engine.is_dead() {
            return Err(ApiError::engine_dead());
        }
        if self.is_draining() {
            return Err(ApiError::unavailable("The server is shutting down."));
        }
        Ok(engine)
    }

    /// Checks the request's `model` against the served name (404 if it differs).
    pub fn check_model(&self, model: Option<&str>) -> Result<(), ApiError> {
        match model {
            Some(m) if !m.is_empty() && m != self.served_model_name => {
                Err(ApiError::model_not_found(m))
            }
            _ => Ok(()),
        }
    }

    /// True once a shutdown signal arrived.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Starts draining: /health turns 503, new generation requests are refused.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Generation requests whose HTTP response is still being produced.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }

    /// Counts one in-flight generation until the guard drops.
    pub fn inflight_guard(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        InflightGuard(Arc::clone(self))
    }

    /// Refreshes the gauges of `metrics` from the engine's snapshot (at scrape time).
    pub fn refresh_gauges(&self, metrics: &Metrics) {
        if let Some(e) = self.engine.get() {
            metrics.set_engine_gauges(&e.snapshot());
        }
    }
}

/// Decrements the in-flight count on drop.
pub struct InflightGuard(Arc<AppState>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
