//! The validated [`ServerConfig`] `corvid serve` runs with. The flags that fill it are
//! parsed by the `corvid` binary (`crates/corvid/src/serve.rs`); this crate knows
//! nothing of the command line.

use std::time::Duration;

use corvid_engine::EngineArgs;
use corvid_model::chat_template::isolated::WorkerCommand;

use crate::conn::ConnectionLimits;
use crate::kv_events::KvEventsOptions;
use crate::metrics::MetricsOptions;
use crate::tls::TlsFiles;

/// Everything [`crate::serve`] needs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on.
    pub host: String,
    /// Serve the API over TLS with these PEM files (`None`: plain HTTP).
    pub tls: Option<TlsFiles>,
    /// API port (0 = any free port).
    pub port: u16,
    /// Separate /metrics port, if any (0 = any free port).
    pub metrics_port: Option<u16>,
    /// Required bearer key, if any.
    pub api_key: Option<String>,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Connections per listener and the header/body read timeouts.
    pub connections: ConnectionLimits,
    /// The metric options; `None` when metrics are disabled.
    pub metrics: Option<MetricsOptions>,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_timeout: Duration,
    /// Publish KV-cache events over ZMQ (`None`: off, as in vLLM).
    pub kv_events: Option<KvEventsOptions>,
    /// The engine's arguments.
    pub engine: EngineArgs,
    /// How to start a chat-template worker: a model's own template (any but corvid's
    /// built-in ones) then renders in memory-limited worker processes. `None` renders
    /// in this process (tests, embedding).
    pub template_worker: Option<WorkerCommand>,
}

impl ServerConfig {
    /// A config for `engine` with the defaults of the flags (port 8000 on 0.0.0.0).
    pub fn new(engine: EngineArgs) -> Self {
        ServerConfig {
            host: "0.0.0.0".into(),
            tls: None,
            port: 8000,
            metrics_port: None,
            api_key: None,
            max_body_bytes: 8 * 1024 * 1024,
            connections: ConnectionLimits::default(),
            metrics: Some(MetricsOptions::default()),
            shutdown_timeout: Duration::from_secs(30),
            kv_events: None,
            engine,
            template_worker: None,
        }
    }
}
