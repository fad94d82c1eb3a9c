//! corvid's HTTP server: the OpenAI-compatible API (`/v1/completions`,
//! `/v1/chat/completions`, `/v1/models`), vLLM's extras (`/health`, `/version`,
//! `/tokenize`, `/detokenize`), Prometheus `/metrics` and the built-in live `/dashboard`,
//! over a [`corvid_engine::EngineHandle`].
//!
//! The flow, one way: body → [`protocol`] type (via [`extract::ApiJson`], so bad bodies
//! are OpenAI-style errors) → [`validate`] (a [`validate::ValidatedRequest`]: tokenized
//! prompt, checked `SamplingParams`) → engine → [`sse`] chunks or one JSON response
//! (`docs/architecture.md` draws the whole path). Every failure is an
//! [`error::ApiError`]; every metric name lives in [`metrics::names`].
//!
//! The binary parses its flags into a [`ServerConfig`] and calls it like this:
//! ```no_run
//! # async fn f(config: corvid_server::ServerConfig) -> anyhow::Result<()> {
//! corvid_server::serve(config).await       // returns Ok after a graceful SIGTERM/SIGINT drain
//! # }
//! ```

pub mod body_timeout;
pub mod config;
pub mod conn;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod kv_events;
pub mod metrics;
pub mod middleware;
pub mod protocol;
pub mod server;
pub mod sse;
pub mod state;
pub mod tls;
pub mod validate;

pub use config::ServerConfig;
pub use error::ApiError;
pub use server::{router, serve, shutdown_signal, Server};
